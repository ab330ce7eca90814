/**
 * The console's live feed: reads the records the view needs from the store, builds the
 * snapshot (./view.ts), and pushes a new one to every connected browser when the store
 * changes or an agent reports. It follows the store's change feed only while someone
 * watches; bursts are coalesced (one snapshot per `minGapMs` at most).
 */
import type { FabricVlanRecord, NetworkRecord, NicRecord } from '../napi/models/records.js';
import { NETWORK_PREFIX, NIC_PREFIX, VLAN_PREFIX } from '../napi/keys.js';
import { INSTANCE_PREFIX, RULE_PREFIX } from '../fw/registry.js';
import type { InstanceRecord, StoredRule } from '../fw/types.js';
import { GONE_PREFIX, NODE_STATE_PREFIX, OVERLAY_FENCE_KEY, UNDERLAY_PREFIX, VLOG_PREFIX, VNODE_PREFIX, type UnderlayRecord } from '../overlay/keys.js';
import type { Store, Watcher } from '../store/types.js';
import type { HealthBook } from './health.js';
import { type ConsoleSnapshot, buildSnapshot } from './view.js';

/** Largest number of records of one kind the console reads (the view says it was cut). */
export const MAX_RECORDS = 20_000;

/** Keys whose changes the view does not show (the shootdown log and its consumption churn constantly). */
function irrelevant(key: string): boolean {
  return [VLOG_PREFIX, NODE_STATE_PREFIX, GONE_PREFIX, VNODE_PREFIX, OVERLAY_FENCE_KEY].some((p) => key.startsWith(p));
}

export type SnapshotListener = (s: ConsoleSnapshot) => void;

export interface ConsoleFeedOptions {
  store: Store;
  health: HealthBook;
  /** Coalescing delay after a change. Default 30 ms. */
  debounceMs?: number;
  /** Shortest time between two pushed snapshots. Default 200 ms. */
  minGapMs?: number;
  onError?: (err: Error) => void;
}

export class ConsoleFeed {
  private readonly listeners = new Set<SnapshotListener>();
  private watcher: Watcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private building = false;
  private dirty = false;
  private lastPush = 0;
  private closed = false;

  constructor(private readonly o: ConsoleFeedOptions) {}

  async snapshot(): Promise<ConsoleSnapshot> {
    const { store } = this.o;
    let truncated = false;
    let revision = 0;
    const read = async <T>(prefix: string): Promise<T[]> => {
      const r = await store.range({ prefix, limit: MAX_RECORDS + 1 });
      revision = Math.max(revision, r.revision);
      if (r.kvs.length > MAX_RECORDS) truncated = true;
      const out: T[] = [];
      for (const kv of r.kvs.slice(0, MAX_RECORDS)) {
        try {
          out.push(JSON.parse(kv.value) as T);
        } catch {
          // A malformed record is left out of the picture.
        }
      }
      return out;
    };
    const [underlays, networks, vlans, nics, rules, instances] = await Promise.all([
      read<UnderlayRecord>(UNDERLAY_PREFIX),
      read<NetworkRecord>(NETWORK_PREFIX),
      read<FabricVlanRecord>(VLAN_PREFIX),
      read<NicRecord>(NIC_PREFIX),
      read<StoredRule>(RULE_PREFIX),
      read<InstanceRecord>(INSTANCE_PREFIX),
    ]);
    return buildSnapshot({
      revision,
      now: Date.now(),
      underlays,
      networks,
      vlans,
      nics,
      rules,
      instances,
      health: this.o.health.allNodes(),
      shootdowns: this.o.health.shootdowns(),
      truncated,
    });
  }

  /**
   * Calls fn with a snapshot soon, then with every new one, until the returned function
   * is called. Snapshots reach every listener in the order they were built.
   */
  subscribe(fn: SnapshotListener): () => void {
    this.listeners.add(fn);
    if (!this.watcher) void this.follow();
    else this.changed();
    return () => {
      this.listeners.delete(fn);
      if (this.listeners.size === 0) this.unfollow();
    };
  }

  get watchers(): number {
    return this.listeners.size;
  }

  /** Something the view shows changed: push a new snapshot soon. */
  changed(): void {
    if (this.closed || this.listeners.size === 0) return;
    if (this.building) {
      this.dirty = true;
      return;
    }
    if (this.timer) return;
    const wait = Math.max(this.o.debounceMs ?? 30, this.lastPush + (this.o.minGapMs ?? 200) - Date.now());
    this.timer = setTimeout(() => void this.push(), wait);
  }

  close(): void {
    this.closed = true;
    this.listeners.clear();
    this.unfollow();
  }

  private async push(): Promise<void> {
    this.timer = undefined;
    this.building = true;
    try {
      const s = await this.snapshot();
      this.lastPush = Date.now();
      for (const fn of this.listeners) fn(s);
    } catch (err) {
      this.o.onError?.(err as Error);
    } finally {
      this.building = false;
    }
    if (this.dirty) {
      this.dirty = false;
      this.changed();
    }
  }

  private async follow(): Promise<void> {
    if (this.closed) return;
    let from: number;
    try {
      from = (await this.o.store.revision()) + 1;
    } catch (err) {
      this.o.onError?.(err as Error);
      this.retryFollow();
      return;
    }
    if (this.watcher || this.listeners.size === 0 || this.closed) return;
    this.watcher = this.o.store.watch(
      { prefix: '', fromRevision: from },
      {
        onChange: (set) => {
          if (set.changes.some((c) => !irrelevant(c.key))) this.changed();
        },
        onError: (err) => {
          // Compaction or a lost backend: follow again from now (the next snapshot is whole).
          this.watcher = undefined;
          this.o.onError?.(err);
          this.retryFollow();
        },
      },
    );
    // Whatever happened before the watch started is in the next snapshot.
    this.changed();
  }

  private retryFollow(): void {
    setTimeout(() => {
      if (!this.watcher && this.listeners.size > 0) void this.follow();
    }, 1000).unref();
  }

  private unfollow(): void {
    this.watcher?.close();
    this.watcher = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
