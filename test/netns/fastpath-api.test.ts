/**
 * The fast path's control surface with real TAP devices: a NIC's TAP is born inside the
 * instance namespace with its MAC and MTU and leaves with removeNic; bad input is a clear
 * error that leaves nothing behind; table batches are all or nothing; a closed engine
 * refuses calls.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import type { NicPlumbing } from '../../src/agent/plumbing/nic.js';
import { UserspaceBackend } from '../../src/agent/userspace/backend.js';
import { FastPath } from '../../src/dataplane/fastpath.js';
import { NetnsLab, netnsSkipReason } from '../helpers/netns.js';

const skip = netnsSkipReason();

describe('fast path control surface', { skip }, () => {
  const lab = new NetnsLab('fpa');
  let ns = '';
  let fp: FastPath;

  before(async () => {
    ns = await lab.addNetns('i');
    // Loopback underlay on an ephemeral port: nothing here sends to the network.
    fp = FastPath.open({ underlayIp: '127.0.0.1', port: 0, underlayMtu: 1500 }, () => undefined);
  });

  after(async () => {
    fp?.close();
    await lab.cleanup();
  });

  test('a NIC is a TAP inside the instance namespace with its MAC and MTU; removeNic deletes it', async () => {
    const id = fp.addNic({ netns: `/run/netns/${ns}`, ifname: 'eth7', mac: '02:00:5e:50:00:07', ip: '10.5.0.7', vnet: 12, vlan: 0, mtu: 1400 });
    const link = await lab.ip(ns, '-d', 'link', 'show', 'eth7');
    assert.match(link, /link\/ether 02:00:5e:50:00:07/);
    assert.match(link, /mtu 1400/);
    assert.match(link, /tun type tap/);
    assert.deepEqual(fp.counters(id).tx_frames, 0);
    fp.removeNic(id);
    await assert.rejects(lab.ip(ns, 'link', 'show', 'eth7'));
    assert.throws(() => fp.counters(id), /unknown NIC/);
  });

  test('bad NIC input: clear errors, no device left', async () => {
    assert.throws(() => fp.addNic({ netns: '/nonexistent/netns', ifname: 'eth0', mac: '02:00:5e:50:00:08', ip: '10.5.0.8', vnet: 12, vlan: 0, mtu: 1400 }), /open netns.*No such file/);
    assert.throws(() => fp.addNic({ netns: `/run/netns/${ns}`, ifname: 'a-very-long-ifname', mac: '02:00:5e:50:00:08', ip: '10.5.0.8', vnet: 12, vlan: 0, mtu: 1400 }), TypeError);
    assert.throws(() => fp.addNic({ netns: `/run/netns/${ns}`, ifname: 'eth0', mac: 'zz', ip: '10.5.0.8', vnet: 12, vlan: 0, mtu: 1400 }), /bad MAC/);
    const links = await lab.ip(ns, '-o', 'link', 'show');
    assert.equal(links.trim().split('\n').length, 1, `only lo: ${links}`);
  });

  test('table batches apply whole, or not at all', () => {
    fp.update([
      { op: 'l2set', vnet: 12, mac: '02:00:5e:50:00:09', underlay: '198.18.0.9' },
      { op: 'l3set', vnet: 12, ip: '10.5.0.9', mac: '02:00:5e:50:00:09' },
    ]);
    assert.deepEqual(fp.entries(12), { fdb: [{ mac: '02:00:5e:50:00:09', underlay: '198.18.0.9' }], neighbours: [{ ip: '10.5.0.9', mac: '02:00:5e:50:00:09' }] });
    assert.throws(() => fp.update([{ op: 'l3del', vnet: 12, ip: '10.5.0.9' }, { op: 'l2del', vnet: 12, mac: 'bad' }]), /bad MAC/);
    assert.equal(fp.entries(12).neighbours.length, 1, 'the valid half of a bad batch was not applied');
    // A shootdown replaces the IP's MAC and drops the old MAC in one batch.
    fp.update([{ op: 'l3set', vnet: 12, ip: '10.5.0.9', mac: '02:00:5e:50:00:0a' }, { op: 'l2set', vnet: 12, mac: '02:00:5e:50:00:0a', underlay: '198.18.0.10' }, { op: 'l2del', vnet: 12, mac: '02:00:5e:50:00:09' }]);
    assert.deepEqual(fp.entries(12), { fdb: [{ mac: '02:00:5e:50:00:0a', underlay: '198.18.0.10' }], neighbours: [{ ip: '10.5.0.9', mac: '02:00:5e:50:00:0a' }] });
    assert.deepEqual(fp.entries(13), { fdb: [], neighbours: [] }, 'other vnets untouched');
  });

  test('counters name every drop reason; offloads report what was probed', () => {
    const names = fp.counterNames();
    for (const n of ['tx_frames', 'rx_bytes', 'misses', 'parked', 'drop_spoof_mac', 'drop_spoof_ip', 'drop_too_big', 'drop_bad_vxlan', 'drop_unknown_vni']) assert.ok(names.includes(n), n);
    const o = fp.offloads();
    assert.equal(o.gso, o.probedGso);
    assert.equal(o.mmsg, true);
  });

  test('a second engine on the same address and port is refused, though the first one shares it among its own sockets', () => {
    let first: FastPath | undefined;
    let port = 0;
    for (let i = 0; i < 20 && !first; i++) {
      port = 20000 + randomInt(20000);
      try {
        first = FastPath.open({ underlayIp: '127.0.0.1', port, underlayMtu: 1500 }, () => undefined);
      } catch {
        /* taken by someone else: another port */
      }
    }
    assert.ok(first, 'no free port found');
    try {
      assert.throws(() => FastPath.open({ underlayIp: '127.0.0.1', port, underlayMtu: 1500 }, () => undefined), /bind underlay UDP socket.*(in use|EADDRINUSE)/i);
    } finally {
      first.close();
    }
  });

  test('offloads can be switched off at open', () => {
    const off = FastPath.open({ underlayIp: '127.0.0.1', port: 0, disable: ['tso', 'gso', 'gro', 'coalesce'] }, () => undefined);
    try {
      const o = off.offloads();
      assert.equal(o.tso, false);
      assert.equal(o.gso, false);
      assert.equal(o.gro, false);
      assert.equal(o.coalesce, false);
    } finally {
      off.close();
    }
    assert.throws(() => off.entries(1), /closed/);
    off.close(); // twice is fine
  });
});

