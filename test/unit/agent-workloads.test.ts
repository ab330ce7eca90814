/**
 * Workload attachments (src/agent/workloads.ts) against a fake controller and a fake
 * agent: identity and idempotence, rollback of half-made attachments, idempotent release,
 * a controller that went away, the start-up sweep; and the request checks
 * (src/agent/workload-api.ts) and the state file (src/agent/workload-state.ts).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AgentError, type AttachRequest, type StageRequest, type AttachedNic } from '../../src/agent/agent.js';
import { type ApiNetwork, type ApiNic, NapiRequestError } from '../../src/agent/napi-client.js';
import { parseAttachRequest, requestedIpOf } from '../../src/agent/workload-api.js';
import { WORKLOAD_STATE_FILE, WorkloadState } from '../../src/agent/workload-state.js';
import { WorkloadManager, type WorkloadHost, type WorkloadNapi, workloadUuid } from '../../src/agent/workloads.js';

const NODE = 'aaaaaaaa-0000-4000-8000-000000000001';
const OWNER = 'bbbbbbbb-0000-4000-8000-000000000002';
const NET = 'cccccccc-0000-4000-8000-000000000003';

/** A NAPI with one fabric network of `size` addresses (10.9.0.10 … ). */
class FakeNapi implements WorkloadNapi {
  nics = new Map<string, ApiNic>();
  down = false;
  calls: string[] = [];
  private nextMac = 1;
  constructor(private readonly size = 4) {}

  private gate(call: string): void {
    this.calls.push(call);
    if (this.down) throw new TypeError('fetch failed');
  }

  readonly network: ApiNetwork = {
    uuid: NET, name: 'blue', subnet: '10.9.0.0/24', nic_tag: 'sdc_overlay/77', vlan_id: 5, mtu: 1400,
    gateway: '10.9.0.1', fabric: true, vnet_id: 77, owner_uuids: [OWNER], resolvers: ['10.9.0.53'],
  };

  async getNetwork(uuid: string, by?: string): Promise<ApiNetwork> {
    this.gate('getNetwork');
    if (uuid !== NET) throw new NapiRequestError('GET', `/networks/${uuid}`, 404, { message: 'network not found' });
    if (by && by !== OWNER) throw new NapiRequestError('GET', `/networks/${uuid}`, 403, { message: 'owner cannot provision on network' });
    return this.network;
  }

  async listNetworks(f: Record<string, string>): Promise<ApiNetwork[]> {
    this.gate('listNetworks');
    return f.name === 'blue' && f.owner_uuid === OWNER ? [this.network] : [];
  }

  async listNics(f: Record<string, string | boolean>): Promise<ApiNic[]> {
    this.gate('listNics');
    return [...this.nics.values()].filter((n) => Object.entries(f).every(([k, v]) => (n as unknown as Record<string, unknown>)[k] === v));
  }

  async getNic(mac: string): Promise<ApiNic> {
    this.gate('getNic');
    const n = this.nics.get(mac);
    if (!n) throw new NapiRequestError('GET', `/nics/${mac}`, 404, { message: 'nic not found' });
    return n;
  }

  async createNic(p: Record<string, unknown>): Promise<ApiNic> {
    this.gate('createNic');
    const used = new Set([...this.nics.values()].map((n) => n.ip));
    const ip = (p.ip as string | undefined) ?? [...Array(this.size).keys()].map((i) => `10.9.0.${10 + i}`).find((a) => !used.has(a));
    if (!ip) throw new NapiRequestError('POST', '/nics', 507, { code: 'SubnetFull', message: 'no more free IPs' });
    const mac = (p.mac as string | undefined) ?? `90:b8:d0:00:00:${(this.nextMac++).toString(16).padStart(2, '0')}`;
    const nic: ApiNic = {
      mac, owner_uuid: p.owner_uuid as string, belongs_to_uuid: p.belongs_to_uuid as string, belongs_to_type: p.belongs_to_type as string,
      cn_uuid: p.cn_uuid as string, ip, netmask: '255.255.255.0', gateway: '10.9.0.1', mtu: 1400, nic_tag: 'sdc_overlay/77',
      vlan_id: 5, network_uuid: NET, fabric: true,
    };
    this.nics.set(mac, nic);
    return nic;
  }

  async deleteNic(mac: string): Promise<void> {
    this.gate('deleteNic');
    if (!this.nics.delete(mac)) throw new NapiRequestError('DELETE', `/nics/${mac}`, 404, { message: 'nic not found' });
  }

