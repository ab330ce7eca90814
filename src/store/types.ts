/**
 * The Store: one ordered keyspace shared by every controller concern.
 *
 * - Keys are strings compared bytewise (UTF-8); callers build them with '/' separators
 *   and fixed-width numbers so that range scans come back in a useful order.
 * - Values are strings (JSON text by convention).
 * - Every successful commit gets the next revision (monotonic, starting at 1). Each key
 *   remembers the revision that created it and the one that last modified it.
 * - A commit is atomic: all preconditions hold and every op applies, or nothing does.
 * - The change feed replays every committed revision after a given one, in order, then
 *   follows live commits. History older than the compaction point is gone: a watcher
 *   asking for it gets a CompactedError and must reload with range() and resume from the
 *   revision range() reports.
 *
 * Implementations: LevelDB (embedded, src/store/leveldb.ts), etcd (src/store/etcd.ts),
 * memory (tests). All must pass test/unit/store-conformance.
 */

export interface KeyValue {
  key: string;
  value: string;
  /** Revision of the commit that created this key (since its last deletion). */
  createRevision: number;
  /** Revision of the commit that last wrote this key. */
  modRevision: number;
}

export type Precondition =
  /** The key must not exist. */
  | { key: string; absent: true }
  /** The key must exist (any value). */
  | { key: string; present: true }
  /** The key must exist and have been last written at exactly this revision. */
  | { key: string; modRevision: number }
  /** The key must exist with exactly this value. */
  | { key: string; value: string }
  /**
   * No key starting with prefix was created or written after this revision (a key deleted
   * since is not seen): a range read guarded with one precondition whatever its size, e.g.
   * "no NIC was placed on this node since I listed its NICs".
   */
  | RangeUnwritten;

export interface RangeUnwritten {
  prefix: string;
  noWritesAfter: number;
}

/** Whether a precondition is about a key range (else it names one key). */
export function isRangePrecondition(p: Precondition): p is RangeUnwritten {
  return 'prefix' in p;
}

export type Op = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };

export interface Batch {
  preconditions?: Precondition[];
  ops: Op[];
}

export type CommitResult =
  | { ok: true; revision: number }
  /** failed: indexes into preconditions of those that did not hold. */
  | { ok: false; failed: number[]; revision: number };

export interface RangeOptions {
  /** Keys starting with this prefix. Combine with gte/lt to narrow further. */
  prefix?: string;
  /** Inclusive lower bound. */
  gte?: string;
  /** Exclusive lower bound (for paging: the last key already seen). */
  gt?: string;
  /** Exclusive upper bound. */
  lt?: string;
  limit?: number;
  reverse?: boolean;
}

export interface RangeResult {
  kvs: KeyValue[];
  /** The store revision this read reflects: watch from revision + 1 to follow on. */
  revision: number;
}

export interface Change {
  type: 'put' | 'del';
  key: string;
  /** New value for put; absent for del. */
  value?: string;
}

/** Everything one commit changed (restricted to the watched prefix). */
export interface ChangeSet {
  revision: number;
  changes: Change[];
}

export interface WatchOptions {
  /** Only changes to keys with this prefix ('' = all). */
  prefix?: string;
  /**
   * Instead of prefix: changes under any of these prefixes, as one feed in revision order.
   * A backend may read more than that to follow them (etcd watches the smallest key range
   * covering them all) but delivers only what they select.
   */
  prefixes?: readonly string[];
  /** First revision to deliver. Must be > compactedRevision. */
  fromRevision: number;
  /**
   * Also deliver, as change sets with no changes, revisions that changed nothing watched —
   * on backends that know them without extra reads (Store.reportsProgress). A watcher of
   * part of the keyspace then knows how far the store has gone.
   */
  progress?: boolean;
}

export interface Watcher {
  close(): void;
}

export interface WatchHandlers {
  /** Called in revision order, never concurrently; the feed waits for a returned promise. */
  onChange(set: ChangeSet): void | Promise<void>;
  /** Terminal: the watcher is closed after this (CompactedError, store closed, backend lost). */
  onError?(err: Error): void;
}

export class CompactedError extends Error {
  readonly code = 'Compacted';
  constructor(
    readonly requested: number,
    readonly compactedRevision: number,
  ) {
    super(`revision ${requested} has been compacted (oldest available is ${compactedRevision + 1})`);
    this.name = 'CompactedError';
  }
}

export class StoreClosedError extends Error {
  readonly code = 'StoreClosed';
  constructor() {
    super('store is closed');
    this.name = 'StoreClosedError';
  }
}

export interface Store {
  readonly kind: 'leveldb' | 'etcd' | 'memory';
  /** Watchers asking for `progress` get every revision (true for the in-process backends). */
  readonly reportsProgress?: boolean;
  get(key: string): Promise<KeyValue | undefined>;
  /** Several keys read at one revision; missing keys are absent from the map. */
  getMany(keys: string[]): Promise<Map<string, KeyValue>>;
  range(opts: RangeOptions): Promise<RangeResult>;
  /**
   * Optional cheaper point reads that may lag the latest commit (e.g. a replica's
   * watch-fed copy of the keyspace). Only for reads that become preconditions of a commit,
   * which then fails if one was stale: transact() reads this way on a first attempt, and
   * retries with get()/getMany() (src/store/txn.ts). Results carry exact revisions.
   */
  getStale?(key: string): Promise<KeyValue | undefined>;
  getManyStale?(keys: string[]): Promise<Map<string, KeyValue>>;
  /** Number of keys with this prefix. */
  count(prefix: string): Promise<number>;
  commit(batch: Batch): Promise<CommitResult>;
  /** The latest committed revision. */
  revision(): Promise<number>;
  watch(opts: WatchOptions, handlers: WatchHandlers): Watcher;
  /** Drop change history at or below this revision. */
  compact(revision: number): Promise<void>;
  /** Health check used by /ping. */
  healthy(): Promise<boolean>;
  close(): Promise<void>;
}

/** Smallest string greater than every string starting with prefix. */
export function prefixEnd(prefix: string): string {
  return prefix + '\uffff';
}
