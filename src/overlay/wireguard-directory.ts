/**
 * The controller's directory of WireGuard peers: the nodes' underlay records (ovl/ul/) and
 * WireGuard records (ovl/ulwg/node/) and the deployment's setting (ovl/ulwg/cfg), a reducer over a
 * StoreView of those prefixes only (../store/view.ts: load, follow, reload on a lost
 * feed, fences on etcd), answering agents' long-polls with what changed since the revision
 * they last saw (every node's view once, then only the nodes that changed: one small
 * answer per change, however many nodes there are).
 *
 * While the setting is `prepare` on its way to `wireguard`, the directory switches it to
 * `wireguard` once every node has published a usable key and that has held for settleMs
 * (so every agent has configured the last node's key before anyone sends through it).
 * Replicas may all try: the write is conditional on the setting they read, one wins.
 */
import { EventEmitter } from 'node:events';
import { type ChangeSet, type KeyValue, type Store, StoreClosedError } from '../store/types.js';
import { StoreView } from '../store/view.js';
import { UNDERLAY_PREFIX, type UnderlayRecord } from './keys.js';
import {
  DEFAULT_SETTING,
  ENCRYPTION_KEY,
  type EncryptionSetting,
  type PeerView,
  type PeersFeed,
  WG_NODE_PREFIX,
  WG_PREFIX,
  type WireguardNodeRecord,
  isEncryptionMode,
  peerViews,
  tunnelSubnetProblem,
} from './wireguard.js';

export interface DirectoryOptions {
  /** How long every node must have been ready before prepare becomes wireguard. Default 1000 ms. */
  settleMs?: number;
  /** Removed nodes remembered for incremental answers; older `since` get a full answer. Default 10000. */
  maxTombstones?: number;
  onError?: (err: Error) => void;
}

/** Written by the view on etcd to learn how far its feed has come (see ../store/view.ts). */
const WG_FENCE_KEY = `${WG_PREFIX}fence`;

export interface Readiness {
  nodes: number;
  ready: number;
  /** Nodes that cannot be reached encrypted yet, with why. */
  not_ready: Array<{ cn_uuid: string; problem: string }>;
}

function parseSetting(value: string | undefined): EncryptionSetting {
  if (value === undefined) return { ...DEFAULT_SETTING };
  try {
    const s = JSON.parse(value) as Partial<EncryptionSetting>;
    const subnet = typeof s.tunnel_subnet === 'string' && !tunnelSubnetProblem(s.tunnel_subnet) ? s.tunnel_subnet : DEFAULT_SETTING.tunnel_subnet;
    return {
      mode: isEncryptionMode(s.mode) ? s.mode : 'none',
      ...(s.target === 'wireguard' ? { target: 'wireguard' as const } : {}),
      tunnel_subnet: subnet,
      ...(typeof s.changed === 'string' ? { changed: s.changed } : {}),
    };
  } catch {
    return { ...DEFAULT_SETTING };
  }
}

export class WireguardDirectory {
  private setting: EncryptionSetting = { ...DEFAULT_SETTING };
  /** The store revision that last wrote the setting (its key's modRevision; 0: never written). */
  private settingRev = 0;
  private readonly underlay = new Map<string, string>();
  private readonly records = new Map<string, Partial<WireguardNodeRecord>>();
  private views = new Map<string, PeerView>();
  /** cn -> revision at which its view last changed. */
  private readonly changedAt = new Map<string, number>();
  /** cn -> revision at which it was removed. */
  private readonly tombstones = new Map<string, number>();
  /** The setting's (or the subnet's) last change: answers after it are full. */
  private settingChangedAt = 0;
  /** Incremental answers need since >= horizon. */
  private horizon = 0;
  /** Last revision that changed a view or the setting. */
  private lastRelevant = 0;
  private readonly events = new EventEmitter();
  private stopped = false;
  private settleTimer: NodeJS.Timeout | undefined;
  private readonly view: StoreView;
  /** What a (re)load has read so far, applied as one change set at its end. */
  private loading: KeyValue[] = [];
  /** The revision of the last load or change set reduced. */
  private reduced = 0;

  constructor(
    private readonly store: Store,
    private readonly opts: DirectoryOptions = {},
  ) {
    this.events.setMaxListeners(0);
    this.view = new StoreView(
      {
        store,
        prefixes: [UNDERLAY_PREFIX, WG_PREFIX],
        fenceKey: WG_FENCE_KEY,
        name: 'WireGuard peer directory',
        logger: {
          warn: (obj, msg) => this.opts.onError?.(new Error(`${msg ?? 'peer directory'}: ${JSON.stringify(obj)}`)),
          info: () => undefined,
        },
      },
      {
        beginLoad: () => {
          this.loading = [];
        },
        loadPage: (kvs) => {
          this.loading.push(...kvs);
        },
        endLoad: (revision, reload) => this.endLoad(revision, reload),
        apply: (set) => this.apply(set),
      },
    );
  }

