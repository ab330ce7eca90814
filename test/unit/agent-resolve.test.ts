/** The agent's miss handling and shootdown application against a fake data plane and controller. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { Agent, type AgentNapi, type SvpLookups } from '../../src/agent/agent.js';
import { buildAgentApi } from '../../src/agent/api.js';
import type { BackendStartOptions, DataplaneBackend, VnetEntries } from '../../src/agent/backend.js';
import type { NicPlumbing, StagedPlumbing } from '../../src/agent/plumbing/nic.js';
import { NapiRequestError } from '../../src/agent/napi-client.js';
import { SvpStatus } from '../../src/svp/codec.js';

const SELF = '198.18.0.1';
const PEER = '198.18.0.2';
const VNET = 4242;

class FakeBackend implements DataplaneBackend {
  readonly kind = 'kernel' as const;
  calls: string[] = [];
  plumbed = new Map<string, number>();
  vnetSet = new Set<number>([VNET]);
  async start(_o: BackendStartOptions): Promise<void> {}
  vnets(): number[] {
    return [...this.vnetSet];
  }
  plumbedMacs(): string[] {
    return [...this.plumbed.keys()];
  }
  isPlumbed(mac: string): boolean {
    return this.plumbed.has(mac);
  }
  vnetOf(mac: string): number | undefined {
    return this.plumbed.get(mac);
  }
  async plumb(p: NicPlumbing): Promise<{ firstOnVnet: boolean }> {
    this.plumbed.set(p.mac, p.vnet);
    this.calls.push(`plumb ${p.mac}`);
    return { firstOnVnet: false };
  }
  staged = new Set<string>();
  async stage(p: StagedPlumbing): Promise<{ firstOnVnet: boolean }> {
    this.plumbed.set(p.mac, p.vnet);
    this.staged.add(p.mac);
    this.calls.push(`stage ${p.mac} ${p.ifname}`);
    return { firstOnVnet: false };
  }
  async activate(mac: string, netns: string, ifname: string): Promise<void> {
    this.staged.delete(mac);
    this.calls.push(`activate ${mac} ${netns} ${ifname}`);
  }
  isStaged(mac: string): boolean {
    return this.staged.has(mac);
  }
  async adopt(_nics: readonly NicPlumbing[]): Promise<void> {}
  async unplumb(mac: string, vnet: number): Promise<{ vnetRemoved: boolean }> {
    this.plumbed.delete(mac);
    this.calls.push(`unplumb ${mac} ${vnet}`);
    return { vnetRemoved: false };
  }
  installL3(vnet: number, ip: string, mac: string, underlay: string): void {
    this.calls.push(`l3 ${vnet} ${ip} ${mac} ${underlay}`);
  }
  installL2(vnet: number, mac: string, underlay: string): void {
    this.calls.push(`l2 ${vnet} ${mac} ${underlay}`);
  }
  async removeMac(vnet: number, mac: string): Promise<void> {
    this.calls.push(`rm-mac ${vnet} ${mac}`);
  }
  removeIp(vnet: number, ip: string): void {
    this.calls.push(`rm-ip ${vnet} ${ip}`);
  }
  async announce(vnet: number, ip: string, mac: string): Promise<void> {
    this.calls.push(`garp ${vnet} ${ip} ${mac}`);
  }
  entries(vnet: number): VnetEntries {
    return { vnet, neighbours: [], fdb: [] };
  }
  close(): void {}
}

/** A controller whose answers the test edits; counts the lookups it serves. */
class FakeSvp implements SvpLookups {
  ips = new Map<string, { mac: string; ul: string }>();
  macs = new Map<string, string>();
  vl3Calls = 0;
  vl2Calls = 0;
  fail = false;
  gate: Promise<void> = Promise.resolve();
  async vl3(ip: string, _vnet: number) {
    this.vl3Calls++;
    await this.gate;
    if (this.fail) throw new Error('VL3_REQ timed out after 5000 ms');
    const m = this.ips.get(ip);
    return m
      ? { server: 's', status: SvpStatus.OK, statusName: 'OK', mac: m.mac, ip: m.ul, port: 4789 }
      : { server: 's', status: SvpStatus.NOTFOUND, statusName: 'NOTFOUND', mac: null, ip: null, port: 0 };
  }
  async vl2(mac: string, _vnet: number) {
    this.vl2Calls++;
    const ul = this.macs.get(mac);
    return ul
      ? { server: 's', status: SvpStatus.OK, statusName: 'OK', ip: ul, port: 4789 }
      : { server: 's', status: SvpStatus.NOTFOUND, statusName: 'NOTFOUND', ip: null, port: 0 };
  }
  async logReq() {
    return { server: 's', status: SvpStatus.OK, statusName: 'OK', entries: [], bytes: 4 };
  }
  async logRm() {
    return { server: 's', status: SvpStatus.OK, statusName: 'OK' };
  }
}

