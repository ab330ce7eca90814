/**
 * The etcd change feed behind EtcdStore.watch: one etcd watch stream per Store watcher,
 * re-created on any reachable member from the last revision received (no gap, no
 * duplicate), one ChangeSet per etcd transaction. See src/store/etcd.ts for the contract.
 */
import type { Etcd3, IDuplexStream, IWatchRequest, IWatchResponse } from 'etcd3';
import { type Change, type ChangeSet, CompactedError, type WatchHandlers, type Watcher } from './types.js';
import { SerialDelivery } from './feed.js';

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

export interface FeedContext {
  client: Etcd3;
  base: number;
  nsLength: number;
  isMarker(key: Buffer): boolean;
  remove(feed: EtcdFeed): void;
}

type WatchStream = IDuplexStream<IWatchRequest, IWatchResponse>;

/** One Store watcher: its own etcd watch stream, re-created from the last revision seen. */
export class EtcdFeed implements Watcher {
  private closed = false;
  private stream: WatchStream | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private failures = 0;
  /** etcd revision up to which everything has been received (and queued). */
  private lastSeen: number;
  private readonly delivery: SerialDelivery;

  constructor(
    private readonly ctx: FeedContext,
    private readonly range: { key: Buffer; range_end: Buffer },
    /** Watching the whole namespace: deliver change sets even when only the marker changed. */
    private readonly wholeNamespace: boolean,
    /** Narrows what the etcd range delivers to the watched prefixes (null: all of it). */
    private readonly select: ((set: ChangeSet) => ChangeSet | null) | null,
    private readonly fromRevision: number,
    handlers: WatchHandlers,
  ) {
    this.lastSeen = fromRevision - 1 + ctx.base;
    this.delivery = new SerialDelivery(handlers, () => this.release());
  }

  start(): void {
    if (!Number.isInteger(this.fromRevision) || this.fromRevision < 1) {
      queueMicrotask(() => this.fail(new CompactedError(this.fromRevision, 0)));
      return;
    }
    this.connect();
  }

  private connect(): void {
    this.reconnectTimer = null;
    if (this.closed) return;
    this.ctx.client.watchClient.watch().then(
      (stream) => {
        if (this.closed) {
          stream.on('error', () => undefined);
          stream.cancel();
          return;
        }
        this.stream = stream;
        stream.on('data', (res: IWatchResponse) => {
          if (this.stream === stream) this.onResponse(res);
        });
        stream.on('error', (err: Error) => this.lost(stream, err));
        stream.on('end', () => this.lost(stream, new Error('watch stream ended')));
        // One revision early: etcd only reports compaction for revisions below its
        // compaction point, and the Store contract includes the point itself.
        stream.write({ create_request: { ...this.range, start_revision: Math.max(1, this.lastSeen) } });
      },
      (err: unknown) => this.lost(null, asError(err)),
    );
  }

  private lost(stream: WatchStream | null, _err: Error): void {
    if (this.closed || (stream !== null && stream !== this.stream)) return;
    this.stream = null;
    if (stream) {
      try {
        stream.cancel();
      } catch {
        /* already gone */
      }
    }
    // Keep following: the cluster (or another member) comes back; resume where we were.
    const delay = Math.min(50 * 2 ** this.failures, 2000);
    this.failures++;
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private onResponse(res: IWatchResponse): void {
    if (res.canceled) {
      const compacted = Number(res.compact_revision);
      if (compacted > 0) {
        this.fail(new CompactedError(this.lastSeen + 1 - this.ctx.base, Math.max(0, compacted - this.ctx.base)));
        return;
      }
      this.lost(this.stream, new Error(`watch canceled: ${res.cancel_reason}`));
      return;
    }
    if (res.created) this.failures = 0;
    // Events come in revision order; one transaction's events share its revision.
    let current: ChangeSet | null = null;
    for (const ev of res.events) {
      const rev = Number(ev.kv.mod_revision);
      if (rev <= this.lastSeen) continue;
      if (current === null || current.revision !== rev - this.ctx.base) {
        if (current) this.enqueue(current);
        current = { revision: rev - this.ctx.base, changes: [] };
      }
      if (this.ctx.isMarker(ev.kv.key)) continue;
      const key = ev.kv.key.subarray(this.ctx.nsLength).toString('utf8');
      const change: Change = String(ev.type).toUpperCase() === 'DELETE' ? { type: 'del', key } : { type: 'put', key, value: ev.kv.value.toString('utf8') };
      current.changes.push(change);
    }
    if (current) this.enqueue(current);
  }

  private enqueue(set: ChangeSet): void {
    this.lastSeen = set.revision + this.ctx.base;
    if (set.changes.length === 0 && !this.wholeNamespace) return;
    const visible = this.select ? this.select(set) : set;
    if (visible) this.delivery.push(visible);
  }

  fail(err: Error): void {
    this.delivery.fail(err);
  }

  close(): void {
    this.delivery.close();
  }

  /** Delivery has ended: stop reconnecting and cancel the stream. */
  private release(): void {
    this.closed = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const stream = this.stream;
    this.stream = null;
    if (stream) {
      try {
        stream.cancel();
      } catch {
        /* already gone */
      }
    }
    this.ctx.remove(this);
  }
}
