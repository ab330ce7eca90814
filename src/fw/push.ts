/**
 * The controller side of incremental compilation and push.
 *
 * FwEngine is a reducer over a StoreView (src/store/view.ts): the view loads rules,
 * instance records and NICs from the store, then follows the store's change feed. Each committed change set updates a PolicyWorld, which says which
 * instances are affected; only those are recompiled. Changed rulesets are recorded per
 * hosting node (NIC cn_uuid) at the change set's store revision, so an agent long-polling
 * `since=REV` gets exactly what changed on its node. Revisions are store revisions: they
 * survive controller restarts and agree between replicas; an agent whose `since` is
 * older than what this engine has history for (it started later, or trimmed) gets a full
 * resync.
 */
import { EventEmitter } from 'node:events';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { NIC_PREFIX, type NicRecord } from './nics.js';
import type { Change, ChangeSet, Store } from '../store/types.js';
import { StoreView } from '../store/view.js';
import { canonicalAddress } from './addr.js';
import { PolicyWorld, tableName } from './compile.js';
import { renderRuleset } from './nft.js';
import { hostPortName } from '../net/ports.js';
import { type CheckResult, checkRulesets } from './nft-check.js';
import { FW_PREFIX, INSTANCE_PREFIX, RULE_PREFIX, toPolicyRule } from './registry.js';
import type { CompiledPolicy, InstanceRecord, InstanceView, StoredRule } from './types.js';

export interface NodeRuleset {
  uuid: string;
  table: string;
  /**
   * Complete nft -f text (a table replacement, or only the table's removal) for the
   * node's namespace: the instance's policy on its ports (renderRuleset).
   */
  text: string;
  /** Store revision at which this ruleset last changed for this node. */
  revision: number;
  /** The instance no longer lives on this node: apply (removes the table) and forget it. */
  removed?: true;
}

export interface FeedResponse {
  revision: number;
  full: boolean;
  rulesets: NodeRuleset[];
}

interface NicFacts {
  instance: string;
  owner?: string;
  ip?: string;
  cn?: string;
}

export interface FwMetrics {
  compileSeconds: Histogram;
  rulesetsPushed: Counter;
  rejected: Counter;
  /** Feed requests held open right now (the routes bound them). */
  feedWaiting: Gauge;
}

/** Metrics live in the given registry; created once per registry. */
export function fwMetrics(registry: Registry): FwMetrics {
  const get = <T>(name: string): T | undefined => registry.getSingleMetric(name) as T | undefined;
  return {
    compileSeconds:
      get<Histogram>('rhumb_fw_compile_seconds') ??
      new Histogram({
        name: 'rhumb_fw_compile_seconds',
        help: 'Time to recompile the instances affected by one change set',
        buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
        registers: [registry],
      }),
    rulesetsPushed:
      get<Counter>('rhumb_fw_rulesets_pushed_total') ??
      new Counter({ name: 'rhumb_fw_rulesets_pushed_total', help: 'Rulesets delivered to node agents', registers: [registry] }),
    feedWaiting:
      get<Gauge>('rhumb_fw_feed_waiting') ??
      new Gauge({ name: 'rhumb_fw_feed_waiting', help: 'Ruleset feed requests held open (long-poll)', registers: [registry] }),
    rejected:
      get<Counter>('rhumb_fw_rulesets_rejected_total') ??
      new Counter({
        name: 'rhumb_fw_rulesets_rejected_total',
        help: 'Compiled rulesets nft -c rejected (the previous ruleset stays published)',
        registers: [registry],
      }),
  };
}

/** Written by the engine's view to learn how far its feed has come (see store/view.ts). */
const FW_FENCE_KEY = `${FW_PREFIX}fence`;

export interface FwEngineOptions {
  /** Check every changed ruleset before publishing it (e.g. checkRuleset: nft -c). */
  verify?: (text: string) => Promise<CheckResult>;
  /** Tombstones older than this many revisions are dropped (agents further behind resync). */
  historyRevisions?: number;
}

