/**
 * `rhumb sandbox up`: a small datacenter in network namespaces, built the way an operator
 * builds a real one: the `rhumb controller` and `rhumb agent` processes (detached: they
 * outlive this command), the underlay network, owners' fabric VLANs and networks, NICs
 * and firewall rules through the REST API, NICs attached through the agents' API.
 *
 * Everything is recorded in the state file before (namespaces, links) or right after
 * (processes) it is made; a failure or an interrupt rolls back what was made.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ipaddr from 'ipaddr.js';
import { STATE_SUBDIRS, requireRoot, teardown } from './down.js';
import {
  AGENT_API_PORT,
  ETCD_CLIENT_PORT,
  ETCD_PEER_PORT,
  type PlannedInstance,
  type SandboxOptions,
  type SandboxPlan,
  SandboxInputError,
  planSandbox,
  plannedNamespaces,
} from './plan.js';
import { GiveUp, rest, waitFor } from './rest.js';
import {
  DEFAULT_STATE_DIR,
  MARKER_ENV,
  type SandboxState,
  StateExistsError,
  createState,
  loadState,
  markOf,
  newRunId,
  saveState,
  statePath,
} from './state.js';
import { ip, isSameProcess, listNamespaces, onPath, processStartTime, rootAddressesAndRoutes, rootLinkNames, run, setLinkAlias, spawnDetached } from './system.js';

/** The compiled CLI the sandbox starts its processes with. */
export function cliPath(): string {
  const here = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  if (existsSync(here)) return here;
  // Running from src/ (tsx): the build's copy.
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../dist/src/cli/main.js');
}

export interface UpOptions {
  stateDir?: string;
  log?: (line: string) => void;
  /** Set by the CLI on SIGINT/SIGTERM: the build stops at the next step and rolls back. */
  aborted?: () => boolean;
}

/** Refuses (SandboxInputError) when a sandbox is recorded, or a planned name or the subnet is taken. */
async function preflight(plan: SandboxPlan, stateDir: string): Promise<void> {
  const existing = await loadState(stateDir).catch((err: Error) => {
    throw new SandboxInputError(`${err.message}`);
  });
  if (existing) {
    const building = existing.phase === 'building' && existing.upPid !== undefined && isSameProcess(existing.upPid, existing.upStartTime ?? -1);
    throw new SandboxInputError(
      building
        ? `a sandbox is being built right now (pid ${existing.upPid}); nothing was changed`
        : `a sandbox is already up (made ${existing.createdAt}${existing.phase !== 'up' ? `, ${existing.phase}: a previous run did not finish` : ''}): run \`rhumb sandbox down\` first; nothing was changed`,
    );
  }
  if (plan.options.store === 'etcd' && !onPath('etcd')) throw new SandboxInputError('--store etcd needs etcd (Debian package etcd-server); nothing was changed');
  const namespaces = await listNamespaces();
  const clash = plannedNamespaces(plan).filter((ns) => namespaces.has(ns));
  if (clash.length > 0) {
    throw new SandboxInputError(`network namespace(s) ${clash.join(', ')} already exist and were not made by this sandbox: not touching them. Remove them, or pick another --prefix; nothing was changed`);
  }
  if ((await rootLinkNames()).has(plan.rootLink)) {
    throw new SandboxInputError(`a link named ${plan.rootLink} already exists: not touching it. Pick another --prefix; nothing was changed`);
  }
  const ours = ipaddr.parseCIDR(plan.options.subnet);
  for (const used of await rootAddressesAndRoutes()) {
    let theirs: [ipaddr.IPv4 | ipaddr.IPv6, number];
    try {
      theirs = ipaddr.parseCIDR(used.cidr);
    } catch {
      continue;
    }
    if (theirs[0].kind() !== 'ipv4') continue;
    const overlap = theirs[1] <= 24 ? ours[0].match(theirs) : theirs[0].match(ours);
    if (overlap && theirs[1] > 0) {
      throw new SandboxInputError(`${plan.options.subnet} is already in use here (${used.what}): pick another /24 of 198.18.0.0/15 with --subnet; nothing was changed`);
    }
  }
}

/** Makes the state dir (and missing parents); returns those it made, outermost first. */
async function makeStateDir(dir: string): Promise<string[]> {
  const first = await mkdir(dir, { recursive: true, mode: 0o700 });
  if (!first) return [];
  const made: string[] = [];
  for (let d = dir; ; d = dirname(d)) {
    made.unshift(d);
    if (d === first || d === dirname(d)) break;
  }
  return made;
}