describe('userspace backend: plumbing, restart re-attach, metrics', { skip }, () => {
  const lab = new NetnsLab('fpb');
  let ns = '';
  let stateDir = '';

  before(async () => {
    ns = await lab.addNetns('i');
    stateDir = mkdtempSync(join(tmpdir(), 'rhumb-us-'));
  });

  after(async () => {
    await lab.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  });

  const plumbing = (netns: string): NicPlumbing => ({
    mac: '02:00:5e:60:00:01', ip: '10.6.0.1', prefix: 24, mtu: 1400, routes: [], gateway: undefined, vnet: 33, vlan: 0,
    allowMacSpoofing: false, allowIpSpoofing: false, netns, ifname: 'eth0',
  });

  test('plumb, close (the TAP stays), start again (re-attached), unplumb (gone); counters as metrics', async () => {
    const logs: string[] = [];
    const start = { underlayIp: '127.0.0.1', onMiss: () => undefined, log: (m: string) => void logs.push(m) };
    const b1 = new UserspaceBackend([], { port: 0, stateDir });
    await b1.start(start);
    assert.deepEqual(await b1.plumb(plumbing(`/run/netns/${ns}`)), { firstOnVnet: true });
    assert.match(await lab.ip(ns, 'addr', 'show', 'eth0'), /inet 10\.6\.0\.1\/24/);
    assert.deepEqual(b1.plumbedMacs(), ['02:00:5e:60:00:01']);
    const registry = new Registry();
    b1.registerMetrics(registry);
    assert.match(await registry.metrics(), /rhumb_fastpath_nic_total\{mac="02:00:5e:60:00:01",vnet="33",counter="tx_frames"\} \d+/);
    assert.match(await registry.metrics(), /rhumb_fastpath_engine_total\{counter="drop_bad_vxlan"\} 0/);
    b1.close();
    assert.match(await lab.ip(ns, 'link', 'show', 'eth0'), /eth0/, 'the persistent TAP outlives the backend');

    const b2 = new UserspaceBackend([], { port: 0, stateDir });
    await b2.start(start);
    assert.deepEqual(b2.plumbedMacs(), ['02:00:5e:60:00:01']);
    assert.equal(b2.vnetOf('02:00:5E:60:00:01'), 33);
    assert.ok(logs.some((l) => /re-attached 1 TAP/.test(l)), logs.join('\n'));
    assert.match(await lab.ip(ns, 'addr', 'show', 'eth0'), /inet 10\.6\.0\.1\/24/, 'address kept across the restart');
    assert.deepEqual(await b2.unplumb('02:00:5e:60:00:01', 33), { vnetRemoved: true });
    await assert.rejects(lab.ip(ns, 'link', 'show', 'eth0'));
    b2.close();

    const b3 = new UserspaceBackend([], { port: 0, stateDir });
    await b3.start(start);
    assert.deepEqual(b3.plumbedMacs(), [], 'nothing left to re-attach');
    b3.close();
  });
});
