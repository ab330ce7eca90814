/**
 * Agent side of the firewall: applies compiled rulesets, and the loop that long-polls the
 * controller's per-node feed.
 *
 * Policies are enforced node-side on both backends: each instance's table lives in the
 * node's namespace and filters its ports (./nft.ts renderRuleset), next to the node-wide
 * state table (renderStateTable); nothing the instance does in its own namespace reaches
 * them. (Tables an older agent loaded inside instances' namespaces are the agent's to
 * clear at start: ./nft.ts renderNetnsRemoval.)
 *
 * Each ruleset is a complete `nft -f` transaction (create-if-missing, delete, define the
 * table), loaded as one nftables netlink batch by the
 * native module (libnftables in process, src/dataplane/nftables.ts; without it, with
 * `nsenter --net=<netns path> nft -f -`). A batch applies whole or not at all, so a
 * rejected ruleset changes nothing: the previous one stays in force, and the failure is
 * returned, counted and retried on the next round.
 */
import { Counter, Histogram, type Registry } from 'prom-client';
import { nativeNftAvailable, nftApply, nftList } from '../dataplane/nftables.js';
import { ConnectionsRenewedError } from '../security/http-client.js';
import { tableName } from './compile.js';
import { renderRuleset, renderStateTable, rulesetProblem, runWithInput, splitPublicationLinks, withNodePorts, withPublicationLinks } from './nft.js';
import type { FeedResponse, NodeRuleset } from './push.js';

export interface ApplyResult {
  ok: boolean;
  /** nft's message when the ruleset was rejected or nft could not run. */
  error?: string;
  /** False when the same text was already applied (nothing run). */
  changed: boolean;
}

interface ApplierMetrics {
  applied: Counter;
  failures: Counter;
  seconds: Histogram;
}

function applierMetrics(registry: Registry | undefined): ApplierMetrics | undefined {
  if (!registry) return undefined;
  const get = <T>(name: string): T | undefined => registry.getSingleMetric(name) as T | undefined;
  return {
    applied:
      get<Counter>('rhumb_fw_rulesets_applied_total') ??
      new Counter({ name: 'rhumb_fw_rulesets_applied_total', help: 'Rulesets applied with nft -f', registers: [registry] }),
    failures:
      get<Counter>('rhumb_fw_apply_failures_total') ??
      new Counter({ name: 'rhumb_fw_apply_failures_total', help: 'Ruleset applies nft rejected or could not run (previous ruleset kept)', registers: [registry] }),
    seconds:
      get<Histogram>('rhumb_fw_apply_seconds') ??
      new Histogram({
        name: 'rhumb_fw_apply_seconds',
        help: 'Time to apply one instance ruleset',
        buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
        registers: [registry],
      }),
  };
}

export class NftApplier {
  private readonly metrics: ApplierMetrics | undefined;
  /** instance -> text last applied successfully. */
  private readonly current = new Map<string, string>();

  constructor(opts: { registry?: Registry } = {}) {
    this.metrics = applierMetrics(opts.registry);
  }

  appliedText(instance: string): string | undefined {
    return this.current.get(instance);
  }

  /** Replaces the instance's table in the namespace at netnsPath (undefined: this one), atomically. */
  async apply(instance: string, netnsPath: string | undefined, text: string): Promise<ApplyResult> {
    if (this.current.get(instance) === text) return { ok: true, changed: false };
    const problem = appliedTextProblem(instance, text);
    if (problem) {
      this.metrics?.failures.inc();
      return { ok: false, changed: false, error: `refused: ${problem}` };
    }
    const started = process.hrtime.bigint();
    const error = await loadNft(netnsPath, text);
    this.metrics?.seconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    if (error !== undefined) {
      this.metrics?.failures.inc();
      return { ok: false, changed: false, error };
    }
    this.metrics?.applied.inc();
    this.current.set(instance, text);
    return { ok: true, changed: true };
  }

  /** Loads the node-wide state table (renderStateTable) that instances' tables read; nftables' message when refused. */
  loadStateTable(netnsPath: string | undefined): Promise<string | undefined> {
    return loadNft(netnsPath, renderStateTable());
  }