function fakeNapi(nics: Record<string, object>): AgentNapi {
  return {
    getNic: async (mac: string) => {
      const n = nics[mac];
      if (!n) throw new NapiRequestError('GET', `/nics/${mac}`, 404, { message: 'nic not found' });
      return n as never;
    },
    listNics: async () => [],
    listNetworks: async () => [],
    createNic: async () => ({}) as never,
  };
}

function makeAgent(nics: Record<string, object> = {}, checkNetns: (path: string) => Promise<string | undefined> = async () => undefined) {
  const backend = new FakeBackend();
  const svp = new FakeSvp();
  const probed: string[] = [];
  const agent = new Agent({
    nodeUuid: 'cccccccc-0000-4000-8000-00000000000c',
    underlayIp: SELF,
    napi: fakeNapi(nics),
    svp,
    backend,
    registry: new Registry(),
    prober: { add: (a: string) => void probed.push(a) },
    adminUuid: '930896af-bf8c-48d4-885c-6573a94b1853',
    // No namespaces here: by default every path of an accepted shape counts as an instance's.
    checkNetns,
  });
  return { agent, backend, svp, probed };
}

test('an L3 miss installs neighbour and FDB for a remote answer, once, and adds the peer to the prober', async () => {
  const { agent, backend, svp, probed } = makeAgent();
  svp.ips.set('10.0.0.7', { mac: '90:b8:d0:00:00:07', ul: PEER });
  let open!: () => void;
  svp.gate = new Promise((r) => (open = r));
  const many = Promise.all([1, 2, 3, 4].map(() => agent.resolveIp(VNET, '10.0.0.7')));
  open();
  await many;
  assert.equal(svp.vl3Calls, 1, 'one lookup in flight for one destination');
  assert.ok(backend.calls.includes(`l3 ${VNET} 10.0.0.7 90:b8:d0:00:00:07 ${PEER}`));
  assert.deepEqual(probed.filter((p) => p === PEER).length > 0, true);
  // Cached: the next miss reinstalls without asking.
  await agent.resolveIp(VNET, '10.0.0.7');
  assert.equal(svp.vl3Calls, 1);
  const text = await agent.metrics.lookups.get();
  assert.ok(text.values.some((v) => v.labels.source === 'coalesced'));
});

test('answers for this node install nothing; NOTFOUND is negatively cached', async () => {
  const { agent, backend, svp } = makeAgent();
  svp.ips.set('10.0.0.8', { mac: '90:b8:d0:00:00:08', ul: SELF });
  assert.equal((await agent.resolveIp(VNET, '10.0.0.8'))?.underlay, SELF);
  assert.equal(await agent.resolveIp(VNET, '10.0.0.99'), null);
  assert.equal(await agent.resolveIp(VNET, '10.0.0.99'), null);
  assert.equal(svp.vl3Calls, 2);
  assert.deepEqual(backend.calls, []);
  // L2: a remote MAC gets an FDB entry, an unknown one nothing.
  svp.macs.set('90:b8:d0:00:00:09', PEER);
  await agent.resolveMac(VNET, '90:b8:d0:00:00:09');
  await agent.resolveMac(VNET, '90:b8:d0:00:00:10');
  assert.deepEqual(backend.calls, [`l2 ${VNET} 90:b8:d0:00:00:09 ${PEER}`]);
});

