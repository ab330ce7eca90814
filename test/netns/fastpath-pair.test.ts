/**
 * Two fast-path nodes (one with every offload, one with none) on a fabric VLAN: the inner
 * frames carry the 802.1Q tag on the wire, TCP crosses both ways through segmentation and
 * coalescing, and a frame that misses on the destination MAC is parked and delivered once
 * the answer is installed (the first ping is not lost). Last, table writes and a NIC's
 * removal while both directions carry traffic (the receive and transmit threads run
 * beside the control calls). Node 0's transmit thread also receives (threads 'one'), node 1
 * has receive threads ('split'): every test here runs through both.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { NetnsLab, netnsSkipReason, underlayAddr } from '../helpers/netns.js';
import { type FastPathNode, startFastPathNode } from './fastpath-harness.js';

const skip = netnsSkipReason();
const VNET = 5151;
const VLAN = 5;
const MAC = ['02:00:5e:30:00:01', '02:00:5e:30:00:02'] as const;
const IP = ['10.55.0.1', '10.55.0.2'] as const;

describe('two fast-path nodes on a fabric VLAN', { skip, timeout: 120_000 }, () => {
  const lab = new NetnsLab('fpp');
  const nodes: FastPathNode[] = [];
  let ns: [string, string] = ['', ''];
  let inst: [string, string] = ['', ''];
  const ul = [underlayAddr(0x1f11), underlayAddr(0x1f12)] as const;

  before(async () => {
    ns = [await lab.addNetns('a'), await lab.addNetns('b')];
    inst = [await lab.addNetns('i'), await lab.addNetns('j')];
    await lab.addVeth({ ns: ns[0], name: 'ul0' }, { ns: ns[1], name: 'ul0' });
    for (const i of [0, 1] as const) {
      await lab.ip(ns[i], 'addr', 'add', `${ul[i]}/24`, 'dev', 'ul0');
      await lab.ip(ns[i], 'link', 'set', 'ul0', 'up');
    }
    for (const i of [0, 1] as const) {
      const o = 1 - i;
      nodes.push(
        await startFastPathNode(lab, ns[i], {
          underlayIp: ul[i],
          underlayMtu: 1500,
          disable: i === 0 ? [] : ['tso', 'uso', 'gso', 'gro', 'coalesce', 'mmsg'],
          threads: i === 0 ? 'one' : 'split',
          nics: [{ netns: `/run/netns/${inst[i]}`, ifname: 'eth0', mac: MAC[i], ip: IP[i], vnet: VNET, vlan: VLAN, mtu: 1450 }],
          directory: [{ vnet: VNET, ip: IP[o], mac: MAC[o], underlay: ul[o] }],
        }),
      );
      await lab.ip(inst[i], 'addr', 'add', `${IP[i]}/24`, 'dev', 'eth0');
      await lab.ip(inst[i], 'link', 'set', 'eth0', 'up');
    }
  });

  after(async () => {
    for (const n of nodes) await n.stop();
    await lab.cleanup();
  });

  test('offloads: one node uses what it probed, the other none', () => {
    assert.equal(nodes[0]!.offloads.tso, nodes[0]!.offloads.probedTso);
    assert.equal(nodes[1]!.offloads.tso, false);
    assert.equal(nodes[1]!.offloads.gso, false);
    assert.equal(nodes[1]!.offloads.coalesce, false);
    assert.equal(nodes[0]!.offloads.oneThread, true, 'node 0 receives on its transmit thread');
    assert.equal(nodes[1]!.offloads.oneThread, false, 'node 1 has receive threads');
  });

  test('a frame whose destination MAC misses is parked, one upcall, delivered after the answer', async () => {
    // A static neighbour entry: no ARP, so the first ICMP frame itself misses on the MAC.
    await lab.ip(inst[0], 'neigh', 'replace', IP[1], 'lladdr', MAC[1], 'dev', 'eth0', 'nud', 'permanent');
    await lab.ip(inst[1], 'neigh', 'replace', IP[0], 'lladdr', MAC[0], 'dev', 'eth0', 'nud', 'permanent');
    const out = await lab.exec(inst[0], 'ping', '-c', '1', '-W', '3', IP[1]);
    assert.match(out, /1 received/, 'the parked first packet was not lost');
    assert.deepEqual(nodes[0]!.misses.filter((m) => m.kind === 'l2'), [{ kind: 'l2', vnet: VNET, mac: MAC[1] }]);
    const c = (await nodes[0]!.counters()).nics[0]!;
    assert.ok(c.parked! >= 1);
    assert.equal(c.flushed, 1, 'the parked echo request went out');
  });

  test('the inner frame carries the fabric VLAN tag on the wire', async () => {
    const cap = lab.spawnIn(ns[1], ['tcpdump', '-ni', 'ul0', '-c', '2', '-e', 'udp port 4789']);
    let text = '';
    cap.stdout!.on('data', (d: Buffer) => (text += d.toString()));
    await new Promise((r) => setTimeout(r, 500));
    await lab.exec(inst[0], 'ping', '-c', '2', '-i', '0.2', '-W', '2', IP[1]);
    await new Promise<void>((r) => (cap.exitCode !== null ? r() : cap.once('exit', () => r())));
    assert.match(text, new RegExp(`VXLAN, flags \\[I\\] \\(0x08\\), vni ${VNET}`));
    assert.match(text, new RegExp(`vlan ${VLAN}`));
  });

  test('TCP both ways through segmentation (TSO) and coalescing', async () => {
    for (const [from, to] of [[0, 1], [1, 0]] as const) {
      const server = lab.spawnIn(inst[to], ['iperf3', '-s', '-1', '-B', IP[to]]);
      await new Promise((r) => setTimeout(r, 300));
      const out = await lab.exec(inst[from], 'iperf3', '-c', IP[to], '-n', '4M', '-J');
      assert.ok(JSON.parse(out).end.sum_sent.bytes >= 4_000_000);
      await new Promise<void>((r) => (server.exitCode !== null ? r() : server.once('exit', () => r())));
    }
    const a = await nodes[0]!.counters();
    const b = await nodes[1]!.counters();
    if (nodes[0]!.offloads.tso) assert.ok(a.engine.segments! > a.nics[0]!.encap!, 'superframes were segmented');
    if (nodes[0]!.offloads.gso) assert.ok(a.engine.gso_sends! > 0, 'UDP_SEGMENT sends');
    if (nodes[0]!.offloads.coalesce) assert.ok(a.nics[0]!.coalesced! > 0, 'segments coalesced towards the TAP');
    assert.equal(b.engine.segments ?? 0, 0, 'no offloads on the other node');
    assert.equal(a.engine.drop_rx_vlan, 0);
    assert.equal(b.engine.drop_bad_vxlan, 0);
  });

  // Last: it removes node 0's NIC.
  test('table writes and a NIC removal while traffic flows both ways', async () => {
    const server = lab.spawnIn(inst[1], ['iperf3', '-s', '-1', '-B', IP[1]]);
    await new Promise((r) => setTimeout(r, 300));
    const client = lab.exec(inst[0], 'timeout', '8', 'iperf3', '-c', IP[1], '--bidir', '-t', '3', '-J').catch((err: Error) => err);
    const entry = (o: 0 | 1) => ({ op: 'l2set' as const, vnet: VNET, mac: MAC[o], underlay: ul[o], vlan: VLAN });
    const before = (await nodes[0]!.counters()).nics[0]!;
    for (let i = 0; i < 40; i++) {
      await nodes[0]!.ops([entry(1)]);
      await nodes[1]!.ops([entry(0)]);
      await new Promise((r) => setTimeout(r, 25));
    }
    const during = (await nodes[0]!.counters()).nics[0]!;
    assert.ok(during.rx_frames! > before.rx_frames! && during.tx_frames! > before.tx_frames!, 'traffic flowed both ways during the writes');
    await nodes[0]!.removeNic(0); // the TAP goes away under the forwarding threads
    await client;
    if (server.exitCode === null) server.kill('SIGKILL');
    const after0 = await nodes[0]!.counters(); // both engines still answer: no deadlock, no crash
    const after1 = await nodes[1]!.counters();
    assert.equal(after0.nics.length, 0);
    assert.ok(after1.nics[0]!.rx_frames! > 0);
    assert.equal(nodes[0]!.child.exitCode, null);
    assert.equal(nodes[1]!.child.exitCode, null);
  });
});