  forget(instance: string): void {
    this.current.delete(instance);
  }
}

/**
 * Why this text must not be loaded for this instance: the controller's text checked by
 * rulesetProblem, and a publication-link table after it only as withPublicationLinks
 * renders it from that text.
 */
function appliedTextProblem(instance: string, text: string): string | undefined {
  const split = splitPublicationLinks(instance, text);
  if (split === undefined) return rulesetProblem(instance, text);
  const problem = rulesetProblem(instance, split.base);
  if (problem) return problem;
  try {
    if (withPublicationLinks(split.base, instance, split.links) === text) return undefined;
  } catch (err) {
    return (err as Error).message;
  }
  return 'the publication-link table is not the one the agent renders';
}

/**
 * An instance's table before its compiled ruleset arrives: the default policy alone
 * (inbound blocked, outbound allowed) on the instance's ports (an empty list would filter
 * nothing).
 */
export function defaultRuleset(instanceUuid: string, ports: readonly string[]): string {
  const policy = { instance: instanceUuid, table: tableName(instanceUuid), sets: [], inbound: [], outbound: [] };
  if (ports.length === 0) throw new TypeError(`firewall: the node-side default policy of ${instanceUuid} needs its ports`);
  return renderRuleset(instanceUuid, policy, ports);
}

