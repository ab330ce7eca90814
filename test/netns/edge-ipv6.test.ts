/**
 * IPv6 fabrics (issue #12), on both backends: instances on an IPv6 (fd00::/8) fabric
 * network reach each other across nodes (neighbour discovery answered on the node from VL3
 * lookups over SVP, nothing flooded), ping their gateway (answered on their own node with
 * the vnet's shared gateway MAC), and reach a second IPv6 network of their owner once a
 * router connects the two; an unconnected network and another owner's network with the
 * same subnet get nothing; a dual-stack instance (one NIC per family) reaches peers on
 * both; a firewall rule naming an IPv6 subnet applies; a smaller MTU behind the router gets
 * ICMPv6 "packet too big" from the gateway (PMTU, no blackhole); a published port of an
 * IPv6 NIC answers on the node's external IPv6 address (DNAT), subject to the firewall.
 *
 * Needs root, a built dist/ (npm run build) and the native addon.
 */
import assert from 'node:assert/strict';
import { randomInt, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import {
  Datacenter,
  type DatacenterNode,
  type Node,
  ProcessOutput,
  buildInternet,
  eventually,
  sendTcp,
  startTcpSink,
  tcpProbeProgram,
  tcpServersProgram,
  ASK_PROGRAM,
  edgeDiagnostics,
  whoamiProgram,
} from '../helpers/datacenter.js';
import { netnsSkipReason } from '../helpers/netns.js';
import { http } from '../helpers/processes.js';

const skip = netnsSkipReason();
const OWNER_A = 'aaaaaaaa-0000-4000-8000-0000000000f6';
const OWNER_B = 'bbbbbbbb-0000-4000-8000-0000000000f7';
const PORTS = [7101, 7102];
const PROBE = tcpProbeProgram(1500);
const WHOAMI_PORT = 8199;

const WHOAMI6 = whoamiProgram(WHOAMI_PORT, '::');
const ASK = ASK_PROGRAM;

interface Instance {
  name: string;
  uuid: string;
  ns: string;
  ip: string;
  mac: string;
}

for (const backend of ['kernel', 'userspace'] as const) describe(`IPv6 fabrics (${backend} backend)`, { skip, timeout: 240_000 }, () => {
  let internetNs = '';
  let internet4: (n: DatacenterNode) => string = () => '';
  let routerSix = '';
  const INTERNET6 = 'fd99:1::fe';
  const external6 = (i: number) => `fd99:1::${i + 1}`;
  const dc = new Datacenter(backend === 'kernel' ? 'esk' : 'esu', {
    nodes: 2, stateTag: 'e6-state', backend, agentArgs: () => ['--router-poll', '300', '--external-iface', 'ext0'],
    // The internet namespace, with IPv6 beside IPv4 on the nodes' external side.
    beforeAgents: async (d) => {
      const internet = await buildInternet(d.lab, d.nodes, `198.19.${randomInt(1, 250)}`);
      internetNs = internet.ns;
      internet4 = internet.addressOf;
      await d.lab.ip(internetNs, 'addr', 'add', `${INTERNET6}/64`, 'dev', 'wanbr', 'nodad');
      for (const [i, n] of d.nodes.entries()) {
        await d.lab.ip(n.ns, 'addr', 'add', `${external6(i)}/64`, 'dev', 'ext0', 'nodad');
        await d.lab.ip(n.ns, '-6', 'route', 'add', 'default', 'via', INTERNET6);
      }
    },
  });
  const { lab, api } = dc;
  const nodes: Node[] = [];
  const net: Record<string, string> = {};
  const inst: Record<string, Instance> = {};

  /** What `from` gets at each (address, port): "open" or "blocked". */
  async function reach(from: Instance, targets: Array<[string, string, number]>): Promise<string[]> {
    const out = await lab.exec(from.ns, process.execPath, '-e', PROBE, JSON.stringify(targets.map(([, ip, p]) => [ip, p])));
    return (JSON.parse(out) as string[]).map((r, i) => `${targets[i]![0]}:${targets[i]![2]} ${r === 'open' ? 'open' : 'blocked'}`);
  }

  const to = (name: string, port = PORTS[0]!): [string, string, number] => [name, inst[name]!.ip, port];

  async function expectReach(from: Instance, targets: Array<[string, string, number]>, want: string[], what: string): Promise<void> {
    let last: string[] = [];
    await eventually(async () => {
      last = await reach(from, targets);
      return JSON.stringify(last) === JSON.stringify(want);
    }, 20_000, what).catch(async (err: Error) => {
      throw new Error(`${err.message}: got ${JSON.stringify(last)}; ${await diagnostics()}`);
    });
  }

  const diagnostics = () => edgeDiagnostics(lab, nodes, 6);

  function ping6(from: Instance, ip: string): Promise<boolean> {
    return lab.exec(from.ns, 'ping', '-6', '-c', '1', '-W', '2', '-q', ip).then(() => true, () => false);
  }

  before(async () => {
    await dc.start();
    nodes.push(...dc.nodes);
    const network = async (owner: string, vlan: number, name: string, params: Record<string, unknown>) => {
      await http(dc.ctl!.restUrl, 'POST', `/fabrics/${owner}/vlans`, { vlan_id: vlan });
      net[name] = (await api('POST', `/fabrics/${owner}/vlans/${vlan}/networks`, { name, ...params })).uuid;
    };
    const v6 = (h: string) => ({ subnet: `fd00:${h}::/64`, provision_start_ip: `fd00:${h}::10`, provision_end_ip: `fd00:${h}::ff`, gateway: `fd00:${h}::1` });
    await network(OWNER_A, 30, 'a6', v6('61'));
    await network(OWNER_A, 31, 'b6', v6('62'));
    await network(OWNER_A, 32, 'c6', v6('63'));
    await network(OWNER_A, 34, 'n6', { ...v6('64'), internet_nat: false });
    await network(OWNER_A, 33, 'a4', { subnet: '10.93.1.0/24', provision_start_ip: '10.93.1.10', provision_end_ip: '10.93.1.200', gateway: '10.93.1.1' });
    // Owner B: the same subnet; its addresses from ::80 on, so that none is one of owner A's instances'.
    await network(OWNER_B, 30, 'o6', { ...v6('61'), provision_start_ip: 'fd00:61::80' });

    /** An instance with one NIC per network given (eth0, eth1, …) on node. */
    const place = async (name: string, owner: string, networks: string[], node: (typeof nodes)[number]) => {
      const uuid = randomUUID();
      const ns = await lab.addNetns(name);
      let first = { ip: '', mac: '' };
      for (const [i, network] of networks.entries()) {
        const nic = await api('POST', '/nics', { owner_uuid: owner, belongs_to_uuid: uuid, belongs_to_type: 'zone', network_uuid: net[network], cn_uuid: node.uuid, primary: i === 0 });
        const r = await http(node.agent!.api, 'POST', '/attach', { mac: nic.mac, netns: `/run/netns/${ns}`, ifname: `eth${i}` });
        assert.equal(r.status, 200, JSON.stringify(r.body));
        if (i === 0) first = { ip: nic.ip, mac: nic.mac };
        inst[`${name}.${network}`] = { name, uuid, ns, ip: nic.ip, mac: nic.mac };
      }
      inst[name] = { name, uuid, ns, ...first };
      const server = lab.spawnIn(ns, [process.execPath, '-e', tcpServersProgram(PORTS, '::')]);
      const out = new ProcessOutput(server);
      await out.until(() => out.lines.includes('ready'), 10_000, `servers in ${name}`);
    };
    await place('x1', OWNER_A, ['a6'], nodes[0]!);
    await place('x2', OWNER_A, ['a6'], nodes[1]!);
    await place('y', OWNER_A, ['b6'], nodes[1]!);
    await place('ynear', OWNER_A, ['b6'], nodes[0]!);
    await place('z', OWNER_A, ['c6'], nodes[1]!);
    await place('p4', OWNER_A, ['a4'], nodes[1]!);
    await place('dual', OWNER_A, ['a4', 'a6'], nodes[0]!);
    await place('other', OWNER_B, ['o6'], nodes[1]!);
    await place('nonat', OWNER_A, ['n6'], nodes[1]!);
    const whoami = lab.spawnIn(internetNs, [process.execPath, '-e', WHOAMI6]);
    const out = new ProcessOutput(whoami);
    await out.until(() => out.lines.includes('listening'), 10_000, 'whoami in the internet namespace');
  });

  after(() => dc.stop());

  it('instances on one IPv6 network reach each other across nodes (ping -6 and TCP)', async () => {
    assert.match(inst.x1!.ip, /^fd00:61::/);
    await expectReach(inst.x1!, [to('x2'), to('x2', PORTS[1])], ['x2:7101 open', 'x2:7102 open'], 'x1 reaches x2');
    assert.deepEqual(await reach(inst.x2!, [to('x1')]), ['x1:7101 open']);
    assert.ok(await ping6(inst.x1!, inst.x2!.ip), 'ping -6 x1 -> x2');
    // The instance's address was configured without duplicate address detection.
    const addr = await lab.exec(inst.x1!.ns, 'ip', '-6', 'addr', 'show', 'dev', 'eth0');
    assert.match(addr, new RegExp(`inet6 ${inst.x1!.ip}/64 scope global nodad \n`));
  });

  it('an instance pings its IPv6 gateway, answered on its own node', async () => {
    await eventually(() => ping6(inst.x1!, 'fd00:61::1'), 15_000, 'x1 pings its gateway');
    assert.ok(await ping6(inst.x2!, 'fd00:61::1'), 'x2 pings its gateway');
  });

  it('a dual-stack instance reaches IPv4 and IPv6 peers', async () => {
    await expectReach(inst.dual!, [to('p4'), to('x2')], ['p4:7101 open', 'x2:7101 open'], 'dual reaches both families');
    assert.deepEqual(await reach(inst.x2!, [to('dual.a6')]), ['dual.a6:7101 open']);
  });

  it('without a router, another IPv6 network of the owner gets nothing', async () => {
    assert.deepEqual(await reach(inst.x1!, [to('y'), to('ynear'), to('z')]), ['y:7101 blocked', 'ynear:7101 blocked', 'z:7101 blocked']);
  });

  it('a router connects two IPv6 networks across nodes and on one node; the unconnected one stays apart', async () => {
    routerSix = (await api('POST', `/fabrics/${OWNER_A}/routers`, { name: 'six', networks: [net.a6, net.b6] })).uuid;
    await expectReach(inst.x1!, [to('y'), to('ynear')], ['y:7101 open', 'ynear:7101 open'], 'x1 reaches y through the router');
    await expectReach(inst.y!, [to('x1'), to('x2', PORTS[1])], ['x1:7101 open', 'x2:7102 open'], 'y reaches x1 and x2 back');
    assert.ok(await ping6(inst.x1!, inst.y!.ip), 'ping -6 across the router');
    assert.deepEqual(await reach(inst.x1!, [to('z')]), ['z:7101 blocked']);
    assert.deepEqual(await reach(inst.z!, [to('x1'), to('y')]), ['x1:7101 blocked', 'y:7101 blocked']);
  });

  it("another owner's network with the same IPv6 subnet gets nothing", async () => {
    assert.match(inst.other!.ip, /^fd00:61::/);
    // Owner A's addresses, asked from owner B's network with the same subnet: another vnet.
    assert.deepEqual(await reach(inst.other!, [to('x2'), to('y'), to('x1')]), ['x2:7101 blocked', 'y:7101 blocked', 'x1:7101 blocked']);
    assert.ok(!(await ping6(inst.other!, inst.x2!.ip)), 'no ping into owner A');
    assert.deepEqual(await reach(inst.x1!, [to('other')]), ['other:7101 blocked']);
  });

  it('egress: an IPv6 network with internet_nat leaves SNAT\'ed to the node\'s external IPv6 address (NAT66); one without gets nothing', async () => {
    const ask = (from: Instance) => lab.exec(from.ns, process.execPath, '-e', ASK, INTERNET6, String(WHOAMI_PORT)).then((o) => o.trim());
    let seen = '';
    await eventually(async () => (seen = await ask(inst.x2!)) === external6(1), 15_000, 'x2 reaches the internet host').catch((err: Error) => {
      throw new Error(`${err.message}: saw ${seen}`);
    });
    assert.equal(await ask(inst.x1!), external6(0), 'the host sees node 1 for x1');
    assert.equal(await ask(inst.nonat!), 'timeout', 'internet_nat: false');
    // Its first contact with the gateway (neighbour discovery both ways): a safety net, not a timing.
    await eventually(() => ping6(inst.nonat!, 'fd00:64::1'), 10_000, 'the network without NAT still has its gateway');
  });

  it('a firewall rule with an IPv6 subnet applies', async () => {
    await api('PUT', `/fw/instances/${inst.x2!.uuid}`, { owner_uuid: OWNER_A, tags: { role: 'db6' }, firewall_enabled: true });
    await api('POST', '/rules', { rule: 'FROM subnet fd00:62::/64 TO tag role = db6 ALLOW tcp PORT 7101', owner_uuid: OWNER_A, enabled: true });
    await expectReach(inst.y!, [to('x2'), to('x2', PORTS[1])], ['x2:7101 open', 'x2:7102 blocked'], 'the IPv6 subnet rule on x2');
    // Not in the rule's subnet: blocked on both ports; neighbour discovery still works (x1 reaches nothing, but not for lack of ND).
    await expectReach(inst.x1!, [to('x2'), to('x2', PORTS[1])], ['x2:7101 blocked', 'x2:7102 blocked'], 'x1 is outside the rule');
    await api('POST', '/rules', { rule: 'FROM subnet fd00:61::/64 TO tag role = db6 ALLOW tcp PORT 7102', owner_uuid: OWNER_A, enabled: true });
    await expectReach(inst.x1!, [to('x2'), to('x2', PORTS[1])], ['x2:7101 blocked', 'x2:7102 open'], 'x1 allowed to 7102');
    // By one IPv6 address, and by tag (the instance's IPv6 NIC address is in the rule's set).
    await api('POST', '/rules', { rule: `FROM ip ${inst.x1!.ip} TO tag role = db6 ALLOW tcp PORT 7101`, owner_uuid: OWNER_A, enabled: true });
    await expectReach(inst.x1!, [to('x2'), to('x2', PORTS[1])], ['x2:7101 open', 'x2:7102 open'], 'x1 allowed by its address');
    await api('PUT', `/fw/instances/${inst.dual!.uuid}`, { owner_uuid: OWNER_A, tags: { role: 'web6' }, firewall_enabled: false });
    // dual's IPv6 NIC is in fd00:61::/64 (7102 allowed), 7101 is not yet.
    assert.deepEqual(await reach(inst.dual!, [to('x2')]), ['x2:7101 blocked']);
    await api('POST', '/rules', { rule: 'FROM tag role = web6 TO tag role = db6 ALLOW tcp PORT 7101', owner_uuid: OWNER_A, enabled: true });
    await expectReach(inst.dual!, [to('x2'), to('x2', PORTS[1])], ['x2:7101 open', 'x2:7102 open'], 'the dual-stack instance allowed by tag');
  });

  it('a smaller MTU behind the router: ICMPv6 "packet too big" from the gateway, TCP completes (PMTU)', async () => {
    await http(dc.ctl!.restUrl, 'POST', `/fabrics/${OWNER_A}/vlans`, { vlan_id: 35 });
    const small = await api('POST', `/fabrics/${OWNER_A}/vlans/35/networks`, {
      name: 'd6', subnet: 'fd00:65::/64', provision_start_ip: 'fd00:65::10', provision_end_ip: 'fd00:65::ff', gateway: 'fd00:65::1',
    });
    await api('PUT', `/fabrics/${OWNER_A}/vlans/35/networks/${small.uuid}`, { mtu: 1300 });
    const uuid = randomUUID();
    const nic = await api('POST', '/nics', { owner_uuid: OWNER_A, belongs_to_uuid: uuid, belongs_to_type: 'zone', network_uuid: small.uuid, cn_uuid: nodes[1]!.uuid });
    assert.equal(nic.mtu, 1300);
    const ns = await lab.addNetns('d6');
    const r = await http(nodes[1]!.agent!.api, 'POST', '/attach', { mac: nic.mac, netns: `/run/netns/${ns}`, ifname: 'eth0' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    inst.d6 = { name: 'd6', uuid, ns, ip: nic.ip, mac: nic.mac };
    const server = lab.spawnIn(ns, [process.execPath, '-e', tcpServersProgram(PORTS, '::')]);
    const out = new ProcessOutput(server);
    await out.until(() => out.lines.includes('ready'), 10_000, 'servers in d6');
    await api('PUT', `/fabrics/${OWNER_A}/routers/${routerSix}`, { networks: [net.a6, net.b6, small.uuid] });
    await expectReach(inst.x1!, [to('d6')], ['d6:7101 open'], 'x1 reaches d6 through the router');
    // x1's link MTU is 1450: 1400 bytes of ICMPv6 payload (1448 on the wire) fit x1's link but not d6's network.
    const big = await lab.exec(inst.x1!.ns, 'sh', '-c', `ping -6 -c 1 -W 2 -M do -s 1400 ${inst.d6.ip} 2>&1; true`);
    assert.match(big, /[Pp]acket too big: mtu=1300|message too long, mtu[:=] ?1300/, big);
    assert.ok(await ping6(inst.x1!, inst.d6.ip), 'an ordinary ping passes');
    await startTcpSink(lab, ns, 'd6', 7103, '::');
    const [sent] = await sendTcp(lab, inst.x1!.ns, [inst.d6.ip], 1400 * 200, 7103);
    assert.equal(sent!.reply, `d6 ${1400 * 200}`, JSON.stringify(sent));
  });

  it("publishes an IPv6 NIC's port on the node's external IPv6 address (DNAT), subject to its firewall; an unpublished one is not", async () => {
    const probe = async (targets: Array<[string, number]>) =>
      (JSON.parse(await lab.exec(internetNs, process.execPath, '-e', PROBE, JSON.stringify(targets))) as string[]).map((r) => (r === 'open' ? 'open' : 'blocked'));
    const [e0, e1] = [external6(0), external6(1)];
    assert.deepEqual(await probe([[e0, 8086]]), ['blocked'], 'nothing published yet');
    const put = await http(nodes[0]!.agent!.api, 'PUT', `/published-ports/${inst.x1!.mac}`, { ports: [{ protocol: 'tcp', port: PORTS[0], host_port: 8086 }] });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    // x1 (no firewall) answers on node 1's external IPv6 address; not its unpublished port, not node 1's IPv4 address, not node 2.
    let got: string[] = [];
    await eventually(async () => (got = await probe([[e0, 8086], [e0, PORTS[1]!], [internet4(nodes[0]!), 8086], [e1, 8086]]))[0] === 'open', 10_000, 'the published port').catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(got)}`);
    });
    assert.deepEqual(got, ['open', 'blocked', 'blocked', 'blocked']);
    // fw explain follows the node's IPv6 address and port to x1.
    const explain = (to: string, port: number) => http(dc.ctl!.restUrl, 'GET', `/fw/explain?from=${encodeURIComponent(INTERNET6)}&to=${encodeURIComponent(to)}&proto=tcp&port=${port}`);
    await eventually(async () => (await explain(e0, 8086)).status === 200, 10_000, 'the controller knows the published IPv6 port');
    const why = (await explain(e0, 8086)).body;
    assert.deepEqual([why.to, why.ingress.ip, why.ingress.port, why.ingress.via], [inst.x1!.uuid, inst.x1!.ip, PORTS[0], 'published'], JSON.stringify(why));
    // x2 has a firewall (role db6): the internet host is in none of its rules until one allows it, on 7101 only.
    const put2 = await http(nodes[1]!.agent!.api, 'PUT', `/published-ports/${inst.x2!.mac}`, {
      ports: [{ protocol: 'tcp', port: PORTS[0], host_port: 8086 }, { protocol: 'tcp', port: PORTS[1], host_port: 8087 }],
    });
    assert.equal(put2.status, 200, JSON.stringify(put2.body));
    assert.deepEqual(await probe([[e1, 8086], [e1, 8087]]), ['blocked', 'blocked'], "x2's firewall");
    assert.equal((await explain(e1, 8086)).body.inbound?.action, 'block', JSON.stringify((await explain(e1, 8086)).body));
    await api('POST', '/rules', { rule: 'FROM subnet fd99:1::/64 TO tag role = db6 ALLOW tcp PORT 7101', owner_uuid: OWNER_A, enabled: true });
    await eventually(async () => (got = await probe([[e1, 8086], [e1, 8087]]))[0] === 'open', 20_000, 'the rule lets the internet host in').catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(got)}`);
    });
    assert.deepEqual(got, ['open', 'blocked']);
    // fw explain agrees: the client's IPv6 address is what x2's rules see.
    const verdicts = [(await explain(e1, 8086)).body, (await explain(e1, 8087)).body].map((b) => `${b.ingress?.port} ${b.inbound?.action}`);
    assert.deepEqual(verdicts, [`${PORTS[0]} allow`, `${PORTS[1]} block`]);
    // Withdrawn: gone.
    assert.equal((await http(nodes[1]!.agent!.api, 'PUT', `/published-ports/${inst.x2!.mac}`, { ports: [] })).status, 200);
    assert.deepEqual(await probe([[e1, 8086]]), ['blocked'], 'withdrawn');
  });

  it('hairpin (IPv6): instances on the node reach its published ports from NAT networks, seen as its external address by the target\'s firewall; nothing else of it', async () => {
    const e1 = external6(1);
    const own = lab.spawnIn(nodes[1]!.ns, [process.execPath, '-e', tcpServersProgram([8097], '::')]);
    const ownOut = new ProcessOutput(own);
    await ownOut.until(() => ownOut.lines.includes('ready'), 10_000, 'a service of node 2');
    // x2's firewall (see above): 7101 from fd99:1::/64 (the external side), 7102 from its own network fd00:61::/64 only.
    const put = await http(nodes[1]!.agent!.api, 'PUT', `/published-ports/${inst.x2!.mac}`, {
      ports: [{ protocol: 'tcp', port: PORTS[0], host_port: 8086 }, { protocol: 'tcp', port: PORTS[1], host_port: 8087 }],
    });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const ext = (port: number): [string, string, number] => ['ext', e1, port];
    try {
      // Owner B's network (another vnet) has x2's subnet, which x2 lets in on 7102: refused all the same,
      // x2's firewall sees the node's external address.
      await expectReach(inst.other!, [ext(8086), ext(8087)], ['ext:8086 open', 'ext:8087 blocked'], 'hairpin from another owner');
      // Another network of x2's owner (the same vnet), and x2 itself: the userspace backend only. The kernel
      // backend's br_netfilter bridges a DNAT'ed frame whose route leads back into the bridge it came from,
      // and the bridge keeps it on the client's VLAN and off the port it came in on.
      if (backend === 'userspace') {
        await expectReach(inst.y!, [ext(8086), ext(8087)], ['ext:8086 open', 'ext:8087 blocked'], 'hairpin from another network of the owner');
        await expectReach(inst.x2!, [ext(8086), ext(8087)], ['ext:8086 open', 'ext:8087 blocked'], 'hairpin to itself');
      }
      assert.deepEqual(await reach(inst.y!, [ext(8097)]), ['ext:8097 blocked'], 'the node\'s own service');
      assert.deepEqual(await reach(inst.nonat!, [ext(8086)]), ['ext:8086 blocked'], 'a network without internet_nat does not hairpin');
      const outside = JSON.parse(await lab.exec(internetNs, process.execPath, '-e', PROBE, JSON.stringify([[e1, 8097]]))) as string[];
      assert.deepEqual(outside, ['open'], 'the service is there');
    } finally {
      await http(nodes[1]!.agent!.api, 'PUT', `/published-ports/${inst.x2!.mac}`, { ports: [] });
      own.kill();
    }
  });

  it('after an agent restart: same network, gateway, router and NAT66 as before, the agent\'s edge errors none', async () => {
    const n = nodes[0]!;
    const stopped = n.agent!;
    await dc.stopAgent(n);
    assert.doesNotMatch(stopped.out.stderr, /distributed gateway|edge:|announcing/, 'the edge applied (and IPv6 addresses were announced) without errors before the restart');
    await dc.startAgent(n);
    await expectReach(inst.x1!, [to('x2', PORTS[1]), to('y'), to('z')], ['x2:7102 open', 'y:7101 open', 'z:7101 blocked'], 'x1 after the restart');
    assert.ok(await ping6(inst.x1!, 'fd00:61::1'), 'the gateway after the restart');
    const ask = await lab.exec(inst.x1!.ns, process.execPath, '-e', ASK, INTERNET6, String(WHOAMI_PORT));
    assert.equal(ask.trim(), external6(0), 'NAT66 after the restart');
    const published = JSON.parse(await lab.exec(internetNs, process.execPath, '-e', PROBE, JSON.stringify([[external6(0), 8086]]))) as string[];
    assert.deepEqual(published, ['open'], 'the published IPv6 port, from the state directory');
    assert.doesNotMatch(n.agent!.out.stderr, /distributed gateway|edge:/, 'the restarted agent applied its edge without errors');
  });
});
