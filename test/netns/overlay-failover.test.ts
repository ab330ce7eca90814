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
import type { ChildProcess } from 'node:child_process';
import { randomInt, randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EtcdCluster, etcdControllerArgs, etcdSkipReason, RHUMB_ETCD_SETTINGS } from '../helpers/etcd-cluster.js';
import { NetnsLab, netnsSkipReason } from '../helpers/netns.js';
import { CLI, type RunningController, http, makeTempDir, startControllerProcess } from '../helpers/processes.js';

const skip = netnsSkipReason() || etcdSkipReason || false;
const OWNER = 'aaaaaaaa-0000-4000-8000-0000000000fa';
const FABRIC_VLAN = 9;
const TCP_PORT = 7777;
const TRANSFER_BYTES = 4 * 1024 * 1024;

/** A child's stdout lines and stderr. */
class Output {
  lines: string[] = [];
  stderr = '';
  constructor(readonly child: ChildProcess) {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
  }
  async until(cond: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`process exited while waiting for ${what}; stderr: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; stderr: ${this.stderr}`);
      await sleep(100);
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls fn until it returns true (a safety net with a deadline, not a timing assertion). */
async function eventually(fn: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(100);
  }
}

// A TCP sink in each instance: counts the bytes of a connection and answers "<name> <bytes>".
const SINK = `
const net = require('node:net');
const [name, port] = process.argv.slice(1);
net.createServer((s) => {
  let n = 0;
  s.on('data', (d) => (n += d.length));
  s.on('end', () => s.end(name + ' ' + n));
  s.on('error', () => {});
}).listen(Number(port), '0.0.0.0', () => console.log('listening'));
`;

// Sends bytes to one host (paced over ms), prints {host, reply} or {host, error} as JSON.
const SEND = `
const net = require('node:net');
const [host, bytes, port, paceMs] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4] || 0)];
const s = net.connect({ host, port, timeout: 20000 });
let reply = '';
s.on('connect', async () => {
  const chunk = Buffer.alloc(16384, 7);
  const steps = Math.ceil(bytes / chunk.length);
  for (let i = 0; i < steps; i++) {
    const part = i === steps - 1 ? chunk.subarray(0, bytes - i * chunk.length) : chunk;
    if (!s.write(part)) await new Promise((r) => s.once('drain', r));
    if (paceMs) await new Promise((r) => setTimeout(r, paceMs / steps));
  }
  s.end();
});
s.on('data', (d) => (reply += d));
s.on('end', () => console.log(JSON.stringify({ host, reply })));
s.on('timeout', () => { s.destroy(); console.log(JSON.stringify({ host, error: 'timeout' })); });
s.on('error', (e) => console.log(JSON.stringify({ host, error: e.code || e.message })));
`;

interface Node {
  name: string;
  ns: string;
  uuid: string;
  ip: string;
  agent?: { proc: ChildProcess; out: Output; api: string };
}

interface Instance {
  name: string;
  ns: string;
  node: Node;
  mac: string;
  ip: string;
}

/** Sum of a metric's samples (in Prometheus text) whose labels include all of `labels`. */
function sumMetric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!(line.startsWith(`${name}{`) || line.startsWith(`${name} `))) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').pop());
  }
  return sum;
}

