/**
 * Distributed mode under the data plane (issue 7): a controller replica killed while the
 * agents resolve through it. A three-member etcd cluster on loopback (data in /dev/shm),
 * two `rhumb controller --store etcd` replicas in the root namespace, each bound to its
 * own address on one veth into the underlay bridge namespace, and three compute nodes
 * (the layout of overlay-kernel.test.ts, kernel backend) whose agents know both replicas'
 * SVP endpoints and use replica B's REST API. Instances of one owner's fabric network
 * talk across nodes; then replica A is SIGKILLed and:
 *  - a TCP transfer across the overlay that was running keeps flowing to the end;
 *  - a new destination (a NIC created through B after the kill) is resolved and reached;
 *  - a NIC moved through B is reached again from every peer, its shootdown served by B;
 *  - the agents' SVP lookups are answered by B (B's counters rise), with no lookup error.
 *
 * Needs root, the etcd binary (Debian etcd-server), a built dist/ and the native addon.
 */
import assert from 'node:assert/strict';
import { randomInt, randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type DatacenterNode,
  type RunningAgent,
  type TcpSendResult,
  attachNic,
  buildUnderlay,
  controllerListenArgs,
  eventually,
  ping as pingFrom,
  registerUnderlayNetwork,
  restClient,
  sendTcp,
  sleep,
  startAgent as startAgentIn,
  startTcpSink,
  sumMetric,
  svpEndpoint,
} from '../helpers/datacenter.js';
import { EtcdCluster, etcdControllerArgs, etcdSkipReason } from '../helpers/etcd-cluster.js';
import { NetnsLab, netnsSkipReason } from '../helpers/netns.js';
import { type RunningController, http, makeTempDir, startControllerProcess } from '../helpers/processes.js';

const skip = netnsSkipReason() || etcdSkipReason || false;
const OWNER = 'aaaaaaaa-0000-4000-8000-0000000000fa';
const FABRIC_VLAN = 9;
const TCP_PORT = 7777;
const TRANSFER_BYTES = 4 * 1024 * 1024;

interface Node extends DatacenterNode {
  agent?: RunningAgent;
}

interface Instance {
  name: string;
  ns: string;
  node: Node;
  mac: string;
  ip: string;
}

