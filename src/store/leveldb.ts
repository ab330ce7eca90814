/**
 * The embedded Store: one LevelDB directory (via leveldown), one writer process.
 *
 * Physical layout (keys are UTF-8 bytes, so the user keyspace keeps its order under d/):
 *   d/<key>            JSON {v: value, c: createRevision, m: modRevision}
 *   l/<rev:16 digits>  JSON Change[] — the change log the feed replays
 *   m/rev              latest committed revision
 *   m/compacted        change history at or below this revision is gone
 *   m/format           layout version
 *
 * Every commit is one LevelDB write batch (data + log entry + m/rev), so a crash never
 * leaves half a commit. Commits are serialised in-process with group commit: commits that
 * queue while a write is in flight are evaluated in order against the database plus the
 * group's own pending state, then written together with one (synced) batch.
 *
 * Reads that must name the revision they reflect (range, the feed's history) create their
 * LevelDB iterator — which takes a snapshot synchronously — only while no commit batch is
 * in flight, so the snapshot and this.rev always agree.
 *
 * Point reads go through a bounded cache of current values (./read-cache.ts): the writer
 * refreshes every key it commits once the batch is durable, and a database read fills it
 * only with keys that no commit batch it may have raced writes (the batch in flight when
 * the read took its snapshot, and every batch issued before it returned). So a cached
 * entry is always the value at this.rev, and a group whose keys are all cached is
 * evaluated without reading the database. A commit that queues behind a busy writer
 * starts reading its uncached keys at once, so its group seldom has to read when its turn
 * comes.
 *
 * A Bloom filter of every key (./key-filter.ts: loaded by a keys-only scan at open, fed
 * by the writer before each batch is issued) answers reads of keys that were never
 * written — a candidate MAC, a free address, a new object's index entries — without the
 * database, once the scan is done.
 */
import { mkdir } from 'node:fs/promises';
import {
  type Batch,
  type Change,
  type ChangeSet,
  type CommitResult,
  CompactedError,
  type KeyValue,
  type RangeOptions,
  type RangeResult,
  type Store,
  StoreClosedError,
  isRangePrecondition,
  type WatchHandlers,
  type WatchOptions,
  type Watcher,
} from './types.js';
import { watchFilter, InFlight, preconditionKeys, validateBatch, validateRangeOptions } from './common.js';
import { FeedHub } from './feed.js';
import { applyGroup } from './group-commit.js';
import { ReadCache } from './read-cache.js';
import { KeyFilter } from './key-filter.js';
import {
  type LdOp,
  type LevelDown,
  DATA,
  LOG,
  META_COMPACTED,
  META_FORMAT,
  META_REV,
  FORMAT,
  afterPrefix,
  call,
  dataBounds,
  dataKey,
  decodeValue,
  drain,
  encodeValue,
  leveldown,
  logKey,
  str,
} from './leveldb-io.js';

// ---- errors ----------------------------------------------------------------------

export class StoreLockedError extends Error {
  readonly code = 'StoreLocked';
  constructor(
    readonly dir: string,
    cause: Error,
  ) {
    super(`store directory ${dir} is in use by another process (or already open in this one): ${cause.message}`);
    this.name = 'StoreLockedError';
  }
}

// ---- the store -------------------------------------------------------------------

export interface LevelStoreOptions {
  /** fsync every commit batch before acknowledging it (default true). */
  sync?: boolean;
  /** Change history kept for watchers, in revisions (default 100000). Older is trimmed in the background. */
  retainRevisions?: number;
  /** Most commits written by one group batch (default 1000). */
  maxGroupSize?: number;
  /** Keys whose current value (or absence) point reads keep in memory (default 20000; 0: none). */
  cacheEntries?: number;
  /** LevelDB's memtable size (default 32 MiB; LevelDB's own 4 MiB makes compaction a large share of write cost). */
  writeBufferBytes?: number;
  /** Size of the Bloom filter of keys, in bits (default 2^24 = 2 MiB, enough for ~1.5 M keys; 0: none). */
  keyFilterBits?: number;
}

const DEFAULT_WRITE_BUFFER = 32 << 20;
const DEFAULT_KEY_FILTER_BITS = 2 ** 24;

interface PendingCommit {
  batch: Batch;
  resolve(result: CommitResult): void;
  reject(err: Error): void;
}

