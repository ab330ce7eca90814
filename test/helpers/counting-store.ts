/**
 * A Store wrapper that records every successful commit's operations, preconditions and
 * bytes: for asserting what a write costs the store (and for bench/scale).
 */
import type { Batch, CommitResult, KeyValue, RangeOptions, RangeResult, Store, WatchHandlers, WatchOptions, Watcher } from '../../src/store/types.js';

export interface CommitCost {
  revision: number;
  ops: number;
  preconditions: number;
  /** Keys and values written, UTF-8. */
  bytes: number;
  keys: string[];
}

export function commitCost(batch: Batch, revision: number): CommitCost {
  let bytes = 0;
  for (const op of batch.ops) bytes += Buffer.byteLength(op.key) + (op.type === 'put' ? Buffer.byteLength(op.value) : 0);
  return { revision, ops: batch.ops.length, preconditions: batch.preconditions?.length ?? 0, bytes, keys: batch.ops.map((o) => o.key) };
}

export class CountingStore implements Store {
  readonly commits: CommitCost[] = [];

  constructor(readonly inner: Store) {}

  get kind(): Store['kind'] {
    return this.inner.kind;
  }

  get reportsProgress(): boolean | undefined {
    return this.inner.reportsProgress;
  }

  /** The recorded commit that wrote this key last. */
  commitWriting(key: string): CommitCost | undefined {
    for (let i = this.commits.length - 1; i >= 0; i--) if (this.commits[i]!.keys.includes(key)) return this.commits[i];
    return undefined;
  }

  get(key: string): Promise<KeyValue | undefined> {
    return this.inner.get(key);
  }
  getMany(keys: string[]): Promise<Map<string, KeyValue>> {
    return this.inner.getMany(keys);
  }
  range(opts: RangeOptions): Promise<RangeResult> {
    return this.inner.range(opts);
  }
  count(prefix: string): Promise<number> {
    return this.inner.count(prefix);
  }
  async commit(batch: Batch): Promise<CommitResult> {
    const res = await this.inner.commit(batch);
    if (res.ok) this.commits.push(commitCost(batch, res.revision));
    return res;
  }
  revision(): Promise<number> {
    return this.inner.revision();
  }
  watch(opts: WatchOptions, handlers: WatchHandlers): Watcher {
    return this.inner.watch(opts, handlers);
  }
  compact(revision: number): Promise<void> {
    return this.inner.compact(revision);
  }
  healthy(): Promise<boolean> {
    return this.inner.healthy();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
