/**
 * The userspace fast path against a plain Linux vxlan device, both ways: a node running
 * the engine (TAP in an instance namespace) and a node whose overlay is a kernel vxlan
 * device configured here exchange ping and TCP. Then the hostile cases: spoofed source
 * MAC / IP, oversize frames (ICMP frag-needed back), malformed VXLAN and unknown VNIs from
 * the underlay — dropped, counted, the engine keeps forwarding.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import { NetnsLab, netnsSkipReason, underlayAddr } from '../helpers/netns.js';
import { FastPathNode, startFastPathNode } from './fastpath-harness.js';

const skip = netnsSkipReason();
const VNET = 4242;
const MAC_U = '02:00:5e:10:00:01';
const MAC_K = '02:00:5e:10:00:02';
const MAC_U2 = '02:00:5e:10:00:03';

describe('fast path interop with Linux vxlan', { skip, timeout: 120_000 }, () => {
  const lab = new NetnsLab('fpi');
  let nsU = '', nsK = '', nsI = '', nsI2 = '';
  let node: FastPathNode;
  const ulU = underlayAddr(0x1f01);
  const ulK = underlayAddr(0x1f02);

  before(async () => {
    nsU = await lab.addNetns('u');
    nsK = await lab.addNetns('k');
    nsI = await lab.addNetns('i');
    nsI2 = await lab.addNetns('j');
    await lab.addVeth({ ns: nsU, name: 'ul0' }, { ns: nsK, name: 'ul0' });
    await lab.ip(nsU, 'addr', 'add', `${ulU}/24`, 'dev', 'ul0');
    await lab.ip(nsK, 'addr', 'add', `${ulK}/24`, 'dev', 'ul0');
    await lab.ip(nsU, 'link', 'set', 'ul0', 'up');
    await lab.ip(nsK, 'link', 'set', 'ul0', 'up');
    // The kernel node: a vxlan device that is itself the instance.
    await lab.ip(nsK, 'link', 'add', 'vx0', 'address', MAC_K, 'mtu', '1450', 'type', 'vxlan', 'id', String(VNET), 'dstport', '4789', 'local', ulK, 'nolearning', 'udpcsum');
    await lab.ip(nsK, 'addr', 'add', '10.9.0.2/24', 'dev', 'vx0');
    await lab.ip(nsK, 'link', 'set', 'vx0', 'up');
    await lab.ip(nsK, 'neigh', 'replace', '10.9.0.1', 'lladdr', MAC_U, 'dev', 'vx0', 'nud', 'permanent');
    await lab.ip(nsK, 'neigh', 'replace', '10.9.0.3', 'lladdr', MAC_U2, 'dev', 'vx0', 'nud', 'permanent');
    await lab.exec(nsK, 'bridge', 'fdb', 'add', MAC_U, 'dev', 'vx0', 'dst', ulU, 'self', 'permanent');
    await lab.exec(nsK, 'bridge', 'fdb', 'add', MAC_U2, 'dev', 'vx0', 'dst', ulU, 'self', 'permanent');
    node = await startFastPathNode(lab, nsU, {
      underlayIp: ulU,
      underlayMtu: 1500,
      nics: [
        { netns: `/run/netns/${nsI}`, ifname: 'eth0', mac: MAC_U, ip: '10.9.0.1', vnet: VNET, vlan: 0, mtu: 1450 },
        // Misconfigured on purpose: an MTU larger than the underlay allows.
        { netns: `/run/netns/${nsI2}`, ifname: 'eth0', mac: MAC_U2, ip: '10.9.0.3', vnet: VNET, vlan: 0, mtu: 1500 },
      ],
      directory: [{ vnet: VNET, ip: '10.9.0.2', mac: MAC_K, underlay: ulK }],
    });
    for (const [ns, ip] of [[nsI, '10.9.0.1'], [nsI2, '10.9.0.3']] as const) {
      await lab.ip(ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0');
      await lab.ip(ns, 'link', 'set', 'eth0', 'up');
    }
  });

  after(async () => {
    await node?.stop();
    await lab.cleanup();
  });

  test('ping from the userspace node to the kernel vxlan node (ARP answered in the fast path, first packet parked)', async () => {
    const out = await lab.exec(nsI, 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.9.0.2');
    assert.match(out, /3 received/);
    const c = await node.counters();
    assert.ok(c.nics[0]!.arp_replies! >= 1, 'ARP answered locally');
    assert.ok(c.nics[0]!.misses! >= 1, 'the first contact missed');
    assert.ok(c.nics[0]!.encap! >= 3);
    assert.ok(c.nics[0]!.rx_frames! >= 3);
  });

  test('ping from the kernel vxlan node to the userspace node', async () => {
    const out = await lab.exec(nsK, 'ping', '-c', '3', '-i', '0.2', '-W', '2', '10.9.0.1');
    assert.match(out, /3 received/);
  });

  test('TCP both ways (iperf3, 2 MB each direction)', async () => {
    const server = lab.spawnIn(nsK, ['iperf3', '-s', '-1', '-B', '10.9.0.2']);
    await new Promise((r) => setTimeout(r, 300));
    const up = await lab.exec(nsI, 'iperf3', '-c', '10.9.0.2', '-n', '2M', '-J');
    assert.ok(JSON.parse(up).end.sum_sent.bytes >= 2_000_000, up.slice(-400));
    await new Promise<void>((r) => (server.exitCode !== null ? r() : server.once('exit', () => r())));
    const server2 = lab.spawnIn(nsI, ['iperf3', '-s', '-1', '-B', '10.9.0.1']);
    await new Promise((r) => setTimeout(r, 300));
    const down = await lab.exec(nsK, 'iperf3', '-c', '10.9.0.1', '-n', '2M', '-J');
    assert.ok(JSON.parse(down).end.sum_sent.bytes >= 2_000_000, down.slice(-400));
    await new Promise<void>((r) => (server2.exitCode !== null ? r() : server2.once('exit', () => r())));
  });

  test('the outer UDP checksum is set and the source port varies with the inner flow', async () => {
    // The kernel counts bad checksums; none expected after the traffic above.
    const snmp = await lab.exec(nsK, 'cat', '/proc/net/snmp');
    const udp = snmp.split('\n').filter((l) => l.startsWith('Udp:'));
    const [names, values] = udp.map((l) => l.split(/\s+/));
    assert.equal(Number(values![names!.indexOf('InCsumErrors')]), 0);
  });

  test('spoofed source IP and MAC from an instance are dropped and counted', async () => {
    const before = (await node.counters()).nics[0]!;
    await lab.ip(nsI, 'addr', 'add', '10.9.0.99/32', 'dev', 'eth0');
    await assert.rejects(lab.exec(nsI, 'ping', '-c', '2', '-i', '0.2', '-W', '1', '-I', '10.9.0.99', '10.9.0.2'));
    await lab.ip(nsI, 'addr', 'del', '10.9.0.99/32', 'dev', 'eth0');
    await lab.ip(nsI, 'link', 'set', 'eth0', 'address', '02:00:5e:10:00:99');
    await assert.rejects(lab.exec(nsI, 'ping', '-c', '2', '-i', '0.2', '-W', '1', '10.9.0.2'));
    await lab.ip(nsI, 'link', 'set', 'eth0', 'address', MAC_U);
    const c = (await node.counters()).nics[0]!;
    assert.ok(c.drop_spoof_ip! > before.drop_spoof_ip!, 'foreign source IP counted');
    assert.ok(c.drop_spoof_mac! > before.drop_spoof_mac!, 'foreign source MAC counted');
    const out = await lab.exec(nsI, 'ping', '-c', '1', '-W', '2', '10.9.0.2');
    assert.match(out, /1 received/);
  });

  test('an oversize DF packet gets ICMP fragmentation-needed with the overlay MTU', async () => {
    const out = await lab.exec(nsI2, 'ping', '-c', '1', '-W', '2', '-M', 'do', '-s', '1460', '10.9.0.2').catch((e: Error) => e.message);
    const c = (await node.counters()).nics[1]!;
    assert.ok(c.icmp_too_big! >= 1, `ICMP sent (${out})`);
    const route = await lab.ip(nsI2, 'route', 'get', '10.9.0.2');
    assert.match(route, /mtu 1450/);
    const small = await lab.exec(nsI2, 'ping', '-c', '1', '-W', '2', '-s', '1400', '10.9.0.2');
    assert.match(small, /1 received/);
  });

  test('malformed VXLAN, unknown VNI and spoofed local MACs from the underlay: dropped, counted, still forwarding', async () => {
    const before = (await node.counters()).engine;
    const frame = (vni: number, dst: string, src: string, flags = 0x08, ethertype = 0x88b5): Buffer => {
      const b = Buffer.alloc(8 + 60);
      b[0] = flags;
      b.writeUIntBE(vni, 4, 3);
      Buffer.from(dst.split(':').map((h) => parseInt(h, 16))).copy(b, 8);
      Buffer.from(src.split(':').map((h) => parseInt(h, 16))).copy(b, 14);
      b.writeUInt16BE(ethertype, 20);
      return b;
    };
    const script = `
      const d = require('node:dgram').createSocket('udp4');
      const pkts = ${JSON.stringify([
        frame(VNET, MAC_U, MAC_K, 0x00).toString('hex'),
        Buffer.from('0800').toString('hex'),
        frame(VNET, MAC_U, MAC_K, 0x08, 0x0800).toString('hex'), // IPv4 ethertype, no valid IP header
        frame(999, MAC_U, MAC_K).toString('hex'),
        frame(VNET, '02:00:5e:10:00:77', MAC_K).toString('hex'),
        frame(VNET, MAC_U, MAC_U2).toString('hex'),
      ])};
      d.bind(0, '${ulK}', async () => { for (const p of pkts) await new Promise(r => d.send(Buffer.from(p, 'hex'), 4789, '${ulU}', r)); d.close(); });`;
    await lab.exec(nsK, process.execPath, '-e', script);
    await new Promise((r) => setTimeout(r, 300));
    const c = await node.counters();
    assert.equal(c.engine.drop_bad_vxlan! - before.drop_bad_vxlan!, 3, 'no I flag, too short, truncated inner IP');
    assert.equal(c.engine.drop_unknown_vni! - before.drop_unknown_vni!, 1);
    assert.equal(c.engine.drop_no_nic! - before.drop_no_nic!, 1);
    assert.ok(c.nics[0]!.drop_rx_spoof! >= 1, 'inner source claiming a local NIC');
    const out = await lab.exec(nsI, 'ping', '-c', '1', '-W', '2', '10.9.0.2');
    assert.match(out, /1 received/);
    void createSocket;
  });

  test('an unknown destination IP: one miss, NOTFOUND, negatively cached (no second upcall right away)', async () => {
    const missesBefore = node.misses.length;
    const answeredBefore = node.answered.length;
    const isMine = (m: { kind: string; ip?: string }) => m.kind === 'l3' && m.ip === '10.9.0.200';
    await assert.rejects(lab.exec(nsI, 'ping', '-c', '1', '-W', '1', '10.9.0.200'));
    // The NOTFOUND is in the table (on a loaded machine the answer may take a while).
    const until = Date.now() + 10_000;
    while (!node.answered.slice(answeredBefore).some(isMine)) {
      assert.ok(Date.now() < until, 'the miss was never answered');
      await new Promise((r) => setTimeout(r, 20));
    }
    const negativeBefore = (await node.counters()).nics[0]!.drop_negative!;
    // The first resolution's ARP retries may be spent by now (a slow answer): a fresh entry asks at once, inside the negative entry's life.
    await lab.ip(nsI, 'neigh', 'flush', 'to', '10.9.0.200');
    await assert.rejects(lab.exec(nsI, 'ping', '-c', '1', '-W', '1', '10.9.0.200'));
    const mine = node.misses.slice(missesBefore).filter(isMine);
    assert.equal(mine.length, 1, JSON.stringify(mine));
    const c = (await node.counters()).nics[0]!;
    assert.ok(c.drop_negative! > negativeBefore, 'the second ping met the negative entry');
  });
});