/** Log entries deleted per trim batch. */
const TRIM_CHUNK = 1000;
/** Commit batches whose keys are remembered for reads that raced them (older: no cache fill). */
const RECENT_BATCHES = 64;

export class LevelStore implements Store {
  readonly kind = 'leveldb' as const;
  readonly reportsProgress = true;
  private readonly hub: FeedHub;
  private readonly sync: boolean;
  private readonly retain: number;
  private readonly maxGroup: number;

  private closed = false;
  private closing: Promise<void> | null = null;

  // writer state
  private queue: PendingCommit[] = [];
  private writerBusy = false;
  private batchInFlight = false;
  /** Commit batches issued so far (the last one is the one in flight, if any). */
  private batchesIssued = 0;
  /** The keys each recent commit batch wrote, oldest first: what a read that raced it may not cache. */
  private recentBatches: Array<{ seq: number; keys: ReadonlySet<string> }> = [];
  private readonly cache: ReadCache;
  /** Superset of the keys that exist (or will, once the batch in flight lands); null: none kept. */
  private readonly keyFilter: KeyFilter | null;
  /** The open-time scan has added every stored key: "not in the filter" now means absent. */
  private keyFilterReady = false;
  private keyFilterLoad: Promise<void> = Promise.resolve();
  private pendingGets: Array<{ key: string; resolve(kv: KeyValue | undefined): void; reject(err: Error): void }> = [];
  /** Run (synchronously) once no commit batch is in flight; see atStableRevision. */
  private stableWaiters: Array<() => void> = [];
  private idleWaiters: Array<() => void> = [];
  private writeError: Error | null = null;

  // compaction state
  private trimming: Promise<void> | null = null;

  private readonly inFlight = new InFlight();
  private counters = { commits: 0, failedCommits: 0, writeBatches: 0, largestGroup: 0, readBatches: 0, groupReads: 0 };

  private constructor(
    private readonly db: LevelDown,
    readonly dir: string,
    private rev: number,
    /** History at or below this is unavailable (may run ahead of what is trimmed on disk). */
    private compacted: number,
    /** What the last trim batch recorded in m/compacted. */
    private persistedCompacted: number,
    opts: LevelStoreOptions,
  ) {
    this.sync = opts.sync ?? true;
    this.retain = Math.max(1, Math.floor(opts.retainRevisions ?? 100_000));
    this.maxGroup = Math.max(1, Math.floor(opts.maxGroupSize ?? 1000));
    this.cache = new ReadCache(Math.max(0, Math.floor(opts.cacheEntries ?? 20_000)));
    const filterBits = Math.max(0, Math.floor(opts.keyFilterBits ?? DEFAULT_KEY_FILTER_BITS));
    this.keyFilter = filterBits > 0 ? new KeyFilter(filterBits) : null;
    this.hub = new FeedHub((from) => this.history(from));
  }

