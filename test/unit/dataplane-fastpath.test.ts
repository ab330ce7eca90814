/**
 * The fast path's typed face, without packets: table records (what TypeScript hands the
 * C engine), address keys, the --no-offload list, and the userspace backend's gratuitous
 * ARP frame.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeEntries, encodeOps, ipKey, ipKeyText, macBytes, parseOffloadList } from '../../src/dataplane/fastpath.js';
import { decodeFrame } from '../../src/agent/trace/decode.js';
import { garpFrame } from '../../src/agent/plumbing/garp.js';

test('table operations pack into 32-byte records the engine reads', () => {
  const b = encodeOps([
    { op: 'l2set', vnet: 0x123456, mac: '02:08:20:aa:bb:cc', underlay: '198.18.0.2' },
    { op: 'l3set', vnet: 7, ip: '10.0.0.7', mac: '02:08:20:aa:bb:cc' },
    { op: 'l3del', vnet: 7, ip: 'fe80::1' },
    { op: 'l2notfound', vnet: 7, mac: '02:00:00:00:00:01' },
  ]);
  assert.equal(b.length, 128);
  assert.equal(b[0], 1);
  assert.equal(b.readUInt32LE(4), 0x123456);
  assert.equal(b.subarray(8, 14).toString('hex'), '020820aabbcc');
  assert.equal(b.subarray(28, 32).toString('hex'), 'c6120002', 'underlay IPv4 in the mapped tail');
  assert.equal(b[32], 3);
  assert.equal(b.subarray(32 + 16, 32 + 32).toString('hex'), '00000000000000000000ffff0a000007');
  assert.equal(b[64], 4);
  assert.equal(b.subarray(64 + 16, 64 + 18).toString('hex'), 'fe80');
  assert.equal(b[96], 5);
});

test('bad operations throw before anything is encoded', () => {
  assert.throws(() => encodeOps([{ op: 'l2set', vnet: 1, mac: 'nope', underlay: '1.2.3.4' }]), /bad MAC/);
  assert.throws(() => encodeOps([{ op: 'l3set', vnet: 1, ip: '10.0.0.300', mac: '02:00:00:00:00:01' }]), /bad IP/);
  assert.throws(() => encodeOps([{ op: 'l3del', vnet: 1 << 24, ip: '10.0.0.1' }]), /bad vnet/);
});

test('entries decode from the same records', () => {
  const b = encodeOps([
    { op: 'l2set', vnet: 9, mac: '02:00:00:00:00:0a', underlay: '198.18.0.9' },
    { op: 'l3set', vnet: 9, ip: '10.1.2.3', mac: '02:00:00:00:00:0a' },
    { op: 'l3set', vnet: 9, ip: '2001:db8::5', mac: '02:00:00:00:00:0b' },
  ]);
  assert.deepEqual(decodeEntries(b), {
    fdb: [{ mac: '02:00:00:00:00:0a', underlay: '198.18.0.9' }],
    neighbours: [
      { ip: '10.1.2.3', mac: '02:00:00:00:00:0a' },
      { ip: '2001:db8::5', mac: '02:00:00:00:00:0b' },
    ],
  });
});

test('address keys round-trip (IPv4-mapped and IPv6)', () => {
  for (const ip of ['10.0.0.1', '255.255.255.255', 'fe80::1', '2001:db8::5', '::', '2001:db8:0:1:2:3:4:5']) {
    assert.equal(ipKeyText(ipKey(ip)), ip);
  }
  assert.equal(ipKey('::ffff:1.2.3.4').subarray(12).toString('hex'), '01020304');
  assert.deepEqual([...macBytes('02:00:5E:10:00:01')], [2, 0, 0x5e, 0x10, 0, 1]);
});

test('--no-offload lists: names, all, and a clear error', () => {
  assert.deepEqual(parseOffloadList('tso, gro'), ['tso', 'gro']);
  assert.deepEqual(parseOffloadList(''), []);
  assert.equal(parseOffloadList('all').length, 6);
  assert.throws(() => parseOffloadList('tso,warp'), /unknown offload warp/);
});

test('the gratuitous ARP announces ip at mac to everyone (reply form, like the kernel backend)', () => {
  const f = garpFrame('10.77.0.20', '02:08:20:00:00:14');
  assert.equal(f.length, 42);
  const p = decodeFrame(f);
  assert.equal(p.link?.dst, 'ff:ff:ff:ff:ff:ff');
  assert.equal(p.arp?.op, 'reply');
  assert.equal(p.arp?.senderIp, '10.77.0.20');
  assert.equal(p.arp?.targetIp, '10.77.0.20');
  assert.equal(p.arp?.senderMac, '02:08:20:00:00:14');
});
