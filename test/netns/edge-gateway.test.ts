/**
 * The distributed gateway and egress NAT (issue #12), on both backends, IPv4: two nodes with
 * an "internet" namespace on their external side (ext0). Every node with an instance on
 * a fabric network answers the network's gateway itself (with the vnet's shared gateway
 * MAC); a network with internet_nat reaches the internet host through SNAT to the node's
 * external address; one without reaches its gateway and nothing beyond; nothing of the
 * node's own services is reachable through the gateway.
 *
 * Needs root, a built dist/ (npm run build) and the native addon.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gatewayMac } from '../../src/edge/plan.js';
import {
  Datacenter,
  type Instance,
  type Node,
  ProcessOutput,
  attachNic,
  buildInternet,
  eventually,
  exited,
  ping,
  svpEndpoint,
  tcpProbeProgram,
  tcpServersProgram,
  ASK_PROGRAM,
  whoamiProgram,
} from '../helpers/datacenter.js';
import { netnsSkipReason } from '../helpers/netns.js';
import { CLI, http } from '../helpers/processes.js';

const skip = netnsSkipReason();
const OWNER = 'aaaaaaaa-0000-4000-8000-0000000000e1';
const WHOAMI_PORT = 8099;

const WHOAMI = whoamiProgram(WHOAMI_PORT, '0.0.0.0');
const ASK = ASK_PROGRAM;

/** In the internet namespace: answers each connection with "address:port" it came from, after a pause (both stay open together). */
const SLOW_WHOAMI = `
require('node:net').createServer((s) => { s.on('error', () => {}); setTimeout(() => s.end(s.remoteAddress + ':' + s.remotePort + '\\n'), 1500); })
  .listen(${WHOAMI_PORT + 1}, '0.0.0.0', () => console.log('listening'));`;

/** From an instance: connects from a fixed local port, prints what came back or the error. */
const ASK_FROM = `
const s = require('node:net').connect({ host: process.argv[1], port: Number(process.argv[2]), localPort: Number(process.argv[3]) });
let d = '';
const t = setTimeout(() => { console.log('timeout'); process.exit(0); }, 6000);
s.on('data', (x) => (d += x));
s.on('end', () => { clearTimeout(t); console.log(d.trim()); });
s.on('error', (e) => { clearTimeout(t); console.log(e.code); });`;

const OTHER_OWNER = 'cccccccc-0000-4000-8000-0000000000e4';