export async function sandboxUp(options: SandboxOptions, o: UpOptions = {}): Promise<SandboxState> {
  requireRoot('up');
  const stateDir = resolve(o.stateDir ?? DEFAULT_STATE_DIR);
  const plan = planSandbox(options);
  await preflight(plan, stateDir);
  const madeDirs = await makeStateDir(stateDir);
  const state: SandboxState = {
    version: 1,
    runId: newRunId(),
    createdAt: new Date().toISOString(),
    phase: 'building',
    upPid: process.pid,
    upStartTime: processStartTime(process.pid),
    options: plan.options,
    stateDir,
    madeDirs,
    namespaces: [],
    rootLinks: [],
    processes: [],
    nodes: [],
    owners: [],
    instances: [],
    rules: [],
  };
  try {
    await createState(state);
  } catch (err) {
    for (const d of [...madeDirs].reverse()) await rmdir(d).catch(() => undefined);
    if (err instanceof StateExistsError) throw new SandboxInputError(`a sandbox is already up (${err.path} exists): run \`rhumb sandbox down\` first`);
    throw err;
  }
  const b = new Builder(plan, state, o.log ?? (() => {}), o.aborted ?? (() => false));
  try {
    await b.build();
    state.phase = 'up';
    delete state.upPid;
    delete state.upStartTime;
    await saveState(state);
    return state;
  } catch (err) {
    state.phase = 'failed';
    await saveState(state).catch(() => undefined);
    b.log(`failed: ${(err as Error).message}; removing what was made`);
    await teardown(state, b.log);
    throw err;
  }
}

class Builder {
  private readonly dir: string;
  private readonly cli = cliPath();
  private restUrl = '';
  /** With --auth: what the sandbox itself calls the controller as. */
  private adminToken: string | undefined;
  private svp = '';

  constructor(
    readonly plan: SandboxPlan,
    readonly state: SandboxState,
    readonly log: (line: string) => void,
    private readonly aborted: () => boolean,
  ) {
    this.dir = state.stateDir;
  }

