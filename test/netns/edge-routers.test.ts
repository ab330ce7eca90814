/**
 * Routers (issue #12), on both backends: an owner's fabric networks connected by a router
 * exchange TCP across nodes (and on one node) through the distributed gateway, the
 * sender's node routing straight into the destination network (one VXLAN hop);
 * an unconnected network of the owner and another owner's networks with the same subnets
 * get nothing; the destination's firewall still applies to routed traffic; deleting the
 * router cuts them apart again.
 *
 * Needs root, a built dist/ (npm run build) and the native addon.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  Datacenter,
  type Instance,
  type Node,
  ProcessOutput,
  attachNic,
  eventually,
  ping,
  sendTcp,
  startTcpSink,
  tcpProbeProgram,
  tcpServersProgram,
  edgeDiagnostics,
} from '../helpers/datacenter.js';
import { netnsSkipReason } from '../helpers/netns.js';

const skip = netnsSkipReason();
const OWNER_A = 'aaaaaaaa-0000-4000-8000-0000000000e2';
const OWNER_B = 'bbbbbbbb-0000-4000-8000-0000000000e3';
const PORTS = [7001, 7002];
const PROBE = tcpProbeProgram(1500);

for (const backend of ['kernel', 'userspace'] as const) describe(`routers between an owner's fabric networks (${backend} backend)`, { skip, timeout: 150_000 }, () => {
  const dc = new Datacenter(backend === 'kernel' ? 'erk' : 'eru', { nodes: 2, stateTag: 'edr-state', backend, agentArgs: () => ['--router-poll', '300'] });
  const { lab, api } = dc;
  const nodes: Node[] = [];
  const net: Record<string, string> = {};
  const inst: Record<string, Instance> = {};
  let routerUuid = '';

  /** What `from` gets at each (instance, port): "open" or "blocked". */
  async function reach(from: Instance, targets: Array<[Instance, number]>): Promise<string[]> {
    const out = await lab.exec(from.ns, process.execPath, '-e', PROBE, JSON.stringify(targets.map(([t, p]) => [t.ip, p])));
    return (JSON.parse(out) as string[]).map((r, i) => `${targets[i]![0].name}:${targets[i]![1]} ${r === 'open' ? 'open' : 'blocked'}`);
  }

  const expectReach = (from: Instance, targets: Array<[Instance, number]>, want: string[], what: string) => {
    let last: string[] = [];
    return eventually(async () => {
      last = await reach(from, targets);
      return JSON.stringify(last) === JSON.stringify(want);
    }, 20_000, what).catch(async (err: Error) => {
      throw new Error(`${err.message}: got ${JSON.stringify(last)}; ${await diagnostics()}`);
    });
  };

  const diagnostics = () => edgeDiagnostics(lab, nodes);

  before(async () => {
    await dc.start();
    nodes.push(...dc.nodes);
    for (const [owner, tag, vlans] of [[OWNER_A, 'a', [20, 21, 22]], [OWNER_B, 'b', [20, 21]]] as const) {
      for (const [k, vlan] of vlans.entries()) {
        await api('POST', `/fabrics/${owner}/vlans`, { vlan_id: vlan });
        const third = k + 1;
        const n = await api('POST', `/fabrics/${owner}/vlans/${vlan}/networks`, {
          name: `${tag}${third}`, subnet: `10.92.${third}.0/24`, provision_start_ip: `10.92.${third}.10`, provision_end_ip: `10.92.${third}.200`, gateway: `10.92.${third}.1`,
        });
        net[`${tag}${third}`] = n.uuid;
      }
    }
    const place = async (name: string, owner: string, network: string, node: Node) => {
      inst[name] = await dc.addInstance(name, owner, network, node);
      const server = lab.spawnIn(inst[name].ns, [process.execPath, '-e', tcpServersProgram(PORTS, '0.0.0.0')]);
      const out = new ProcessOutput(server);
      await out.until(() => out.lines.includes('ready'), 10_000, `servers in ${name}`);
    };
    await place('a1', OWNER_A, net.a1!, nodes[0]!);
    await place('a2', OWNER_A, net.a2!, nodes[1]!);
    await place('a2near', OWNER_A, net.a2!, nodes[0]!);
    await place('a3', OWNER_A, net.a3!, nodes[1]!);
    await place('b1', OWNER_B, net.b1!, nodes[0]!);
    await place('b2', OWNER_B, net.b2!, nodes[1]!);
  });

  after(() => dc.stop());

  it('without a router, networks of one owner do not reach each other', async () => {
    assert.deepEqual(await reach(inst.a1!, [[inst.a2!, 7001], [inst.a2near!, 7001]]), ['a2:7001 blocked', 'a2near:7001 blocked']);
  });

  it('a router connects two networks across nodes and on one node, both ways', async () => {
    const r = await api('POST', `/fabrics/${OWNER_A}/routers`, { name: 'front-back', networks: [net.a1, net.a2] });
    routerUuid = r.uuid;
    await expectReach(inst.a1!, [[inst.a2!, 7001], [inst.a2!, 7002], [inst.a2near!, 7001]], ['a2:7001 open', 'a2:7002 open', 'a2near:7001 open'], 'a1 reaches both a2s');
    assert.deepEqual(await reach(inst.a2!, [[inst.a1!, 7002]]), ['a1:7002 open']);
    assert.deepEqual(await reach(inst.a2near!, [[inst.a1!, 7002]]), ['a1:7002 open']);
    // The destination saw the sender's own address: routed, not NATed. (The server's
    // reply reached the sender, which only happens if it went to a1's address.)
    const routes = await lab.exec(nodes[0]!.ns, 'ip', 'route', 'show', 'table', 'all');
    assert.match(routes, /10\.92\.2\.0\/24 dev (rbr\d+|rg\d+v21) table \d+/);
  });

  it('an unconnected network and another owner\'s same subnets get nothing', async () => {
    assert.deepEqual(await reach(inst.a1!, [[inst.a3!, 7001]]), ['a3:7001 blocked']);
    assert.deepEqual(await reach(inst.a3!, [[inst.a1!, 7001], [inst.a2!, 7001]]), ['a1:7001 blocked', 'a2:7001 blocked']);
    // Owner B has the same subnets and no router: nothing between its networks, nothing into A's.
    assert.deepEqual(await reach(inst.b1!, [[inst.b2!, 7001]]), ['b2:7001 blocked']);
    const aAddrInB = { ...inst.a2!, name: 'a2-from-b' };
    assert.deepEqual(await reach(inst.b1!, [[aAddrInB, 7001]]), ['a2-from-b:7001 blocked']);
  });

  it('the destination\'s firewall still applies to routed traffic', async () => {
    await api('PUT', `/fw/instances/${inst.a2!.uuid}`, { owner_uuid: OWNER_A, tags: { role: 'db' }, firewall_enabled: true });
    await api('PUT', `/fw/instances/${inst.a1!.uuid}`, { owner_uuid: OWNER_A, tags: { role: 'web' }, firewall_enabled: false });
    await api('POST', '/rules', { rule: 'FROM tag role = web TO tag role = db ALLOW tcp PORT 7001', owner_uuid: OWNER_A, enabled: true });
    await expectReach(inst.a1!, [[inst.a2!, 7001], [inst.a2!, 7002]], ['a2:7001 open', 'a2:7002 blocked'], 'the firewall on a2');
  });

  it('a smaller MTU behind the router: "fragmentation needed" from the gateway, TCP completes (PMTU)', async () => {
    await api('POST', `/fabrics/${OWNER_A}/vlans`, { vlan_id: 23 });
    const small = await api('POST', `/fabrics/${OWNER_A}/vlans/23/networks`, {
      name: 'a4', subnet: '10.92.4.0/24', provision_start_ip: '10.92.4.10', provision_end_ip: '10.92.4.200', gateway: '10.92.4.1',
    });
    await api('PUT', `/fabrics/${OWNER_A}/vlans/23/networks/${small.uuid}`, { mtu: 1300 });
    const uuid = randomUUID();
    const nic = await api('POST', '/nics', { owner_uuid: OWNER_A, belongs_to_uuid: uuid, belongs_to_type: 'zone', network_uuid: small.uuid, cn_uuid: nodes[1]!.uuid });
    assert.equal(nic.mtu, 1300);
    const ns = await lab.addNetns('a4');
    await attachNic(nodes[1]!.agent!, nic.mac, ns);
    inst.a4 = { name: 'a4', uuid, ns, node: nodes[1]!, mac: nic.mac, ip: nic.ip };
    const sink = lab.spawnIn(ns, [process.execPath, '-e', tcpServersProgram([7001], '0.0.0.0')]);
    const out = new ProcessOutput(sink);
    await out.until(() => out.lines.includes('ready'), 10_000, 'server in a4');
    await api('PUT', `/fabrics/${OWNER_A}/routers/${routerUuid}`, { networks: [net.a1, net.a2, small.uuid] });
    await expectReach(inst.a1!, [[inst.a4!, 7001]], ['a4:7001 open'], 'a1 reaches a4');
    // a1's MTU is 1450: a 1428-byte ping fits a1's link but not a4's network.
    const big = await lab.exec(inst.a1!.ns, 'sh', '-c', `ping -c 1 -W 2 -M do -s 1400 ${inst.a4!.ip} 2>&1; true`);
    assert.match(big, /[Ff]rag needed and DF set \(mtu = 1300\)/, big);
    assert.ok(await ping(lab, inst.a1!.ns, inst.a4!.ip), 'an ordinary ping passes');
    await startTcpSink(lab, ns, 'a4', 7003);
    const [sent] = await sendTcp(lab, inst.a1!.ns, [inst.a4!.ip], 1400 * 200, 7003);
    assert.equal(sent!.reply, `a4 ${1400 * 200}`, JSON.stringify(sent));
  });

  it('deleting the router cuts the networks apart again', async () => {
    await api('DELETE', `/fabrics/${OWNER_A}/routers/${routerUuid}`);
    await expectReach(inst.a1!, [[inst.a2!, 7001], [inst.a2near!, 7001]], ['a2:7001 blocked', 'a2near:7001 blocked'], 'the router gone');
  });
});