for (const backend of ['kernel', 'userspace'] as const) describe(`distributed gateway and egress NAT (${backend} backend)`, { skip, timeout: 120_000 }, () => {
  let internet: Awaited<ReturnType<typeof buildInternet>>;
  const dc = new Datacenter(backend === 'kernel' ? 'egk' : 'egu', {
    nodes: 2, stateTag: 'edg-state', backend, firewall: false, agentArgs: () => ['--external-iface', 'ext0'],
    // The same block of 198.19 as the underlay's of 198.18.
    beforeAgents: async (d) => {
      internet = await buildInternet(d.lab, d.nodes, d.underlay24.replace(/^198\.18\./, '198.19.'));
    },
  });
  const { lab, api } = dc;
  const nodes: Node[] = [];
  const inst: Record<string, Instance> = {};
  let vnet = 0;

  const ask = async (from: Instance, host: string, port: number) =>
    (await lab.exec(from.ns, process.execPath, '-e', ASK, host, String(port))).trim();

  before(async () => {
    await dc.start();
    nodes.push(...dc.nodes);
    const vlanNat = await api('POST', `/fabrics/${OWNER}/vlans`, { vlan_id: 10, name: 'nat' });
    await api('POST', `/fabrics/${OWNER}/vlans`, { vlan_id: 11, name: 'private' });
    vnet = vlanNat.vnet_id;
    // internet_nat defaults to true for fabric networks.
    const nat = await api('POST', `/fabrics/${OWNER}/vlans/10/networks`, {
      name: 'nat', subnet: '10.91.0.0/24', provision_start_ip: '10.91.0.10', provision_end_ip: '10.91.0.200', gateway: '10.91.0.1',
    });
    assert.equal(nat.internet_nat, true);
    const priv = await api('POST', `/fabrics/${OWNER}/vlans/11/networks`, {
      name: 'private', subnet: '10.91.1.0/24', provision_start_ip: '10.91.1.10', provision_end_ip: '10.91.1.200', gateway: '10.91.1.1', internet_nat: false,
    });
    assert.equal(priv.internet_nat, false);
    const place = async (name: string, node: (typeof nodes)[number], network: string) => {
      inst[name] = await dc.addInstance(name, OWNER, network, node);
    };
    await place('a1', nodes[0]!, nat.uuid);
    await place('a2', nodes[1]!, nat.uuid);
    await place('p1', nodes[0]!, priv.uuid);
    // Another owner with the same subnet: its first instance gets a1's address, on a1's node.
    await api('POST', `/fabrics/${OTHER_OWNER}/vlans`, { vlan_id: 10, name: 'nat' });
    const twin = await api('POST', `/fabrics/${OTHER_OWNER}/vlans/10/networks`, {
      name: 'nat', subnet: '10.91.0.0/24', provision_start_ip: '10.91.0.10', provision_end_ip: '10.91.0.200', gateway: '10.91.0.1',
    });
    inst.c1 = await dc.addInstance('c1', OTHER_OWNER, twin.uuid, nodes[0]!);
    const server = lab.spawnIn(inst.a1!.ns, [process.execPath, '-e', tcpServersProgram([7001, 7002], '0.0.0.0')]);
    const ready = new ProcessOutput(server);
    await ready.until(() => ready.lines.includes('ready'), 10_000, 'servers in a1');
    const slow = lab.spawnIn(internet.ns, [process.execPath, '-e', SLOW_WHOAMI]);
    const slowOut = new ProcessOutput(slow);
    await slowOut.until(() => slowOut.lines.includes('listening'), 10_000, 'slow whoami server');
    const whoami = lab.spawnIn(internet.ns, [process.execPath, '-e', WHOAMI]);
    const out = new ProcessOutput(whoami);
    await out.until(() => out.lines.includes('listening'), 10_000, 'whoami server');
  });

  after(() => dc.stop());

  it('answers the gateway on every node with an instance, with the shared gateway MAC', async () => {
    for (const i of [inst.a1!, inst.a2!]) {
      assert.ok(await ping(lab, i.ns, '10.91.0.1'), `${i.name} pings its gateway`);
      const neigh = await lab.exec(i.ns, 'ip', 'neigh', 'show', '10.91.0.1');
      // The kernel backend's bridge carries every VLAN of the vnet; the fast path has a port per VLAN (10 here).
      const mac = backend === 'kernel' ? gatewayMac(vnet) : gatewayMac(vnet, 10);
      assert.match(neigh, new RegExp(`lladdr ${mac}`), `${i.name}: ${neigh}`);
    }
    assert.ok(await ping(lab, inst.p1!.ns, '10.91.1.1'), 'a network without NAT still has its gateway');
  });

  it('takes a NAT network to the internet from the node\'s external address', async () => {
    for (const i of [inst.a1!, inst.a2!]) {
      assert.ok(await ping(lab, i.ns, internet.host), `${i.name} pings the internet host`);
      // The internet host sees the node's external address, never the overlay address.
      assert.equal(await ask(i, internet.host, WHOAMI_PORT), internet.addressOf(i.node));
    }
  });

  it('keeps two owners\' connections with the same addresses and ports apart (conntrack zones)', async () => {
    assert.equal(inst.c1!.ip, inst.a1!.ip, 'the two instances share an address');
    const ask = (i: Instance) => lab.exec(i.ns, process.execPath, '-e', ASK_FROM, internet.host, String(WHOAMI_PORT + 1), '40123');
    // Both open at once from the same address and port to the same server.
    const [a, c] = (await Promise.all([ask(inst.a1!), ask(inst.c1!)])).map((s) => s.trim());
    const node = internet.addressOf(nodes[0]!);
    assert.match(a!, new RegExp(`^${node.replace(/\./g, '\\.')}:\\d+$`), `a1 got ${a}`);
    assert.match(c!, new RegExp(`^${node.replace(/\./g, '\\.')}:\\d+$`), `c1 got ${c}`);
    assert.notEqual(a, c, 'two connections, two source ports after SNAT');
  });

  it('lets nothing out of a network with internet_nat false', async () => {
    assert.equal(await ping(lab, inst.p1!.ns, internet.host, 1, 2), false);
    assert.equal(await ask(inst.p1!, internet.host, WHOAMI_PORT), 'timeout');
  });

  it('keeps the node\'s own services out of reach through the gateway', async () => {
    const agentPort = Number(new URL(nodes[0]!.agent!.api).port);
    // The agent API listens on the node's underlay address: not through the gateway.
    assert.equal(await ask(inst.a1!, nodes[0]!.ip, agentPort), 'timeout');
    assert.equal(await ping(lab, inst.a1!.ns, internet.addressOf(nodes[0]!), 1, 2), false);
  });

  it('publishes an instance\'s port on the node\'s external address (DNAT), and withdraws it', async () => {
    const a1 = inst.a1!;
    const probe = async (targets: Array<[string, number]>) =>
      JSON.parse(await lab.exec(internet.ns, process.execPath, '-e', tcpProbeProgram(1500), JSON.stringify(targets))) as string[];
    const n1 = internet.addressOf(nodes[0]!);
    const n2 = internet.addressOf(nodes[1]!);
    assert.deepEqual((await probe([[n1, 8080]])).map((r) => r === 'open'), [false], 'nothing published yet');
    const put = await http(nodes[0]!.agent!.api, 'PUT', `/published-ports/${a1.mac}`, { ports: [{ protocol: 'tcp', port: 7001, host_port: 8080 }] });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual((await http(nodes[0]!.agent!.api, 'GET', '/published-ports')).body, { [a1.mac]: [{ protocol: 'tcp', port: 7001, host_port: 8080 }] });
    // The published port answers; a port not published (7002 behind 8081), or another node's address, does not.
    const got = await probe([[n1, 8080], [n1, 8081], [n2, 8080]]);
    assert.deepEqual(got.map((r) => r === 'open'), [true, false, false], JSON.stringify(got));
    // The agent tells the controller: `fw explain` follows the node's address and port to the instance.
    const instance = ((await api('GET', `/nics/${a1.mac}`)) as { belongs_to_uuid: string }).belongs_to_uuid;
    const explain = (port: number) => http(dc.ctl!.restUrl, 'GET', `/fw/explain?from=${internet.host}&to=${n1}&proto=tcp&port=${port}`);
    await eventually(async () => (await explain(8080)).status === 200, 10_000, 'the controller knows the published port');
    const why = (await explain(8080)).body;
    assert.deepEqual([why.to, why.ingress.ip, why.ingress.port, why.ingress.via], [instance, a1.ip, 7001, 'published'], JSON.stringify(why));
    assert.match(why.inbound.reason, /--no-firewall/, 'this node applies no firewall');
    assert.equal((await explain(8081)).status, 404);
    // Bad requests change nothing.
    const other = await http(nodes[0]!.agent!.api, 'PUT', `/published-ports/${inst.a2!.mac}`, { ports: [{ protocol: 'tcp', port: 7001, host_port: 9090 }] });
    assert.equal(other.status, 404, 'a NIC attached elsewhere');
    const taken = await http(nodes[0]!.agent!.api, 'PUT', `/published-ports/${inst.p1!.mac}`, { ports: [{ protocol: 'tcp', port: 22, host_port: 8080 }] });
    assert.equal(taken.status, 409);
    assert.match(taken.body.message, /host port 8080 is published twice/);
    const bad = await http(nodes[0]!.agent!.api, 'PUT', `/published-ports/${a1.mac}`, { ports: [{ protocol: 'sctp', port: 1 }] });
    assert.equal(bad.status, 400);
    // An IPv6 NIC: this node's external interface has no IPv6 address to publish it on.
    await api('POST', `/fabrics/${OWNER}/vlans`, { vlan_id: 12, name: 'six' });
    const six = await api('POST', `/fabrics/${OWNER}/vlans/12/networks`, {
      name: 'six', subnet: 'fd00:91::/64', provision_start_ip: 'fd00:91::10', provision_end_ip: 'fd00:91::ff', gateway: 'fd00:91::1',
    });
    const nic6 = await api('POST', '/nics', { owner_uuid: OWNER, belongs_to_uuid: randomUUID(), belongs_to_type: 'zone', network_uuid: six.uuid, cn_uuid: nodes[0]!.uuid });
    await attachNic(nodes[0]!.agent!, nic6.mac, await lab.addNetns('v6'));
    const v6 = await http(nodes[0]!.agent!.api, 'PUT', `/published-ports/${nic6.mac}`, { ports: [{ protocol: 'tcp', port: 80, host_port: 9091 }] });
    assert.equal(v6.status, 422, JSON.stringify(v6.body));
    assert.match(v6.body.message, /external interface ext0 has no global IPv6 address/);
    assert.deepEqual(Object.keys((await http(nodes[0]!.agent!.api, 'GET', '/published-ports')).body), [a1.mac], 'nothing kept of the refusal');
    assert.deepEqual((await probe([[n1, 8080]])).map((r) => r === 'open'), [true]);
    const off = await http(nodes[0]!.agent!.api, 'PUT', `/published-ports/${a1.mac}`, { ports: [] });
    assert.equal(off.status, 200);
    assert.deepEqual((await probe([[n1, 8080]])).map((r) => r === 'open'), [false], 'withdrawn');
    await eventually(async () => (await explain(8080)).status === 404, 10_000, 'the controller forgets the withdrawn port');
  });

  it('hairpin: instances reach a published port on a node\'s external address (seen as a node\'s address), nothing else of it', async () => {
    const n0 = nodes[0]!;
    const [ext1, ext2] = [internet.addressOf(n0), internet.addressOf(nodes[1]!)];
    // The target answers with the address it sees; a service of the node itself listens on every node address.
    const who = lab.spawnIn(inst.a1!.ns, [process.execPath, '-e', whoamiProgram(WHOAMI_PORT, '0.0.0.0')]);
    const whoOut = new ProcessOutput(who);
    await whoOut.until(() => whoOut.lines.includes('listening'), 10_000, 'whoami in a1');
    const own = lab.spawnIn(n0.ns, [process.execPath, '-e', tcpServersProgram([8097], '0.0.0.0')]);
    const ownOut = new ProcessOutput(own);
    await ownOut.until(() => ownOut.lines.includes('ready'), 10_000, 'a service of node 0');
    // A second instance on a1's network and node.
    const a3 = await dc.addInstance('a3', OWNER, (await api('GET', `/nics/${inst.a1!.mac}`)).network_uuid, n0);
    try {
      const put = await http(n0.agent!.api, 'PUT', `/published-ports/${inst.a1!.mac}`, { ports: [{ protocol: 'tcp', port: WHOAMI_PORT, host_port: 8083 }] });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      // What must get through is asked up to three times: a first SYN may go while a path is still
      // being resolved (a3 was just attached), and one lost SYN costs a second of the 3 s.
      const reaches = async (from: Instance, want: string, what: string) => {
        let got = '';
        for (let i = 0; i < 3 && got !== want; i++) got = await ask(from, ext1, 8083);
        assert.equal(got, want, what);
      };
      await reaches(inst.a2!, ext2, 'from another node: through its egress NAT, seen as that node\'s address');
      await reaches(a3, ext1, 'same network, same node: seen as the node\'s external address');
      // The target itself: on the kernel backend the DNAT'ed frame is bridged (br_netfilter), and a
      // bridge sends nothing back out the port it came in on.
      if (backend === 'userspace') await reaches(inst.a1!, ext1, 'the target itself');
      else assert.equal(await ask(inst.a1!, ext1, 8083), 'timeout', 'the target itself');
      await reaches(inst.c1!, ext1, 'another owner\'s network on the node (the target\'s very address)');
      assert.equal(await ask(inst.p1!, ext1, 8083), 'timeout', 'a network without internet_nat does not reach the external address');
      // The node's own service on the external address: open from outside, not through the gateway.
      const probe = JSON.parse(await lab.exec(internet.ns, process.execPath, '-e', tcpProbeProgram(1500), JSON.stringify([[ext1, 8097]]))) as string[];
      assert.deepEqual(probe, ['open'], 'the service is there');
      assert.equal(await ask(a3, ext1, 8097), 'timeout', 'not the node\'s service');
      assert.equal(await ask(a3, ext1, 8084), 'timeout', 'nor a port not published');
      assert.equal((await http(n0.agent!.api, 'PUT', `/published-ports/${inst.a1!.mac}`, { ports: [] })).status, 200);
      assert.equal(await ask(a3, ext1, 8083), 'timeout', 'withdrawn');
    } finally {
      await http(n0.agent!.api, 'PUT', `/published-ports/${inst.a1!.mac}`, { ports: [] });
      who.kill();
      own.kill();
    }
  });

  it('after an agent restart the gateway, NAT and published ports are back', async () => {
    const n = nodes[0]!;
    const put = await http(n.agent!.api, 'PUT', `/published-ports/${inst.a1!.mac}`, { ports: [{ protocol: 'tcp', port: 7001, host_port: 8088 }] });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    await dc.stopAgent(n);
    await dc.startAgent(n);
    assert.ok(await ping(lab, inst.a1!.ns, '10.91.0.1', 3, 2), 'the gateway');
    assert.equal(await ask(inst.a1!, internet.host, WHOAMI_PORT), internet.addressOf(n), 'NAT');
    const probe = JSON.parse(await lab.exec(internet.ns, process.execPath, '-e', tcpProbeProgram(1500), JSON.stringify([[internet.addressOf(n), 8088]]))) as string[];
    assert.deepEqual(probe, ['open'], 'the published port, from the state directory');
    assert.deepEqual((await http(n.agent!.api, 'GET', '/published-ports')).body, { [inst.a1!.mac]: [{ protocol: 'tcp', port: 7001, host_port: 8088 }] });
  });

  it('refuses to start an agent whose external interface does not exist', async () => {
    const n = nodes[0]!;
    const proc = lab.spawnIn(n.ns, [
      process.execPath, CLI, 'agent', '--node', n.uuid, '--underlay-ip', n.ip, '--controller', dc.ctl!.restUrl,
      '--svp', svpEndpoint(dc.ctl!), '--api', `${n.ip}:0`, '--state-dir', join(dc.stateRoot, 'bad'), '--external-iface', 'nosuch0',
    ]);
    const out = new ProcessOutput(proc);
    const code = await exited(proc);
    await out.until(() => true, 1000, 'output');
    assert.notEqual(code, 0);
    assert.match(out.stderr, /--external-iface nosuch0: no such interface/);
  });
});