  private async step<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.aborted()) throw new Error('interrupted');
    this.log(what);
    const v = await fn();
    await saveState(this.state);
    return v;
  }

  async build(): Promise<void> {
    for (const sub of STATE_SUBDIRS) await mkdir(join(this.dir, sub), { recursive: true, mode: 0o700 });
    await this.step('underlay', () => this.underlay());
    for (const n of this.plan.nodes) await this.step(`node ${n.name}`, () => this.node(n.name));
    if (this.plan.options.store === 'etcd') await this.step('etcd', () => this.etcd());
    await this.step('controller', () => this.controller());
    await this.step('agents', () => Promise.all(this.plan.nodes.map((n) => this.agent(n.name))).then(() => undefined));
    await this.step('owners, fabrics and firewall rules', () => this.owners());
    for (const inst of this.plan.instances) await this.step(`instance ${inst.name}`, () => this.instance(inst));
    await this.step('waiting for the firewall rulesets to be applied', () => this.firewallSettled());
  }

  /** Records the namespace, creates it, marks it (lo's alias), brings lo up. */
  private async netns(ns: string): Promise<void> {
    this.state.namespaces.push(ns);
    await saveState(this.state);
    await run('ip', ['netns', 'add', ns]);
    await setLinkAlias(ns, 'lo', markOf(this.state.runId));
    await ip(ns, 'link', 'set', 'lo', 'up');
  }

  private async underlay(): Promise<void> {
    const p = this.plan;
    await this.netns(p.underlayNs);
    await ip(p.underlayNs, 'link', 'add', 'name', 'ulbr', 'type', 'bridge');
    await ip(p.underlayNs, 'link', 'set', 'ulbr', 'up');
    this.state.rootLinks.push(p.rootLink);
    await saveState(this.state);
    await ip(null, 'link', 'add', p.rootLink, 'type', 'veth', 'peer', 'name', p.rootLinkPeer, 'netns', p.underlayNs);
    await setLinkAlias(null, p.rootLink, markOf(this.state.runId));
    await ip(p.underlayNs, 'link', 'set', p.rootLinkPeer, 'master', 'ulbr', 'up');
    await ip(null, 'addr', 'add', `${p.controllerIp}/24`, 'dev', p.rootLink);
    await ip(null, 'link', 'set', p.rootLink, 'up');
  }

  private async node(name: string): Promise<void> {
    const n = this.plan.nodes.find((x) => x.name === name)!;
    await this.netns(n.ns);
    const peer = `${n.name}-ul`;
    await ip(null, 'link', 'add', 'ul0', 'netns', n.ns, 'type', 'veth', 'peer', 'name', peer, 'netns', this.plan.underlayNs);
    await ip(this.plan.underlayNs, 'link', 'set', peer, 'master', 'ulbr', 'up');
    await ip(n.ns, 'addr', 'add', `${n.ip}/24`, 'dev', 'ul0');
    await ip(n.ns, 'link', 'set', 'ul0', 'up');
    this.state.nodes.push({ name: n.name, ns: n.ns, uuid: n.uuid, ip: n.ip });
  }

  private start(role: string, argv: string[]): void {
    const log = join(this.dir, 'logs', `${role}.log`);
    const p = spawnDetached(argv, log, { [MARKER_ENV]: this.state.runId });
    this.state.processes.push({ role, pid: p.pid, startTime: p.startTime, log });
  }

  /** Waits for fn, failing early (with the log's tail) if the process died. */
  private async waitProcess<T>(role: string, fn: () => Promise<T | undefined>, what: string, ms = 30_000): Promise<T> {
    const rec = this.state.processes.find((p) => p.role === role)!;
    return waitFor(async () => {
      if (!isSameProcess(rec.pid, rec.startTime)) throw new GiveUp(`${role} exited (its log: ${rec.log})`);
      return fn();
    }, ms, what).catch(async (err: Error) => {
      const tail = (await readFile(rec.log, 'utf8').catch(() => '')).trim().split('\n').slice(-8).join('\n  ');
      throw new Error(`${err.message}${tail ? `\n  ${tail}` : ''}`);
    });
  }

  private async etcd(): Promise<void> {
    const host = this.plan.controllerIp;
    const client = `http://${host}:${ETCD_CLIENT_PORT}`;
    const peer = `http://${host}:${ETCD_PEER_PORT}`;
    this.start('etcd', [
      'etcd', '--name', 'sandbox', '--data-dir', join(this.dir, 'etcd'),
      '--listen-client-urls', client, '--advertise-client-urls', client,
      '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `sandbox=${peer}`, '--initial-cluster-state', 'new',
      '--logger', 'zap', '--log-level', 'warn',
    ]);
    await this.waitProcess('etcd', async () => ((await rest<{ health?: string }>(client, 'GET', '/health', undefined, 2000)).health === 'true' ? true : undefined), 'etcd to be healthy');
    this.state.etcd = { client };
  }

  /**
   * --auth: the controller's auth file (an admin token, one node token per agent), each
   * token also in a file of its own (0600, under tokens/): what the CLI, the console and
   * the agents are given.
   */
  private async tokens(): Promise<string[]> {
    if (!this.plan.options.auth) return [];
    const dir = join(this.dir, 'tokens');
    const token = () => randomBytes(24).toString('hex');
    const admin = token();
    const nodes = this.plan.nodes.map((n) => ({ name: n.name, uuid: n.uuid, token: token() }));
    const authFile = join(dir, 'auth.json');
    const doc = { tokens: [{ token: admin, role: 'admin', name: 'sandbox' }, ...nodes.map((n) => ({ token: n.token, role: 'node', node_uuid: n.uuid, name: n.name }))] };
    await writeFile(authFile, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o600 });
    this.state.adminTokenFile = join(dir, 'admin.token');
    await writeFile(this.state.adminTokenFile, `${admin}\n`, { mode: 0o600 });
    for (const n of nodes) await writeFile(join(dir, `${n.name}.token`), `${n.token}\n`, { mode: 0o600 });
    this.adminToken = admin;
    return ['--auth-file', authFile];
  }

  /** A call to the controller's REST API (as the admin when it asks who calls). */
  private api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    return rest<T>(this.restUrl, method, path, body, 30_000, this.adminToken);
  }

  private async controller(): Promise<void> {
    const { controllerIp: host, options: o } = this.plan;
    const store = this.state.etcd ? ['--store', 'etcd', '--etcd', this.state.etcd.client, '--etcd-prefix', `sandbox-${this.state.runId}/`] : ['--data', join(this.dir, 'controller')];
    const auth = await this.tokens();
    this.start('controller', [process.execPath, this.cli, 'controller', ...store, ...auth, '--listen', `${host}:${o.restPort}`, '--svp-listen', `${host}:${o.svpPort}`, '--log-level', 'warn']);
    this.restUrl = `http://${host}:${o.restPort}`;
    this.svp = `${host}:${o.svpPort}`;
    await this.waitProcess('controller', async () => ((await rest(this.restUrl, 'GET', '/ping', undefined, 2000)) ? true : undefined), 'the controller to answer');
    this.state.controller = { rest: this.restUrl, svp: this.svp, console: `${this.restUrl}/ui/` };
    await this.api('POST', '/networks', {
      name: 'sandbox-underlay',
      nic_tag: 'sdc_underlay',
      vlan_id: 0,
      subnet: this.plan.options.subnet,
      provision_start_ip: `${this.plan.underlay24}.1`,
      provision_end_ip: `${this.plan.underlay24}.250`,
    });
  }

  private async agent(name: string): Promise<void> {
    const n = this.plan.nodes.find((x) => x.name === name)!;
    const role = `agent-${n.name}`;
    this.start(role, [
      'ip', 'netns', 'exec', n.ns, process.execPath, this.cli, 'agent',
      '--node', n.uuid, '--underlay-ip', n.ip, '--controller', this.restUrl, '--svp', this.svp,
      '--api', `${n.ip}:${AGENT_API_PORT}`, '--state-dir', join(this.dir, 'agents', n.name), '--backend', this.plan.options.backend,
      ...(this.plan.options.auth ? ['--token-file', join(this.dir, 'tokens', `${n.name}.token`)] : []),
    ]);
    const api = `http://${n.ip}:${AGENT_API_PORT}`;
    await this.waitProcess(role, async () => ((await rest(api, 'GET', '/status', undefined, 2000)) ? true : undefined), `the agent on ${n.name}`, 45_000);
    this.state.nodes.find((x) => x.name === name)!.agentApi = api;
  }

  private async owners(): Promise<void> {
    for (const w of this.plan.owners) {
      await this.api('POST', `/fabrics/${w.uuid}/vlans`, { vlan_id: w.vlanId, name: w.vlanName });
      const net = await this.api<{ uuid: string; vnet_id: number }>('POST', `/fabrics/${w.uuid}/vlans/${w.vlanId}/networks`, {
        name: w.network.name,
        subnet: w.network.subnet,
        provision_start_ip: w.network.start,
        provision_end_ip: w.network.end,
        gateway: w.network.gateway,
      });
      this.state.owners.push({ name: w.name, uuid: w.uuid, vlanId: w.vlanId, networkUuid: net.uuid, networkName: w.network.name, vnetId: net.vnet_id });
    }
    // Rules before the instances turn their firewall on: nothing is blocked on the way up.
    for (const r of this.plan.rules) {
      const owner = this.plan.owners.find((w) => w.name === r.owner)!;
      const made = await this.api<{ uuid: string }>('POST', '/rules', { rule: r.rule, owner_uuid: owner.uuid, enabled: true, description: r.description });
      this.state.rules.push(made.uuid);
    }
  }

  private async instance(inst: PlannedInstance): Promise<void> {
    const owner = this.plan.owners.find((w) => w.name === inst.owner)!;
    const net = this.state.owners.find((w) => w.name === inst.owner)!;
    const node = this.state.nodes.find((n) => n.name === inst.node)!;
    await this.api('PUT', `/fw/instances/${inst.uuid}`, { owner_uuid: owner.uuid, tags: inst.tags, firewall_enabled: owner.firewall });
    const nic = await this.api<{ mac: string; ip: string }>('POST', '/nics', {
      owner_uuid: owner.uuid,
      belongs_to_uuid: inst.uuid,
      belongs_to_type: 'zone',
      network_uuid: net.networkUuid,
      cn_uuid: node.uuid,
    });
    await this.netns(inst.ns);
    this.state.instances.push({ name: inst.name, ns: inst.ns, uuid: inst.uuid, owner: inst.owner, node: inst.node, mac: nic.mac, ip: nic.ip });
    await rest(node.agentApi!, 'POST', '/attach', { mac: nic.mac, netns: `/run/netns/${inst.ns}` });
  }

  /** Every agent has applied the rulesets the controller publishes for its node. */
  private async firewallSettled(): Promise<void> {
    await Promise.all(
      this.state.nodes.map(async (n) => {
        const feed = await this.api<{ revision: number }>('GET', `/fw/nodes/${n.uuid}/rulesets?since=0&wait=0`);
        await waitFor(
          async () => {
            const fw = (await rest<{ firewall: { revision?: number; failures?: Record<string, string> } }>(n.agentApi!, 'GET', '/status')).firewall;
            return (fw.revision ?? 0) >= feed.revision && Object.keys(fw.failures ?? {}).length === 0 ? true : undefined;
          },
          30_000,
          `the agent on ${n.name} to apply its firewall rulesets`,
        );
      }),
    );
  }
}

export { statePath };