  /**
   * Last store revision whose changes the directory reflects. The view advances its own
   * revision only after the reducer returns, and answers to waiting long-polls are made
   * before that: so the reducer's last revision counts too.
   */
  get revision(): number {
    return Math.max(this.view.revision, this.reduced);
  }

  /** Loads and follows; resolves once caught up with the store. */
  start(): Promise<void> {
    return this.view.start();
  }

  /**
   * A (re)load's state replaces the old one. After a reload (the feed was lost) every
   * answer from before it is answered in full: agents resync.
   */
  private endLoad(revision: number, reload: boolean): void {
    const kvs = this.loading;
    this.loading = [];
    this.reduced = revision;
    this.underlay.clear();
    this.records.clear();
    const cfg = kvs.find((kv) => kv.key === ENCRYPTION_KEY);
    this.setting = parseSetting(cfg?.value);
    this.settingRev = cfg?.modRevision ?? 0;
    for (const kv of kvs) this.applyRecord({ type: 'put', key: kv.key, value: kv.value });
    this.recompute(revision);
    this.horizon = revision;
    this.settingChangedAt = revision;
    this.lastRelevant = revision;
    if (reload) this.events.emit('change');
    this.maybeAdvance();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.settleTimer);
    this.view.close();
    this.events.emit('change');
  }

  get encryption(): EncryptionSetting {
    return { ...this.setting };
  }

  /** The setting's key revision, for a conditional write. */
  get settingRevision(): number {
    return this.settingRev;
  }

  /** A node's underlay or WireGuard record changed; false for any other key. */
  private applyRecord(ch: ChangeSet['changes'][number]): boolean {
    if (ch.key.startsWith(UNDERLAY_PREFIX)) {
      const cn = ch.key.slice(UNDERLAY_PREFIX.length);
      const rec = ch.type === 'put' && ch.value !== undefined ? (JSON.parse(ch.value) as UnderlayRecord) : undefined;
      if (rec?.ip) this.underlay.set(cn, rec.ip);
      else this.underlay.delete(cn);
      return true;
    }
    if (ch.key.startsWith(WG_NODE_PREFIX)) {
      const cn = ch.key.slice(WG_NODE_PREFIX.length);
      if (ch.type === 'put' && ch.value !== undefined) {
        try {
          this.records.set(cn, JSON.parse(ch.value) as Partial<WireguardNodeRecord>);
        } catch {
          this.records.set(cn, {});
        }
      } else this.records.delete(cn);
      return true;
    }
    return false;
  }

  private apply(set: ChangeSet): void {
    let touched = false;
    let settingChanged = false;
    this.reduced = Math.max(this.reduced, set.revision);
    for (const ch of set.changes) {
      if (this.applyRecord(ch)) {
        touched = true;
      } else if (ch.key === ENCRYPTION_KEY) {
        const next = parseSetting(ch.type === 'put' ? ch.value : undefined);
        if (next.tunnel_subnet !== this.setting.tunnel_subnet) touched = true;
        this.setting = next;
        this.settingRev = ch.type === 'put' ? set.revision : 0;
        settingChanged = true;
      }
    }
    if (settingChanged) this.settingChangedAt = set.revision;
    if (touched) this.recompute(set.revision);
    if (touched || settingChanged) {
      this.lastRelevant = set.revision;
      this.events.emit('change');
      this.maybeAdvance();
    }
  }

  /** Views of every node again; those that differ from before are marked changed at rev. */
  private recompute(rev: number): void {
    const next = peerViews(this.underlay, this.records, this.setting.tunnel_subnet);
    for (const [cn, v] of next) {
      const old = this.views.get(cn);
      if (!old || JSON.stringify(old) !== JSON.stringify(v)) this.changedAt.set(cn, rev);
      this.tombstones.delete(cn);
    }
    for (const cn of this.views.keys()) {
      if (next.has(cn)) continue;
      this.changedAt.delete(cn);
      this.tombstones.set(cn, rev);
    }
    const max = this.opts.maxTombstones ?? 10_000;
    if (this.tombstones.size > max) {
      // Oldest first (insertion order follows revisions): answers older than the last dropped are full.
      for (const [cn, r] of this.tombstones) {
        if (this.tombstones.size <= max) break;
        this.tombstones.delete(cn);
        this.horizon = Math.max(this.horizon, r);
      }
    }
    this.views = next;
  }

  /** Every node's view now. */
  peers(): PeerView[] {
    return [...this.views.values()].sort((a, b) => (a.cn_uuid < b.cn_uuid ? -1 : 1));
  }

  readiness(): Readiness {
    const notReady = this.peers()
      .filter((v) => v.problem)
      .map((v) => ({ cn_uuid: v.cn_uuid, problem: v.problem! }));
    return { nodes: this.views.size, ready: this.views.size - notReady.length, not_ready: notReady };
  }

  private answer(since: number): PeersFeed {
    const full = since <= 0 || since < this.horizon || since < this.settingChangedAt;
    const encryption = this.encryption;
    if (full) return { revision: this.revision, full: true, encryption, peers: this.peers(), removed: [] };
    const peers = [...this.changedAt].filter(([, r]) => r > since).map(([cn]) => this.views.get(cn)!);
    const removed = [...this.tombstones].filter(([, r]) => r > since).map(([cn]) => cn);
    return { revision: this.revision, full: false, encryption, peers, removed };
  }

  private changedSince(since: number): boolean {
    if (since <= 0 || since < this.horizon || since < this.settingChangedAt) return true;
    for (const r of this.changedAt.values()) if (r > since) return true;
    for (const r of this.tombstones.values()) if (r > since) return true;
    return false;
  }

  /**
   * What changed after `since`, waiting up to waitMs for a change when nothing has. An
   * answer with nothing in it carries the current revision: ask again from there.
   */
  async feed(since: number, waitMs: number): Promise<PeersFeed> {
    if (waitMs > 0 && !this.changedSince(since) && !this.stopped) {
      await new Promise<void>((resolve) => {
        const done = () => {
          if (!this.changedSince(since) && !this.stopped) return;
          clearTimeout(timer);
          this.events.off('change', done);
          resolve();
        };
        const timer = setTimeout(() => {
          this.events.off('change', done);
          resolve();
        }, waitMs);
        this.events.on('change', done);
      });
    }
    return this.answer(since);
  }

  /** Resolves once the directory has processed the store up to rev (or after timeoutMs). */
  async waitForRevision(rev: number, timeoutMs = 5000): Promise<void> {
    if (!this.stopped) await this.view.waitForRevision(rev, timeoutMs);
  }

  // ---- changing the setting ----

  /**
   * Asks for a mode (PUT /encryption, `rhumb controller --encryption`). wireguard while
   * some node is not ready becomes prepare on its way there (force: wireguard at once,
   * those nodes are cut off until they are). Optionally changes the tunnel subnet. Returns
   * the setting written (or unchanged).
   */
  async request(mode: EncryptionSetting['mode'], opts: { force?: boolean; tunnelSubnet?: string } = {}): Promise<EncryptionSetting> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const kv = await this.store.get(ENCRYPTION_KEY);
      const current = parseSetting(kv?.value);
      await this.waitForRevision(kv?.modRevision ?? 0);
      const subnet = opts.tunnelSubnet ?? current.tunnel_subnet;
      let next: EncryptionSetting;
      if (mode === 'wireguard' && !opts.force && current.mode !== 'wireguard' && this.readiness().not_ready.length > 0) {
        next = { mode: 'prepare', target: 'wireguard', tunnel_subnet: subnet };
      } else next = { mode, tunnel_subnet: subnet };
      if (current.mode === next.mode && current.target === next.target && current.tunnel_subnet === next.tunnel_subnet) return current;
      next.changed = new Date().toISOString();
      const res = await this.store.commit({
        preconditions: [kv ? { key: ENCRYPTION_KEY, modRevision: kv.modRevision } : { key: ENCRYPTION_KEY, absent: true }],
        ops: [{ type: 'put', key: ENCRYPTION_KEY, value: JSON.stringify(next) }],
      });
      if (res.ok) {
        await this.waitForRevision(res.revision);
        return next;
      }
    }
    throw new Error('the encryption setting kept changing under this request; try again');
  }

  // ---- prepare -> wireguard ----

  private maybeAdvance(): void {
    if (this.setting.mode !== 'prepare' || this.setting.target !== 'wireguard') return;
    if (this.readiness().not_ready.length > 0) {
      clearTimeout(this.settleTimer);
      this.settleTimer = undefined;
      return;
    }
    clearTimeout(this.settleTimer);
    const seen = this.lastRelevant;
    this.settleTimer = setTimeout(() => void this.advance(seen), this.opts.settleMs ?? 1000);
    this.settleTimer.unref();
  }

  /** Still every node ready, and nothing changed since `seen`: switch to wireguard. */
  private async advance(seen: number): Promise<void> {
    this.settleTimer = undefined;
    if (this.stopped || this.setting.mode !== 'prepare' || this.setting.target !== 'wireguard') return;
    if (this.readiness().not_ready.length > 0 || this.lastRelevant !== seen) return;
    const next: EncryptionSetting = { mode: 'wireguard', tunnel_subnet: this.setting.tunnel_subnet, changed: new Date().toISOString() };
    try {
      await this.store.commit({
        preconditions: [this.settingRev > 0 ? { key: ENCRYPTION_KEY, modRevision: this.settingRev } : { key: ENCRYPTION_KEY, absent: true }],
        ops: [{ type: 'put', key: ENCRYPTION_KEY, value: JSON.stringify(next) }],
      });
    } catch (err) {
      if (!(err instanceof StoreClosedError)) this.opts.onError?.(err as Error);
    }
  }
}
