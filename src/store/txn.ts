/**
 * Optimistic read-modify-write transactions over the Store (software transactional
 * memory in the style of etcd's STM): every key read through a Tx becomes a
 * precondition (unchanged since read, or still absent), every write is buffered, and the
 * whole thing commits as one atomic batch. A conflicting concurrent writer makes the
 * commit fail; the body then runs again on fresh data. This is how every API write stays
 * atomic (no half-written objects) and allocation stays unique under concurrency.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { KeyValue, Op, Precondition, RangeOptions, Store } from './types.js';

/** known(): the transaction has neither written nor read the key. */
const NOT_KNOWN = Symbol('not known');

/**
 * The highest revision committed by transactions run within the current request (the
 * REST layer opens one per request), so the reply can wait until readers reflect it.
 */
export interface CommitRecord {
  revision: number;
  /**
   * Each commit's revision and the keys it wrote, when the request asked for them: a reader
   * that follows only part of the keyspace waits only for the commits that touch it.
   */
  commits?: Array<{ revision: number; keys: string[] }>;
}
export const commitTracker = new AsyncLocalStorage<CommitRecord>();

export class TxConflictError extends Error {
  constructor(attempts: number) {
    super(`transaction gave up after ${attempts} conflicting attempts`);
    this.name = 'TxConflictError';
  }
}

export class Tx {
  private readonly reads = new Map<string, KeyValue | undefined>();
  private readonly buffered = new Map<string, Op>();
  private readonly extraPre: Precondition[] = [];

  /** The store this transaction reads from (for per-store caches such as allocation hints). */
  private finishers: Array<(committed: boolean) => void> | null;

  /** Whether a read so far came from the store's stale reads (see staleReads). */
  private readStale = false;

  /**
   * managed: run by transact(), which tells onFinish callbacks when the attempt ends.
   * staleReads: guarded reads may use the store's getStale/getManyStale (transact() does
   * on a first attempt): the commit's preconditions catch a stale one, and an attempt that
   * ends without a commit re-checks them (readsCurrent).
   */
  constructor(
    readonly store: Store,
    managed = false,
    private readonly staleReads = false,
  ) {
    this.finishers = managed ? [] : null;
  }

  /**
   * Runs fn once this attempt has committed (committed: true) or been abandoned. Returns
   * false (and never calls fn) for a transaction nobody will finish, e.g. one built by
   * hand in a test.
   */
  onFinish(fn: (committed: boolean) => void): boolean {
    if (!this.finishers) return false;
    this.finishers.push(fn);
    return true;
  }

  /** @internal */
  finish(committed: boolean): void {
    const fns = this.finishers ?? [];
    this.finishers = this.finishers && [];
    for (const fn of fns) fn(committed);
  }

  /** What this transaction already knows of key (its own write, else an earlier read), or NOT_KNOWN. */
  private known(key: string): KeyValue | undefined | typeof NOT_KNOWN {
    const w = this.buffered.get(key);
    if (w) return w.type === 'put' ? { key, value: w.value, createRevision: 0, modRevision: 0 } : undefined;
    return this.reads.has(key) ? this.reads.get(key) : NOT_KNOWN;
  }

  /** Reads a key (seeing this transaction's own writes) and makes it a precondition. */
  async get(key: string): Promise<KeyValue | undefined> {
    const known = this.known(key);
    if (known !== NOT_KNOWN) return known;
    let kv: KeyValue | undefined;
    if (this.staleReads && this.store.getStale) {
      this.readStale = true;
      kv = await this.store.getStale(key);
    } else kv = await this.store.get(key);
    // Two reads of one key side by side: the first answer stands.
    if (!this.reads.has(key)) this.reads.set(key, kv);
    return this.reads.get(key);
  }

  async getJson<T>(key: string): Promise<T | undefined> {
    const kv = await this.get(key);
    return kv ? (JSON.parse(kv.value) as T) : undefined;
  }

  /** Reads several keys at once; each becomes a precondition. */
  async getMany(keys: string[]): Promise<Map<string, KeyValue>> {
    const todo = keys.filter((k) => !this.buffered.has(k) && !this.reads.has(k));
    if (todo.length > 0) {
      let got: Map<string, KeyValue>;
      if (this.staleReads && this.store.getManyStale) {
        this.readStale = true;
        got = await this.store.getManyStale(todo);
      } else got = await this.store.getMany(todo);
      for (const k of todo) if (!this.reads.has(k)) this.reads.set(k, got.get(k));
    }
    const out = new Map<string, KeyValue>();
    for (const k of keys) {
      const kv = await this.get(k);
      if (kv) out.set(k, kv);
    }
    return out;
  }