export class FwEngine {
  /** Replaced (not mutated in place) when the engine reloads after losing the feed. */
  world = new PolicyWorld();
  readonly metrics: FwMetrics;
  private readonly events = new EventEmitter();
  private readonly records = new Map<string, InstanceRecord>();
  private readonly nics = new Map<string, NicFacts>();
  private readonly nicsByInstance = new Map<string, Set<string>>();
  /** node -> instance -> latest ruleset published to that node. */
  private readonly perNode = new Map<string, Map<string, NodeRuleset>>();
  /** instance -> its current text and nodes. */
  private readonly published = new Map<string, { text: string; nodes: string[]; policy: CompiledPolicy | null }>();
  private readonly feedView: StoreView;
  /** Changes of a load in progress, applied as one bulk set when it ends. */
  private loaded: Change[] = [];
  private horizon = 0;
  /** Last store revision fully processed. */
  revision = 0;
  private failed: Error | undefined;
  /** Instances whose latest compiled ruleset nft rejected, with nft's message. */
  readonly rejections = new Map<string, string>();

  constructor(
    private readonly store: Store,
    registry: Registry,
    private readonly opts: FwEngineOptions = {},
  ) {
    this.metrics = fwMetrics(registry);
    this.events.setMaxListeners(0);
    this.feedView = new StoreView(
      {
        store,
        prefixes: [RULE_PREFIX, INSTANCE_PREFIX, NIC_PREFIX],
        // Only what the engine reads (etcd follows the range from fw/ to napi/nics/).
        watchPrefixes: [FW_PREFIX, NIC_PREFIX],
        fenceKey: FW_FENCE_KEY,
        pageSize: 5000,
        retryBaseMs: 200,
        retryMaxMs: 5000,
        name: 'firewall engine',
      },
      {
        beginLoad: () => {
          this.loaded = [];
        },
        loadPage: (kvs) => {
          for (const kv of kvs) this.loaded.push({ type: 'put', key: kv.key, value: kv.value });
        },
        endLoad: (rev0, reload) => this.endLoad(rev0, reload),
        apply: (set) => this.apply(set),
        feedLost: (err) => {
          this.failed = err;
          this.events.emit('revision');
        },
      },
    );
  }

  async start(): Promise<void> {
    await this.feedView.start();
  }

  /**
   * A (re)load: on a reload (the feed was lost: compacted history, backend hiccup) every
   * state is rebuilt at the new revision. Agents then ask with an older `since` than our
   * horizon and resync fully.
   */
  private async endLoad(rev0: number, reload: boolean): Promise<void> {
    const changes = this.loaded;
    this.loaded = [];
    if (reload) {
      this.world = new PolicyWorld();
      this.records.clear();
      this.nics.clear();
      this.nicsByInstance.clear();
      this.perNode.clear();
      this.published.clear();
      this.rejections.clear();
    }
    this.failed = undefined;
    await this.apply({ revision: rev0, changes }, true);
    this.horizon = rev0;
  }

  stop(): void {
    this.feedView.close();
    this.events.emit('revision');
  }

  /** Resolves once the engine has processed everything committed before this call. */
  async sync(timeoutMs = 10_000): Promise<void> {
    const target = await this.store.revision();
    this.feedView.fence();
    await this.waitFor(() => this.revision >= target, timeoutMs);
  }

