/**
 * Isolation in the userspace fast path (issue #17, items 6, 7 and 10):
 * - fabric VLANs: an untagged frame is never delivered to a NIC on a non-zero VLAN, and an
 *   instance gets no ARP answer for another VLAN's address (the engine's entries carry
 *   the VLAN of the NIC they name);
 * - the miss table: every NIC has its own share, so one tenant asking for hundreds of
 *   unknown addresses does not keep another tenant's first packets from being resolved;
 * - the underlay: VXLAN is accepted only from known peer addresses, the rest is dropped,
 *   counted, and reported once (the agent then asks the API again);
 * and the userspace backend's state files are private (item 9).
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import { garpFrame } from '../../src/agent/plumbing/garp.js';
import { UserspaceBackend } from '../../src/agent/userspace/backend.js';
import { FastPath } from '../../src/dataplane/fastpath.js';
import { NetnsLab, netnsSkipReason, removeNicBridgeTablesIfUnused, underlayAddr } from '../helpers/netns.js';
import { type FastPathNode, startFastPathNode } from './fastpath-harness.js';

const skip = netnsSkipReason();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it is true (or fails with what). */
async function until(fn: () => Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A VXLAN datagram carrying an inner frame of a local-experimental ethertype. */
function vxlanFrame(vni: number, dst: string, src: string, tag?: number): Buffer {
  const mac = (m: string) => Buffer.from(m.split(':').map((h) => parseInt(h, 16)));
  const inner = Buffer.alloc(60);
  mac(dst).copy(inner, 0);
  mac(src).copy(inner, 6);
  inner.writeUInt16BE(0x88b5, 12);
  const frame = tag === undefined ? inner : Buffer.concat([inner.subarray(0, 12), Buffer.from([0x81, 0x00, tag >> 8, tag & 0xff]), inner.subarray(12)]);
  const h = Buffer.alloc(8);
  h[0] = 0x08;
  h.writeUIntBE(vni, 4, 3);
  return Buffer.concat([h, frame]);
}

/** Sends datagrams to dst:4789 from a socket bound to `from`, inside ns. */
async function sendFrom(lab: NetnsLab, ns: string, from: string, dst: string, datagrams: Buffer[]): Promise<void> {
  const script = `
    const d = require('node:dgram').createSocket('udp4');
    const pkts = ${JSON.stringify(datagrams.map((b) => b.toString('hex')))};
    d.bind(0, '${from}', async () => { for (const p of pkts) await new Promise(r => d.send(Buffer.from(p, 'hex'), 4789, '${dst}', r)); d.close(); });`;
  await lab.exec(ns, process.execPath, '-e', script);
}

describe('fabric VLANs are isolated across fast-path nodes', { skip, timeout: 120_000 }, () => {
  const lab = new NetnsLab('fvl');
  const VNET = 6161;
  const MAC = { a0: '02:00:5e:66:00:01', b5: '02:00:5e:66:00:02', b0: '02:00:5e:66:00:03', b5b: '02:00:5e:66:00:04', a5: '02:00:5e:66:00:05' };
  const IP = { a0: '10.66.0.1', b5: '10.66.0.2', b0: '10.66.0.3', b5b: '10.66.0.4', a5: '10.66.0.5' };
  const ul = [underlayAddr(0x1f21), underlayAddr(0x1f22)] as const;
  let ns: [string, string] = ['', ''];
  const inst: Record<keyof typeof MAC, string> = { a0: '', b5: '', b0: '', b5b: '', a5: '' };
  let nodeA: FastPathNode;
  let nodeB: FastPathNode;

  before(async () => {
    ns = [await lab.addNetns('a'), await lab.addNetns('b')];
    for (const k of Object.keys(inst) as Array<keyof typeof MAC>) inst[k] = await lab.addNetns(k);
    await lab.addVeth({ ns: ns[0], name: 'ul0' }, { ns: ns[1], name: 'ul0' });
    for (const i of [0, 1] as const) {
      await lab.ip(ns[i], 'addr', 'add', `${ul[i]}/24`, 'dev', 'ul0');
      await lab.ip(ns[i], 'link', 'set', 'ul0', 'up');
    }
    const nic = (k: keyof typeof MAC, vlan: number) => ({ netns: `/run/netns/${inst[k]}`, ifname: 'eth0', mac: MAC[k], ip: IP[k], vnet: VNET, vlan, mtu: 1400 });
    nodeA = await startFastPathNode(lab, ns[0], {
      underlayIp: ul[0],
      nics: [nic('a0', 0), nic('a5', 5)],
      directory: [
        // A node that does not filter by VLAN would send b5's frames untagged: this one is told so.
        { vnet: VNET, ip: IP.b5, mac: MAC.b5, underlay: ul[1], vlan: 0 },
        { vnet: VNET, ip: IP.b0, mac: MAC.b0, underlay: ul[1], vlan: 0 },
        { vnet: VNET, ip: IP.b5b, mac: MAC.b5b, underlay: ul[1], vlan: 5 },
      ],
    });
    nodeB = await startFastPathNode(lab, ns[1], {
      underlayIp: ul[1],
      nics: [nic('b5', 5), nic('b0', 0), nic('b5b', 5)],
      directory: [
        { vnet: VNET, ip: IP.a0, mac: MAC.a0, underlay: ul[0], vlan: 0 },
        { vnet: VNET, ip: IP.a5, mac: MAC.a5, underlay: ul[0], vlan: 5 },
      ],
    });
    for (const k of Object.keys(inst) as Array<keyof typeof MAC>) {
      await lab.ip(inst[k], 'addr', 'add', `${IP[k]}/24`, 'dev', 'eth0');
      await lab.ip(inst[k], 'link', 'set', 'eth0', 'up');
    }
  });

  after(async () => {
    await nodeA?.stop();
    await nodeB?.stop();
    await lab.cleanup();
  });

  test('same VLAN across nodes: ping works (VLAN 0 untagged, VLAN 5 tagged)', async () => {
    assert.match(await lab.exec(inst.a0, 'ping', '-c', '1', '-W', '3', IP.b0), /1 received/);
    assert.match(await lab.exec(inst.a5, 'ping', '-c', '1', '-W', '3', IP.b5b), /1 received/);
  });

  test('an untagged frame for a NIC on VLAN 5 is dropped by the receiving node', async () => {
    const before = (await nodeB.counters()).nics[0]!;
    // a0 (VLAN 0) knows b5's MAC; its node sends the frame untagged.
    await lab.ip(inst.a0, 'neigh', 'replace', IP.b5, 'lladdr', MAC.b5, 'dev', 'eth0', 'nud', 'permanent');
    await assert.rejects(lab.exec(inst.a0, 'ping', '-c', '2', '-i', '0.2', '-W', '1', IP.b5));
    const sent = (await nodeA.counters()).nics[0]!;
    assert.ok(sent.encap! >= 2, 'node A sent the frames');
    const after = (await nodeB.counters()).nics[0]!;
    assert.equal(after.rx_frames! - before.rx_frames!, 0, 'nothing reached b5');
    assert.ok(after.drop_rx_vlan! - before.drop_rx_vlan! >= 2, 'counted as drop_rx_vlan');
  });

  test('a frame tagged with another VLAN is dropped too', async () => {
    const before = (await nodeB.counters()).nics[0]!;
    await sendFrom(lab, ns[0], ul[0], ul[1], [vxlanFrame(VNET, MAC.b5, MAC.a0, 7), vxlanFrame(VNET, MAC.b5, MAC.a0, 5)]);
    await until(async () => (await nodeB.counters()).nics[0]!.rx_frames! > before.rx_frames!, 'the VLAN-5 frame');
    const after = (await nodeB.counters()).nics[0]!;
    assert.equal(after.rx_frames! - before.rx_frames!, 1, 'only the frame tagged 5 reached b5');
    assert.equal(after.drop_rx_vlan! - before.drop_rx_vlan!, 1);
  });

  test('an instance gets no ARP answer for an address on another VLAN of its vnet', async () => {
    const before = (await nodeA.counters()).nics[0]!;
    await assert.rejects(lab.exec(inst.a0, 'ping', '-c', '1', '-W', '2', IP.b5b));
    const after = (await nodeA.counters()).nics[0]!;
    assert.equal(after.arp_replies! - before.arp_replies!, 0, 'no ARP reply for a VLAN-5 address');
    assert.ok(after.drop_vlan! > before.drop_vlan!, 'counted as drop_vlan');
    assert.doesNotMatch(await lab.ip(inst.a0, 'neigh', 'show', IP.b5b), /lladdr/);
    // The same address is answered for a NIC on its VLAN.
    assert.match(await lab.exec(inst.a5, 'ping', '-c', '1', '-W', '3', IP.b5b), /1 received/);
  });
});

describe('the miss table: every NIC has its own share', { skip, timeout: 120_000 }, () => {
  const lab = new NetnsLab('fpm');
  const ul = underlayAddr(0x1f31);
  const FLOOD = 600;
  let node: FastPathNode;
  let flooder = '';
  let victim = '';

  before(async () => {
    const ns = await lab.addNetns('n');
    flooder = await lab.addNetns('f');
    victim = await lab.addNetns('v');
    // An underlay that leads nowhere: a veth whose other end is in the same namespace.
    await lab.addVeth({ ns, name: 'ul0' }, { ns, name: 'ul1' });
    await lab.ip(ns, 'addr', 'add', `${ul}/24`, 'dev', 'ul0');
    for (const dev of ['ul0', 'ul1']) await lab.ip(ns, 'link', 'set', dev, 'up');
    node = await startFastPathNode(lab, ns, {
      underlayIp: ul,
      nics: [
        { netns: `/run/netns/${flooder}`, ifname: 'eth0', mac: '02:00:5e:67:00:01', ip: '10.67.0.1', vnet: 7101, vlan: 0, mtu: 1400 },
        { netns: `/run/netns/${victim}`, ifname: 'eth0', mac: '02:00:5e:68:00:01', ip: '10.68.0.1', vnet: 7102, vlan: 0, mtu: 1400 },
      ],
      // Only the victim's destination is known; every address the flooder asks for is NOTFOUND.
      directory: [{ vnet: 7102, ip: '10.68.0.2', mac: '02:00:5e:68:00:02', underlay: underlayAddr(0x1f32) }],
    });
    await lab.ip(flooder, 'addr', 'add', '10.67.0.1/16', 'dev', 'eth0');
    await lab.ip(victim, 'addr', 'add', '10.68.0.1/24', 'dev', 'eth0');
    for (const i of [flooder, victim]) await lab.ip(i, 'link', 'set', 'eth0', 'up');
  });

  after(async () => {
    await node?.stop();
    await lab.cleanup();
  });

  test('a tenant asking for hundreds of unknown addresses does not block another tenant\'s first contact', async () => {
    // One datagram to each of FLOOD addresses: the flooder's kernel ARPs for every one
    // (the datagrams wait in the socket's buffer for ARP: make room for all of them).
    const script = `
      const d = require('node:dgram').createSocket({ type: 'udp4', sendBufferSize: 8 << 20 });
      d.bind(0, '10.67.0.1', async () => {
        const sent = [];
        for (let i = 0; i < ${FLOOD}; i++) sent.push(new Promise(r => d.send(Buffer.alloc(8), 9, '10.67.' + (1 + (i >> 8)) + '.' + (i & 255), r)));
        await Promise.all(sent);
        d.close();
      });`;
    await lab.exec(flooder, process.execPath, '-e', script);
    // Every request was taken in: parked behind a miss, or refused for want of room.
    await until(async () => {
      const c = (await node.counters()).nics[0]!;
      return c.misses! + c.drop_park_full! >= FLOOD;
    }, 'the flood to be handled');
    const flood = (await node.counters()).nics[0]!;
    assert.ok(flood.drop_park_full! > 0, 'the flooder is held to its share');
    // Its NOTFOUND answers are remembered for 2 s: the victim asks now.
    await lab.exec(victim, 'ping', '-c', '1', '-W', '1', '10.68.0.2').catch(() => undefined);
    const v = (await node.counters()).nics[1]!;
    assert.equal(v.drop_park_full, 0, 'the victim found room for its miss');
    assert.ok(v.arp_replies! >= 1, 'the victim\'s ARP was answered');
  });
});

describe('VXLAN is accepted only from known peer underlay addresses', { skip, timeout: 120_000 }, () => {
  const lab = new NetnsLab('fpk');
  const VNET = 7201;
  const MAC_U = '02:00:5e:72:00:01';
  const MAC_R = '02:00:5e:72:00:02';
  const ulU = underlayAddr(0x1f41);
  const ulPeer = underlayAddr(0x1f42);
  const ulStranger = underlayAddr(0x1f43);
  let nsU = '';
  let nsK = '';
  let node: FastPathNode;

  before(async () => {
    nsU = await lab.addNetns('u');
    nsK = await lab.addNetns('k');
    const inst = await lab.addNetns('i');
    await lab.addVeth({ ns: nsU, name: 'ul0' }, { ns: nsK, name: 'ul0' });
    await lab.ip(nsU, 'addr', 'add', `${ulU}/24`, 'dev', 'ul0');
    await lab.ip(nsK, 'addr', 'add', `${ulPeer}/24`, 'dev', 'ul0');
    await lab.ip(nsK, 'addr', 'add', `${ulStranger}/24`, 'dev', 'ul0');
    await lab.ip(nsU, 'link', 'set', 'ul0', 'up');
    await lab.ip(nsK, 'link', 'set', 'ul0', 'up');
    node = await startFastPathNode(lab, nsU, {
      underlayIp: ulU,
      nics: [{ netns: `/run/netns/${inst}`, ifname: 'eth0', mac: MAC_U, ip: '10.72.0.1', vnet: VNET, vlan: 0, mtu: 1400 }],
      directory: [],
      peers: [ulPeer],
    });
    await lab.ip(inst, 'link', 'set', 'eth0', 'up');
  });

  after(async () => {
    await node?.stop();
    await lab.cleanup();
  });

  /** Sends one frame for the local NIC from `from`; returns the NIC's rx and the engine's unknown-peer deltas. */
  async function deliver(from: string): Promise<{ rx: number; unknown: number }> {
    const before = await node.counters();
    await sendFrom(lab, nsK, from, ulU, [vxlanFrame(VNET, MAC_U, MAC_R)]);
    await until(async () => {
      const c = await node.counters();
      return c.nics[0]!.rx_frames! + (c.engine.drop_unknown_peer ?? 0) > before.nics[0]!.rx_frames! + (before.engine.drop_unknown_peer ?? 0);
    }, `the datagram from ${from}`);
    const after = await node.counters();
    return { rx: after.nics[0]!.rx_frames! - before.nics[0]!.rx_frames!, unknown: (after.engine.drop_unknown_peer ?? 0) - (before.engine.drop_unknown_peer ?? 0) };
  }

  test('a known peer\'s frame is delivered; a stranger\'s is dropped, counted and reported', async () => {
    assert.deepEqual(await deliver(ulPeer), { rx: 1, unknown: 0 });
    assert.deepEqual(await deliver(ulStranger), { rx: 0, unknown: 1 });
    await until(async () => node.misses.some((m) => m.kind === 'peer'), 'the unknown-peer upcall');
    assert.deepEqual(node.misses.filter((m) => m.kind === 'peer'), [{ kind: 'peer', address: ulStranger }]);
  });

  test('the set follows the nodes: a new peer is accepted, a removed one is not', async () => {
    await node.peers([ulPeer, ulStranger]);
    assert.deepEqual(await deliver(ulStranger), { rx: 1, unknown: 0 });
    await node.peers([ulStranger]);
    assert.deepEqual(await deliver(ulPeer), { rx: 0, unknown: 1 });
    await node.peers([ulPeer]);
  });
});

describe('a gratuitous ARP reaches only the NICs on the VLAN of the MAC it announces', { skip }, () => {
  const lab = new NetnsLab('fpg');
  let fp: FastPath;

  before(() => {
    // Loopback underlay on an ephemeral port: nothing here sends to the network.
    fp = FastPath.open({ underlayIp: '127.0.0.1', port: 0, underlayMtu: 1500 }, () => undefined);
  });

  after(async () => {
    fp?.close();
    await lab.cleanup();
  });

  test('inject() writes into the VLAN-5 NIC only', async () => {
    const ids: number[] = [];
    for (const [k, vlan] of [[1, 0], [2, 5]] as const) {
      const ns = await lab.addNetns(`i${k}`);
      ids.push(fp.addNic({ netns: `/run/netns/${ns}`, ifname: 'eth0', mac: `02:00:5e:73:00:0${k}`, ip: `10.73.0.${k}`, vnet: 7301, vlan, mtu: 1400 }));
      await lab.ip(ns, 'link', 'set', 'eth0', 'up');
    }
    fp.update([
      { op: 'l2set', vnet: 7301, mac: '02:00:5e:73:00:09', underlay: '198.18.0.9', vlan: 5 },
      { op: 'l3set', vnet: 7301, ip: '10.73.0.9', mac: '02:00:5e:73:00:09', vlan: 5 },
    ]);
    fp.inject(7301, garpFrame('10.73.0.9', '02:00:5e:73:00:09'));
    assert.equal(fp.counters(ids[0]).rx_frames, 0, 'not into the VLAN-0 NIC');
    assert.equal(fp.counters(ids[1]).rx_frames, 1, 'into the VLAN-5 NIC');
  });
});

describe('userspace backend: peers from the API, drops on /metrics, private state files', { skip, timeout: 60_000 }, () => {
  const NIC_MAC = '02:00:5e:74:00:01';
  const lab = new NetnsLab('fpu');
  const port = 40_000 + Math.floor(Math.random() * 20_000);
  let root = '';
  let ns = '';
  let backend: UserspaceBackend;
  const listed = ['127.0.0.3'];
  let listings = 0;
  const registry = new Registry();

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'rhumb-usp-'));
    ns = await lab.addNetns('i');
    backend = new UserspaceBackend([], { port, stateDir: join(root, 'state', 'rhumb') });
    backend.registerMetrics(registry);
    await backend.start({
      underlayIp: '127.0.0.1',
      onMiss: () => undefined,
      log: () => undefined,
      peerUnderlays: async () => {
        listings++;
        return [...listed];
      },
    });
  });

  after(async () => {
    // The NIC's TAP and bridge are in this (the test's) namespace: unplumbed, not left.
    if (backend?.isPlumbed(NIC_MAC)) await backend.unplumb(NIC_MAC, 7401);
    backend?.close();
    await lab.cleanup();
    rmSync(root, { recursive: true, force: true });
    await removeNicBridgeTablesIfUnused();
  });

  const unknownPeerDrops = async (): Promise<number> => {
    const m = /rhumb_fastpath_engine_total\{counter="drop_unknown_peer"\} (\d+)/.exec(await registry.metrics());
    return Number(m?.[1] ?? NaN);
  };

  /** One VXLAN datagram to the backend's port from a loopback address. */
  const sendFromLoopback = (from: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const s = createSocket('udp4');
      s.once('error', reject);
      s.bind(0, from, () => s.send(vxlanFrame(7401, '02:00:5e:74:00:01', '02:00:5e:74:00:02'), port, '127.0.0.1', (err) => {
        s.close();
        if (err) reject(err);
        else resolve();
      }));
    });

  test('its state directory and file are 0700 and 0600', async () => {
    await backend.plumb({
      mac: NIC_MAC, ip: '10.74.0.1', prefix: 24, mtu: 1400, routes: [], gateway: undefined, vnet: 7401, vlan: 0,
      allowMacSpoofing: false, allowIpSpoofing: false, netns: `/run/netns/${ns}`, ifname: 'eth0',
    });
    const dir = join(root, 'state', 'rhumb');
    assert.equal(statSync(dir).mode & 0o777, 0o700, 'state directory');
    assert.equal(statSync(join(dir, 'userspace-127.0.0.1.json')).mode & 0o777, 0o600, 'state file');
    assert.ok(listings >= 2, 'the peers were listed at start and again when the NIC was plumbed');
  });

  test('VXLAN from an address that is no underlay NIC is dropped and counted on /metrics; a listed one is not', async () => {
    const before = await unknownPeerDrops();
    await sendFromLoopback('127.0.0.3');
    await sendFromLoopback('127.0.0.2');
    await until(async () => (await unknownPeerDrops()) > before, 'the drop to be counted');
    await sleep(100);
    assert.equal((await unknownPeerDrops()) - before, 1, 'only the stranger counted');
  });

  test('a node that joins later is accepted once the API lists it (the drop triggers a new listing)', async () => {
    listed.push('127.0.0.2');
    const start = listings;
    // The first datagram after the join is dropped, and makes the backend ask the API again.
    await until(async () => {
      const before = await unknownPeerDrops();
      await sendFromLoopback('127.0.0.2');
      await sleep(100);
      return (await unknownPeerDrops()) === before;
    }, 'datagrams from the new node to be accepted', 15_000);
    assert.ok(listings > start, 'listed again');
  });
});