  async ping(): Promise<{ healthy: boolean }> {
    this.gate('ping');
    return { healthy: true };
  }
}

class FakeHost implements WorkloadHost {
  readonly nodeUuid = NODE;
  plumbed = new Map<string, AttachedNic>();
  failAttach: string | undefined;

  async attachNic(nic: ApiNic, req: AttachRequest): Promise<AttachedNic> {
    if (this.failAttach) throw new AgentError(422, this.failAttach);
    const a: AttachedNic = { mac: req.mac, ip: nic.ip!, vnet: 77, vlan: 5, netns: req.netns, ifname: req.ifname ?? 'eth0' };
    this.plumbed.set(req.mac, a);
    return a;
  }

  async stageNic(nic: ApiNic, req: StageRequest): Promise<AttachedNic> {
    if (this.failAttach) throw new AgentError(422, this.failAttach);
    const a: AttachedNic = { mac: req.mac, ip: nic.ip!, vnet: 77, vlan: 5, ifname: req.ifname };
    this.plumbed.set(req.mac, a);
    return a;
  }

  async activate(mac: string, netns: string): Promise<AttachedNic> {
    const a = this.plumbed.get(mac);
    if (!a) throw new AgentError(404, 'not attached');
    const now = { ...a, netns, ifname: 'eth0' };
    this.plumbed.set(mac, now);
    return now;
  }

  async detach(mac: string): Promise<unknown> {
    if (!this.plumbed.delete(mac)) throw new AgentError(404, 'not attached');
    return {};
  }

  attachment(mac: string): AttachedNic | undefined {
    return this.plumbed.get(mac);
  }

  hostInterfaceOf(mac: string): string | undefined {
    return this.plumbed.has(mac) ? `rv${mac.replace(/:/g, '')}` : undefined;
  }
}

const req = (key: string, extra: Record<string, unknown> = {}) =>
  parseAttachRequest({ key, scope: 'cni/blue', network_uuid: NET, netns: `/proc/1/ns/net`, ifname: 'eth0', ...extra });