describe('overlay with two controller replicas on etcd: one killed under the agents', { skip, timeout: 120_000 }, () => {
  const lab = new NetnsLab('ovo');
  const block = randomInt(1, 250);
  /** This run's /24 of the underlay; replicas A and B at .253 and .254. */
  const underlay24 = `198.19.${block}`;
  let cluster: EtcdCluster | undefined;
  let a: RunningController | undefined;
  let b: RunningController | undefined;
  let stateRoot = '';
  let networkUuid = '';
  let vnet = 0;
  const nodes: Node[] = [];
  const instances: Instance[] = [];

  /** REST through replica B (the agents' --controller, and the survivor). */
  const apiB = restClient(() => b!.restUrl);

  async function controllerMetric(ctl: RunningController, name: string, labels: Record<string, string> = {}): Promise<number> {
    const r = await http(ctl.restUrl, 'GET', '/metrics');
    assert.equal(r.status, 200);
    return sumMetric(String(r.body), name, labels);
  }

  /** VL2 + VL3 lookups a replica has answered. */
  async function lookupsServed(ctl: RunningController): Promise<number> {
    return (await controllerMetric(ctl, 'rhumb_svp_requests_total', { op: 'vl3' })) + (await controllerMetric(ctl, 'rhumb_svp_requests_total', { op: 'vl2' }));
  }

  async function agentMetric(name: string, labels: Record<string, string>, on: Node[] = nodes): Promise<number> {
    let sum = 0;
    for (const n of on) sum += sumMetric(String((await http(n.agent!.api, 'GET', '/metrics')).body), name, labels);
    return sum;
  }

  async function startAgent(n: Node, svp: string): Promise<void> {
    n.agent = await startAgentIn(lab, n, {
      controller: b!.restUrl,
      svp,
      stateDir: join(stateRoot, n.name),
      // Every remote destination is resolved over SVP on the data plane's miss.
      extraArgs: ['--backend', 'kernel', '--no-prefetch', '--no-firewall'],
    });
  }

  /** A NIC placed on node through replica B, plumbed into a new namespace, with a TCP sink. */
  async function addInstance(name: string, node: Node): Promise<Instance> {
    const nic = await apiB('POST', '/nics', { owner_uuid: OWNER, belongs_to_uuid: randomUUID(), belongs_to_type: 'zone', network_uuid: networkUuid, cn_uuid: node.uuid });
    const ns = await lab.addNetns(name);
    const attached = await attachNic(node.agent!, nic.mac, ns);
    assert.equal(attached.vnet, vnet);
    await startTcpSink(lab, ns, name, TCP_PORT);
    const inst = { name, ns, node, mac: nic.mac, ip: nic.ip };
    instances.push(inst);
    return inst;
  }

  const ping = (from: Instance, ip: string, count = 1, waitS = 3) => pingFrom(lab, from.ns, ip, count, waitS);

  async function send(from: Instance, to: Instance, bytes: number, paceMs = 0): Promise<TcpSendResult> {
    const [result] = await sendTcp(lab, from.ns, [to.ip], bytes, TCP_PORT, paceMs);
    return result!;
  }

  before(async () => {
    stateRoot = await makeTempDir('ovo-state');
    cluster = await EtcdCluster.start({ members: 3 });

    // Underlay: a bridge namespace; both replicas' addresses on one veth from the root namespace.
    const underlay = await buildUnderlay(lab, { subnet24: underlay24, nodeCount: 3, rootHosts: [253, 254] });
    nodes.push(...underlay.nodes);

    // One at a time: the first replica creates the initial data, the second finds it.
    const prefix = `ovo-${lab.prefix}/`;
    for (const [host, set] of [
      [`${underlay24}.253`, (c: RunningController) => (a = c)],
      [`${underlay24}.254`, (c: RunningController) => (b = c)],
    ] as const) {
      const ctl = await startControllerProcess({ args: etcdControllerArgs(cluster, prefix, controllerListenArgs(host)), timeoutMs: 30_000 });
      set(ctl);
      svpEndpoint(ctl, 'replica');
    }
    const svpA = svpEndpoint(a!, 'replica');
    const svpB = svpEndpoint(b!, 'replica');

    await registerUnderlayNetwork(apiB, underlay24);
    await Promise.all(nodes.map((n) => startAgent(n, `${svpA},${svpB}`)));

    const vlan = await apiB('POST', `/fabrics/${OWNER}/vlans`, { vlan_id: FABRIC_VLAN, name: 'prod' });
    vnet = vlan.vnet_id;
    const net = await apiB('POST', `/fabrics/${OWNER}/vlans/${FABRIC_VLAN}/networks`, {
      name: 'prod',
      subnet: '10.79.0.0/24',
      provision_start_ip: '10.79.0.10',
      provision_end_ip: '10.79.0.200',
      gateway: '10.79.0.1',
    });
    networkUuid = net.uuid;
    for (const [k, node] of nodes.entries()) await addInstance(`i${k + 1}`, node);
  });

  after(async () => {
    // Each step on its own: a failure in one still lets the others clean up.
    await lab.cleanup().catch((err: Error) => console.error(`lab cleanup: ${err.message}`));
    await Promise.allSettled([a?.stop(), b?.stop()]);
    await cluster?.stop().catch((err: Error) => console.error(`etcd cleanup: ${err.message}`));
    if (stateRoot) await rm(stateRoot, { recursive: true, force: true });
  });

  it('across nodes, instances exchange ping and TCP; replica A answers some of the agents\' lookups', async () => {
    // Every agent is connected to both replicas before anything is resolved.
    for (const ctl of [a!, b!]) {
      await eventually(async () => (await controllerMetric(ctl, 'rhumb_svp_connections')) >= nodes.length, 10_000, 'every agent connected to both replicas');
    }
    const checks: Array<Promise<void>> = [];
    for (const from of instances) {
      for (const to of instances) {
        if (from === to) continue;
        checks.push(
          (async () => {
            assert.ok(await ping(from, to.ip, 1, 4), `${from.name} -> ${to.name} ping`);
            const r = await send(from, to, 128 * 1024);
            assert.equal(r.reply, `${to.name} ${128 * 1024}`, `${from.name} -> ${to.name} TCP: ${JSON.stringify(r)}`);
          })(),
        );
      }
    }
    await Promise.all(checks);
    // Addresses nobody has: each a miss resolved (NOTFOUND) over SVP. An agent's queries
    // alternate between its two connections, so a burst of them reaches A for sure.
    const unused = ['10.79.0.201', '10.79.0.202', '10.79.0.203', '10.79.0.204'];
    const unreachable = await Promise.all(instances.flatMap((i) => unused.map((ip) => ping(i, ip, 1, 1))));
    assert.deepEqual(unreachable.filter(Boolean), [], 'no unused address answers');
    assert.ok((await agentMetric('rhumb_agent_lookups_total', { kind: 'vl3', result: 'notfound', source: 'lookup' })) >= nodes.length);
    assert.ok((await lookupsServed(a!)) > 0, 'replica A answered lookups before the kill');
  });

  it('replica A SIGKILLed: a running transfer keeps flowing, a new destination and a moved NIC resolve through B', async (t) => {
    const [i1, i2, i3] = instances as [Instance, Instance, Instance];
    const errorsBefore = await agentMetric('rhumb_agent_lookups_total', { result: 'error' });
    // A transfer across the overlay, paced so that it spans the kill and what follows.
    const transfer = send(i1, i2, TRANSFER_BYTES, 6000);
    await sleep(1000);
    const servedByA = await lookupsServed(a!);
    await a!.kill('SIGKILL');
    assert.notEqual(a!.proc.signalCode, null, 'replica A is dead');
    const servedByB = await lookupsServed(b!);
    t.diagnostic(`lookups answered before the kill: A ${servedByA}, B ${servedByB}`);
    const logServedByB = await controllerMetric(b!, 'rhumb_svp_log_events_served_total');

    // A destination no agent has seen: created and attached through B, resolved by B.
    const fresh = await addInstance('i4', nodes[1]!);
    for (const from of [i1, i3]) {
      await eventually(() => ping(from, fresh.ip, 1, 1), 10_000, `${from.name} reaches the new ${fresh.name}`);
      const r = await send(from, fresh, 64 * 1024);
      assert.equal(r.reply, `${fresh.name} ${64 * 1024}`, `${from.name} -> ${fresh.name} TCP: ${JSON.stringify(r)}`);
    }
    assert.ok((await lookupsServed(b!)) > servedByB, 'the agents\' lookups went to replica B');

    const done = await transfer;
    assert.equal(done.reply, `${i2.name} ${TRANSFER_BYTES}`, `the transfer through the kill: ${JSON.stringify(done)}`);

    // i3 moves from node 3 to node 1 through B; its peers had it cached at node 3.
    const moving = i3;
    const from = moving.node;
    const to = nodes[0]!;
    // Nodes that keep instances other than the moving one, apart from its new node (node 3
    // loses its only NIC and with it the vnet).
    const peerNodes = nodes.filter((n) => n !== to && instances.some((i) => i !== moving && i.node === n));
    const shootdownsBefore = await agentMetric('rhumb_agent_shootdowns_applied_total', {}, peerNodes);
    await apiB('PUT', `/nics/${moving.mac}`, { cn_uuid: to.uuid });
    assert.equal((await http(from.agent!.api, 'POST', '/detach', { mac: moving.mac })).status, 200);
    const r = await http(to.agent!.api, 'POST', '/attach', { mac: moving.mac, netns: `/run/netns/${moving.ns}` });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    moving.node = to;
    for (const peer of instances.filter((i) => i !== moving)) {
      await eventually(() => ping(peer, moving.ip, 1, 1), 10_000, `${peer.name} reaches ${moving.name} on ${to.name}`);
      const t = await send(peer, moving, 64 * 1024);
      assert.equal(t.reply, `${moving.name} ${64 * 1024}`, `${peer.name} -> ${moving.name} TCP: ${JSON.stringify(t)}`);
    }
    for (const n of peerNodes) {
      const e = await http(n.agent!.api, 'GET', `/vnets/${vnet}/entries`);
      assert.equal(e.status, 200);
      const fdb = (e.body.fdb as Array<{ mac: string; underlay: string }>).filter((f) => f.mac === moving.mac);
      assert.deepEqual(fdb, [{ mac: moving.mac, underlay: to.ip }], `${n.name} sends ${moving.name} to ${to.name}`);
    }
    assert.ok((await agentMetric('rhumb_agent_shootdowns_applied_total', {}, peerNodes)) > shootdownsBefore, 'the peers applied the move\'s shootdowns');
    assert.ok((await controllerMetric(b!, 'rhumb_svp_log_events_served_total')) > logServedByB, 'replica B served the shootdowns');
    assert.equal(await agentMetric('rhumb_agent_lookups_total', { result: 'error' }), errorsBefore, 'no lookup failed through the kill');
    for (const n of nodes) assert.equal(n.agent!.proc.exitCode, null, `agent on ${n.name} still running`);
  });
});