  /** Opens (creating if missing) the store in dir. Fails with StoreLockedError if another process holds it. */
  static async open(dir: string, opts: LevelStoreOptions = {}): Promise<LevelStore> {
    await mkdir(dir, { recursive: true });
    const db = leveldown(dir);
    try {
      await call((cb) => db.open({ createIfMissing: true, writeBufferSize: opts.writeBufferBytes ?? DEFAULT_WRITE_BUFFER }, cb));
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      if (/\block\b/i.test(e.message)) throw new StoreLockedError(dir, e);
      throw new Error(`cannot open LevelDB store at ${dir}: ${e.message}`, { cause: err });
    }
    try {
      const [format, rev, compacted] = await db.getMany([META_FORMAT, META_REV, META_COMPACTED], { asBuffer: false });
      if (format === undefined) {
        if (rev !== undefined) throw new Error(`${dir} has revisions but no format marker: not a rhumb store?`);
        await call((cb) => db.batch([{ type: 'put', key: META_FORMAT, value: FORMAT }], { sync: true }, cb));
      } else if (format !== FORMAT) {
        throw new Error(`${dir} has store format ${format}; this build understands ${FORMAT}`);
      }
      const revision = rev === undefined ? 0 : Number(rev);
      const compactedRevision = compacted === undefined ? 0 : Number(compacted);
      const store = new LevelStore(db, dir, revision, compactedRevision, compactedRevision, opts);
      store.maybeAutoCompact();
      store.keyFilterLoad = store.loadKeyFilter();
      return store;
    } catch (err) {
      await call((cb) => db.close(cb)).catch(() => undefined);
      throw err;
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new StoreClosedError();
  }

  /** Keeps close() from pulling the database out from under a read. */
  private track<T>(p: Promise<T>): Promise<T> {
    return this.inFlight.track(p);
  }

  /**
   * Runs fn synchronously at a moment when the database holds exactly revision this.rev:
   * now if no commit batch is in flight, else right after it lands and before the next
   * one is issued. fn should create its iterator (which snapshots) and return it.
   */
  private atStableRevision<T>(fn: (rev: number) => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const run = (): void => {
        if (this.closed) return reject(new StoreClosedError());
        try {
          resolve(fn(this.rev));
        } catch (err) {
          reject(err);
        }
      };
      if (this.batchInFlight) this.stableWaiters.push(run);
      else run();
    });
  }

  // ---- reads ---------------------------------------------------------------------

  async get(key: string): Promise<KeyValue | undefined> {
    this.assertOpen();
    if (key === '') return undefined;
    const cached = this.cache.lookup(key);
    if (cached !== undefined) return cached ?? undefined;
    if (this.knownAbsent(key)) return undefined;
    return new Promise<KeyValue | undefined>((resolve, reject) => {
      this.pendingGets.push({ key, resolve, reject });
      if (this.pendingGets.length === 1) this.scheduleFlush();
    });
  }

  /** Flushes pendingGets on the next turn; close() waits for that like any read in flight. */
  private scheduleFlush(): void {
    this.track(new Promise<void>((resolve) => setImmediate(() => resolve(this.flushGets()))));
  }

  /**
   * Point reads that missed the cache during one turn of the event loop (across requests)
   * go to the database together: one getMany, one thread-pool round trip.
   */
  private flushGets(): Promise<void> {
    // Even once close() has begun: it waits for these tracked reads before closing LevelDB.
    const gets = this.pendingGets.splice(0);
    const keys = [...new Set(gets.map((g) => g.key))];
    const fill = this.cacheFiller();
    this.counters.readBatches++;
    return this.db.getMany(keys.map(dataKey), { asBuffer: false }).then(
      (values) => {
        const got = new Map<string, KeyValue | undefined>();
        keys.forEach((k, i) => {
          const raw = values[i];
          const kv = raw === undefined ? undefined : decodeValue(k, raw);
          fill(k, kv);
          got.set(k, kv);
        });
        for (const g of gets) g.resolve(got.get(g.key));
      },
      (err: unknown) => {
        for (const g of gets) g.reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  }

  async getMany(keys: string[]): Promise<Map<string, KeyValue>> {
    this.assertOpen();
    const unique = [...new Set(keys)].filter((k) => k !== '');
    const out = new Map<string, KeyValue>();
    if (unique.length === 0) return out;
    // All cached or known absent: every one is the state at this.rev, so together they are one snapshot.
    const cached = unique.map((k) => this.cache.lookup(k) ?? (this.knownAbsent(k) ? null : undefined));
    if (cached.every((c) => c !== undefined)) {
      unique.forEach((k, i) => cached[i] && out.set(k, cached[i]));
      return out;
    }
    // Otherwise all from the database: leveldown's getMany reads every key from one snapshot.
    const fill = this.cacheFiller();
    this.counters.readBatches++;
    const values = await this.track(this.db.getMany(unique.map(dataKey), { asBuffer: false }));
    unique.forEach((k, i) => {
      const raw = values[i];
      const kv = raw === undefined ? undefined : decodeValue(k, raw);
      fill(k, kv);
      if (kv) out.set(k, kv);
    });
    return out;
  }

  /**
   * Whether key certainly has no value at this.rev: the filter holds every stored key and
   * every key of each batch issued (in flight included), and it does not hold this one.
   */
  private knownAbsent(key: string): boolean {
    return this.keyFilterReady && this.keyFilter !== null && !this.keyFilter.mayContain(key);
  }

  /**
   * Adds every stored key to the filter (keys only, in the background; the writer adds
   * what it writes meanwhile), then lets reads rely on it. Stops early on close.
   */
  private async loadKeyFilter(): Promise<void> {
    const filter = this.keyFilter;
    if (!filter) return;
    const it = this.db.iterator({ gte: DATA, lt: afterPrefix(DATA), keys: true, values: false, keyAsBuffer: false });
    const scan = async (): Promise<void> => {
      try {
        for (;;) {
          if (this.closed) return;
          const entry = await it.next();
          if (entry === undefined) break;
          filter.add(str(entry[0]).slice(DATA.length));
        }
        this.keyFilterReady = !this.closed;
      } finally {
        await it.end();
      }
    };
    await this.track(scan()).catch(() => undefined); // without the filter, reads go to the database
  }

  /** Resolves once reads may rely on the key filter (or it will never be used). For tests and benchmarks. */
  keyFilterLoaded(): Promise<boolean> {
    return this.keyFilterLoad.then(() => this.keyFilterReady);
  }

  /**
   * For a database read about to be issued (leveldown takes its snapshot synchronously, in
   * the call): records what it returns in the cache, except keys written by a commit
   * batch in flight at the call or issued before the read returned. For those the read
   * may reflect a write not yet acknowledged, or miss one just acknowledged; every other
   * key has had the same value from the snapshot to this.rev.
   */
  private cacheFiller(): (key: string, kv: KeyValue | undefined) => void {
    const firstRaced = this.batchInFlight ? this.batchesIssued : this.batchesIssued + 1;
    return (key, kv) => {
      if (!this.closed && this.untouchedSince(firstRaced, key)) this.cache.store(key, kv);
    };
  }

  /** Whether no commit batch numbered firstRaced or later wrote key (false when they are no longer remembered). */
  private untouchedSince(firstRaced: number, key: string): boolean {
    if (firstRaced > this.batchesIssued) return true;
    const recent = this.recentBatches;
    if (recent.length === 0 || recent[0].seq > firstRaced) return false;
    for (let i = recent.length - 1; i >= 0 && recent[i].seq >= firstRaced; i--) if (recent[i].keys.has(key)) return false;
    return true;
  }

  /**
   * Starts reading a queued commit's uncached keys while the writer is busy with earlier
   * groups (the reads fill the cache as any other), so that its own group is evaluated
   * from memory.
   */
  private prefetch(batch: Batch): void {
    const keys: string[] = [];
    const want = (k: string): void => {
      if (k !== '' && this.cache.lookup(k) === undefined && !this.knownAbsent(k)) keys.push(k);
    };
    for (const k of preconditionKeys(batch.preconditions ?? [])) want(k);
    for (const op of batch.ops) want(op.key);
    if (keys.length === 0) return;
    const ignore = (): void => undefined;
    for (const key of keys) this.pendingGets.push({ key, resolve: ignore, reject: ignore });
    if (this.pendingGets.length === keys.length) this.scheduleFlush();
  }

  async range(opts: RangeOptions): Promise<RangeResult> {
    this.assertOpen();
    validateRangeOptions(opts);
    const bounds = dataBounds(opts);
    const work = async (): Promise<RangeResult> => {
      if (bounds === null || opts.limit === 0) return { kvs: [], revision: await this.atStableRevision((r) => r) };
      const { it, rev } = await this.atStableRevision((r) => ({
        rev: r,
        it: this.db.iterator({
          ...bounds,
          reverse: opts.reverse === true,
          limit: opts.limit ?? -1,
          keyAsBuffer: false,
          valueAsBuffer: false,
        }),
      }));
      const kvs: KeyValue[] = [];
      await drain(it, (k, v) => void kvs.push(decodeValue(str(k).slice(DATA.length), str(v))));
      return { kvs, revision: rev };
    };
    return this.track(work());
  }

  async count(prefix: string): Promise<number> {
    this.assertOpen();
    const it = this.db.iterator({
      gte: dataKey(prefix),
      lt: afterPrefix(dataKey(prefix)),
      keys: true,
      values: false,
      keyAsBuffer: true,
    });
    let n = 0;
    await this.track(drain(it, () => void n++));
    return n;
  }

  async revision(): Promise<number> {
    this.assertOpen();
    return this.rev;
  }

  // ---- commits -------------------------------------------------------------------

  async commit(batch: Batch): Promise<CommitResult> {
    this.assertOpen();
    validateBatch(batch);
    // Copy now: the caller may reuse its objects while this waits for its group.
    const own: Batch = {
      preconditions: (batch.preconditions ?? []).map((p) => ({ ...p })),
      ops: batch.ops.map((o) => ({ ...o })),
    };
    if (this.writerBusy) this.prefetch(own);
    return new Promise<CommitResult>((resolve, reject) => {
      this.queue.push({ batch: own, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    if (this.writerBusy) return;
    if (this.queue.length === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
      return;
    }
    const group = this.queue.splice(0, this.maxGroup);
    this.writerBusy = true;
    this.runGroup(group)
      .catch((err: unknown) => {
        const e = err instanceof Error ? err : new Error(String(err));
        for (const c of group) c.reject(e);
      })
      .finally(() => {
        this.writerBusy = false;
        if (this.closed) for (const c of this.queue.splice(0)) c.reject(new StoreClosedError());
        this.kick();
      });
  }

  /** The stored keys under each range precondition's prefix in the group (the database is at this.rev). */
  private async rangesOf(group: PendingCommit[]): Promise<Map<string, KeyValue[]>> {
    const out = new Map<string, KeyValue[]>();
    for (const { batch } of group) {
      for (const p of batch.preconditions ?? []) {
        if (!isRangePrecondition(p) || out.has(p.prefix)) continue;
        const kvs: KeyValue[] = [];
        const bounds = dataBounds({ prefix: p.prefix });
        if (bounds !== null) {
          this.counters.groupReads++;
          const it = this.db.iterator({ ...bounds, keyAsBuffer: false, valueAsBuffer: false });
          await drain(it, (k, v) => void kvs.push(decodeValue(str(k).slice(DATA.length), str(v))));
        }
        out.set(p.prefix, kvs);
      }
    }
    return out;
  }

  private async runGroup(group: PendingCommit[]): Promise<void> {
    // The database cannot change under us here: this is the only writer.
    const state = await this.groupState(group);
    const ranges = await this.rangesOf(group);
    const { results, sets, touched, revision } = applyGroup(group, state, ranges, this.rev);
    if (sets.length > 0) {
      await this.writeGroup(sets, touched, state, revision);
      for (const s of sets) this.hub.publish(s);
    }
    this.counters.failedCommits += group.length - sets.length;
    group.forEach((c, i) => c.resolve(results[i] as CommitResult));
    this.maybeAutoCompact();
  }

  /** The current value (or absence) of every key the group's preconditions and ops name. */
  private async groupState(group: PendingCommit[]): Promise<Map<string, KeyValue | undefined>> {
    const keys = new Set<string>();
    for (const { batch } of group) {
      for (const k of preconditionKeys(batch.preconditions ?? [])) if (k !== '') keys.add(k);
      for (const op of batch.ops) keys.add(op.key);
    }
    const state = new Map<string, KeyValue | undefined>();
    const toRead: string[] = [];
    for (const k of keys) {
      const c = this.cache.lookup(k);
      if (c !== undefined) state.set(k, c ?? undefined);
      else if (this.knownAbsent(k)) state.set(k, undefined);
      else toRead.push(k);
    }
    if (toRead.length > 0) {
      // No batch is in flight here, so the database is exactly at this.rev.
      this.counters.groupReads++;
      const raw = await this.db.getMany(toRead.map(dataKey), { asBuffer: false });
      toRead.forEach((k, i) => {
        const v = raw[i];
        const kv = v === undefined ? undefined : decodeValue(k, v);
        state.set(k, kv);
        this.cache.store(k, kv);
      });
    }
    return state;
  }

  /** The group's committed changes in one LevelDB batch (synced when the store is), then the cache. */
  private async writeGroup(sets: ChangeSet[], touched: Set<string>, state: Map<string, KeyValue | undefined>, rev: number): Promise<void> {
    const ops: LdOp[] = [];
    for (const k of touched) {
      const kv = state.get(k);
      // Into the filter before the batch is issued: from now on the key may exist.
      if (kv) this.keyFilter?.add(k);
      ops.push(kv ? { type: 'put', key: dataKey(k), value: encodeValue(kv) } : { type: 'del', key: dataKey(k) });
    }
    for (const s of sets) ops.push({ type: 'put', key: logKey(s.revision), value: JSON.stringify(s.changes) });
    ops.push({ type: 'put', key: META_REV, value: String(rev) });

    this.batchInFlight = true;
    this.batchesIssued++;
    this.recentBatches.push({ seq: this.batchesIssued, keys: touched });
    if (this.recentBatches.length > RECENT_BATCHES) this.recentBatches.shift();
    let error: Error | null = null;
    try {
      await call((cb) => this.db.batch(ops, { sync: this.sync }, cb));
      this.rev = rev;
      for (const k of touched) this.cache.store(k, state.get(k));
      this.counters.writeBatches++;
      this.counters.commits += sets.length;
      this.counters.largestGroup = Math.max(this.counters.largestGroup, sets.length);
    } catch (err) {
      error = err instanceof Error ? err : new Error(String(err));
      this.writeError = error;
      this.cache.clear();
    } finally {
      this.batchInFlight = false;
      // Before anything else can issue a write: let waiting readers snapshot this state.
      for (const w of this.stableWaiters.splice(0)) w();
    }
    if (error) throw error;
  }

  // ---- change feed and compaction ------------------------------------------------

  private async history(from: number): Promise<ChangeSet[]> {
    const it = await this.atStableRevision((rev) => {
      if (from <= this.compacted) throw new CompactedError(from, this.compacted);
      if (from > rev) return null;
      return this.db.iterator({ gte: logKey(from), lte: logKey(rev), keyAsBuffer: false, valueAsBuffer: false });
    });
    const sets: ChangeSet[] = [];
    if (it === null) return sets;
    await this.track(
      drain(it, (k, v) => {
        sets.push({ revision: Number(str(k).slice(LOG.length)), changes: JSON.parse(str(v)) as Change[] });
      }),
    );
    return sets;
  }

  watch(opts: WatchOptions, handlers: WatchHandlers): Watcher {
    this.assertOpen();
    return this.hub.subscribe(opts.fromRevision, watchFilter(opts), handlers);
  }

  async compact(revision: number): Promise<void> {
    this.assertOpen();
    const upTo = Math.min(Math.floor(revision), this.rev);
    if (upTo > this.compacted) this.compacted = upTo;
    await this.trim();
  }

  /**
   * Counters since open (for metrics, benchmarks and tests): how well group commit is
   * batching, and how often reads reach the database (readBatches: point-read batches;
   * groupReads: groups that had to read keys missing from the cache before evaluating).
   */
  stats(): { commits: number; failedCommits: number; writeBatches: number; largestGroup: number; readBatches: number; groupReads: number } {
    return { ...this.counters };
  }

  /** The revision at or below which history is gone. */
  compactedRevision(): number {
    return this.compacted;
  }

  private maybeAutoCompact(): void {
    const slack = Math.max(1, Math.min(TRIM_CHUNK, Math.floor(this.retain / 10)));
    if (this.rev - this.compacted < this.retain + slack) return;
    this.compacted = this.rev - this.retain;
    this.trim().catch(() => undefined); // retried on the next trigger; history is just kept longer
  }

  /** Deletes log entries up to this.compacted in chunks; one trimmer at a time, following the target as it moves. */
  private trim(): Promise<void> {
    if (this.trimming) return this.trimming;
    const run = async (): Promise<void> => {
      try {
        while (!this.closed && this.persistedCompacted < this.compacted) {
          const from = this.persistedCompacted + 1;
          const to = Math.min(this.compacted, this.persistedCompacted + TRIM_CHUNK);
          const ops: LdOp[] = [];
          for (let r = from; r <= to; r++) ops.push({ type: 'del', key: logKey(r) });
          ops.push({ type: 'put', key: META_COMPACTED, value: String(to) });
          // Not synced: losing a trim in a crash only means history is kept a little longer.
          await call((cb) => this.db.batch(ops, { sync: false }, cb));
          this.persistedCompacted = to;
        }
      } finally {
        this.trimming = null;
      }
    };
    this.trimming = run();
    return this.trimming;
  }

  // ---- lifecycle -----------------------------------------------------------------

  async healthy(): Promise<boolean> {
    if (this.closed || this.writeError) return false;
    try {
      await this.track(this.db.getMany([META_REV], { asBuffer: false }));
      return true;
    } catch {
      return false;
    }
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    this.cache.clear();
    for (const c of this.queue.splice(0)) c.reject(new StoreClosedError());
    this.hub.close(new StoreClosedError());
    this.closing = (async () => {
      // The group being written finishes and is acknowledged normally.
      if (this.writerBusy) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
      await this.trimming?.catch(() => undefined);
      await this.inFlight.settled();
      await call((cb) => this.db.close(cb));
    })();
    return this.closing;
  }
}