describe('workload attachments (agent)', () => {
  let root = '';
  let n = 0;
  const setup = async (size?: number) => {
    const napi = new FakeNapi(size);
    const host = new FakeHost();
    const state = new WorkloadState(join(root, `s${++n}`));
    const m = new WorkloadManager({ host, napi, state, sweepIntervalMs: 0 });
    await m.start();
    return { napi, host, state, m };
  };
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'rhumb-workloads-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('attaches: one NIC placed on this node, owned by the network owner, belonging to the derived UUID', async () => {
    const { napi, host, m } = await setup();
    const a = await m.attach(req('cni/c1/eth0'));
    assert.equal(napi.nics.size, 1);
    const nic = [...napi.nics.values()][0]!;
    assert.equal(nic.belongs_to_uuid, workloadUuid(NODE, 'cni/c1/eth0'));
    assert.equal(nic.belongs_to_type, 'zone');
    assert.equal(nic.cn_uuid, NODE);
    assert.equal(nic.owner_uuid, OWNER);
    assert.equal(a.phase, 'attached');
    assert.deepEqual(a.ips, [{ address: '10.9.0.10/24', gateway: '10.9.0.1' }]);
    assert.deepEqual(a.routes, [{ dst: '0.0.0.0/0', gw: '10.9.0.1' }]);
    assert.deepEqual(a.resolvers, ['10.9.0.53']);
    assert.equal(a.mtu, 1400);
    assert.equal(a.host_ifname, `rv${nic.mac.replace(/:/g, '')}`);
    assert.ok(host.plumbed.has(nic.mac));
  });

  it('the derived UUID depends on the node and the key, nothing else', () => {
    assert.equal(workloadUuid(NODE, 'k'), workloadUuid(NODE, 'k'));
    assert.notEqual(workloadUuid(NODE, 'k'), workloadUuid(NODE, 'k2'));
    assert.notEqual(workloadUuid(NODE, 'k'), workloadUuid(OWNER, 'k'));
  });

  it('a repeated attach returns the same NIC, never a second one; a new namespace moves it', async () => {
    const { napi, host, m } = await setup();
    const a = await m.attach(req('k1'));
    const b = await m.attach(req('k1'));
    assert.equal(napi.nics.size, 1);
    assert.equal(b.mac, a.mac);
    const c = await m.attach(req('k1', { netns: '/run/netns/other' }));
    assert.equal(c.mac, a.mac);
    assert.equal(napi.nics.size, 1);
    assert.equal(host.plumbed.get(a.mac!)!.netns, '/run/netns/other');
    // Another key gets its own NIC; a different network for a held key is a conflict.
    await m.attach(req('k2'));
    assert.equal(napi.nics.size, 2);
    await assert.rejects(m.attach(req('k1', { mac: '02:00:00:00:00:99' })), (e: AgentError) => e.code === 'Conflict');
  });

  it('concurrent attaches of one key make one NIC', async () => {
    const { napi, m } = await setup();
    const all = await Promise.all([1, 2, 3, 4].map(() => m.attach(req('same'))));
    assert.equal(new Set(all.map((a) => a.mac)).size, 1);
    assert.equal(napi.nics.size, 1);
  });

  it('honours a requested MAC and IP; the network by owner and name', async () => {
    const { napi, m } = await setup();
    const a = await m.attach(parseAttachRequest({ key: 'x', network_name: 'blue', owner_uuid: OWNER, netns: '/run/netns/a', ifname: 'eth1', mac: '02:AA:00:00:00:01', ip: '10.9.0.12' }));
    assert.equal(a.mac, '02:aa:00:00:00:01');
    assert.deepEqual(a.ips, [{ address: '10.9.0.12/24', gateway: '10.9.0.1' }]);
    assert.equal(napi.nics.get('02:aa:00:00:00:01')!.ip, '10.9.0.12');
  });

  it('requested addresses of both families: the first of the network\'s family is taken; none of it is a 422 before anything is made', async () => {
    const { napi, m } = await setup();
    const a = await m.attach(req('both', { ips: ['fd00:9::12', '10.9.0.13', '10.9.0.14'] }));
    assert.deepEqual(a.ips, [{ address: '10.9.0.13/24', gateway: '10.9.0.1' }]);
    // The repeated attach resolves the same request to the same address: the same NIC.
    assert.equal((await m.attach(req('both', { ips: ['fd00:9::12', '10.9.0.13'] }))).mac, a.mac);
    await assert.rejects(m.attach(req('v6only', { ips: ['fd00:9::12', 'fd00:9::13'] })), (e: AgentError) =>
      e.status === 422 && e.code === 'InvalidParameters' && /fd00:9::12, fd00:9::13\) is IPv4, the family of network/.test(e.message));
    assert.equal(napi.nics.size, 1);
    assert.deepEqual(m.list().map((w) => w.key), ['both']);
  });

  it('unknown network, foreign owner, exhausted subnet: clear errors, nothing left behind', async () => {
    const { napi, m, state } = await setup(1);
    await assert.rejects(m.attach(req('a', { network_uuid: 'dddddddd-0000-4000-8000-000000000004' })), (e: AgentError) => e.code === 'NetworkNotFound' && e.status === 404);
    await assert.rejects(m.attach(parseAttachRequest({ key: 'a', network_name: 'red', owner_uuid: OWNER, netns: '/run/netns/a', ifname: 'eth0' })), (e: AgentError) => e.code === 'NetworkNotFound');
    await assert.rejects(m.attach(req('a', { owner_uuid: 'dddddddd-0000-4000-8000-000000000004' })), (e: AgentError) => e.code === 'NetworkNotFound');
    await m.attach(req('first'));
    await assert.rejects(m.attach(req('second')), (e: AgentError) => e.code === 'SubnetFull' && e.status === 507);
    assert.equal(napi.nics.size, 1);
    assert.deepEqual(m.list().map((w) => w.key), ['first']);
    assert.deepEqual(Object.keys(JSON.parse(await readFile(state.path, 'utf8')).workloads), ['first']);
  });

  it('plumbing that fails after the NIC was created is rolled back: no NIC, no record', async () => {
    const { napi, host, m } = await setup();
    host.failAttach = 'netns /run/netns/gone does not exist';
    await assert.rejects(m.attach(req('half')), /does not exist/);
    assert.equal(napi.nics.size, 0);
    assert.deepEqual(m.list(), []);
    assert.ok(napi.calls.includes('createNic') && napi.calls.includes('deleteNic'));
  });

  it('release: unplumbs and deletes; unknown key and a second release succeed with released=false', async () => {
    const { napi, host, m, state } = await setup();
    const a = await m.attach(req('r1'));
    assert.deepEqual(await m.release('r1'), { key: 'r1', released: true });
    assert.equal(napi.nics.size, 0);
    assert.equal(host.plumbed.size, 0);
    assert.deepEqual(await m.release('r1'), { key: 'r1', released: false });
    assert.deepEqual(await m.release('never'), { key: 'never', released: false });
    // The netns was already gone (its veth with it): still released.
    await m.attach(req('r2'));
    host.plumbed.clear();
    assert.deepEqual(await m.release('r2'), { key: 'r2', released: true });
    assert.equal(napi.nics.size, 0);
    await assert.rejects(readFile(state.path), { code: 'ENOENT' }, 'no records: no state file');
    assert.ok(a.mac);
  });

  it('a NIC whose record was lost is found by its belongs_to_uuid: reused by attach, deleted by release', async () => {
    const { napi, m } = await setup();
    const a = await m.attach(req('lost'));
    const other = await setup();
    other.napi.nics = napi.nics; // same controller, a fresh agent state (lost directory)
    const again = await other.m.attach(req('lost'));
    assert.equal(again.mac, a.mac);
    assert.equal(napi.nics.size, 1);
    const third = await setup();
    third.napi.nics = napi.nics;
    assert.deepEqual(await third.m.release('lost'), { key: 'lost', released: true });
    assert.equal(napi.nics.size, 0);
  });

  it('the controller away: attach fails (ControllerUnreachable), release unplumbs and defers, the sweep finishes', async () => {
    const { napi, host, m } = await setup();
    await m.attach(req('d1'));
    napi.down = true;
    await assert.rejects(m.attach(req('d2')), (e: AgentError) => e.code === 'ControllerUnreachable' && e.status === 503);
    assert.deepEqual(await m.release('d1'), { key: 'd1', released: true, deferred: true });
    assert.equal(host.plumbed.size, 0);
    assert.equal(napi.nics.size, 1, 'NIC still on the (unreachable) controller');
    assert.deepEqual(m.list().map((w) => [w.key, w.phase]), [['d1', 'releasing']]);
    assert.equal((await m.health()).controller.reachable, false);
    napi.down = false;
    await m.sweep({ startup: false });
    assert.equal(napi.nics.size, 0);
    assert.deepEqual(m.list(), []);
    assert.equal((await m.health()).controller.reachable, true);
  });

  it('at start: unfinished records are rolled back, attached ones whose namespace is gone released', async () => {
    const { napi, host, state, m } = await setup();
    await m.attach(req('alive'));
    await m.attach(req('dead', { netns: '/run/netns/rhumb-test-no-such-ns' }));
    await m.attach(req('crashed'));
    // Simulate a crash after the NIC was created: the record still says "creating".
    const text = JSON.parse(await readFile(state.path, 'utf8'));
    text.workloads.crashed.phase = 'creating';
    delete text.workloads.crashed.mac;
    await writeFile(state.path, JSON.stringify(text));
    // The agent restarts; the dead namespace took its veth with it.
    for (const [mac, a] of host.plumbed) if (a.netns !== '/proc/1/ns/net') host.plumbed.delete(mac);
    const again = new WorkloadManager({ host, napi, state, sweepIntervalMs: 0 });
    const crashedMac = [...napi.nics.values()].find((x) => x.belongs_to_uuid === workloadUuid(NODE, 'crashed'))!.mac;
    host.plumbed.delete(crashedMac);
    await again.start();
    assert.deepEqual(again.list().map((w) => w.key), ['alive']);
    assert.equal(napi.nics.size, 1);
    void m;
  });

  it('check: ok while plumbed; names what is missing', async () => {
    const { host, m } = await setup();
    const a = await m.attach(req('c1', { netns: '/run/netns/rhumb-test-no-such-ns' }));
    const r = await m.check('c1');
    assert.equal(r.ok, false);
    assert.ok(r.problems.some((p) => /does not exist/.test(p)), r.problems.join('; '));
    host.plumbed.delete(a.mac!);
    assert.ok((await m.check('c1')).problems.some((p) => /not plumbed/.test(p)));
    await assert.rejects(m.check('nope'), (e: AgentError) => e.status === 404);
  });
});

