/**
 * In-memory Store for unit tests and tools. Same semantics as the persistent backends
 * (it runs the same conformance suite), kept deliberately simple: a sorted key array,
 * a change log, and synchronous commits.
 */
import {
  type Batch,
  type ChangeSet,
  type CommitResult,
  CompactedError,
  type KeyValue,
  type RangeOptions,
  type RangeResult,
  type Store,
  StoreClosedError,
  type WatchHandlers,
  type WatchOptions,
  type Watcher,
} from './types.js';
import { checkPreconditions, compareKeys, watchFilter, inRange, validateBatch, validateRangeOptions } from './common.js';
import { FeedHub } from './feed.js';

export class MemoryStore implements Store {
  readonly kind = 'memory' as const;
  readonly reportsProgress = true;
  private data = new Map<string, KeyValue>();
  private sortedKeys: string[] | null = [];
  private rev = 0;
  private compacted = 0;
  private log: ChangeSet[] = [];
  private closed = false;
  private readonly hub: FeedHub;

  constructor() {
    this.hub = new FeedHub((from) => this.history(from));
  }

  private keys(): string[] {
    if (!this.sortedKeys) this.sortedKeys = [...this.data.keys()].sort(byteCompare);
    return this.sortedKeys;
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreClosedError();
  }

  async get(key: string): Promise<KeyValue | undefined> {
    this.assertOpen();
    const kv = this.data.get(key);
    return kv ? { ...kv } : undefined;
  }

  async getMany(keys: string[]): Promise<Map<string, KeyValue>> {
    this.assertOpen();
    const out = new Map<string, KeyValue>();
    for (const k of keys) {
      const kv = this.data.get(k);
      if (kv) out.set(k, { ...kv });
    }
    return out;
  }

  async range(opts: RangeOptions): Promise<RangeResult> {
    this.assertOpen();
    validateRangeOptions(opts);
    const keys = this.keys();
    const sel = keys.filter((k) => inRange(k, opts));
    if (opts.reverse) sel.reverse();
    const limited = opts.limit !== undefined ? sel.slice(0, opts.limit) : sel;
    return { kvs: limited.map((k) => ({ ...(this.data.get(k) as KeyValue) })), revision: this.rev };
  }

  async count(prefix: string): Promise<number> {
    this.assertOpen();
    let n = 0;
    for (const k of this.data.keys()) if (k.startsWith(prefix)) n++;
    return n;
  }

  async commit(batch: Batch): Promise<CommitResult> {
    this.assertOpen();
    validateBatch(batch);
    const failed = checkPreconditions(batch.preconditions ?? [], {
      read: (k) => this.data.get(k),
      writtenAfter: (prefix, revision) => {
        for (const kv of this.data.values()) if (kv.modRevision > revision && kv.key.startsWith(prefix)) return true;
        return false;
      },
    });
    if (failed.length > 0) return { ok: false, failed, revision: this.rev };
    const revision = ++this.rev;
    const set: ChangeSet = { revision, changes: [] };
    for (const op of batch.ops) {
      if (op.type === 'put') {
        const prev = this.data.get(op.key);
        if (!prev) this.sortedKeys = null;
        this.data.set(op.key, {
          key: op.key,
          value: op.value,
          createRevision: prev ? prev.createRevision : revision,
          modRevision: revision,
        });
        set.changes.push({ type: 'put', key: op.key, value: op.value });
      } else if (this.data.delete(op.key)) {
        this.sortedKeys = null;
        set.changes.push({ type: 'del', key: op.key });
      }
    }
    this.log.push(set);
    this.hub.publish(set);
    return { ok: true, revision };
  }

  async revision(): Promise<number> {
    this.assertOpen();
    return this.rev;
  }

  private async history(from: number): Promise<ChangeSet[]> {
    if (from <= this.compacted) throw new CompactedError(from, this.compacted);
    return this.log.filter((s) => s.revision >= from);
  }

  watch(opts: WatchOptions, handlers: WatchHandlers): Watcher {
    this.assertOpen();
    return this.hub.subscribe(opts.fromRevision, watchFilter(opts), handlers);
  }

  async compact(revision: number): Promise<void> {
    this.assertOpen();
    const upTo = Math.min(revision, this.rev);
    if (upTo <= this.compacted) return;
    this.compacted = upTo;
    this.log = this.log.filter((s) => s.revision > upTo);
  }

  async healthy(): Promise<boolean> {
    return !this.closed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.hub.close(new StoreClosedError());
  }
}

/** UTF-8 bytewise key order (kept under this name for existing callers). */
export function byteCompare(a: string, b: string): number {
  return compareKeys(a, b);
}