describe('overlay with two controller replicas on etcd: one killed under the agents', { skip, timeout: 120_000 }, () => {
  const lab = new NetnsLab('ovo');
  const block = randomInt(1, 250);
  const ulAddr = (host: number) => `198.19.${block}.${host}`;
  let cluster: EtcdCluster | undefined;
  let a: RunningController | undefined;
  let b: RunningController | undefined;
  let stateRoot = '';
  let networkUuid = '';
  let vnet = 0;
  const nodes: Node[] = [];
  const instances: Instance[] = [];

  /** REST through replica B (the agents' --controller, and the survivor). */
  const apiB = async (method: string, path: string, body?: unknown) => {
    const r = await http(b!.restUrl, method, path, body);
    assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };

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
    const proc = lab.spawnIn(n.ns, [
      process.execPath,
      CLI,
      'agent',
      '--node',
      n.uuid,
      '--underlay-ip',
      n.ip,
      '--controller',
      b!.restUrl,
      '--svp',
      svp,
      '--backend',
      'kernel',
      '--api',
      `${n.ip}:0`,
      '--state-dir',
      join(stateRoot, n.name),
      // Every remote destination is resolved over SVP on the data plane's miss.
      '--no-prefetch',
      '--no-firewall',
    ]);
    const out = new Output(proc);
    await out.until(() => out.lines.some((l) => /ready/.test(l)), 30_000, `agent on ${n.name}`);
    const apiLine = out.lines.find((l) => /API http/.test(l))!;
    n.agent = { proc, out, api: /API (http:\/\/\S+)/.exec(apiLine)![1]! };
  }

  /** A NIC placed on node through replica B, plumbed into a new namespace, with a TCP sink. */
  async function addInstance(name: string, node: Node): Promise<Instance> {
    const nic = await apiB('POST', '/nics', { owner_uuid: OWNER, belongs_to_uuid: randomUUID(), belongs_to_type: 'zone', network_uuid: networkUuid, cn_uuid: node.uuid });
    const ns = await lab.addNetns(name);
    const r = await http(node.agent!.api, 'POST', '/attach', { mac: nic.mac, netns: `/run/netns/${ns}` });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.vnet, vnet);
    const sink = lab.spawnIn(ns, [process.execPath, '-e', SINK, name, String(TCP_PORT)]);
    const out = new Output(sink);
    await out.until(() => out.lines.includes('listening'), 10_000, `sink in ${name}`);
    const inst = { name, ns, node, mac: nic.mac, ip: nic.ip };
    instances.push(inst);
    return inst;
  }

  async function ping(from: Instance, ip: string, count = 1, waitS = 3): Promise<boolean> {
    try {
      await lab.exec(from.ns, 'ping', '-c', String(count), '-W', String(waitS), '-q', ip);
      return true;
    } catch {
      return false;
    }
  }

  async function send(from: Instance, to: Instance, bytes: number, paceMs = 0): Promise<{ host: string; reply?: string; error?: string }> {
    const out = await lab.exec(from.ns, process.execPath, '-e', SEND, to.ip, String(bytes), String(TCP_PORT), String(paceMs));
    return JSON.parse(out.trim());
  }

  before(async () => {
    stateRoot = await makeTempDir('ovo-state');
    cluster = await EtcdCluster.start({ members: 3, ...RHUMB_ETCD_SETTINGS });

    // Underlay: a bridge namespace; both replicas' addresses on one veth from the root namespace.
    const ul = await lab.addNetns('ul');
    await lab.ip(ul, 'link', 'add', 'name', 'ulbr', 'type', 'bridge');
    await lab.ip(ul, 'link', 'set', 'ulbr', 'up');
    const [rootEnd, ulEnd] = await lab.addVeth({ ns: null, name: lab.name('c') }, { ns: ul, name: 'c-ul' });
    await lab.ip(ul, 'link', 'set', ulEnd, 'master', 'ulbr', 'up');
    await lab.ip(null, 'addr', 'add', `${ulAddr(253)}/24`, 'dev', rootEnd);
    await lab.ip(null, 'addr', 'add', `${ulAddr(254)}/24`, 'dev', rootEnd);
    await lab.ip(null, 'link', 'set', rootEnd, 'up');
    for (let i = 1; i <= 3; i++) {
      const ns = await lab.addNetns(`n${i}`);
      await lab.addVeth({ ns, name: 'ul0' }, { ns: ul, name: `n${i}-ul` });
      await lab.ip(ul, 'link', 'set', `n${i}-ul`, 'master', 'ulbr', 'up');
      await lab.ip(ns, 'addr', 'add', `${ulAddr(i)}/24`, 'dev', 'ul0');
      await lab.ip(ns, 'link', 'set', 'ul0', 'up');
      nodes.push({ name: `n${i}`, ns, uuid: randomUUID(), ip: ulAddr(i) });
    }

    // One at a time: the first replica creates the initial data, the second finds it.
    const prefix = `ovo-${lab.prefix}/`;
    for (const [host, set] of [
      [ulAddr(253), (c: RunningController) => (a = c)],
      [ulAddr(254), (c: RunningController) => (b = c)],
    ] as const) {
      const ctl = await startControllerProcess({ args: etcdControllerArgs(cluster, prefix, ['--listen', `${host}:0`, '--svp-listen', `${host}:0`]), timeoutMs: 30_000 });
      set(ctl);
      assert.ok(ctl.svp, 'replica announced its SVP address');
    }
    const svpA = `${a!.svp!.host}:${a!.svp!.port}`;
    const svpB = `${b!.svp!.host}:${b!.svp!.port}`;

    await apiB('POST', '/networks', {
      name: 'underlay',
      nic_tag: 'sdc_underlay',
      vlan_id: 0,
      subnet: `198.19.${block}.0/24`,
      provision_start_ip: ulAddr(1),
      provision_end_ip: ulAddr(250),
    });
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
