/**
 * The kernel backend's attach and detach through the native plumbing, from a process
 * inside a node namespace whose PATH is empty (so neither may start `ip` or `nft`): the
 * vnet's devices, the veth, the instance side and the port filter are made and removed;
 * a plumbing that fails half-way (a route the kernel refuses, a namespace that is gone)
 * leaves nothing behind; a backend started after an agent died half-way through an attach
 * removes what it left (a veth outside any bridge, a bridge without its vxlan device)
 * and keeps the NICs that were plumbed. A staged NIC (Docker's libnetwork moves it itself)
 * waits without carrier, survives a restart staged, and carries once activated. A detach
 * that answers before the teardown (deferTeardown) leaves no interface in the
 * instance, and an attach to that vnet queued behind it finds the devices gone; its
 * teardown deletes the vxlan device and the bridge in requests of their own (vxlan first),
 * so the kernel's RTNL lock is free between them; a vnet left without NICs by an agent that
 * died before removing it, or half-way through (the bridge left), goes at the next start.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { NicPlumbing, StagedPlumbing } from '../../src/agent/plumbing/nic.js';
import { vnetGroup } from '../../src/agent/plumbing/names.js';
import { NetnsLab, netnsSkipReason, underlayAddr } from '../helpers/netns.js';
import { eventually } from '../helpers/datacenter.js';
import { type Rpc, startRpc } from '../helpers/rpc-child.js';

const skip = netnsSkipReason();
const FIXTURE = fileURLToPath(new URL('./kernel-backend.fixture.ts', import.meta.url));
const LOCAL = underlayAddr(0x4501);
const VNET = 4545;

interface IpLink {
  ifname: string;
  master?: string;
  flags: string[];
  linkinfo?: { info_kind?: string };
}

describe('kernel backend: attach and detach through the native plumbing', { skip, timeout: 120_000 }, () => {
  const lab = new NetnsLab('kpl');
  let node = '';
  let instA = '';
  let instB = '';
  let backend: Rpc;

  const nic = (mac: string, ns: string, ip: string, extra: Partial<NicPlumbing> = {}): NicPlumbing => ({
    mac, ip, prefix: 24, mtu: 1450, gateway: '10.45.0.1', routes: [{ dst: '10.46.0.0/16', via: '10.45.0.254' }], vnet: VNET, vlan: 0,
    allowMacSpoofing: false, allowIpSpoofing: false, netns: `/run/netns/${ns}`, ifname: 'eth0', ...extra,
  });
  const links = async (ns: string): Promise<IpLink[]> => JSON.parse(await lab.ip(ns, '-d', '-j', 'link', 'show')) as IpLink[];
  const names = async (ns: string): Promise<string[]> => (await links(ns)).map((l) => l.ifname).sort();
  const ours = async (): Promise<string[]> => (await names(node)).filter((n) => /^(rv|rbr|rvx)/.test(n));

  before(async () => {
    node = await lab.addNetns('n');
    instA = await lab.addNetns('a');
    instB = await lab.addNetns('b');
    await lab.addVeth({ ns: node, name: 'ul0' }, { ns: await lab.addNetns('u'), name: 'ul0' });
    await lab.ip(node, 'addr', 'add', `${LOCAL}/24`, 'dev', 'ul0');
    await lab.ip(node, 'link', 'set', 'ul0', 'up');
    backend = await startRpc(lab, node, FIXTURE);
    await backend.call('start', LOCAL);
  });

  after(() => lab.cleanup());

  test('attach makes the vnet, the veth, the instance side and the port filter; detach removes them; nothing spawned', async () => {
    const p = nic('02:00:5e:45:00:01', instA, '10.45.0.10');
    assert.deepEqual(await backend.call('plumb', p), { firstOnVnet: true });
    const l = await links(node);
    assert.equal(l.find((x) => x.ifname === `rvx${VNET}`)?.master, `rbr${VNET}`);
    const host = l.find((x) => x.ifname === 'rv02005e450001')!;
    assert.equal(host.master, `rbr${VNET}`);
    assert.ok(host.flags.includes('UP'));
    const routes = await lab.ip(instA, 'route', 'show');
    assert.match(routes, /default via 10\.45\.0\.1 dev eth0/);
    assert.match(routes, /10\.46\.0\.0\/16 via 10\.45\.0\.254 dev eth0/);
    assert.match(await lab.ip(instA, 'addr', 'show', 'dev', 'eth0'), /inet 10\.45\.0\.10\/24/);
    assert.match(await lab.exec(node, 'nft', 'list', 'table', 'bridge', 'rhumb_ports'), /iifname "rv02005e450001" ether saddr != 02:00:5e:45:00:01 drop/);
    assert.deepEqual(await backend.call('unplumb', p.mac, VNET), { vnetRemoved: true });
    assert.deepEqual(await ours(), []);
    assert.deepEqual(await names(instA), ['lo']);
    assert.doesNotMatch(await lab.exec(node, 'nft', 'list', 'table', 'bridge', 'rhumb_ports'), /rv02005e450001/);
  });

  test('a plumbing the kernel refuses half-way (a route through an unreachable gateway) leaves nothing', async () => {
    const p = nic('02:00:5e:45:00:02', instA, '10.45.0.11', { routes: [{ dst: '10.47.0.0/16', via: '10.200.0.1' }] });
    const err = await backend.fails('plumb', p);
    assert.equal(err.name, 'PlumbingError', err.message);
    assert.match(err.message, /RTM_NEWROUTE/);
    assert.deepEqual(await ours(), [], 'no veth, no vnet devices');
    assert.deepEqual(await names(instA), ['lo'], 'no interface left in the instance');
    assert.deepEqual(await backend.call('vnets'), []);
    assert.deepEqual(await backend.call('plumbedMacs'), []);
  });

  test('a namespace that is gone: refused, nothing made', async () => {
    const gone = await lab.addNetns('g');
    await lab.ip(null, 'netns', 'del', gone);
    const err = await backend.fails('plumb', nic('02:00:5e:45:00:03', gone, '10.45.0.12'));
    assert.equal(err.name, 'PlumbingError', err.message);
    assert.deepEqual(await ours(), []);
  });

  test('restarted after dying half-way through an attach: the leftovers go, plumbed NICs stay', async () => {
    const kept = nic('02:00:5e:45:00:04', instA, '10.45.0.13');
    await backend.call('plumb', kept);
    backend.child.kill('SIGKILL');
    await new Promise((r) => backend.child.once('exit', r));
    // What an agent killed between creating a veth (its instance end already configured)
    // and putting it into the bridge leaves, and a bridge whose vxlan device was never made.
    await lab.ip(node, 'link', 'add', 'rv02005e450005', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', instB);
    await lab.ip(instB, 'addr', 'add', '10.45.0.14/24', 'dev', 'eth0');
    await lab.ip(node, 'link', 'add', 'rbr4546', 'type', 'bridge');
    backend = await startRpc(lab, node, FIXTURE);
    await backend.call('start', LOCAL);
    assert.deepEqual(await ours(), ['rbr4545', 'rv02005e450004', 'rvx4545'], 'the stray veth and bridge are gone');
    assert.deepEqual(await names(instB), ['lo'], "the stray veth's instance end went with it");
    assert.deepEqual(await backend.call('plumbedMacs'), [kept.mac]);
    assert.match((await backend.call<string[]>('logs')).join('\n'), /rbr4546.*rv02005e450005|rv02005e450005.*rbr4546/);
    assert.deepEqual(await backend.call('plumb', nic('02:00:5e:45:00:05', instB, '10.45.0.14')), { firstOnVnet: false });
    await lab.exec(instB, 'ping', '-c', '1', '-W', '2', '10.45.0.13');
  });

  test('a staged NIC: both ends on the node, no carrier until activated where the runtime moved it; kept staged over a restart', async () => {
    const vnet = 4547;
    const staged = (mac: string, ifname: string): StagedPlumbing => ({
      mac, ip: '10.45.7.10', prefix: 24, mtu: 1450, routes: [], vnet, vlan: 0, allowMacSpoofing: false, allowIpSpoofing: false, ifname,
    });
    const instC = await lab.addNetns('c');
    const flags = async (ns: string, name: string) => (await links(ns)).find((l) => l.ifname === name)?.flags ?? [];
    assert.deepEqual(await backend.call('stage', staged('02:00:5e:45:00:06', 'rs02005e450006')), { firstOnVnet: true });
    const host = (await links(node)).find((l) => l.ifname === 'rv02005e450006')!;
    assert.equal(host.master, `rbr${vnet}`);
    assert.ok(!host.flags.includes('UP'), 'the host end waits down');
    assert.ok((await names(node)).includes('rs02005e450006'), 'the instance end waits on the node');
    assert.equal(await backend.call('isStaged', '02:00:5e:45:00:06'), true);
    // Restarted while staged: adopted as staged, not removed as an unfinished attach.
    backend.child.kill('SIGKILL');
    await new Promise((r) => backend.child.once('exit', r));
    backend = await startRpc(lab, node, FIXTURE);
    await backend.call('start', LOCAL);
    assert.equal(await backend.call('isStaged', '02:00:5e:45:00:06'), true);
    // What libnetwork does: move the instance end into the sandbox, rename it, configure it.
    await lab.ip(node, 'link', 'set', 'rs02005e450006', 'netns', instC, 'name', 'eth0');
    await lab.ip(instC, 'addr', 'add', '10.45.7.10/24', 'dev', 'eth0');
    await lab.ip(instC, 'link', 'set', 'eth0', 'up');
    assert.ok((await flags(instC, 'eth0')).includes('NO-CARRIER'), 'no carrier before activation');
    await backend.call('activate', '02:00:5e:45:00:06', `/run/netns/${instC}`, 'eth0');
    assert.ok((await flags(node, 'rv02005e450006')).includes('UP'));
    assert.ok((await flags(instC, 'eth0')).includes('LOWER_UP'), 'carrier once activated');
    assert.equal(await backend.call('isStaged', '02:00:5e:45:00:06'), false);
    // A staged NIC never moved goes with both ends; the vnet with its last NIC.
    await backend.call('stage', staged('02:00:5e:45:00:07', 'rs02005e450007'));
    await backend.call('unplumb', '02:00:5e:45:00:07', vnet);
    assert.ok(!(await names(node)).some((n) => n.endsWith('02005e450007')), 'both ends of the unmoved staged NIC are gone');
    assert.deepEqual(await backend.call('unplumb', '02:00:5e:45:00:06', vnet), { vnetRemoved: true });
    assert.ok(!(await ours()).some((n) => n.endsWith(String(vnet))), 'the vnet went with its last NIC');
    assert.deepEqual(await names(instC), ['lo']);
  });

  test('detach answering before the teardown (deferTeardown): the NIC gone at once, its filter rules and the vnet after; an attach to it right after waits its turn', async () => {
    const vnet = 4548;
    const instA = await lab.addNetns('d');
    const instB = await lab.addNetns('e');
    const at = (mac: string, ns: string, ip: string) => nic(mac, ns, ip, { vnet, gateway: '10.45.8.1', routes: [] });
    const first = at('02:00:5e:45:00:08', instA, '10.45.8.10');
    for (let round = 0; round < 3; round++) {
      await backend.call('plumb', first);
      // The deferred unplumb and a plumb to the same vnet, sent together: the plumb must not meet the dying devices.
      const [gone, again] = await Promise.all([
        backend.call('unplumb', first.mac, vnet, { deferTeardown: true }),
        backend.call('plumb', at('02:00:5e:45:00:09', instB, '10.45.8.11')),
      ]);
      assert.deepEqual(gone, { vnetRemoved: true });
      assert.deepEqual(again, { firstOnVnet: true }, 'the vnet made afresh after the teardown');
      assert.deepEqual(await names(instA), ['lo'], 'the detached NIC has no interface');
      assert.deepEqual((await ours()).filter((n) => n.endsWith(String(vnet)) || /^rv02005e45000[89]$/.test(n)).sort(), [`rbr${vnet}`, 'rv02005e450009', `rvx${vnet}`]);
      assert.deepEqual(await backend.call('unplumb', '02:00:5e:45:00:09', vnet, { deferTeardown: true }), { vnetRemoved: true });
      assert.ok(!(await backend.call<number[]>('vnets')).includes(vnet), 'forgotten at once');
      await eventually(async () => !(await ours()).some((n) => n.endsWith(String(vnet))), 10_000, 'the vnet devices removed after the answer');
      assert.deepEqual(await names(instB), ['lo']);
    }
    // Port filter: neither NIC's rules stay (reloaded after the answer).
    await eventually(async () => !/rv02005e45000[89]/.test(await lab.exec(node, 'nft', 'list', 'table', 'bridge', 'rhumb_ports')), 10_000, 'the port filter without the detached NICs');
  });

  test('the deferred teardown deletes the vxlan device, then the bridge, each in a request of its own', async () => {
    const vnet = 4551;
    const mac = '02:00:5e:45:00:0b';
    await backend.call('plumb', nic(mac, await lab.addNetns('g'), '10.45.0.21', { vnet }));
    const monitor = lab.spawnIn(node, ['ip', 'monitor', 'link']);
    let seen = '';
    monitor.stdout!.on('data', (d: Buffer) => (seen += d.toString()));
    // ip monitor prints nothing until it has subscribed: a link change it must report tells us it has.
    let pokes = 0;
    await eventually(async () => {
      await lab.ip(node, 'link', 'set', 'ul0', 'alias', `poke${pokes++}`);
      return /ul0/.test(seen);
    }, 10_000, 'ip monitor listening');
    assert.deepEqual(await backend.call('unplumb', mac, vnet, { deferTeardown: true }), { vnetRemoved: true });
    await eventually(async () => !(await ours()).some((n) => n.endsWith(String(vnet))), 10_000, 'the vnet devices removed after the answer');
    await eventually(async () => new RegExp(`Deleted \\d+: rbr${vnet}`).test(seen), 10_000, "the bridge's removal reported");
    monitor.kill();
    // Removed together (one request for the group), the kernel unlists the bridge first.
    const unlisted = (name: string) => seen.split('\n').findLastIndex((l) => new RegExp(`^Deleted \\d+: ${name}:`).test(l));
    assert.ok(unlisted(`rvx${vnet}`) >= 0 && unlisted(`rvx${vnet}`) < unlisted(`rbr${vnet}`), seen);
  });

  test('restarted before a deferred vnet removal ran: the vnet without NICs is removed at start, vnets with NICs stay', async () => {
    const kept = nic('02:00:5e:45:00:0a', await lab.addNetns('f'), '10.45.0.20');
    await backend.call('plumb', kept);
    backend.child.kill('SIGKILL');
    await new Promise((r) => backend.child.once('exit', r));
    // What a detach that answered and then died leaves: a vnet's vxlan device in its bridge, no veth.
    await lab.ip(node, 'link', 'add', 'name', 'rbr4549', 'type', 'bridge');
    await lab.ip(node, 'link', 'add', 'rvx4549', 'type', 'vxlan', 'id', '4549', 'dstport', '4789', 'local', LOCAL, 'nolearning');
    await lab.ip(node, 'link', 'set', 'rvx4549', 'master', 'rbr4549', 'up');
    // What a teardown killed between its two requests leaves: the bridge, up, in the vnet's group.
    await lab.ip(node, 'link', 'add', 'name', 'rbr4550', 'group', String(vnetGroup(4550)), 'up', 'type', 'bridge');
    backend = await startRpc(lab, node, FIXTURE);
    await backend.call('start', LOCAL);
    assert.ok(!(await ours()).some((n) => n.endsWith('4549') || n.endsWith('4550')), (await ours()).join(' '));
    assert.deepEqual(await backend.call('vnets'), [VNET]);
    assert.ok((await backend.call<string[]>('plumbedMacs')).includes(kept.mac));
    assert.match((await backend.call<string[]>('logs')).join('\n'), /rbr4549|rvx4549/);
    await backend.call('unplumb', kept.mac, VNET);
  });
});