test('shootdowns: VL2 drops the MAC, VL3 looks up again, replaces and announces; failures are not acknowledged', async () => {
  const { agent, backend, svp } = makeAgent();
  svp.ips.set('10.0.0.7', { mac: '90:b8:d0:00:00:07', ul: PEER });
  await agent.resolveIp(VNET, '10.0.0.7');
  backend.calls = [];
  // The NIC moved to another node.
  svp.ips.set('10.0.0.7', { mac: '90:b8:d0:00:00:07', ul: '198.18.0.3' });
  const done = await agent.applyShootdowns([
    { type: 'vl2', id: 'id-1', mac: '90:b8:d0:00:00:07', vnetId: VNET },
    { type: 'vl3', id: 'id-2', ip: '10.0.0.7', vlan: 5, vnetId: VNET },
  ]);
  assert.deepEqual(done, ['id-1', 'id-2']);
  assert.deepEqual(backend.calls, [
    `rm-mac ${VNET} 90:b8:d0:00:00:07`,
    `l3 ${VNET} 10.0.0.7 90:b8:d0:00:00:07 198.18.0.3`,
    `garp ${VNET} 10.0.0.7 90:b8:d0:00:00:07`,
  ]);
  assert.equal(svp.vl3Calls, 2, 'VL3 shootdown looked the IP up again');
  assert.equal(agent.vl3.peek(`${VNET}/10.0.0.7`)?.underlay, '198.18.0.3');

  // Deleted: NOTFOUND removes the neighbour and the old MAC's entries.
  svp.ips.delete('10.0.0.7');
  backend.calls = [];
  assert.deepEqual(await agent.applyShootdowns([{ type: 'vl3', id: 'id-3', ip: '10.0.0.7', vlan: 5, vnetId: VNET }]), ['id-3']);
  assert.deepEqual(backend.calls, [`rm-ip ${VNET} 10.0.0.7`, `rm-mac ${VNET} 90:b8:d0:00:00:07`]);

  // The controller does not answer: the entry stays in the log for the next poll.
  svp.fail = true;
  assert.deepEqual(await agent.applyShootdowns([{ type: 'vl3', id: 'id-4', ip: '10.0.0.9', vlan: 5, vnetId: VNET }]), []);
  const errors = await agent.metrics.shootdownErrors.get();
  assert.equal(errors.values.find((v) => v.labels.type === 'vl3')?.value, 1);
});

test('a VL2 shootdown for a local NIC that was deleted unplumbs it; a moved one stays until detached', async () => {
  const mac = '90:b8:d0:00:00:21';
  const nic = {
    mac,
    owner_uuid: 'aaaaaaaa-0000-4000-8000-00000000000a',
    belongs_to_uuid: 'bbbbbbbb-0000-4000-8000-00000000000b',
    belongs_to_type: 'zone',
    cn_uuid: 'cccccccc-0000-4000-8000-00000000000c',
    ip: '10.0.0.21',
    netmask: '255.255.255.0',
    nic_tag: `sdc_overlay/${VNET}`,
    fabric: true,
  };
  const nics: Record<string, object> = { [mac]: nic };
  const { agent, backend } = makeAgent(nics);
  await agent.attach({ mac, netns: '/run/netns/x' });
  assert.deepEqual(backend.calls, [`plumb ${mac}`]);
  // Moved away (still exists): nothing happens until detach.
  nics[mac] = { ...nic, cn_uuid: 'dddddddd-0000-4000-8000-00000000000d' };
  await agent.applyShootdowns([{ type: 'vl2', id: 'a', mac, vnetId: VNET }]);
  assert.deepEqual(backend.calls, [`plumb ${mac}`]);
  delete nics[mac];
  await agent.applyShootdowns([{ type: 'vl2', id: 'b', mac, vnetId: VNET }]);
  assert.deepEqual(backend.calls, [`plumb ${mac}`, `unplumb ${mac} ${VNET}`]);
  await assert.rejects(agent.detach(mac), (err: Error & { status?: number }) => err.status === 404);
});

test('attach refuses NICs that are missing or placed on another node', async () => {
  const { agent } = makeAgent({ '90:b8:d0:00:00:31': { mac: '90:b8:d0:00:00:31', cn_uuid: 'dddddddd-0000-4000-8000-00000000000d' } });
  await assert.rejects(agent.attach({ mac: '90:b8:d0:00:00:30', netns: '/run/netns/x' }), (e: Error & { status?: number }) => e.status === 404);
  await assert.rejects(agent.attach({ mac: '90:b8:d0:00:00:31', netns: '/run/netns/x' }), (e: Error & { status?: number }) => e.status === 409 && /not this node/.test(e.message));
  await assert.rejects(agent.attach({ mac: 'nonsense', netns: '/run/netns/x' }), (e: Error & { status?: number }) => e.status === 400);
});