  private waitFor(done: () => boolean, timeoutMs: number): Promise<boolean> {
    if (done()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = () => {
        if (done() || this.failed) finish(done());
      };
      const finish = (v: boolean) => {
        clearTimeout(timer);
        this.events.off('revision', check);
        resolve(v);
      };
      const timer = setTimeout(() => finish(done()), timeoutMs);
      this.events.on('revision', check);
    });
  }

  // ---- the view of an instance: registry record + NICs ----

  /** The node-side ports of an instance's NICs (the host ends named from their MACs). */
  private ports(uuid: string): string[] {
    return [...(this.nicsByInstance.get(uuid) ?? [])].map((mac) => hostPortName(mac)).sort();
  }

  /**
   * Who owns an instance, for access checks: the one owner its registry record and its
   * NICs all name; undefined when they disagree or name none; null when the instance is
   * unknown. Current as of the last sync().
   */
  instanceOwner(uuid: string): string | undefined | null {
    const rec = this.records.get(uuid);
    const macs = this.nicsByInstance.get(uuid);
    if (!rec && !macs) return null;
    const owners = new Set<string | undefined>();
    if (rec) owners.add(rec.owner_uuid);
    for (const mac of macs ?? []) owners.add(this.nics.get(mac)?.owner);
    return owners.size === 1 ? [...owners][0] : undefined;
  }

  view(uuid: string): InstanceView | undefined {
    const rec = this.records.get(uuid);
    const macs = this.nicsByInstance.get(uuid);
    if (!rec && !macs) return undefined;
    const addresses = new Set<string>();
    const nodes = new Set<string>();
    let nicOwner: string | undefined;
    for (const mac of macs ?? []) {
      const n = this.nics.get(mac)!;
      if (n.ip) addresses.add(n.ip);
      if (n.cn) nodes.add(n.cn);
      nicOwner ??= n.owner;
    }
    const v: InstanceView = {
      uuid,
      tags: rec?.tags ?? {},
      firewall_enabled: rec?.firewall_enabled ?? false,
      addresses: [...addresses].sort(),
      nodes: [...nodes].sort(),
    };
    const owner = rec?.owner_uuid ?? nicOwner;
    if (owner !== undefined) v.owner_uuid = owner;
    return v;
  }

  // ---- change processing ----

  private async apply(set: ChangeSet, bulk = false): Promise<void> {
    const started = process.hrtime.bigint();
    const touchedInstances = new Set<string>();
    const affected = new Set<string>();
    // Instances first, rules after: on a bulk load every instance is then indexed before
    // any rule needs it, instead of each instance upsert re-walking every rule's matches.
    const ruleChanges: Array<{ uuid: string; value?: string }> = [];
    for (const ch of set.changes) {
      if (ch.key.startsWith(RULE_PREFIX)) {
        const uuid = ch.key.slice(RULE_PREFIX.length);
        ruleChanges.push(ch.type === 'put' && ch.value !== undefined ? { uuid, value: ch.value } : { uuid });
      } else if (ch.key.startsWith(INSTANCE_PREFIX)) {
        const uuid = ch.key.slice(INSTANCE_PREFIX.length);
        if (ch.type === 'put' && ch.value !== undefined) this.records.set(uuid, JSON.parse(ch.value) as InstanceRecord);
        else this.records.delete(uuid);
        touchedInstances.add(uuid);
      } else if (ch.key.startsWith(NIC_PREFIX)) {
        const mac = ch.key.slice(NIC_PREFIX.length);
        const old = this.nics.get(mac);
        if (old) {
          touchedInstances.add(old.instance);
          this.nicsByInstance.get(old.instance)?.delete(mac);
          if (this.nicsByInstance.get(old.instance)?.size === 0) this.nicsByInstance.delete(old.instance);
          this.nics.delete(mac);
        }
        if (ch.type === 'put' && ch.value !== undefined) {
          const nic = JSON.parse(ch.value) as NicRecord;
          if (nic.belongs_to_uuid && nic.belongs_to_type !== 'server') {
            const facts: NicFacts = { instance: nic.belongs_to_uuid };
            if (nic.owner_uuid) facts.owner = nic.owner_uuid;
            const ip = nic.ip ? canonicalAddress(nic.ip) : undefined;
            if (ip) facts.ip = ip;
            if (nic.cn_uuid) facts.cn = nic.cn_uuid;
            this.nics.set(mac, facts);
            let s = this.nicsByInstance.get(facts.instance);
            if (!s) this.nicsByInstance.set(facts.instance, (s = new Set()));
            s.add(mac);
            touchedInstances.add(facts.instance);
          }
        }
      } else if (!ch.key.startsWith(FW_PREFIX)) {
        continue;
      }
    }
    for (const uuid of touchedInstances) {
      const v = this.view(uuid);
      const res = v ? this.world.upsertInstance(v) : this.world.deleteInstance(uuid);
      for (const u of res) affected.add(u);
    }
    for (const { uuid, value } of ruleChanges) {
      let res: Set<string>;
      try {
        res = value !== undefined ? this.world.upsertRule(toPolicyRule(JSON.parse(value) as StoredRule)) : this.world.deleteRule(uuid);
      } catch {
        // A stored rule that no longer parses is treated as absent.
        res = this.world.deleteRule(uuid);
      }
      for (const u of res) affected.add(u);
    }
    const notify = new Set<string>();
    if (affected.size > 0) await this.publish(affected, set.revision, notify, !bulk);
    if (affected.size > 0) this.metrics.compileSeconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
    this.revision = set.revision;
    for (const node of notify) this.events.emit(`node:${node}`);
    this.events.emit('revision');
  }

  private async publish(affected: Set<string>, revision: number, notify: Set<string>, verify: boolean): Promise<void> {
    const compiled = this.world.compileMany(affected);
    const texts = new Map<string, string>();
    for (const [uuid, policy] of compiled) texts.set(uuid, renderRuleset(uuid, policy, this.ports(uuid)));
    // The initial load is not re-checked (rules were checked when written; an agent's
    // nft -f is atomic anyway): checking every instance's table at startup is too slow.
    if (this.opts.verify && verify) {
      // Only new table definitions need checking; a removal cannot be rejected.
      const todo = [...compiled].filter(([uuid, p]) => p !== null && texts.get(uuid) !== this.published.get(uuid)?.text).map(([u]) => u);
      const results = await checkRulesets(todo.map((u) => texts.get(u)!), this.opts.verify);
      todo.forEach((uuid, i) => {
        const res = results[i]!;
        if (res.ok) {
          this.rejections.delete(uuid);
          return;
        }
        // Never publish what nft rejects: the previous ruleset stays in force.
        this.metrics.rejected.inc();
        this.rejections.set(uuid, res.error ?? 'rejected');
        const prev = this.published.get(uuid);
        texts.set(uuid, prev?.text ?? renderRuleset(uuid, null));
        compiled.set(uuid, prev?.policy ?? null);
      });
    }
    for (const [uuid, policy] of compiled) {
      const inst = this.world.getInstance(uuid);
      const nodes = inst?.nodes ?? [];
      const text = texts.get(uuid)!;
      const prev = this.published.get(uuid);
      const prevNodes = prev?.nodes ?? [];
      for (const node of prevNodes) {
        if (nodes.includes(node)) continue;
        this.nodeMap(node).set(uuid, {
          uuid, table: tableName(uuid), text: renderRuleset(uuid, null), revision, removed: true,
        });
        notify.add(node);
      }
      for (const node of nodes) {
        const cur = this.perNode.get(node)?.get(uuid);
        if (cur && !cur.removed && cur.text === text) continue;
        this.nodeMap(node).set(uuid, { uuid, table: tableName(uuid), text, revision });
        notify.add(node);
      }
      if (inst) this.published.set(uuid, { text, nodes, policy });
      else this.published.delete(uuid);
    }
    this.trim(revision);
  }

  private nodeMap(node: string): Map<string, NodeRuleset> {
    let m = this.perNode.get(node);
    if (!m) this.perNode.set(node, (m = new Map()));
    return m;
  }

  /** Drops tombstones older than the history window; agents further behind resync. */
  private trim(revision: number): void {
    const keep = this.opts.historyRevisions ?? 100_000;
    const cutoff = revision - keep;
    if (cutoff <= this.horizon) return;
    for (const m of this.perNode.values()) {
      for (const [uuid, r] of m) if (r.removed && r.revision <= cutoff) m.delete(uuid);
    }
    this.horizon = cutoff;
  }

  /** The compiled policy currently published for an instance (null: no table). */
  policy(uuid: string): CompiledPolicy | null {
    return this.published.get(uuid)?.policy ?? null;
  }

  /** The nft text currently published for an instance (node-side form). */
  rulesetText(uuid: string): string | undefined {
    return this.published.get(uuid)?.text;
  }

  /** What a node's agent should apply after `since` (long-polls up to waitMs for a change). */
  async feed(node: string, since: number, waitMs: number): Promise<FeedResponse> {
    const storeRev = await this.store.revision();
    if (since <= 0 || since < this.horizon || since > storeRev) return this.full(node);
    const changed = () => [...(this.perNode.get(node)?.values() ?? [])].some((r) => r.revision > since);
    if (!changed() && waitMs > 0) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.events.off(`node:${node}`, done);
          this.events.off('revision', onRev);
          resolve();
        };
        const onRev = () => {
          if (this.failed || !this.feedView.following) done();
        };
        const timer = setTimeout(done, waitMs);
        this.events.on(`node:${node}`, done);
        this.events.on('revision', onRev);
      });
    }
    const rulesets = [...(this.perNode.get(node)?.values() ?? [])]
      .filter((r) => r.revision > since)
      .sort((a, b) => (a.uuid < b.uuid ? -1 : 1));
    this.metrics.rulesetsPushed.inc(rulesets.length);
    return { revision: Math.max(this.revision, since), full: false, rulesets };
  }

  private full(node: string): FeedResponse {
    const rulesets = [...(this.perNode.get(node)?.values() ?? [])]
      .filter((r) => !r.removed)
      .sort((a, b) => (a.uuid < b.uuid ? -1 : 1));
    this.metrics.rulesetsPushed.inc(rulesets.length);
    return { revision: this.revision, full: true, rulesets };
  }
}
