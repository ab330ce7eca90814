/**
 * A simulated datacenter for test/netns, built on a NetnsLab: an underlay bridge
 * namespace, compute nodes as namespaces on veths into it, the controller's addresses on
 * a veth from the root namespace, `rhumb agent` processes in the nodes, and instances as
 * namespaces plumbed through the agents' API. Also the small programs the tests run
 * inside instances (TCP sink / sender / servers / prober) and the waiting helpers.
 *
 *   const dc = `198.18.${randomInt(1, 250)}`;                 // a /24 of the underlay
 *   const { nodes } = await buildUnderlay(lab, { subnet24: dc, nodeCount: 3, rootHosts: [254] });
 *   const ctl = await startControllerProcess({ args: controllerListenArgs(`${dc}.254`) });
 *   const api = restClient(() => ctl.restUrl);
 *   await registerUnderlayNetwork(api, dc);
 *   node.agent = await startAgent(lab, node, { controller: ctl.restUrl, svp: svpEndpoint(ctl), stateDir });
 *
 * Everything created goes through the lab (namespaces, root links, child processes), so
 * `lab.cleanup()` in `after` removes it, also when a test failed half-way.
 *
 * Or all of that in one (Datacenter below):
 *
 *   const dc = new Datacenter('tag', { nodes: 2, backend, stateTag: 'xyz' });
 *   before(() => dc.start());
 *   after(() => dc.stop());
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomInt, randomUUID } from 'node:crypto';
import { access, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { wireguardIfname } from '../../src/agent/wireguard/device.js';
import { NetnsLab } from './netns.js';
import { CLI, type RunningController, http, makeTempDir, startControllerProcess } from './processes.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Collects a child's stdout lines and stderr; waits for conditions on them. */
export class ProcessOutput {
  lines: string[] = [];
  stderr = '';
  /** The process exited and its stdout/stderr are drained. */
  private closed = false;
  private waiters: Array<() => void> = [];