/** Loads text in the namespace at netnsPath (undefined: this one); nftables' (or nft's) message when it was refused. */
export async function loadNft(netnsPath: string | undefined, text: string): Promise<string | undefined> {
  if (nativeNftAvailable()) {
    try {
      await nftApply(text, netnsPath);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  }
  const nft = ['nft', '-f', '-'];
  const res = await runWithInput(netnsPath === undefined ? 'nft' : 'nsenter', netnsPath === undefined ? nft.slice(1) : [`--net=${netnsPath}`, ...nft], text);
  return res.code === 0 ? undefined : (res.spawnError?.message ?? res.stderr.trim()) || `nft exited with ${res.code}`;
}

export interface FwFeedClientOptions {
  /** Controller REST base URL, e.g. http://10.0.0.1:8080 */
  controllerUrl: string;
  /** fetch carrying the node's credentials (TLS, token); default the global fetch. */
  fetch?: typeof fetch;
  nodeUuid: string;
  /** The node's namespace, where the tables go (default: the agent's own). */
  nodeNetns?: string;
  /**
   * The node-side ports of the instance's NICs plumbed here. Its table
   * filters on them as well as on those the controller's text names, which may not know
   * a NIC plumbed a moment ago yet.
   */
  portsOf?: (instanceUuid: string) => readonly string[];
  /**
   * The instance's publication links here (Docker -p), routed into it
   * beside its ports; given (even when empty), every node-side text carries their table.
   */
  linksOf?: (instanceUuid: string) => readonly string[];
  /**
   * Instances that have a table on this node right now (e.g. found by listing the
   * namespaces' nft tables at agent start). On a full resync, those missing from the
   * controller's list lose their table — tables a previous agent run left behind.
   */
  listInstalled?: () => Promise<string[]>;
  registry?: Registry;
  applier?: NftApplier;
  /** Long-poll duration asked of the controller (ms). */
  waitMs?: number;
  /** Delay before retrying after an error, and between retries of failed applies (ms). */
  retryMs?: number;
  /** Called after each round with what happened (for logs). */
  onRound?: (round: { revision: number; full: boolean; applied: string[]; failed: Map<string, string> }) => void;
}

/**
 * Long-polls GET /fw/nodes/:node/rulesets?since=REV and applies what comes back. A full
 * resync (first poll, or when the controller has no history for our revision) also
 * removes tables of instances that are no longer on this node. Rulesets that could not
 * be applied (namespace not there yet, nft failure) are retried until they succeed or a
 * newer ruleset replaces them.
 */
export class FwFeedClient {
  readonly applier: NftApplier;
  /** Last feed revision fully received. */
  revision = 0;
  /** Instances with a ruleset we could not apply yet, and why. */
  readonly failures = new Map<string, string>();
  private readonly pending = new Map<string, NodeRuleset>();
  /** Rulesets applied (the text loaded adds the ports and links here: textFor). */
  private readonly known = new Map<string, { text: string }>();
  private running = false;
  private abort: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private sleeper: { timer: NodeJS.Timeout; resolve: () => void } | undefined;
  private readonly listeners = new Set<() => void>();
  /** The node-wide state table is in place (loaded before any instance table). */
  private stateLoaded = false;
  /** Applying a round and protect() never interleave (an instance's tables go in order). */
  private applying: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: FwFeedClientOptions) {
    this.applier = opts.applier ?? new NftApplier(opts.registry ? { registry: opts.registry } : {});
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.abort?.abort();
    if (this.sleeper) {
      clearTimeout(this.sleeper.timer);
      this.sleeper.resolve();
    }
    await this.loop;
  }

  /** Resolves once a round has reached this revision with nothing left pending. */
  waitForRevision(revision: number, timeoutMs = 15_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.revision >= revision && this.pending.size === 0) {
          clearTimeout(timer);
          this.listeners.delete(check);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`fw feed: revision ${revision} not applied in ${timeoutMs} ms (at ${this.revision}, pending ${[...this.pending.keys()].join(',')}, failures ${[...this.failures.values()].join('; ')})`));
      }, timeoutMs);
      this.listeners.add(check);
      check();
    });
  }

  private async run(): Promise<void> {
    const retry = this.opts.retryMs ?? 1000;
    while (this.running) {
      try {
        const wait = this.pending.size > 0 ? Math.min(retry, this.opts.waitMs ?? 30_000) : (this.opts.waitMs ?? 30_000);
        const res = await this.poll(wait);
        if (!this.running) break;
        await this.exclusive(() => this.handle(res));
      } catch (err) {
        if (!this.running) break;
        // Dropped with an address the node no longer has: ask again at once, from the new one.
        if (err instanceof ConnectionsRenewedError) continue;
        this.failures.set('(feed)', (err as Error).message);
        await this.sleep(retry);
      }
    }
  }

  private async poll(waitMs: number): Promise<FeedResponse> {
    this.abort = new AbortController();
    const url = `${this.opts.controllerUrl.replace(/\/$/, '')}/fw/nodes/${this.opts.nodeUuid}/rulesets?since=${this.revision}&wait=${waitMs}`;
    const res = await (this.opts.fetch ?? fetch)(url, { signal: this.abort.signal });
    if (!res.ok) throw new Error(`feed ${res.status}: ${await res.text()}`);
    return (await res.json()) as FeedResponse;
  }

  /** Instance tables read the state table's marks: it goes first (again on a resync: force). */
  private async ensureStateTable(force: boolean): Promise<void> {
    if (this.stateLoaded && !force) return;
    const error = await this.applier.loadStateTable(this.opts.nodeNetns);
    if (error !== undefined) throw new Error(`node state table: ${error}`);
    this.stateLoaded = true;
  }

  /** The text loaded for a ruleset: on the instance's ports and publication links here too. */
  private textFor(uuid: string, r: { text: string }): string {
    return this.withLinks(uuid, withNodePorts(r.text, this.opts.portsOf?.(uuid) ?? []));
  }

  /** A node-side text, with the instance's publication links filtered too (when the agent has any kind of them). */
  private withLinks(uuid: string, text: string): string {
    return this.opts.linksOf ? withPublicationLinks(text, uuid, this.opts.linksOf(uuid)) : text;
  }

  /**
   * The instance's publication links changed (Docker -p): its table goes in again now,
   * before anything is published through a new link: its known ruleset, or else the
   * default policy. Nothing when it has no port here. Throws when
   * nft refuses (the caller must not publish).
   */
  async relink(uuid: string): Promise<void> {
    if ((this.opts.portsOf?.(uuid) ?? []).length === 0) return;
    await this.protect(uuid);
  }

  private async handle(res: FeedResponse): Promise<void> {
    this.failures.delete('(feed)');
    await this.ensureStateTable(res.full);
    if (res.full) {
      const present = new Set(res.rulesets.map((r) => r.uuid));
      const installed = this.opts.listInstalled ? await this.opts.listInstalled() : [];
      for (const uuid of new Set([...this.known.keys(), ...installed])) {
        if (present.has(uuid)) continue;
        this.pending.set(uuid, {
          uuid, table: '', text: renderRuleset(uuid, null), revision: res.revision, removed: true,
        });
      }
    }
    for (const r of res.rulesets) this.pending.set(r.uuid, r);
    const applied: string[] = [];
    for (const [uuid, r] of [...this.pending]) {
      const out = await this.applier.apply(uuid, this.opts.nodeNetns, this.textFor(uuid, r));
      if (!out.ok) {
        this.failures.set(uuid, out.error ?? 'apply failed');
        continue;
      }
      this.pending.delete(uuid);
      this.failures.delete(uuid);
      if (r.removed) {
        this.known.delete(uuid);
        this.applier.forget(uuid);
      } else this.known.set(uuid, r);
      if (out.changed) applied.push(uuid);
    }
    this.revision = res.revision;
    this.opts.onRound?.({ revision: res.revision, full: res.full, applied, failed: new Map(this.failures) });
    for (const l of [...this.listeners]) l();
  }

  private exclusive<T>(job: () => Promise<T>): Promise<T> {
    const run = this.applying.then(job, job);
    this.applying = run.catch(() => undefined);
    return run;
  }

  /**
   * Puts an instance's firewall in place now, before the first packet of a NIC about to
   * carry traffic: the ruleset the feed already has for it, or else the default policy,
   * which the compiled ruleset replaces when it arrives, on the ports of its NICs here
   * (portsOf, the new one among them). Throws when nft refuses (the caller must not let
   * traffic through).
   */
  protect(uuid: string): Promise<'ruleset' | 'default'> {
    return this.exclusive(async () => {
      const pending = this.pending.get(uuid);
      const ruleset = pending && !pending.removed ? pending : this.known.get(uuid);
      await this.ensureStateTable(false);
      const where = this.opts.nodeNetns;
      const text = ruleset ? this.textFor(uuid, ruleset) : this.withLinks(uuid, defaultRuleset(uuid, this.opts.portsOf?.(uuid) ?? []));
      const out = await this.applier.apply(uuid, where, text);
      if (!out.ok) throw new Error(`firewall of ${uuid} ${where === undefined ? "in the node's namespace" : `in ${where}`}: ${out.error ?? 'nft failed'}`);
      if (ruleset === undefined) return 'default';
      if (pending && !pending.removed) {
        this.pending.delete(uuid);
        this.failures.delete(uuid);
        this.known.set(uuid, pending);
      }
      return 'ruleset';
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.sleeper = undefined;
        resolve();
      }, ms);
      this.sleeper = { timer, resolve };
    });
  }
}

/**
 * Instance uuids whose rhumb tables exist in a namespace (undefined: this one): node-side
 * tables (family bridge, FwFeedClient's listInstalled) in the node's, or tables an older
 * agent loaded inside an instance's (family inet).
 */
export async function installedInstances(netnsPath: string | undefined, family: 'bridge' | 'inet'): Promise<string[]> {
  let tables: string;
  if (nativeNftAvailable()) {
    try {
      tables = await nftList('list tables', netnsPath);
    } catch {
      return [];
    }
  } else {
    const args = ['nft', 'list', 'tables'];
    const res = await runWithInput(netnsPath === undefined ? 'nft' : 'nsenter', netnsPath === undefined ? args.slice(1) : [`--net=${netnsPath}`, ...args], '');
    if (res.code !== 0) return [];
    tables = res.stdout;
  }
  const out: string[] = [];
  for (const m of tables.matchAll(new RegExp(`^table ${family} rhumb_fw_([0-9a-f]{32})$`, 'gm'))) {
    const h = m[1]!;
    out.push(`${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`);
  }
  return out;
}
