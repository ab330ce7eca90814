/**
 * The agent's workload-attachment API (POST/GET/DELETE /workloads, GET /health) with real
 * processes: a controller, an agent on the kernel backend and one on the userspace
 * backend, in node namespaces of a simulated datacenter. What the CNI and Docker plugins
 * build on: the NIC is created on the controller and plumbed, a repeated attach returns
 * it, release removes everything, a half-made attachment is rolled back, a restarted
 * agent releases what died while it was down.
 *
 * Needs root, a built dist/ and the native addon.
 */
import assert from 'node:assert/strict';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { workloadUuid } from '../../src/agent/workloads.js';
import { Datacenter, type DatacenterNode, type RunningAgent } from '../helpers/datacenter.js';
import { netnsSkipReason } from '../helpers/netns.js';
import { http } from '../helpers/processes.js';

const skip = netnsSkipReason();
const OWNER = 'aaaaaaaa-0000-4000-8000-0000000000b1';

describe('agent workload attachments (kernel and userspace backends)', { skip, timeout: 180_000 }, () => {
  // n1 on the kernel backend, n2 on the userspace one.
  const dc = new Datacenter('awl', { nodes: 2, stateTag: 'awl', firewall: false, agentArgs: (n) => ['--backend', n.name === 'n1' ? 'kernel' : 'userspace'] });
  const { lab, api } = dc;
  let nodes: DatacenterNode[] = [];
  const agents: RunningAgent[] = [];
  let netUuid = '';
  let tinyUuid = '';
  let v6Uuid = '';
  const stateDir = (i: number) => dc.nodes[i]!.stateDir;
  const body = (key: string, ns: string, extra: Record<string, unknown> = {}) => ({ key, scope: 'test', network_uuid: netUuid, netns: `/run/netns/${ns}`, ifname: 'eth0', ...extra });
  const nicsOf = async (key: string, node: DatacenterNode) => api('GET', `/nics?belongs_to_uuid=${workloadUuid(node.uuid, key)}`) as Promise<Array<{ mac: string; ip: string }>>;
  const links = async (ns: string) => (JSON.parse(await lab.ip(ns, '-j', 'link', 'show')) as Array<{ ifname: string }>).map((l) => l.ifname);
  const exists = (p: string) => access(p).then(() => true, () => false);

  before(async () => {
    await dc.start();
    nodes = dc.nodes;
    agents.push(...dc.nodes.map((n) => n.agent!));
    await api('POST', `/fabrics/${OWNER}/vlans`, { vlan_id: 7, name: 'wl' });
    netUuid = (
      await api('POST', `/fabrics/${OWNER}/vlans/7/networks`, {
        name: 'wl', subnet: '10.67.0.0/24', provision_start_ip: '10.67.0.10', provision_end_ip: '10.67.0.200', gateway: '10.67.0.1', resolvers: ['10.67.0.53'],
      })
    ).uuid;
    v6Uuid = (
      await api('POST', `/fabrics/${OWNER}/vlans/7/networks`, { name: 'wl6', subnet: 'fd00:67::/64', provision_start_ip: 'fd00:67::10', provision_end_ip: 'fd00:67::ff', gateway: 'fd00:67::1' })
    ).uuid;
    tinyUuid = (
      await api('POST', `/fabrics/${OWNER}/vlans/7/networks`, { name: 'tiny', subnet: '10.68.0.0/24', provision_start_ip: '10.68.0.10', provision_end_ip: '10.68.0.11' })
    ).uuid;
  });

  after(() => dc.stop());

  it('attaches on both backends, answers what a plugin result needs, and the two workloads talk', async () => {
    const w1 = await lab.addNetns('w1');
    const w2 = await lab.addNetns('w2');
    const r1 = await http(agents[0]!.api, 'POST', '/workloads', body('k/one', w1, { labels: { who: 'one' } }));
    assert.equal(r1.status, 200, JSON.stringify(r1.body));
    const r2 = await http(agents[1]!.api, 'POST', '/workloads', body('k/two', w2));
    assert.equal(r2.status, 200, JSON.stringify(r2.body));
    const a = r1.body;
    assert.equal(a.phase, 'attached');
    assert.match(a.ips[0].address, /^10\.67\.0\.\d+\/24$/);
    assert.equal(a.ips[0].gateway, '10.67.0.1');
    assert.deepEqual(a.routes, [{ dst: '0.0.0.0/0', gw: '10.67.0.1' }]);
    assert.deepEqual(a.resolvers, ['10.67.0.53']);
    assert.deepEqual(a.labels, { who: 'one' });
    assert.equal(a.host_ifname, `rv${a.mac.replace(/:/g, '')}`, 'kernel backend: the host veth');
    assert.ok((await links(nodes[0]!.ns)).includes(a.host_ifname));
    assert.equal(r2.body.host_ifname, `rv${r2.body.mac.replace(/:/g, '')}`, 'userspace backend: the host veth too (in the NIC\'s bridge with the TAP)');
    assert.ok((await links(nodes[1]!.ns)).includes(r2.body.host_ifname));
    const [nic] = await nicsOf('k/one', nodes[0]!);
    assert.equal(nic!.mac, a.mac);
    const addr = await lab.ip(w1, '-4', 'addr', 'show', 'dev', 'eth0');
    assert.ok(addr.includes(a.ips[0].address), addr);

    // A repeated attach: the same NIC, no second one.
    const again = await http(agents[0]!.api, 'POST', '/workloads', body('k/one', w1, { labels: { who: 'one' } }));
    assert.equal(again.status, 200);
    assert.equal(again.body.mac, a.mac);
    assert.equal((await nicsOf('k/one', nodes[0]!)).length, 1);

    const listed = await http(agents[0]!.api, 'GET', '/workloads?scope=test');
    assert.deepEqual(listed.body.map((w: { key: string }) => w.key), ['k/one']);
    const one = await http(agents[0]!.api, 'GET', `/workloads/${encodeURIComponent('k/one')}`);
    assert.equal(one.body.mac, a.mac);
    assert.deepEqual((await http(agents[0]!.api, 'GET', `/workloads/${encodeURIComponent('k/one')}/check`)).body, { key: 'k/one', ok: true, problems: [] });
    assert.deepEqual((await http(agents[1]!.api, 'GET', `/workloads/${encodeURIComponent('k/two')}/check`)).body.ok, true);

    // Someone deletes the interface: check says so.
    await lab.ip(w1, 'link', 'del', 'eth0');
    const bad = await http(agents[0]!.api, 'GET', `/workloads/${encodeURIComponent('k/one')}/check`);
    assert.equal(bad.body.ok, false);
    assert.ok(bad.body.problems.some((p: string) => /eth0 is missing/.test(p)), JSON.stringify(bad.body));

    // Release: the NIC is gone from the controller, the devices from the node; twice is fine.
    for (const [i, key] of [[0, 'k/one'], [1, 'k/two']] as const) {
      const rel = await http(agents[i]!.api, 'DELETE', `/workloads/${encodeURIComponent(key)}`);
      assert.deepEqual(rel.body, { key, released: true });
      assert.deepEqual(await nicsOf(key, nodes[i]!), []);
      const relAgain = await http(agents[i]!.api, 'DELETE', `/workloads/${encodeURIComponent(key)}`);
      assert.deepEqual(relAgain.body, { key, released: false });
      assert.equal(await exists(join(stateDir(i), 'workloads.json')), false, 'no records: no state file');
    }
    assert.ok(!(await links(nodes[0]!.ns)).includes(a.host_ifname));
    assert.ok(!(await links(w2)).includes('eth0'));
  });

  it('an IPv6 network: the address with its prefix, the IPv6 default route, check ok, the gateway answers; released', async () => {
    const w1 = await lab.addNetns('w61');
    const w2 = await lab.addNetns('w62');
    const r1 = await http(agents[0]!.api, 'POST', '/workloads', body('k6/one', w1, { network_uuid: v6Uuid }));
    assert.equal(r1.status, 200, JSON.stringify(r1.body));
    const r2 = await http(agents[1]!.api, 'POST', '/workloads', body('k6/two', w2, { network_uuid: v6Uuid, ip: 'fd00:67::77' }));
    assert.equal(r2.status, 200, JSON.stringify(r2.body));
    assert.deepEqual(r1.body.ips, [{ address: 'fd00:67::10/64', gateway: 'fd00:67::1' }]);
    assert.deepEqual(r1.body.routes, [{ dst: '::/0', gw: 'fd00:67::1' }]);
    assert.deepEqual(r2.body.ips, [{ address: 'fd00:67::77/64', gateway: 'fd00:67::1' }]);
    for (const [i, key] of [[0, 'k6/one'], [1, 'k6/two']] as const) {
      assert.deepEqual((await http(agents[i]!.api, 'GET', `/workloads/${encodeURIComponent(key)}/check`)).body, { key, ok: true, problems: [] });
    }
    // Each reaches its gateway, answered on its own node (the two are on different backends, whose VLAN framing differs).
    for (const w of [w1, w2]) await lab.exec(w, 'ping', '-6', '-c', '1', '-W', '3', 'fd00:67::1');
    for (const [i, key] of [[0, 'k6/one'], [1, 'k6/two']] as const) {
      assert.deepEqual((await http(agents[i]!.api, 'DELETE', `/workloads/${encodeURIComponent(key)}`)).body, { key, released: true });
      assert.deepEqual(await nicsOf(key, nodes[i]!), []);
    }
  });

  it('refuses bad input with 400 and names the problem; unknown network 404; full subnet 507; nothing left', async () => {
    const w = await lab.addNetns('w3');
    const cases: Array<[Record<string, unknown>, number, string, RegExp]> = [
      [body('b1', w, { netns: '/etc/passwd' }), 400, 'InvalidRequest', /netns must be/],
      [body('b1', w, { ifname: 'eth0 up' }), 400, 'InvalidRequest', /interface names/],
      [body('b 1', w), 400, 'InvalidRequest', /key must be/],
      [body('b1', w, { extra: 1 }), 400, 'InvalidRequest', /unknown field/],
      [body('b1', w, { network_uuid: 'dddddddd-0000-4000-8000-000000000004' }), 404, 'NetworkNotFound', /no fabric network/],
      [{ ...body('b1', w), network_uuid: undefined, network_name: 'nope', owner_uuid: OWNER }, 404, 'NetworkNotFound', /no fabric network/],
    ];
    for (const [b, status, code, msg] of cases) {
      const r = await http(agents[0]!.api, 'POST', '/workloads', b);
      assert.equal(r.status, status, JSON.stringify(r.body));
      assert.equal(r.body.code, code);
      assert.match(r.body.message, msg);
    }
    // The tiny network has a couple of addresses: attach until it is full.
    const held: string[] = [];
    let full: Awaited<ReturnType<typeof http>> | undefined;
    for (let i = 0; i < 4 && !full; i++) {
      const r = await http(agents[0]!.api, 'POST', '/workloads', body(`t${i}`, await lab.addNetns(`t${i}`), { network_uuid: tinyUuid }));
      if (r.status === 200) held.push(`t${i}`);
      else full = r;
    }
    assert.ok(held.length > 0 && full, 'some attachments, then a full subnet');
    assert.equal(full.status, 507, JSON.stringify(full.body));
    assert.equal(full.body.code, 'SubnetFull');
    assert.match(full.body.message, /no more free IPs/);
    assert.deepEqual(await nicsOf(`t${held.length}`, nodes[0]!), []);
    for (const key of held) assert.deepEqual((await http(agents[0]!.api, 'DELETE', `/workloads/${key}`)).body, { key, released: true });
    assert.deepEqual((await http(agents[0]!.api, 'GET', '/workloads')).body, []);
  });

  it('plumbing that fails after the NIC was created is rolled back: no NIC, no device, no record', async () => {
    const w = await lab.addNetns('w5');
    await lab.ip(w, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'x0'); // the name is taken: the NIC's veth cannot be made
    const r = await http(agents[0]!.api, 'POST', '/workloads', body('half', w));
    assert.equal(r.status, 422, JSON.stringify(r.body));
    assert.deepEqual(await nicsOf('half', nodes[0]!), []);
    assert.deepEqual((await http(agents[0]!.api, 'GET', '/workloads')).body, []);
    assert.ok(!(await links(nodes[0]!.ns)).some((l) => /^rv[0-9a-f]{12}$/.test(l)), 'no host veth left');
  });

  it('GET /health reports the controller; a restarted agent releases what died while it was down', async () => {
    assert.deepEqual((await http(agents[0]!.api, 'GET', '/health')).body, { node: nodes[0]!.uuid, controller: { reachable: true } });
    const keep = await lab.addNetns('w6');
    const gone = await lab.addNetns('w7');
    for (const [key, ns] of [['keep', keep], ['gone', gone]] as const) {
      assert.equal((await http(agents[0]!.api, 'POST', '/workloads', body(key, ns))).status, 200);
    }
    await dc.stopAgent(dc.nodes[0]!);
    await lab.ip(null, 'netns', 'del', gone);
    agents[0] = await dc.startAgent(dc.nodes[0]!);
    const listed = (await http(agents[0]!.api, 'GET', '/workloads')).body as Array<{ key: string; phase: string }>;
    assert.deepEqual(listed.map((w) => [w.key, w.phase]), [['keep', 'attached']]);
    assert.deepEqual(await nicsOf('gone', nodes[0]!), []);
    assert.equal((await http(agents[0]!.api, 'GET', '/workloads/keep/check')).body.ok, true);
    assert.deepEqual((await http(agents[0]!.api, 'DELETE', '/workloads/keep')).body, { key: 'keep', released: true });
    const state = await readFile(join(stateDir(0), 'attachments.json'), 'utf8');
    assert.deepEqual(JSON.parse(state).nics, {});
  });
});