  constructor(readonly child: ChildProcess) {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      this.poke();
    });
    child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
      this.poke();
    });
    child.once('close', () => {
      this.closed = true;
      this.poke();
    });
  }

  private poke(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /**
   * Waits until cond() holds; rejects when the process is gone without it, or after ms
   * (a safety net, not a timing assertion).
   */
  async until(cond: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (this.closed) throw new Error(`process exited while waiting for ${what}; stderr: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; stderr: ${this.stderr}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 200);
      });
    }
  }
}

/** Resolves with the exit code (null when killed by a signal) once the child has exited. */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

/** Polls fn until it returns true (a safety net with a deadline, not a timing assertion). */
export async function eventually(fn: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(100);
  }
}

/** Sum of a metric's samples (in Prometheus text) whose labels include all of `labels`. */
export function sumMetric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!(line.startsWith(`${name}{`) || line.startsWith(`${name} `))) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.split(' ').pop());
  }
  return sum;
}

/** A REST call that must succeed (status < 300); resolves with the body. */
export type RestCall = (method: string, path: string, body?: unknown) => Promise<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * REST calls against the controller at baseUrl() (read at each call: it may be set later),
 * through doFetch() when given (TLS and a token).
 */
export function restClient(baseUrl: () => string, doFetch?: () => typeof fetch): RestCall {
  return async (method, path, body) => {
    const r = await http(baseUrl(), method, path, body, doFetch?.());
    assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };
}

// ---------------------------------------------------------------------------------------
// Underlay, controller, agents

/** A compute node: a namespace with `ul0` on the underlay bridge. */
export interface DatacenterNode {
  name: string;
  ns: string;
  uuid: string;
  ip: string;
}

export interface RunningAgent {
  proc: ChildProcess;
  out: ProcessOutput;
  /** Its REST API, e.g. http://198.18.7.1:41234 */
  api: string;
}

/**
 * The underlay: a bridge namespace ("ul", bridge "ulbr"); the root namespace on a veth
 * into it with the addresses `${subnet24}.${h}` for h in rootHosts (the controllers'); and
 * nodes n1…nN, node i at `${subnet24}.${i}` on its veth "ul0".
 */
export async function buildUnderlay(
  lab: NetnsLab,
  opts: { subnet24: string; nodeCount: number; rootHosts: number[] },
): Promise<{ underlayNs: string; nodes: DatacenterNode[] }> {
  const addr = (host: number) => `${opts.subnet24}.${host}`;
  const ul = await lab.addNetns('ul');
  await lab.ip(ul, 'link', 'add', 'name', 'ulbr', 'type', 'bridge');
  await lab.ip(ul, 'link', 'set', 'ulbr', 'up');
  const [rootEnd, ulEnd] = await lab.addVeth({ ns: null, name: lab.name('c') }, { ns: ul, name: 'c-ul' });
  await lab.ip(ul, 'link', 'set', ulEnd, 'master', 'ulbr', 'up');
  for (const host of opts.rootHosts) await lab.ip(null, 'addr', 'add', `${addr(host)}/24`, 'dev', rootEnd);
  await lab.ip(null, 'link', 'set', rootEnd, 'up');
  const nodes: DatacenterNode[] = [];
  for (let i = 1; i <= opts.nodeCount; i++) {
    const ns = await lab.addNetns(`n${i}`);
    await lab.addVeth({ ns, name: 'ul0' }, { ns: ul, name: `n${i}-ul` });
    await lab.ip(ul, 'link', 'set', `n${i}-ul`, 'master', 'ulbr', 'up');
    await lab.ip(ns, 'addr', 'add', `${addr(i)}/24`, 'dev', 'ul0');
    await lab.ip(ns, 'link', 'set', 'ul0', 'up');
    nodes.push({ name: `n${i}`, ns, uuid: randomUUID(), ip: addr(i) });
  }
  return { underlayNs: ul, nodes };
}

/**
 * "The internet" on the nodes' external side: a namespace ("wan", bridge "wanbr") whose
 * bridge holds `${subnet24}.254` (the internet host); each node gets `ext0` on a veth into
 * it with `${subnet24}.<i>` and its default route via .254. Pass
 * `--external-iface ext0` to the agents.
 */
export async function buildInternet(lab: NetnsLab, nodes: readonly DatacenterNode[], subnet24: string): Promise<{ ns: string; host: string; addressOf: (n: DatacenterNode) => string }> {
  const wan = await lab.addNetns('wan');
  await lab.ip(wan, 'link', 'add', 'name', 'wanbr', 'type', 'bridge');
  await lab.ip(wan, 'addr', 'add', `${subnet24}.254/24`, 'dev', 'wanbr');
  await lab.ip(wan, 'link', 'set', 'wanbr', 'up');
  await lab.ip(wan, 'link', 'set', 'lo', 'up');
  const addressOf = (n: DatacenterNode) => `${subnet24}.${nodes.indexOf(n) + 1}`;
  for (const n of nodes) {
    await lab.addVeth({ ns: n.ns, name: 'ext0' }, { ns: wan, name: `${n.name}-wan` });
    await lab.ip(wan, 'link', 'set', `${n.name}-wan`, 'master', 'wanbr', 'up');
    await lab.ip(n.ns, 'addr', 'add', `${addressOf(n)}/24`, 'dev', 'ext0');
    await lab.ip(n.ns, 'link', 'set', 'ext0', 'up');
    await lab.ip(n.ns, 'route', 'add', 'default', 'via', `${subnet24}.254`);
  }
  return { ns: wan, host: `${subnet24}.254`, addressOf };
}

/** `rhumb controller` flags: REST and SVP on host (ephemeral ports). */
export function controllerListenArgs(host: string): string[] {
  return ['--listen', `${host}:0`, '--svp-listen', `${host}:0`];
}

/** The controller's announced SVP endpoint as "host:port" (asserts it announced one). */
export function svpEndpoint(ctl: RunningController, who = 'controller'): string {
  assert.ok(ctl.svp, `${who} announced its SVP address`);
  return `${ctl.svp.host}:${ctl.svp.port}`;
}

/** The underlay network (nic_tag sdc_underlay) over `${subnet24}.0/24`, hosts .1–.250. */
export async function registerUnderlayNetwork(api: RestCall, subnet24: string): Promise<void> {
  await api('POST', '/networks', {
    name: 'underlay',
    nic_tag: 'sdc_underlay',
    vlan_id: 0,
    subnet: `${subnet24}.0/24`,
    provision_start_ip: `${subnet24}.1`,
    provision_end_ip: `${subnet24}.250`,
  });
}

/**
 * Starts `rhumb agent` in the node's namespace (API on its underlay address) and waits
 * for "ready". extraArgs: e.g. --backend, --no-prefetch, --no-firewall. netOnly: started with
 * `nsenter --net` (see NetnsLab.spawnNetOnly) instead of `ip netns exec`.
 */
export async function startAgent(
  lab: NetnsLab,
  node: DatacenterNode,
  opts: { controller: string; svp: string; stateDir: string; extraArgs?: string[]; netOnly?: boolean },
): Promise<RunningAgent> {
  // netOnly: the host's mount namespace (the Docker plugin must see the daemon's sandbox mounts).
  const spawnIn = opts.netOnly ? lab.spawnNetOnly.bind(lab) : lab.spawnIn.bind(lab);
  const proc = spawnIn(node.ns, [
    process.execPath,
    CLI,
    'agent',
    '--node',
    node.uuid,
    '--underlay-ip',
    node.ip,
    '--controller',
    opts.controller,
    '--svp',
    opts.svp,
    '--api',
    `${node.ip}:0`,
    '--state-dir',
    opts.stateDir,
    ...(opts.extraArgs ?? []),
  ]);
  const out = new ProcessOutput(proc);
  proc.once('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM' && signal !== 'SIGKILL') console.error(`agent on ${node.name} exited (${code ?? signal}): ${out.stderr}`);
  });
  await out.until(() => out.lines.some((l) => /ready/.test(l)), 30_000, `agent on ${node.name}`);
  const apiLine = out.lines.find((l) => /API http/.test(l))!;
  return { proc, out, api: /API (http:\/\/\S+)/.exec(apiLine)![1]! };
}

/** SIGTERM and wait for the exit. */
export async function stopAgent(agent: RunningAgent): Promise<void> {
  agent.proc.kill('SIGTERM');
  await exited(agent.proc);
}

/** POST /attach on an agent: plumbs the NIC into the namespace; asserts 200, returns the body. */
export async function attachNic(agent: RunningAgent, mac: string, ns: string): Promise<{ vnet: number }> {
  const r = await http(agent.api, 'POST', '/attach', { mac, netns: `/run/netns/${ns}` });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

// ---------------------------------------------------------------------------------------
// A whole datacenter: underlay, controller, agents, instances

export type Backend = 'kernel' | 'userspace';

/** A node of a Datacenter: its agent's state directory and, while it runs, the agent. */
export interface Node extends DatacenterNode {
  stateDir: string;
  agent?: RunningAgent;
}

/** An instance: a namespace holding one NIC, plumbed by its node's agent. */
export interface Instance {
  name: string;
  /** The NIC's belongs_to_uuid (the instance the firewall knows). */
  uuid: string;
  ns: string;
  node: Node;
  mac: string;
  ip: string;
}

export interface DatacenterOptions {
  /** How many compute nodes (n1…nN). */
  nodes: number;
  /** The temp directory's tag (holds each node's state directory). */
  stateTag: string;
  /** The /16 the underlay's random /24 comes from (198.18.0.0/15 either way). */
  underlay16?: '198.18' | '198.19';
  /** The agents' --backend (none: the agent's default). */
  backend?: Backend;
  /** false: the agents run with --no-firewall. */
  firewall?: boolean;
  /** 'wireguard': the controller starts with --encryption wireguard. */
  encryption?: 'wireguard';
  /** More controller flags, read after beforeAgents (which may make what they name, e.g. a PKI). */
  controllerArgs?: () => string[];
  /** The fetch of the datacenter's REST calls (TLS and a token), read at each call. */
  restFetch?: () => typeof fetch;
  /** More agent flags, per node. */
  agentArgs?: (n: Node) => string[];
  /** How many nodes (the first ones) get an agent in start(); the others are started by the test. */
  running?: number;
  /** The agents share this mount namespace (see startAgent's netOnly). */
  netOnly?: boolean;
  /** Runs after the underlay is built, before the controller and the agents start (more plumbing on the nodes). */
  beforeAgents?: (dc: Datacenter) => Promise<void>;
}

/**
 * The usual netns datacenter: buildUnderlay, a controller on the root namespace's
 * underlay address, the underlay network registered, agents started in the nodes. Built
 * in start() (from `before`), removed in stop() (from `after`), which also copes with a
 * start() that failed half-way: the lab's namespaces, devices and processes, the
 * controller, the state directories, wireguard-go's sockets.
 */
export class Datacenter {
  readonly lab: NetnsLab;
  readonly underlay24: string;
  readonly api: RestCall;
  ctl: RunningController | undefined;
  /** The controller's SVP endpoint, host:port. */
  svp = '';
  nodes: Node[] = [];
  underlayNs = '';
  stateRoot = '';

  constructor(
    labTag: string,
    readonly opts: DatacenterOptions,
  ) {
    this.lab = new NetnsLab(labTag);
    this.underlay24 = `${opts.underlay16 ?? '198.18'}.${randomInt(1, 250)}`;
    this.api = restClient(() => this.ctl!.restUrl, opts.restFetch);
  }

  /** The controller's address on the underlay (the root namespace's end). */
  get controllerIp(): string {
    return `${this.underlay24}.254`;
  }

  async start(): Promise<void> {
    this.stateRoot = await makeTempDir(this.opts.stateTag);
    const ul = await buildUnderlay(this.lab, { subnet24: this.underlay24, nodeCount: this.opts.nodes, rootHosts: [254] });
    this.underlayNs = ul.underlayNs;
    this.nodes = ul.nodes.map((n) => ({ ...n, stateDir: join(this.stateRoot, n.name) }));
    await this.opts.beforeAgents?.(this);
    const encryption = this.opts.encryption ? ['--encryption', this.opts.encryption] : [];
    this.ctl = await startControllerProcess({ args: [...controllerListenArgs(this.controllerIp), ...encryption, ...(this.opts.controllerArgs?.() ?? [])] });
    this.svp = svpEndpoint(this.ctl);
    await registerUnderlayNetwork(this.api, this.underlay24);
    await Promise.all(this.nodes.slice(0, this.opts.running ?? this.nodes.length).map((n) => this.startAgent(n)));
  }

  /** Starts the node's agent with the datacenter's flags and extraArgs; sets n.agent. */
  async startAgent(n: Node, extraArgs: string[] = []): Promise<RunningAgent> {
    const flags = [
      ...(this.opts.backend ? ['--backend', this.opts.backend] : []),
      ...(this.opts.firewall === false ? ['--no-firewall'] : []),
      ...(this.opts.agentArgs?.(n) ?? []),
      ...extraArgs,
    ];
    n.agent = await startAgent(this.lab, n, { controller: this.ctl!.restUrl, svp: this.svp, stateDir: n.stateDir, extraArgs: flags, netOnly: this.opts.netOnly ?? false });
    return n.agent;
  }

  /** SIGTERM to the node's agent and wait for it; n.agent is unset. */
  async stopAgent(n: Node): Promise<void> {
    await stopAgent(n.agent!);
    n.agent = undefined;
  }

  /** A fabric VLAN of the owner and one network on it; resolves with the network's uuid. */
  async fabricNetwork(owner: string, vlan: { vlan_id: number; name?: string }, network: Record<string, unknown>): Promise<string> {
    await this.api('POST', `/fabrics/${owner}/vlans`, vlan);
    return (await this.api('POST', `/fabrics/${owner}/vlans/${vlan.vlan_id}/networks`, network)).uuid;
  }

  /**
   * A NIC of the owner on the network, placed on the node and attached in a new namespace
   * (the lab's, suffixed nsSuffix: by default the instance's name in lower case).
   */
  async addInstance(name: string, owner: string, network: string, node: Node, nsSuffix = name.toLowerCase()): Promise<Instance> {
    const uuid = randomUUID();
    const nic = await this.api('POST', '/nics', { owner_uuid: owner, belongs_to_uuid: uuid, belongs_to_type: 'zone', network_uuid: network, cn_uuid: node.uuid });
    const ns = await this.lab.addNetns(nsSuffix);
    await attachNic(node.agent!, nic.mac, ns);
    return { name, uuid, ns, node, mac: nic.mac, ip: nic.ip };
  }

  /**
   * Removes everything (in `after`; also after a failed start): the lab, the controller,
   * the state directories and wireguard-go's sockets of the nodes. Resolves with the
   * sockets that were still there (wireguard-go removes its own when it ends cleanly).
   */
  async stop(): Promise<string[]> {
    await this.lab.cleanup();
    await this.ctl?.stop();
    // Also when encryption was turned on later through the API.
    const sockets: string[] = [];
    for (const n of this.nodes) {
      const sock = `/var/run/wireguard/${wireguardIfname(n.uuid)}.sock`;
      if (await access(sock).then(() => true, () => false)) sockets.push(sock);
      await rm(sock, { force: true });
    }
    if (this.stateRoot) await rm(this.stateRoot, { recursive: true, force: true });
    return sockets;
  }
}

// ---------------------------------------------------------------------------------------
// Programs run inside instance namespaces (`node -e`)

// A TCP sink: counts the bytes of a connection and answers "<name> <bytes>".
const SINK = `
const net = require('node:net');
const [name, port, host] = process.argv.slice(1);
net.createServer((s) => {
  let n = 0;
  s.on('data', (d) => (n += d.length));
  s.on('end', () => s.end(name + ' ' + n));
  s.on('error', () => {});
}).listen(Number(port), host || '0.0.0.0', () => console.log('listening'));
`;

// Sends bytes to each target (optionally paced over ms) and prints one JSON line per target.
const SEND = `
const net = require('node:net');
const [targets, bytes, port, paceMs] = [process.argv[1].split(','), Number(process.argv[2]), Number(process.argv[3]), Number(process.argv[4] || 0)];
function send(host) {
  return new Promise((resolve) => {
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
    s.on('end', () => resolve({ host, reply }));
    s.on('timeout', () => { s.destroy(); resolve({ host, error: 'timeout' }); });
    s.on('error', (e) => resolve({ host, error: e.code || e.message }));
  });
}
(async () => { for (const t of targets) console.log(JSON.stringify(await send(t))); })();
`;

/** Starts a TCP sink answering "<name> <bytes>" on port inside ns; waits until it listens. */
export async function startTcpSink(lab: NetnsLab, ns: string, name: string, port: number, host: '0.0.0.0' | '::' = '0.0.0.0'): Promise<ChildProcess> {
  const sink = lab.spawnIn(ns, [process.execPath, '-e', SINK, name, String(port), host]);
  const out = new ProcessOutput(sink);
  await out.until(() => out.lines.includes('listening'), 10_000, `sink in ${name}`);
  return sink;
}

export interface TcpSendResult {
  host: string;
  reply?: string;
  error?: string;
}

/** From ns, sends bytes to each target's sink in turn (paced over paceMs); one result per target. */
export async function sendTcp(lab: NetnsLab, ns: string, targets: string[], bytes: number, port: number, paceMs = 0): Promise<TcpSendResult[]> {
  const out = await lab.exec(ns, process.execPath, '-e', SEND, targets.join(','), String(bytes), String(port), String(paceMs));
  return out.trim().split('\n').map((l) => JSON.parse(l) as TcpSendResult);
}

/** True when `ping -c count -W waitS ip` from ns succeeds. */
export async function ping(lab: NetnsLab, ns: string, ip: string, count = 1, waitS = 3): Promise<boolean> {
  try {
    await lab.exec(ns, 'ping', '-c', String(count), '-W', String(waitS), '-q', ip);
    return true;
  } catch {
    return false;
  }
}

/**
 * A program serving each port (TCP, answers "ok\n" and closes) on host; prints "ready"
 * once all listen. host '::' listens dual-stack.
 */
export function tcpServersProgram(ports: number[], host: '0.0.0.0' | '::'): string {
  const listen = host === '::' ? `{ port: p, host: '::', ipv6Only: false }` : `p, '0.0.0.0'`;
  return `
const net = require('node:net');
let n = 0;
for (const p of ${JSON.stringify(ports)}) {
  net.createServer((s) => { s.on('error', () => {}); s.end('ok\\n'); })
    .listen(${listen}, () => { if (++n === ${ports.length}) console.log('ready'); });
}`;
}

/**
 * A program taking JSON [[host, port], …] as its argument and printing one JSON line: for
 * each, "open" (got "ok"), "eof", an error code, or "timeout" (dropped: nothing in timeoutMs).
 */
export function tcpProbeProgram(timeoutMs: number): string {
  return `
const net = require('node:net');
const targets = JSON.parse(process.argv[1]);
Promise.all(targets.map(([host, port]) => new Promise((resolve) => {
  const s = net.connect({ host, port });
  let data = '';
  const t = setTimeout(() => { s.destroy(); resolve('timeout'); }, ${timeoutMs});
  s.on('data', (d) => { data += d; });
  s.on('end', () => { clearTimeout(t); resolve(data.startsWith('ok') ? 'open' : 'eof'); });
  s.on('error', (e) => { clearTimeout(t); resolve(e.code || 'error'); });
}))).then((r) => console.log(JSON.stringify(r)));`;
}

/** In an "internet" namespace: answers each TCP connection with the address it came from. */
export function whoamiProgram(port: number, host: '0.0.0.0' | '::'): string {
  return `
require('node:net').createServer((s) => { s.on('error', () => {}); s.end(s.remoteAddress + '\\n'); })
  .listen(${port}, '${host}', () => console.log('listening'));`;
}

/** From an instance: connects to host:port (argv), prints what came back or the error ("timeout" when dropped). */
export const ASK_PROGRAM = `
const s = require('node:net').connect({ host: process.argv[1], port: Number(process.argv[2]) });
let d = '';
const t = setTimeout(() => { console.log('timeout'); process.exit(0); }, 3000);
s.on('data', (x) => (d += x));
s.on('end', () => { clearTimeout(t); console.log(d.trim()); });
s.on('error', (e) => { clearTimeout(t); console.log(e.code); });`;

/** For a failed reachability check's message: each node's fast-path drop counters and neighbours. */
export async function edgeDiagnostics(lab: NetnsLab, nodes: ReadonlyArray<DatacenterNode & { agent?: RunningAgent }>, family: 4 | 6 = 4): Promise<string> {
  const out: string[] = [];
  for (const n of nodes) {
    const m = n.agent ? String((await http(n.agent.api, 'GET', '/metrics')).body) : '';
    const drops = m.split('\n').filter((l) => /^rhumb_fastpath_(nic|engine)_total\{.*counter="drop_/.test(l) && !/ 0$/.test(l));
    const neigh = await lab.exec(n.ns, 'ip', ...(family === 6 ? ['-6'] : []), 'neigh', 'show').catch(() => '');
    out.push(`${n.name}: ${drops.join('; ')} | neigh ${neigh.replace(/\n/g, '; ')}`);
  }
  return out.join(' || ');
}