test('an answer that raced a shootdown is not installed', async () => {
  const { agent, backend, svp } = makeAgent();
  svp.ips.set('10.0.0.7', { mac: '90:b8:d0:00:00:07', ul: PEER });
  let open!: () => void;
  svp.gate = new Promise((r) => (open = r));
  const pending = agent.resolveIp(VNET, '10.0.0.7');
  // The NIC is deleted while the lookup is on the wire.
  const shot = agent.applyShootdowns([{ type: 'vl2', id: 'x', mac: '90:b8:d0:00:00:07', vnetId: VNET }]);
  open();
  await Promise.all([pending, shot]);
  assert.ok(!backend.calls.some((c) => c.startsWith('l3 ')), backend.calls.join('; '));
  assert.equal(agent.vl3.peek(`${VNET}/10.0.0.7`), undefined);
});

test('a miss answer is announced into the bridge (the waiting neighbour entry completes at once); prefetch is not', async () => {
  const { agent, backend, svp } = makeAgent();
  svp.ips.set('10.0.0.7', { mac: '90:b8:d0:00:00:07', ul: PEER });
  svp.ips.set('10.0.0.8', { mac: '90:b8:d0:00:00:08', ul: PEER });
  await agent.resolveIp(VNET, '10.0.0.7', { announce: true });
  await agent.resolveIp(VNET, '10.0.0.8');
  assert.deepEqual(backend.calls.filter((c) => c.startsWith('garp')), [`garp ${VNET} 10.0.0.7 90:b8:d0:00:00:07`]);
});

test('attach: a namespace path or interface name of any other shape is a 400 before anything runs (API and agent)', async () => {
  const mac = '90:b8:d0:00:00:41';
  const nic = {
    mac,
    belongs_to_type: 'zone',
    cn_uuid: 'cccccccc-0000-4000-8000-00000000000c',
    ip: '10.0.0.41',
    netmask: '255.255.255.0',
    nic_tag: `sdc_overlay/${VNET}`,
    fabric: true,
  };
  const { agent, backend } = makeAgent({ [mac]: nic });
  const exploit = '/run/netns/x\nnetns exec y /bin/sh -c "id > /tmp/f"';
  for (const netns of [exploit, '/proc/self/ns/net', '/etc/passwd', '/run/netns/../../tmp/x']) {
    await assert.rejects(agent.attach({ mac, netns }), (e: Error & { status?: number }) => e.status === 400 && /netns must be/.test(e.message), netns);
  }
  await assert.rejects(agent.attach({ mac, netns: '/run/netns/x', ifname: 'eth0\nnetns exec y id' }), (e: Error & { status?: number }) => e.status === 400);
  const app = buildAgentApi(agent, new Registry());
  try {
    const r = await app.inject({ method: 'POST', url: '/attach', payload: { mac, netns: exploit } });
    assert.equal(r.statusCode, 400);
    assert.match(r.json().message, /netns must be \/run\/netns\/NAME, \/var\/run\/netns\/NAME or \/proc\/PID\/ns\/net/);
    const r2 = await app.inject({ method: 'POST', url: '/attach', payload: { mac, netns: '/run/netns/x', ifname: 'a:b' } });
    assert.equal(r2.statusCode, 400);
    assert.match(r2.json().message, /interface names/);
  } finally {
    await app.close();
  }
  assert.deepEqual(backend.calls, [], 'nothing was plumbed');
});

test('attach: a namespace that is not an instance\'s (missing, the node\'s own) is a 422; nothing is plumbed', async () => {
  const mac = '90:b8:d0:00:00:42';
  const nic = {
    mac,
    belongs_to_type: 'zone',
    cn_uuid: 'cccccccc-0000-4000-8000-00000000000c',
    ip: '10.0.0.42',
    netmask: '255.255.255.0',
    nic_tag: `sdc_overlay/${VNET}`,
    fabric: true,
  };
  const asked: string[] = [];
  const { agent, backend } = makeAgent({ [mac]: nic }, async (path) => {
    asked.push(path);
    return `netns ${path} is the node's own network namespace, not an instance's`;
  });
  await assert.rejects(agent.attach({ mac, netns: '/proc/1/ns/net' }), (e: Error & { status?: number }) => e.status === 422 && /node's own/.test(e.message));
  assert.deepEqual(asked, ['/proc/1/ns/net']);
  assert.deepEqual(backend.calls, []);
});
