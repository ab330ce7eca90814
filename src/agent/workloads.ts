/**
 * Workload attachments: the agent's side of the CNI and Docker plugins. Given a stable
 * attachment key, a fabric network and a namespace, the agent creates the NAPI NIC on the
 * controller (placed on this node), plumbs it through the ordinary attach path (either
 * backend) and answers what a plugin's result needs; release undoes both.
 *
 * - Identity: the NIC's belongs_to_uuid is a UUIDv5 of (node, key), so the same key never
 *   gets a second NIC: a repeated attach returns the NIC it has.
 * - Crash safety: a record is written before the NIC is created (phase "creating") and
 *   marked "attached" once plumbed (./workload-state.ts). A failure half-way is rolled back
 *   at once; a crash half-way is rolled back at the next start, or by the periodic sweep
 *   while the controller was unreachable.
 * - Release is idempotent: an unknown key, a missing namespace, or a second release succeed.
 * - Operations on one key run one at a time; different keys run in parallel.
 * - Staged attachments (Docker): stage() creates the NIC and plumbs it with its instance
 *   end left in the node's namespace (the runtime moves it), carrying nothing; activate()
 *   names the workload's namespace once the runtime has one, and the NIC starts carrying
 *   traffic behind the workload's firewall. The record's netns is '' until then.
 */
import { access } from 'node:fs/promises';
import { v5 as uuidv5 } from 'uuid';
import { inNetns, ip as ipCmd } from './plumbing/iproute.js';
import { stagedName } from './plumbing/names.js';
import { isIpv6Nic, nicSettings } from './plumbing/nic.js';
import { type Logger, silentLogger } from '../log/index.js';
import { type ActivateOptions, AgentError, type AttachRequest, type AttachedNic, type StageRequest } from './agent.js';
import { type ApiNetwork, type ApiNic, type NapiClient, NapiRequestError, isUnreachable, napiErrorText } from './napi-client.js';
import { WorkloadRequestError, labelsProblem, requestedIpOf } from './workload-api.js';
import type {
  AgentHealth, WorkloadAttachRequest, WorkloadAttachment, WorkloadCheckResult, WorkloadReleaseResult,
} from './workload-api.js';
import type { WorkloadRecord, WorkloadState } from './workload-state.js';

/** Namespace of the belongs_to_uuid derivation (UUIDv5). Never change it: NICs would be orphaned. */
export const WORKLOAD_UUID_NAMESPACE = '4a1df16f-1dd1-4991-8f37-56c2da144e25';

/** The NIC's belongs_to_uuid for an attachment key on a node. */
export function workloadUuid(nodeUuid: string, key: string): string {
  return uuidv5(`${nodeUuid}\n${key}`, WORKLOAD_UUID_NAMESPACE);
}

/** What the manager needs from the agent (Agent implements it). */
export interface WorkloadHost {
  readonly nodeUuid: string;
  /** Plumbs the NIC whose API record the caller holds (Agent.attachNic). */
  attachNic(nic: ApiNic, req: AttachRequest): Promise<AttachedNic>;
  /** Stages the NIC whose API record the caller holds (Agent.stageNic): its runtime moves the interface. */
  stageNic(nic: ApiNic, req: StageRequest): Promise<AttachedNic>;
  activate(mac: string, netns: string, opts?: ActivateOptions): Promise<AttachedNic>;
  detach(mac: string): Promise<unknown>;
  attachment(mac: string): AttachedNic | undefined;
  hostInterfaceOf(mac: string): string | undefined;
}

/** A staged attachment: no namespace yet (./workloads.ts stage()). */
export type WorkloadStageRequest = Omit<WorkloadAttachRequest, 'netns' | 'ifname'>;

type NetworkRef = Pick<WorkloadAttachRequest, 'network_uuid' | 'network_name' | 'owner_uuid'>;

export type WorkloadNapi = Pick<NapiClient, 'getNetwork' | 'listNetworks' | 'listNics' | 'createNic' | 'deleteNic' | 'getNic' | 'ping'>;

export interface WorkloadManagerOptions {
  host: WorkloadHost;
  napi: WorkloadNapi;
  state: WorkloadState;
  logger?: Logger;
  /** How often unfinished records (a rollback that could not reach the controller) are retried. Default 30000 ms; 0: never. */
  sweepIntervalMs?: number;
}