  /**
   * Reads several keys without making them preconditions (this transaction's own writes
   * still show). Only for reads whose concurrent change cannot make the commit wrong, so
   * that a write reading many keys stays within a store's per-transaction limit (etcd's
   * 128 compares): e.g. the NICs of a node whose underlay moved, listed through an index
   * read with rangeGuarded that every write moving one of them on the overlay rewrites.
   */
  async getManyUnguarded(keys: string[]): Promise<Map<string, KeyValue>> {
    const out = new Map<string, KeyValue>();
    const todo: string[] = [];
    for (const k of keys) {
      const known = this.known(k);
      if (known === NOT_KNOWN) todo.push(k);
      else if (known) out.set(k, known);
    }
    if (todo.length > 0) for (const [k, kv] of await this.store.getMany(todo)) out.set(k, kv);
    return out;
  }

  /**
   * A range read. Not tracked as a precondition (see rangeGuarded for one that is): use it
   * for scans whose result is re-checked by per-key preconditions (e.g. find a free IP, then get()
   * that IP's key so a concurrent claim conflicts).
   */
  async range(opts: RangeOptions): Promise<KeyValue[]> {
    return (await this.store.range(opts)).kvs;
  }

  /**
   * A range read guarded as a whole by one precondition: the commit fails if a key under
   * prefix is created or written after this read (a key deleted meanwhile is not noticed).
   * For lists too long for a precondition each (etcd allows 128), e.g. a node's NICs.
   */
  async rangeGuarded(prefix: string): Promise<KeyValue[]> {
    const res = await this.store.range({ prefix });
    this.extraPre.push({ prefix, noWritesAfter: res.revision });
    return res.kvs;
  }

  put(key: string, value: string): void {
    this.buffered.set(key, { type: 'put', key, value });
  }

  putJson(key: string, value: unknown): void {
    this.put(key, JSON.stringify(value));
  }

  del(key: string): void {
    this.buffered.set(key, { type: 'del', key });
  }

  /** Whether this transaction writes (puts or deletes) key. */
  writes(key: string): boolean {
    return this.buffered.has(key);
  }

  /** An extra precondition not derived from a read (e.g. "this index key must be absent"). */
  require(p: Precondition): void {
    this.extraPre.push(p);
  }

  /**
   * Whether every guarded read is still current (always, when none was stale): an attempt
   * that ends without a commit (nothing to write, or an error decided from what it read)
   * checks this before its outcome stands.
   */
  async readsCurrent(): Promise<boolean> {
    if (!this.readStale || this.reads.size === 0) return true;
    const now = await this.store.getMany([...this.reads.keys()]);
    for (const [key, kv] of this.reads) {
      const cur = now.get(key);
      if (kv ? cur?.modRevision !== kv.modRevision : cur !== undefined) return false;
    }
    return true;
  }

  /** @internal */
  batch(): { preconditions: Precondition[]; ops: Op[] } {
    const preconditions: Precondition[] = [];
    for (const [key, kv] of this.reads) {
      preconditions.push(kv ? { key, modRevision: kv.modRevision } : { key, absent: true });
    }
    preconditions.push(...this.extraPre);
    return { preconditions, ops: [...this.buffered.values()] };
  }
}

export interface TransactOptions {
  /** Attempts before giving up with TxConflictError (contention is resolved by retrying). */
  attempts?: number;
}

export interface TransactResult<T> {
  value: T;
  /** Revision of the commit (or the store revision when the body wrote nothing). */
  revision: number;
}

/**
 * Runs body in a Tx and commits it; retries on conflict with a little jitter.
 * Errors thrown by body (validation, not found, subnet full…) abort without writing.
 */
export async function transact<T>(
  store: Store,
  /** attempt counts from 0; allocators use it to spread out under contention. */
  body: (tx: Tx, attempt: number) => Promise<T>,
  opts: TransactOptions = {},
): Promise<TransactResult<T>> {
  const attempts = opts.attempts ?? 100;
  for (let i = 0; i < attempts; i++) {
    // A first attempt may read stale (cheap) copies; a retry reads the store itself.
    const tx = new Tx(store, true, i === 0);
    let value: T;
    let res: Awaited<ReturnType<Store['commit']>> | undefined;
    let batch: ReturnType<Tx['batch']>;
    try {
      try {
        value = await body(tx, i);
      } catch (err) {
        // An error decided from stale reads is no answer: try again on current ones.
        if (i + 1 < attempts && !(await tx.readsCurrent().catch(() => true))) continue;
        throw err;
      }
      batch = tx.batch();
      if (batch.ops.length === 0) {
        if (!(await tx.readsCurrent())) continue;
        return { value, revision: await store.revision() };
      }
      res = await store.commit(batch);
    } finally {
      tx.finish(res?.ok === true);
    }
    if (res.ok) {
      const rec = commitTracker.getStore();
      if (rec && res.revision > rec.revision) rec.revision = res.revision;
      rec?.commits?.push({ revision: res.revision, keys: batch.ops.map((op) => op.key) });
      return { value, revision: res.revision };
    }
    if (i > 2) await new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 * i)));
  }
  throw new TxConflictError(attempts);
}
