/**
 * The fast path's control surface with real TAP devices: a NIC's TAP is born inside the
 * instance namespace with its MAC and MTU and leaves with removeNic; bad input is a clear
 * error that leaves nothing behind; table batches are all or nothing; a closed engine
 * refuses calls. Then the userspace backend's plumbing (the TAP in the node's namespace, a
 * bridge, a veth into the instance): devices, restart, failure and leftovers.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Registry } from 'prom-client';
import type { NicPlumbing } from '../../src/agent/plumbing/nic.js';
import { UserspaceBackend } from '../../src/agent/userspace/backend.js';
import { FastPath } from '../../src/dataplane/fastpath.js';
import { NetnsLab, netnsSkipReason, removeNicBridgeTablesIfUnused, run } from '../helpers/netns.js';
import { eventually } from '../helpers/datacenter.js';

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

  test("a TAP in an instance namespace caps its superframes at one UDP_SEGMENT send's segments, unless segmentation offloads are off", async () => {
    const gsoMaxSegs = async (ifname: string): Promise<number> => {
      const m = /gso_max_segs (\d+)/.exec(await lab.ip(ns, '-d', 'link', 'show', ifname));
      assert.ok(m, `gso_max_segs of ${ifname}`);
      return Number(m[1]);
    };
    const nic = { netns: `/run/netns/${ns}`, mac: '02:00:5e:50:00:09', ip: '10.5.0.9', vnet: 12, vlan: 0 };
    const offloads = fp.offloads();
    const capped = fp.addNic({ ...nic, ifname: 'eth8', mtu: 1450 });
    const jumbo = fp.addNic({ ...nic, ifname: 'eth9', mac: '02:00:5e:50:00:0a', ip: '10.5.0.10', mtu: 8950 });
    try {
      // 65000 bytes a send / (MTU + VXLAN, Ethernet and tag headers): 44 at 1450, 7 at 8950.
      if (offloads.tso && offloads.gso) {
        assert.equal(await gsoMaxSegs('eth8'), 44);
        assert.equal(await gsoMaxSegs('eth9'), 7);
      }
    } finally {
      fp.removeNic(capped);
      fp.removeNic(jumbo);
    }
    const off = FastPath.open({ underlayIp: '127.0.0.1', port: 0, underlayMtu: 1500, disable: ['gso'] }, () => undefined);
    try {
      const id = off.addNic({ ...nic, ifname: 'eth8', mtu: 1450 });
      assert.equal(await gsoMaxSegs('eth8'), 65535, 'without UDP_SEGMENT a superframe goes out segment by segment: no cap');
      off.removeNic(id);
    } finally {
      off.close();
    }
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

  test('threads: receive threads (the default) or the transmit thread receiving', () => {
    for (const [threads, one] of [['split', false], ['one', true], [undefined, false]] as const) {
      const e = FastPath.open({ underlayIp: '127.0.0.1', port: 0, threads }, () => undefined);
      try {
        assert.equal(e.offloads().oneThread, one, `threads ${threads ?? '(default)'}`);
      } finally {
        e.close(); // no receive thread to join with 'one': close still returns
      }
    }
  });
});

describe('userspace backend: plumbing, restart re-attach, metrics', { skip }, () => {
  const lab = new NetnsLab('fpb');
  let ns = '';
  let stateDir = '';
  // Per run: the backend plumbs in this (the test's own) namespace.
  const hex = randomInt(0, 0xffffff).toString(16).padStart(6, '0');
  const MAC = `02:00:5e:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4)}`;
  const node = { tap: `rt02005e${hex}`, bridge: `rn02005e${hex}`, veth: `rv02005e${hex}` };
  const start = (logs: string[]) => ({ underlayIp: '127.0.0.1', onMiss: () => undefined, log: (m: string) => void logs.push(m) });
  /** Name, MTU, master, up, kind of a link in this namespace (undefined: none). */
  const link = async (name: string) => {
    const out = await run('ip', ['-d', '-j', 'link', 'show', 'dev', name]).catch(() => undefined);
    if (out === undefined) return undefined;
    const [l] = JSON.parse(out) as Array<{ mtu: number; master?: string; operstate: string; flags: string[]; address: string; linkinfo?: { info_kind?: string } }>;
    return { mtu: l!.mtu, master: l!.master, up: l!.flags.includes('UP'), kind: l!.linkinfo?.info_kind, address: l!.address };
  };
  const ours = async () => (await Promise.all(Object.values(node).map(link))).map((l) => l !== undefined);

  before(async () => {
    ns = await lab.addNetns('i');
    stateDir = mkdtempSync(join(tmpdir(), 'rhumb-us-'));
  });

  after(async () => {
    for (const name of Object.values(node)) await run('ip', ['link', 'del', name]).catch(() => undefined);
    await lab.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
    await removeNicBridgeTablesIfUnused();
  });

  const plumbing = (netns: string): NicPlumbing => ({
    mac: MAC, ip: '10.6.0.1', prefix: 24, mtu: 1400, routes: [], gateway: '10.6.0.254', vnet: 33, vlan: 0,
    allowMacSpoofing: false, allowIpSpoofing: false, netns, ifname: 'eth0',
  });

  test('plumb, close (the devices stay), start again (re-attached), unplumb (gone); counters as metrics', async () => {
    const logs: string[] = [];
    const b1 = new UserspaceBackend([], { port: 0, stateDir });
    await b1.start(start(logs));
    assert.deepEqual(await b1.plumb(plumbing(`/run/netns/${ns}`)), { firstOnVnet: true });
    // The instance's interface: a veth with the NIC's MAC, MTU, address and routes.
    const eth0 = JSON.parse(await lab.ip(ns, '-d', '-j', 'link', 'show', 'eth0')) as Array<{ mtu: number; address: string; linkinfo: { info_kind: string } }>;
    assert.deepEqual([eth0[0]!.linkinfo.info_kind, eth0[0]!.address, eth0[0]!.mtu], ['veth', MAC, 1400]);
    assert.match(await lab.ip(ns, 'addr', 'show', 'eth0'), /inet 10\.6\.0\.1\/24/);
    assert.match(await lab.ip(ns, 'route', 'show', 'default'), /via 10\.6\.0\.254 dev eth0/);
    // Node side: the TAP and the host veth in the NIC's bridge, all up with the NIC's MTU.
    assert.deepEqual(await link(node.bridge), { mtu: 1400, master: undefined, up: true, kind: 'bridge', address: (await link(node.bridge))!.address });
    assert.deepEqual(await link(node.veth), { mtu: 1400, master: node.bridge, up: true, kind: 'veth', address: (await link(node.veth))!.address });
    const tap = await link(node.tap);
    assert.deepEqual(tap, { mtu: 1400, master: node.bridge, up: true, kind: 'tun', address: `fe:00:5e:${MAC.slice(9)}` });
    assert.equal(b1.hostInterface(MAC), node.veth);
    assert.deepEqual(b1.plumbedMacs(), [MAC]);
    const registry = new Registry();
    b1.registerMetrics(registry);
    assert.match(await registry.metrics(), new RegExp(`rhumb_fastpath_nic_total\\{mac="${MAC}",vnet="33",counter="tx_frames"\\} \\d+`));
    assert.match(await registry.metrics(), /rhumb_fastpath_engine_total\{counter="drop_bad_vxlan"\} 0/);
    b1.close();
    assert.match(await lab.ip(ns, 'link', 'show', 'eth0'), /eth0/, 'the persistent TAP and the veth outlive the backend');
    assert.deepEqual(await ours(), [true, true, true]);

    const b2 = new UserspaceBackend([], { port: 0, stateDir });
    await b2.start(start(logs));
    assert.deepEqual(b2.plumbedMacs(), [MAC]);
    assert.equal(b2.vnetOf(MAC.toUpperCase()), 33);
    assert.ok(logs.some((l) => /re-attached 1 TAP/.test(l)), logs.join('\n'));
    assert.match(await lab.ip(ns, 'addr', 'show', 'eth0'), /inet 10\.6\.0\.1\/24/, 'address kept across the restart');
    assert.deepEqual(await b2.unplumb(MAC, 33), { vnetRemoved: true });
    await assert.rejects(lab.ip(ns, 'link', 'show', 'eth0'));
    assert.deepEqual(await ours(), [false, false, false], 'TAP, bridge and veth gone');
    b2.close();

    const b3 = new UserspaceBackend([], { port: 0, stateDir });
    await b3.start(start(logs));
    assert.deepEqual(b3.plumbedMacs(), [], 'nothing left to re-attach');
    b3.close();
  });

  test('a plumb that fails leaves no device and no record', async () => {
    const b = new UserspaceBackend([], { port: 0, stateDir });
    await b.start(start([]));
    try {
      // The namespace does not exist: the veth's instance end cannot be made, after the TAP and the bridge were.
      await assert.rejects(b.plumb(plumbing(`/run/netns/${ns}-gone`)), /PlumbingError|No such file|ENOENT/);
      assert.deepEqual(await ours(), [false, false, false]);
      assert.deepEqual(b.plumbedMacs(), []);
      // An address the instance's namespace refuses (a gateway off every subnet of it): configured last, undone too.
      await assert.rejects(b.plumb({ ...plumbing(`/run/netns/${ns}`), prefix: 32, gateway: '10.9.9.9' }));
      assert.deepEqual(await ours(), [false, false, false]);
      await assert.rejects(lab.ip(ns, 'link', 'show', 'eth0'));
      assert.deepEqual(b.plumbedMacs(), []);
      await assert.rejects(readFile(join(stateDir, 'userspace-127.0.0.1.json'), 'utf8'), 'no state file: nothing plumbed');
    } finally {
      b.close();
    }
  });

  test('a NIC an older agent plumbed as a TAP inside its namespace is plumbed again node-side when the agent adopts it', async () => {
    // What an agent from before the node-side port left: a persistent TAP named eth0 in the instance, and its record.
    const old = FastPath.open({ underlayIp: '127.0.0.1', port: 0, underlayMtu: 1500 }, () => undefined);
    const legacy = { netns: `/run/netns/${ns}`, ifname: 'eth0', mac: MAC, ip: '10.6.0.1', vnet: 33, vlan: 0, mtu: 1400, allowMacSpoofing: false, allowIpSpoofing: false };
    old.addNic({ ...legacy, persist: true });
    old.close();
    await lab.ip(ns, 'addr', 'add', '10.6.0.1/24', 'dev', 'eth0');
    await writeFile(join(stateDir, 'userspace-127.0.0.1.json'), JSON.stringify([legacy]), { mode: 0o600 });
    const logs: string[] = [];
    const b = new UserspaceBackend([], { port: 0, stateDir });
    await b.start(start(logs));
    try {
      assert.deepEqual(b.plumbedMacs(), [MAC], 're-attached where it is');
      assert.equal(b.hostInterface(MAC), undefined, 'no node side yet');
      await b.adopt([plumbing(`/run/netns/${ns}`)]);
      const eth0 = JSON.parse(await lab.ip(ns, '-d', '-j', 'link', 'show', 'eth0')) as Array<{ address: string; linkinfo: { info_kind: string } }>;
      assert.deepEqual([eth0[0]!.linkinfo.info_kind, eth0[0]!.address], ['veth', MAC]);
      assert.match(await lab.ip(ns, 'addr', 'show', 'eth0'), /inet 10\.6\.0\.1\/24/);
      assert.deepEqual(await ours(), [true, true, true]);
      assert.equal(b.hostInterface(MAC), node.veth);
      const saved = JSON.parse(await readFile(join(stateDir, 'userspace-127.0.0.1.json'), 'utf8')) as Array<{ netns: string; ifname: string }>;
      assert.deepEqual(saved.map((e) => [e.netns, e.ifname]), [['', node.tap]]);
      assert.ok(logs.some((l) => /moved from a TAP in its namespace to a node-side port/.test(l)), logs.join('\n'));
      await b.unplumb(MAC, 33);
      assert.deepEqual(await ours(), [false, false, false]);
    } finally {
      b.close();
    }
  });

  test('at start: what an unfinished plumb made is removed, and a NIC whose namespace is gone too', async () => {
    const logs: string[] = [];
    const b1 = new UserspaceBackend([], { port: 0, stateDir });
    await b1.start(start(logs));
    const doomed = await lab.addNetns('doomed');
    await b1.plumb(plumbing(`/run/netns/${doomed}`));
    b1.close();
    // The instance's namespace goes while no agent runs: its veth goes with it.
    await run('ip', ['netns', 'del', doomed]);
    await eventually(async () => (await link(node.veth)) === undefined, 5000, 'the veth gone with its namespace');
    const b2 = new UserspaceBackend([], { port: 0, stateDir });
    await b2.start(start(logs));
    assert.deepEqual(b2.plumbedMacs(), []);
    assert.deepEqual(await ours(), [false, false, false]);
    assert.ok(logs.some((l) => /its veth is gone/.test(l)), logs.join('\n'));
    b2.close();

    // An agent killed between its record and the end of the plumb: a pending record and some devices.
    await run('ip', ['link', 'add', node.bridge, 'type', 'bridge']);
    await run('ip', ['tuntap', 'add', 'dev', node.tap, 'mode', 'tap']);
    const spec = { netns: '', ifname: node.tap, mac: MAC, ip: '10.6.0.1', vnet: 33, vlan: 0, mtu: 1400, pending: true };
    await writeFile(join(stateDir, 'userspace-127.0.0.1.json'), JSON.stringify([spec]), { mode: 0o600 });
    const b3 = new UserspaceBackend([], { port: 0, stateDir });
    await b3.start(start(logs));
    assert.deepEqual(b3.plumbedMacs(), []);
    assert.deepEqual(await ours(), [false, false, false]);
    assert.ok(logs.some((l) => /unfinished attach/.test(l)), logs.join('\n'));
    b3.close();
  });
});