/** A controller failure as the API answers it (503 unreachable, NAPI's own status otherwise). */
function controllerError(err: unknown, what: string): Error {
  if (err instanceof AgentError) return err;
  if (isUnreachable(err)) return new AgentError(503, `${what}: the controller is unreachable (${(err as Error).message})`, 'ControllerUnreachable');
  if (err instanceof NapiRequestError) {
    const text = `${what}: ${napiErrorText(err)}`;
    if (err.status === 507) return new AgentError(507, text, 'SubnetFull');
    if (err.status === 404) return new AgentError(404, text, 'NotFound');
    if (err.status === 403) return new AgentError(403, text, 'NotAuthorized');
    if (err.status >= 400 && err.status < 500) return new AgentError(422, text, 'InvalidParameters');
    return new AgentError(502, text, 'ControllerError');
  }
  return err as Error;
}

/** The request with `ips` resolved to the one address of the network's family (422 when it has none). */
function withRequestedIp<R extends WorkloadStageRequest>(req: R, net: ApiNetwork): R {
  if (req.ips === undefined) return req;
  const { ips: _ips, ...rest } = req;
  try {
    const ip = requestedIpOf(req, net);
    return { ...rest, ...(ip !== undefined ? { ip } : {}) } as R;
  } catch (err) {
    if (err instanceof WorkloadRequestError) throw new AgentError(422, err.message, 'InvalidParameters');
    throw err;
  }
}

const exists = (path: string) => access(path).then(() => true, () => false);