describe('workload attach request checks', () => {
  const ok = { key: 'cni/abc/eth0', network_uuid: NET, netns: '/run/netns/x', ifname: 'eth0' };
  it('accepts the documented shapes and canonicalises', () => {
    const r = parseAttachRequest({ ...ok, network_uuid: NET.toUpperCase(), mac: '02-AA-BB-CC-DD-EE', labels: { 'cni.container_id': 'abc' } });
    assert.equal(r.network_uuid, NET);
    assert.equal(r.mac, '02:aa:bb:cc:dd:ee');
    assert.deepEqual(r.labels, { 'cni.container_id': 'abc' });
    // An IPv6 network's workload may ask for its address.
    assert.equal(parseAttachRequest({ ...ok, ip: 'fd00:67::77' }).ip, 'fd00:67::77');
    assert.deepEqual(parseAttachRequest({ ...ok, ips: ['10.0.0.5', 'fd00:67::77'] }).ips, ['10.0.0.5', 'fd00:67::77']);
  });
  it('the address asked for is the first of the network\'s family; `ip` stands as given', () => {
    const v4 = { uuid: NET, subnet: '10.9.0.0/24' };
    const v6 = { uuid: NET, subnet: 'fd00:67::/64' };
    assert.equal(requestedIpOf({ ips: ['fd00:67::77', '10.9.0.5', 'fd00:67::78'] }, v4), '10.9.0.5');
    assert.equal(requestedIpOf({ ips: ['10.9.0.5', 'fd00:67::77', 'fd00:67::78'] }, v6), 'fd00:67::77');
    assert.equal(requestedIpOf({}, v6), undefined);
    assert.equal(requestedIpOf({ ip: '10.9.0.5' }, v6), '10.9.0.5');
    assert.throws(() => requestedIpOf({ ips: ['10.9.0.5'] }, v6), /none of the requested addresses \(10\.9\.0\.5\) is IPv6, the family of network/);
  });
  for (const [why, body, msg] of [
    ['not an object', [], /JSON object/],
    ['no key', { ...ok, key: undefined }, /key is required/],
    ['a key with a space', { ...ok, key: 'a b' }, /key must be/],
    ['a key too long', { ...ok, key: 'a'.repeat(513) }, /key must be/],
    ['no network', { ...ok, network_uuid: undefined }, /network_uuid or network_name/],
    ['both networks', { ...ok, network_name: 'x' }, /not both/],
    ['a name without owner', { ...ok, network_uuid: undefined, network_name: 'x' }, /needs owner_uuid/],
    ['a bad netns', { ...ok, netns: '/tmp/x' }, /netns must be/],
    ['a netns with a newline', { ...ok, netns: '/run/netns/a\nb' }, /netns must be/],
    ['a bad ifname', { ...ok, ifname: 'eth0;reboot' }, /interface names/],
    ['a bad mac', { ...ok, mac: 'nope' }, /not a MAC/],
    ['an ip that is not one', { ...ok, ip: '10.0.0.300' }, /not an IP address/],
    ['an ip with a zone', { ...ok, ip: 'fe80::1%eth0' }, /not an IP address/],
    ['ips not a list', { ...ok, ips: '10.0.0.5' }, /ips must be a list/],
    ['an empty ips', { ...ok, ips: [] }, /ips must be a list/],
    ['ips with a non-address', { ...ok, ips: ['10.0.0.5', 'ten'] }, /ips: not an IP address: "ten"/],
    ['ip and ips', { ...ok, ip: '10.0.0.5', ips: ['10.0.0.5'] }, /ip or ips, not both/],
    ['a label with a control character', { ...ok, labels: { a: 'x\u0001' } }, /printable/],
    ['too many labels', { ...ok, labels: Object.fromEntries([...Array(17).keys()].map((i) => [`l${i}`, 'v'])) }, /at most 16/],
    ['an unknown field', { ...ok, colour: 'red' }, /unknown field/],
  ] as const) {
    it(`refuses ${why}`, () => assert.throws(() => parseAttachRequest(body), msg));
  }
});

describe('workload state file', () => {
  let root = '';
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'rhumb-wstate-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });
  it('round-trips, drops malformed records, removes the file when empty', async () => {
    const st = new WorkloadState(join(root, 'a'));
    assert.equal((await st.load()).size, 0);
    const rec = { key: 'k', phase: 'attached' as const, belongs_to_uuid: NET, network_uuid: NET, owner_uuid: OWNER, netns: '/run/netns/x', ifname: 'eth0', mac: '02:00:00:00:00:01', created: 'now' };
    await st.save(new Map([['k', rec]]));
    assert.deepEqual(await st.load(), new Map([['k', rec]]));
    const text = JSON.parse(await readFile(st.path, 'utf8'));
    text.workloads.bad = { ...rec, key: 'bad', netns: '/etc/passwd' };
    text.workloads.wrongkey = { ...rec };
    await writeFile(st.path, JSON.stringify(text));
    assert.deepEqual([...(await st.load()).keys()], ['k']);
    await st.save(new Map());
    assert.deepEqual(await readdir(join(root, 'a')), []);
    await writeFile(join(root, 'a', WORKLOAD_STATE_FILE), '{');
    await assert.rejects(st.load(), /not JSON/);
  });
});