export class WorkloadManager {
  private records = new Map<string, WorkloadRecord>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly log: Logger;
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: WorkloadManagerOptions) {
    this.log = o.logger ?? silentLogger();
  }

  /** Loads the records and finishes what a previous agent left half-done. After the agent's start. */
  async start(): Promise<void> {
    this.records = await this.o.state.load().catch((err: Error) => {
      this.log.warn(`workload state: ${err.message}; starting with no records`);
      return new Map<string, WorkloadRecord>();
    });
    await this.sweep({ startup: true });
    const every = this.o.sweepIntervalMs ?? 30_000;
    if (every > 0) {
      this.sweepTimer = setInterval(() => void this.sweep({ startup: false }), every);
      this.sweepTimer.unref();
    }
  }

  stop(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  /**
   * Rolls back unfinished records (creating, releasing); at start-up also releases attached
   * ones whose namespace is gone (the workload died while the agent was down).
   */
  async sweep(opts: { startup: boolean }): Promise<void> {
    for (const rec of [...this.records.values()]) {
      if (this.locks.has(rec.key)) continue;
      await this.withKey(rec.key, async () => {
        const now = this.records.get(rec.key);
        if (!now) return;
        if (now.phase === 'attached') {
          if (!opts.startup || (now.mac && this.o.host.attachment(now.mac)) || (await exists(now.netns))) return;
          this.log.info(`workload ${now.key}: its namespace ${now.netns} is gone; releasing its NIC`);
        }
        await this.rollBack(now);
      }).catch((err: Error) => this.log.warn(`workload ${rec.key}: cleanup deferred: ${err.message}`));
    }
  }

  private withKey<T>(key: string, job: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const result = prev.then(job, job);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(key, tail);
    void tail.then(() => {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    });
    return result;
  }

  private save(): Promise<void> {
    return this.o.state.save(this.records);
  }

  // ---- attach ----------------------------------------------------------------------------

  attach(asked: WorkloadAttachRequest): Promise<WorkloadAttachment> {
    return this.withKey(asked.key, async () => {
      const net = await this.resolveNetwork(asked);
      const req = withRequestedIp(asked, net);
      const existing = this.records.get(req.key);
      if (existing && existing.phase !== 'attached') await this.rollBack(existing);
      else if (existing) {
        const again = await this.attachExisting(existing, req, net);
        if (again) return again;
      }
      return this.create(req, net);
    });
  }

  private async resolveNetwork(req: NetworkRef): Promise<ApiNetwork> {
    let net: ApiNetwork | undefined;
    try {
      if (req.network_uuid) net = await this.o.napi.getNetwork(req.network_uuid, req.owner_uuid);
      else {
        const found = await this.o.napi.listNetworks({ name: req.network_name!, owner_uuid: req.owner_uuid!, fabric: 'true' });
        if (found.length > 1) throw new AgentError(409, `owner ${req.owner_uuid} has ${found.length} fabric networks named ${req.network_name}`, 'Conflict');
        net = found[0];
      }
    } catch (err) {
      if (err instanceof NapiRequestError && (err.status === 404 || err.status === 403)) net = undefined;
      else throw controllerError(err, 'network lookup');
    }
    const which = req.network_uuid ?? `${req.network_name} of owner ${req.owner_uuid}`;
    if (!net) throw new AgentError(404, `no fabric network ${which}${req.network_uuid && req.owner_uuid ? ` that owner ${req.owner_uuid} may use` : ''}`, 'NetworkNotFound');
    if (!net.fabric) throw new AgentError(422, `network ${which} is not a fabric network`, 'NetworkNotFabric');
    return net;
  }

  /** A repeated attach of a recorded key: the same NIC (re-plumbed if needed), or undefined when that NIC is gone. */
  private async attachExisting(rec: WorkloadRecord, req: WorkloadAttachRequest, net: ApiNetwork): Promise<WorkloadAttachment | undefined> {
    if (rec.network_uuid !== net.uuid) {
      throw new AgentError(409, `attachment ${rec.key} exists on network ${rec.network_uuid}; release it first`, 'Conflict');
    }
    let nic: ApiNic | undefined;
    try {
      nic = await this.o.napi.getNic(rec.mac!);
    } catch (err) {
      if (!(err instanceof NapiRequestError && err.status === 404)) throw controllerError(err, 'NIC lookup');
    }
    if (!nic || nic.belongs_to_uuid !== rec.belongs_to_uuid) {
      // Deleted behind our back: forget it (unplumbing what is left) and start afresh.
      await this.rollBack(rec);
      return undefined;
    }
    if (req.mac && req.mac !== nic.mac) throw new AgentError(409, `attachment ${rec.key} has MAC ${nic.mac}, not ${req.mac}`, 'Conflict');
    if (req.ip && req.ip !== nic.ip) throw new AgentError(409, `attachment ${rec.key} has IP ${nic.ip ?? 'none'}, not ${req.ip}`, 'Conflict');
    const at = this.o.host.attachment(nic.mac);
    if (at && at.netns === req.netns && at.ifname === req.ifname) return this.describe(rec, nic, net);
    // The workload's namespace changed (a restart without a release): move the NIC there.
    if (at) await this.o.host.detach(nic.mac);
    try {
      await this.o.host.attachNic(nic, { mac: nic.mac, netns: req.netns, ifname: req.ifname });
    } catch (err) {
      await this.rollBack(rec).catch((e: Error) => this.log.warn(`workload ${rec.key}: rollback deferred: ${e.message}`));
      throw err;
    }
    this.records.set(rec.key, { ...rec, netns: req.netns, ifname: req.ifname, phase: 'attached' });
    await this.save();
    return this.describe(this.records.get(rec.key)!, nic, net);
  }

  /**
   * Creates the NIC and plumbs it staged (see the header): idempotent per key like
   * attach; a recorded attachment on another network or with another MAC is a conflict.
   */
  stage(asked: WorkloadStageRequest): Promise<WorkloadAttachment> {
    return this.withKey(asked.key, async () => {
      const net = await this.resolveNetwork(asked);
      const req = withRequestedIp(asked, net);
      const existing = this.records.get(req.key);
      if (existing && existing.phase === 'attached' && existing.network_uuid === net.uuid && existing.mac && this.o.host.attachment(existing.mac)) {
        if (req.mac && req.mac !== existing.mac) throw new AgentError(409, `attachment ${req.key} has MAC ${existing.mac}, not ${req.mac}`, 'Conflict');
        try {
          return this.describe(existing, await this.o.napi.getNic(existing.mac), net);
        } catch (err) {
          throw controllerError(err, 'NIC lookup');
        }
      }
      if (existing) await this.rollBack(existing);
      return this.create({ ...req, netns: '', ifname: '' }, net, 'stage');
    });
  }

  /** Merges labels into an attachment's record (e.g. the Docker endpoint it became); 404 when unknown. */
  label(key: string, labels: Record<string, string>): Promise<WorkloadAttachment> {
    return this.withKey(key, async () => {
      const rec = this.records.get(key);
      if (!rec) throw new AgentError(404, `no workload attachment ${key} on this node`, 'NotFound');
      const merged = { ...(rec.labels ?? {}), ...labels };
      const problem = labelsProblem(merged);
      if (problem) throw new AgentError(400, problem, 'InvalidRequest');
      this.records.set(key, { ...rec, labels: merged });
      await this.save();
      return this.entry(this.records.get(key)!);
    });
  }

  /** The staged attachment's workload namespace (a Docker sandbox key): waits, firewalls, lets traffic through. */
  activate(key: string, netns: string, opts: ActivateOptions = {}): Promise<WorkloadAttachment> {
    return this.withKey(key, async () => {
      const rec = this.records.get(key);
      if (!rec || rec.phase !== 'attached' || !rec.mac) throw new AgentError(404, `no workload attachment ${key} on this node`, 'NotFound');
      const at = await this.o.host.activate(rec.mac, netns, opts);
      if (rec.netns !== netns || rec.ifname !== at.ifname) {
        this.records.set(key, { ...rec, netns, ifname: at.ifname ?? rec.ifname });
        await this.save();
      }
      return this.entry(this.records.get(key)!);
    });
  }

  private async create(req: WorkloadAttachRequest, net: ApiNetwork, how: 'attach' | 'stage' = 'attach'): Promise<WorkloadAttachment> {
    const owner = req.owner_uuid ?? net.owner_uuids?.[0];
    if (!owner) throw new AgentError(422, `network ${net.uuid} has no owner: give owner_uuid`, 'InvalidParameters');
    const rec: WorkloadRecord = {
      key: req.key,
      ...(req.scope !== undefined ? { scope: req.scope } : {}),
      ...(req.labels !== undefined ? { labels: req.labels } : {}),
      phase: 'creating',
      belongs_to_uuid: workloadUuid(this.o.host.nodeUuid, req.key),
      network_uuid: net.uuid,
      owner_uuid: owner,
      netns: req.netns,
      ifname: req.ifname,
      created: new Date().toISOString(),
    };
    // The intent is on disk before anything exists on the controller.
    const t0 = performance.now();
    this.records.set(rec.key, rec);
    await this.save();
    try {
      const t1 = performance.now();
      const nic = await this.findOrCreateNic(rec, req);
      rec.mac = nic.mac;
      const t2 = performance.now();
      if (how === 'stage') {
        rec.ifname = stagedName(nic.mac);
        await this.o.host.stageNic(nic, { mac: nic.mac, ifname: rec.ifname });
      } else await this.o.host.attachNic(nic, { mac: nic.mac, netns: req.netns, ifname: req.ifname });
      const t3 = performance.now();
      rec.phase = 'attached';
      await this.save();
      const ms = (a: number, b: number) => (b - a).toFixed(1);
      this.log.info(`workload ${rec.key}: attached NIC ${nic.mac} ${nic.ip ?? ''} (intent ${ms(t0, t1)} ms, NIC ${ms(t1, t2)} ms, plumbing ${ms(t2, t3)} ms, record ${ms(t3, performance.now())} ms)`);
      return this.describe(rec, nic, net);
    } catch (err) {
      await this.rollBack(rec).catch((e: Error) => this.log.warn(`workload ${rec.key}: rollback deferred: ${e.message}`));
      throw err;
    }
  }

  /** A NIC of this attachment left by an attempt whose record was lost is reused when it fits. */
  private async findOrCreateNic(rec: WorkloadRecord, req: WorkloadAttachRequest): Promise<ApiNic> {
    try {
      const left = await this.o.napi.listNics({ belongs_to_uuid: rec.belongs_to_uuid, cn_uuid: this.o.host.nodeUuid });
      const fits = (n: ApiNic) => n.network_uuid === rec.network_uuid && (!req.mac || req.mac === n.mac) && (!req.ip || req.ip === n.ip);
      const keep = left.find(fits);
      for (const n of left) if (n !== keep) await this.deleteNic(n.mac);
      if (keep) return keep;
      return await this.o.napi.createNic({
        owner_uuid: rec.owner_uuid,
        belongs_to_uuid: rec.belongs_to_uuid,
        belongs_to_type: 'zone',
        network_uuid: rec.network_uuid,
        cn_uuid: this.o.host.nodeUuid,
        state: 'running',
        ...(req.mac ? { mac: req.mac } : {}),
        ...(req.ip ? { ip: req.ip } : {}),
      });
    } catch (err) {
      throw controllerError(err, 'NIC creation');
    }
  }

  private describe(rec: WorkloadRecord, nic: ApiNic, net: ApiNetwork): WorkloadAttachment {
    const s = nicSettings(nic);
    const routes = [...(s.gateway ? [{ dst: isIpv6Nic(s) ? '::/0' : '0.0.0.0/0', gw: s.gateway }] : []), ...s.routes.map((r) => (r.via ? { dst: r.dst, gw: r.via } : { dst: r.dst }))];
    const hostIf = this.o.host.hostInterfaceOf(nic.mac);
    return {
      ...this.entry(rec),
      mac: s.mac,
      ...(hostIf ? { host_ifname: hostIf } : {}),
      // The MTU it was plumbed with (smaller than the network's while the underlay is encrypted).
      mtu: this.o.host.attachment(s.mac)?.mtu ?? s.mtu,
      ips: [{ address: `${s.ip}/${s.prefix}`, ...(s.gateway ? { gateway: s.gateway } : {}) }],
      routes,
      resolvers: net.resolvers ?? [],
      vnet: s.vnet,
      vlan: s.vlan,
    };
  }

  private entry(rec: WorkloadRecord): WorkloadAttachment {
    const { created: _created, ...rest } = rec;
    const hostIf = rec.mac && rec.phase === 'attached' ? this.o.host.hostInterfaceOf(rec.mac) : undefined;
    return { ...rest, ...(hostIf ? { host_ifname: hostIf } : {}) };
  }

  // ---- release ---------------------------------------------------------------------------

  release(key: string): Promise<WorkloadReleaseResult> {
    return this.withKey(key, async () => {
      const rec = this.records.get(key);
      if (rec) {
        try {
          const steps = await this.rollBack(rec);
          this.log.info(`workload ${key}: released NIC ${rec.mac ?? '(none)'} (${steps})`);
        } catch (err) {
          // Unplumbed here but the controller is away: the sweep deletes the NIC once it
          // answers (the record says so), so the workload's release is done as far as it goes.
          const unplumbed = rec.phase === 'releasing' && !(rec.mac && this.o.host.attachment(rec.mac));
          if (!(err instanceof AgentError && err.code === 'ControllerUnreachable' && unplumbed)) throw err;
          this.log.warn(`workload ${key}: unplumbed; NIC deletion deferred until the controller answers`);
          return { key, released: true, deferred: true };
        }
        return { key, released: true };
      }
      // Records are written before any NIC exists, so an unknown key has nothing of ours;
      // a NIC is still looked for (a lost state directory), but only when the controller answers.
      let left: ApiNic[] = [];
      try {
        left = await this.o.napi.listNics({ belongs_to_uuid: workloadUuid(this.o.host.nodeUuid, key), cn_uuid: this.o.host.nodeUuid });
      } catch (err) {
        this.log.info(`workload ${key}: unknown here; controller not asked (${(err as Error).message})`);
      }
      for (const n of left) await this.unplumbAndDelete(n.mac);
      return { key, released: left.length > 0 };
    });
  }

  /** Undoes an attachment whatever its phase: unplumb, delete its NIC(s), drop the record. */
  private async rollBack(rec: WorkloadRecord): Promise<string> {
    const t0 = performance.now();
    if (rec.phase !== 'releasing') {
      rec.phase = 'releasing';
      await this.save();
    }
    const t1 = performance.now();
    if (rec.mac) await this.unplumb(rec.mac);
    const t2 = performance.now();
    let nics: ApiNic[];
    try {
      nics = await this.o.napi.listNics({ belongs_to_uuid: rec.belongs_to_uuid });
    } catch (err) {
      throw controllerError(err, 'release');
    }
    for (const n of nics) await this.unplumbAndDelete(n.mac);
    const t3 = performance.now();
    this.records.delete(rec.key);
    await this.save();
    const ms = (a: number, b: number) => (b - a).toFixed(1);
    return `record ${ms(t0, t1)} ms, unplumbing ${ms(t1, t2)} ms, NIC ${ms(t2, t3)} ms, record ${ms(t3, performance.now())} ms`;
  }

  private async unplumb(mac: string): Promise<void> {
    if (!this.o.host.attachment(mac)) return;
    try {
      await this.o.host.detach(mac);
    } catch (err) {
      if (!(err instanceof AgentError && err.status === 404)) throw err;
    }
  }

  private async unplumbAndDelete(mac: string): Promise<void> {
    await this.unplumb(mac);
    await this.deleteNic(mac);
  }

  private async deleteNic(mac: string): Promise<void> {
    try {
      await this.o.napi.deleteNic(mac);
    } catch (err) {
      if (err instanceof NapiRequestError && err.status === 404) return;
      throw controllerError(err, `NIC ${mac} deletion`);
    }
  }

  // ---- list, check, health ---------------------------------------------------------------

  list(scope?: string): WorkloadAttachment[] {
    return [...this.records.values()].filter((r) => scope === undefined || r.scope === scope).map((r) => this.entry(r));
  }

  get(key: string): WorkloadAttachment | undefined {
    const rec = this.records.get(key);
    return rec ? this.entry(rec) : undefined;
  }

  /** Is the attachment as it was made: plumbed, its interface in its namespace with its MAC, address, up? */
  async check(key: string): Promise<WorkloadCheckResult> {
    const rec = this.records.get(key);
    if (!rec) throw new AgentError(404, `no workload attachment ${key} on this node`, 'NotFound');
    const problems: string[] = [];
    if (rec.phase !== 'attached' || !rec.mac) problems.push(`attachment is ${rec.phase}`);
    else if (!this.o.host.attachment(rec.mac)) problems.push(`NIC ${rec.mac} is not plumbed on this node`);
    if (rec.netns === '') problems.push('attachment is staged: its workload has no namespace yet');
    else if (!(await exists(rec.netns))) problems.push(`namespace ${rec.netns} does not exist`);
    else problems.push(...(await this.interfaceProblems(rec)));
    return { key, ok: problems.length === 0, problems };
  }

  private async interfaceProblems(rec: WorkloadRecord): Promise<string[]> {
    let links: Array<{ ifname?: string; address?: string; flags?: string[]; addr_info?: Array<{ family?: string; local?: string; prefixlen?: number }> }>;
    try {
      links = JSON.parse(await ipCmd(['-j', 'addr', 'show'], inNetns(rec.netns)));
    } catch (err) {
      return [`cannot read interfaces in ${rec.netns}: ${(err as Error).message}`];
    }
    const link = links.find((l) => l.ifname === rec.ifname);
    if (!link) return [`interface ${rec.ifname} is missing from ${rec.netns}`];
    const problems: string[] = [];
    if (rec.mac && link.address?.toLowerCase() !== rec.mac) problems.push(`interface ${rec.ifname} has MAC ${link.address}, not ${rec.mac}`);
    if (!link.flags?.includes('UP')) problems.push(`interface ${rec.ifname} is down`);
    const at = rec.mac ? this.o.host.attachment(rec.mac) : undefined;
    if (at && !link.addr_info?.some((a) => (a.family === 'inet' || a.family === 'inet6') && a.local === at.ip)) problems.push(`interface ${rec.ifname} lacks its address ${at.ip}`);
    return problems;
  }

  /** Can attachments be served now: does the controller answer? */
  async health(): Promise<AgentHealth> {
    try {
      const r = await this.o.napi.ping();
      if (r?.healthy === false) return { node: this.o.host.nodeUuid, controller: { reachable: false, error: `controller unhealthy (${r.status ?? 'no status'})` } };
      return { node: this.o.host.nodeUuid, controller: { reachable: true } };
    } catch (err) {
      return { node: this.o.host.nodeUuid, controller: { reachable: false, error: (err as Error).message } };
    }
  }
}
