/**
 * The distributed Store: an etcd v3 cluster through the `etcd3` client. etcd does the
 * replication; this module only maps the Store contract onto etcd's primitives.
 *
 * Layout. Every key lives under a namespace prefix P (default `rhumb/`): user key k is the
 * etcd key P + k. The key P itself (user key '', which no batch may write) is the namespace
 * marker, created the first time a store opens the namespace. Prefixes of two deployments
 * sharing a cluster must not nest.
 *
 * Revisions. Store revisions are etcd revisions minus the namespace's base revision (the
 * etcd revision that created the marker), so a fresh namespace starts at 0 like every
 * backend, and createRevision/modRevision/revision() are etcd's create_revision /
 * mod_revision / header revision shifted by that constant. Other writers on the same
 * cluster make revisions jump; they stay monotonic. A batch that changes nothing visible
 * (only deletes of missing keys, or no ops) also rewrites the marker, so every successful
 * commit still gets its own revision.
 *
 * Commits are one etcd transaction: the preconditions become compare clauses, the ops the
 * success branch; the failure branch reads every precondition key, so the indexes reported
 * as failed are evaluated at exactly the failed transaction's revision. etcd caps the
 * number of operations in one transaction (--max-txn-ops, default 128) and its size
 * (--max-request-bytes, default 1.5 MiB). rhumb's batches are small and bounded (a NIC
 * write is a constant number of operations whatever the size of its vnet; sweeps and
 * LOG_RM group commits stop at 100), so a stock cluster needs no setting changed. As a
 * guard, a batch with more ops (or preconditions) than `maxTxnOps` (default etcd's 128)
 * is rejected with InvalidBatchError before anything is sent, and one etcd still refuses
 * for its size becomes InvalidBatchError too (never applied).
 *
 * Failures. Reads retry transient errors (member down, leader election) for up to
 * retryTimeoutMs, moving across endpoints. A commit is retried only when the error proves
 * nothing was applied (no connection, no leader, proposal dropped); any other failure
 * surfaces as StoreUnavailableError with `outcome: 'unknown'` — the batch may or may not
 * have been applied, and the caller must re-read before retrying. A commit is never
 * reported as successful unless etcd acknowledged it.
 *
 * The change feed (./etcd-feed.ts) is an etcd watch per watcher on the namespace (or a sub-prefix), from a
 * revision. etcd delivers all events of one transaction in one response; they become one
 * ChangeSet. If the watch stream breaks (member or leader loss) it is re-created on any
 * reachable member from the last revision received, so there is no gap and no duplicate.
 * Watches start one revision early and drop that revision: etcd lets a watch begin at its
 * compaction revision, while a Store watcher must get CompactedError for it.
 *
 * compact(r) compacts the whole etcd cluster's history at r's etcd revision (etcd
 * compaction is cluster-wide, so it also trims other namespaces' history).
 */
import {
  type CallOptionsFactory,
  CompareResult,
  CompareTarget,
  Etcd3,
  type ICompare,
  type IKeyValue,
  type IOptions,
  type IRangeRequest,
  type IRangeResponse,
  type IRequestOp,
  isRecoverableError,
  SortOrder,
  SortTarget,
} from 'etcd3';
import {
  type Batch,
  type CommitResult,
  type KeyValue,
  type Precondition,
  type RangeOptions,
  type RangeUnwritten,
  type RangeResult,
  type Store,
  StoreClosedError,
  type WatchHandlers,
  type WatchOptions,
  type Watcher,
  isRangePrecondition,
} from './types.js';
import { checkPreconditions, InFlight, preconditionKeys, InvalidBatchError, validateBatch, validateRangeOptions, watchedPrefixes, watchFilter } from './common.js';
import { EtcdFeed } from './etcd-feed.js';
import { MISS, StoreMirror } from './mirror.js';

export interface EtcdStoreOptions {
  /** Client URLs of the etcd members, e.g. http://10.0.0.1:2379. */
  endpoints: string[];
  /** Namespace prefix for every rhumb key (default 'rhumb/'). */
  prefix?: string;
  /** Largest transaction sent (default 128, etcd's default --max-txn-ops); larger batches are refused. */
  maxTxnOps?: number;
  /** Deadline of one etcd request (default 5000 ms). */
  requestTimeoutMs?: number;
  /** How long reads and provably-unapplied commits keep retrying transient failures (default 10000 ms). */
  retryTimeoutMs?: number;
  /**
   * Key prefixes this replica keeps a watch-fed copy of, for getStale (a transaction's
   * first-attempt reads): loaded in the background after open, one more watch.
   */
  mirrorPrefixes?: string[];
}

export const DEFAULT_ETCD_PREFIX = 'rhumb/';
const MARKER_VALUE = JSON.stringify({ rhumb: 'store', format: 1 });

export class StoreUnavailableError extends Error {
  readonly code = 'StoreUnavailable';
  constructor(
    message: string,
    /** For commits: 'not-applied' when etcd provably did not apply it, 'unknown' when it may have. */
    readonly outcome: 'not-applied' | 'unknown',
    cause?: Error,
  ) {
    super(message, { cause });
    this.name = 'StoreUnavailableError';
  }
}

// ---- error classification -------------------------------------------------------------

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function isBrokenCircuit(err: Error): boolean {
  return 'isBrokenCircuitError' in err || /circuit breaker is open/i.test(err.message);
}

/** Worth retrying a read: the member or the cluster is (temporarily) unable to answer. */
function isTransient(err: Error): boolean {
  return isRecoverableError(err) || isBrokenCircuit(err);
}

/** The request provably never became a raft proposal, so retrying a write cannot apply it twice. */
function provablyNotApplied(err: Error): boolean {
  return (
    isBrokenCircuit(err) ||
    /ECONNREFUSED|No connection established|failed to connect|etcdserver: no leader|raft proposal dropped|etcdserver: too many requests/i.test(err.message)
  );
}

/** etcd's answer to compacting at or below the current compaction point, or past the head. */
function isCompactionOutOfRange(err: Error): boolean {
  return /required revision has been compacted|required revision is a future revision/.test(err.message);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ---- keys -----------------------------------------------------------------------------

/** Smallest byte string greater than every string starting with `b` (etcd's prefix range end). */
function prefixEnd(b: Buffer): Buffer {
  const end = Buffer.from(b);
  for (let i = end.length - 1; i >= 0; i--) {
    if ((end[i] as number) < 0xff) {
      end[i] = (end[i] as number) + 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // etcd: "to the end of the keyspace"
}

const utf8 = (s: string): Buffer => Buffer.from(s, 'utf8');

/** Cockatiel-style policy that runs once: the store decides itself what is safe to retry. */
const runOnce = { execute: <T>(fn: (ctx: unknown) => T): T => fn({}) } as unknown as NonNullable<IOptions['faultHandling']>['global'];

/** etcd refused a request for its size or its number of operations (never applied). */
function isOverLimit(err: Error): boolean {
  return /too many operations in txn request|request is too large|received message larger than max|trying to send message larger than max/i.test(err.message);
}

// ---- the store ------------------------------------------------------------------------

export class EtcdStore implements Store {
  readonly kind = 'etcd' as const;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly inFlight = new InFlight();
  private readonly feeds = new Set<EtcdFeed>();
  private readonly maxTxnOps: number;
  private readonly retryTimeoutMs: number;
  private readonly mirror: StoreMirror | null = null;

  private constructor(
    private readonly client: Etcd3,
    /** The namespace prefix; also the marker key. */
    private readonly ns: Buffer,
    /** etcd revision of store revision 0. */
    private readonly base: number,
    readonly endpoints: string[],
    opts: EtcdStoreOptions,
  ) {
    this.maxTxnOps = opts.maxTxnOps ?? 128;
    this.retryTimeoutMs = opts.retryTimeoutMs ?? 10_000;
    if (opts.mirrorPrefixes && opts.mirrorPrefixes.length > 0) this.mirror = new StoreMirror({ store: this, prefixes: opts.mirrorPrefixes });
  }

  /** Connects, creating the namespace marker if this is the namespace's first use. */
  static async open(opts: EtcdStoreOptions): Promise<EtcdStore> {
    const endpoints = (opts.endpoints ?? []).map((e) => e.trim()).filter((e) => e !== '');
    if (endpoints.length === 0) throw new Error('etcd store needs at least one endpoint (e.g. http://127.0.0.1:2379)');
    const prefix = opts.prefix ?? DEFAULT_ETCD_PREFIX;
    if (typeof prefix !== 'string' || prefix === '') throw new Error('etcd store prefix must be a non-empty string');
    if (opts.maxTxnOps !== undefined && !(Number.isInteger(opts.maxTxnOps) && opts.maxTxnOps >= 2)) {
      throw new Error(`etcd maxTxnOps must be an integer >= 2 (got ${opts.maxTxnOps})`);
    }
    const timeout = opts.requestTimeoutMs ?? 5000;
    const callOptions: CallOptionsFactory = (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout });
    const client = new Etcd3({
      hosts: endpoints,
      grpcOptions: {
        // Responses (a large range, a watch catch-up) may exceed grpc's 4 MiB default.
        'grpc.max_receive_message_length': -1,
        // Notice a member that vanished without closing its connections (host down,
        // partition) while calls or watches are open. etcd rejects pings under 5 s apart.
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
      },
      defaultCallOptions: callOptions,
      faultHandling: { global: runOnce },
    });
    const ns = utf8(prefix);
    try {
      const base = await retrying(opts.retryTimeoutMs ?? 10_000, () => false, isTransient, async () => {
        // Idempotent: creates the marker only if absent, else reads it.
        const res = await client.kv.txn({
          compare: [{ key: ns, target: CompareTarget.Create, result: CompareResult.Equal, create_revision: 0 }],
          success: [{ request_put: { key: ns, value: utf8(MARKER_VALUE) } }],
          failure: [{ request_range: { key: ns } }],
        });
        if (res.succeeded) return Number(res.header.revision);
        const kv = res.responses[0]?.response_range.kvs[0];
        if (!kv) throw new Error('etcd namespace marker vanished while opening');
        return Number(kv.create_revision);
      });
      const store = new EtcdStore(client, ns, base, endpoints, opts);
      store.mirror?.start();
      return store;
    } catch (err) {
      client.close();
      throw new Error(`cannot open etcd store at ${endpoints.join(',')} (prefix ${prefix}): ${asError(err).message}`, { cause: err });
    }
  }

  /** The namespace prefix in use. */
  get prefix(): string {
    return this.ns.toString('utf8');
  }

  /** The etcd revision that store revision 0 corresponds to. */
  get baseRevision(): number {
    return this.base;
  }

  // ---- plumbing -----------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) throw new StoreClosedError();
  }

  /** Keeps close() from tearing the client down under a request. */
  private track<T>(p: Promise<T>): Promise<T> {
    return this.inFlight.track(p);
  }

  private read<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return this.track(
      retrying(this.retryTimeoutMs, () => this.closed, isTransient, fn).catch((err: unknown) => {
        const e = asError(err);
        if (e instanceof StoreClosedError) throw e;
        if (isTransient(e)) throw new StoreUnavailableError(`etcd ${what} failed: ${e.message}`, 'not-applied', e);
        throw e;
      }),
    );
  }

  private key(k: string): Buffer {
    return Buffer.concat([this.ns, utf8(k)]);
  }

  private userKey(b: Buffer): string {
    return b.subarray(this.ns.length).toString('utf8');
  }

  private toKeyValue(kv: IKeyValue): KeyValue {
    return {
      key: this.userKey(kv.key),
      value: kv.value.toString('utf8'),
      createRevision: Number(kv.create_revision) - this.base,
      modRevision: Number(kv.mod_revision) - this.base,
    };
  }

  private storeRevision(etcdRevision: string | number): number {
    return Number(etcdRevision) - this.base;
  }

  /** etcd [key, range_end) for the user keys `opts` selects (never the marker), or null if none can match. */
  private bounds(opts: { prefix?: string; gte?: string; gt?: string; lt?: string }): { key: Buffer; range_end: Buffer } | null {
    let lower = utf8(opts.prefix ?? '');
    if (opts.gte !== undefined) {
      const b = utf8(opts.gte);
      if (Buffer.compare(b, lower) > 0) lower = b;
    }
    if (opts.gt !== undefined) {
      const b = Buffer.concat([utf8(opts.gt), Buffer.from([0])]); // least key above gt
      if (Buffer.compare(b, lower) > 0) lower = b;
    }
    if (lower.length === 0) lower = Buffer.from([0]); // user keys are non-empty: skip the marker
    let upper: Buffer | null = opts.prefix ? prefixEnd(utf8(opts.prefix)) : null;
    if (opts.lt !== undefined) {
      const b = utf8(opts.lt);
      if (upper === null || Buffer.compare(b, upper) < 0) upper = b;
    }
    const key = Buffer.concat([this.ns, lower]);
    const rangeEnd = upper === null ? prefixEnd(this.ns) : Buffer.concat([this.ns, upper]);
    if (Buffer.compare(key, rangeEnd) >= 0) return null;
    return { key, range_end: rangeEnd };
  }

  /** A linearizable read of the marker: the cluster's current revision. */
  private async head(deadlineMs?: number): Promise<number> {
    const res = await this.client.kv.range({ key: this.ns, count_only: true }, deadlineMs ? { deadline: Date.now() + deadlineMs } : undefined);
    return Number(res.header.revision);
  }

  // ---- reads --------------------------------------------------------------------------

  async get(key: string): Promise<KeyValue | undefined> {
    this.assertOpen();
    if (key === '') return undefined;
    const res = await this.read('get', () => this.client.kv.range({ key: this.key(key) }));
    const kv = res.kvs[0];
    return kv ? this.toKeyValue(kv) : undefined;
  }

  /** A read from this replica's mirror when it holds the key (see StoreMirror), else from etcd. */
  async getStale(key: string): Promise<KeyValue | undefined> {
    this.assertOpen();
    // read() answers undefined for a key the copy knows to be absent: that is an answer too.
    const kv = this.mirror ? this.mirror.read(key) : MISS;
    return kv === MISS ? this.get(key) : kv;
  }

  async getManyStale(keys: string[]): Promise<Map<string, KeyValue>> {
    this.assertOpen();
    const out = new Map<string, KeyValue>();
    const rest: string[] = [];
    for (const k of keys) {
      const kv = this.mirror ? this.mirror.read(k) : MISS;
      if (kv === MISS) rest.push(k);
      else if (kv) out.set(k, kv);
    }
    if (rest.length > 0) for (const [k, kv] of await this.getMany(rest)) out.set(k, kv);
    return out;
  }

  async getMany(keys: string[]): Promise<Map<string, KeyValue>> {
    this.assertOpen();
    const unique = [...new Set(keys)].filter((k) => k !== '');
    const out = new Map<string, KeyValue>();
    if (unique.length === 0) return out;
    // One transaction of gets reads at one revision; further chunks (beyond the txn op
    // limit) are pinned to that revision.
    let revision: string | undefined;
    for (let i = 0; i < unique.length; i += this.maxTxnOps) {
      const chunk = unique.slice(i, i + this.maxTxnOps);
      const pinned = revision;
      const res = await this.read('getMany', () =>
        this.client.kv.txn({
          success: chunk.map((k): IRequestOp => ({ request_range: { key: this.key(k), ...(pinned ? { revision: pinned } : {}) } })),
        }),
      );
      revision ??= res.header.revision;
      for (const r of res.responses) for (const kv of r.response_range.kvs) out.set(this.userKey(kv.key), this.toKeyValue(kv));
    }
    return out;
  }

  async range(opts: RangeOptions): Promise<RangeResult> {
    this.assertOpen();
    validateRangeOptions(opts);
    const b = this.bounds(opts);
    if (b === null || opts.limit === 0) {
      return { kvs: [], revision: this.storeRevision(await this.read('range', () => this.head())) };
    }
    const req: IRangeRequest = { ...b };
    if (opts.limit !== undefined) req.limit = opts.limit;
    // Forward key order is etcd's natural order (and lets it stop at limit); descending
    // makes etcd sort the whole range before truncating.
    if (opts.reverse) {
      req.sort_order = SortOrder.Descend;
      req.sort_target = SortTarget.Key;
    }
    const res: IRangeResponse = await this.read('range', () => this.client.kv.range(req));
    return { kvs: res.kvs.map((kv) => this.toKeyValue(kv)), revision: this.storeRevision(res.header.revision) };
  }

  async count(prefix: string): Promise<number> {
    this.assertOpen();
    const b = this.bounds({ prefix });
    if (b === null) return 0;
    const res = await this.read('count', () => this.client.kv.range({ ...b, count_only: true }));
    return Number(res.count);
  }

  async revision(): Promise<number> {
    this.assertOpen();
    return this.storeRevision(await this.read('revision', () => this.head()));
  }

  // ---- commits ------------------------------------------------------------------------

  private compare(p: Precondition): ICompare | null {
    const never: ICompare = { key: this.ns, target: CompareTarget.Version, result: CompareResult.Less, version: 0 };
    if (isRangePrecondition(p)) {
      // Every key of the range (none: vacuously true) was last written at or before it.
      const b = this.bounds({ prefix: p.prefix });
      if (b === null) return null;
      const c: ICompare & { range_end: Buffer } = {
        key: b.key,
        range_end: b.range_end,
        target: CompareTarget.Mod,
        result: CompareResult.Less,
        mod_revision: p.noWritesAfter + this.base + 1,
      };
      return c;
    }
    if (typeof p.key !== 'string' || p.key === '') return 'absent' in p ? null : never; // '' never exists
    const key = this.key(p.key);
    if ('absent' in p) return { key, target: CompareTarget.Create, result: CompareResult.Equal, create_revision: 0 };
    if ('present' in p) return { key, target: CompareTarget.Version, result: CompareResult.Greater, version: 0 };
    if ('modRevision' in p) {
      // Every key of this namespace was written after the base revision.
      if (!Number.isInteger(p.modRevision) || p.modRevision < 1) return never;
      return { key, target: CompareTarget.Mod, result: CompareResult.Equal, mod_revision: p.modRevision + this.base };
    }
    if (typeof p.value !== 'string') return never;
    return { key, target: CompareTarget.Value, result: CompareResult.Equal, value: utf8(p.value) };
  }

  async commit(batch: Batch): Promise<CommitResult> {
    this.assertOpen();
    validateBatch(batch);
    const pre = batch.preconditions ?? [];
    const hasPut = batch.ops.some((op) => op.type === 'put');
    const success: IRequestOp[] = batch.ops.map((op) =>
      op.type === 'put' ? { request_put: { key: this.key(op.key), value: utf8(op.value) } } : { request_delete_range: { key: this.key(op.key) } },
    );
    // Guarantees the commit its own revision even if it changes no key.
    if (!hasPut) success.push({ request_put: { key: this.ns, value: utf8(MARKER_VALUE) } });
    if (success.length > this.maxTxnOps || pre.length > this.maxTxnOps) {
      throw new InvalidBatchError(
        `batch has ${batch.ops.length} ops and ${pre.length} preconditions; one etcd transaction allows at most ` +
          `${this.maxTxnOps} of each${hasPut ? '' : ' (one more op is used to give a change-less batch its revision)'}` +
          ' (etcd --max-txn-ops) — split the batch',
      );
    }
    const compare = pre.map((p) => this.compare(p)).filter((c): c is ICompare => c !== null);
    const preKeys = [...new Set(preconditionKeys(pre).filter((k) => typeof k === 'string' && k !== ''))];
    const failure: IRequestOp[] = preKeys.map((k) => ({ request_range: { key: this.key(k) } }));
    // A range precondition: how many keys of its range were written after its revision.
    const ranges = [...new Map(pre.flatMap((p) => (isRangePrecondition(p) ? [[rangeId(p), p] as const] : []))).values()];
    for (const p of ranges) {
      const b = this.bounds({ prefix: p.prefix });
      failure.push({ request_range: { ...(b ?? { key: this.ns }), count_only: true, min_mod_revision: p.noWritesAfter + this.base + 1 } });
    }

    const attempt = this.track(
      retrying(this.retryTimeoutMs, () => this.closed, provablyNotApplied, () => this.client.kv.txn({ compare, success, failure })),
    );
    let res;
    try {
      res = await attempt;
    } catch (err) {
      const e = asError(err);
      if (e instanceof StoreClosedError) throw e;
      if (isOverLimit(e)) throw new InvalidBatchError(`etcd refused the batch (${batch.ops.length} ops, ${pre.length} preconditions): ${e.message}`);
      if (provablyNotApplied(e)) throw new StoreUnavailableError(`etcd commit not applied: ${e.message}`, 'not-applied', e);
      if (isTransient(e)) {
        throw new StoreUnavailableError(`etcd commit outcome unknown (it may or may not have been applied): ${e.message}`, 'unknown', e);
      }
      throw e;
    }
    const revision = this.storeRevision(res.header.revision);
    if (res.succeeded) return { ok: true, revision };
    // The failure branch read every precondition key at the failed transaction's revision.
    const state = new Map<string, KeyValue>();
    for (const r of res.responses) for (const kv of r.response_range.kvs) state.set(this.userKey(kv.key), this.toKeyValue(kv));
    const writtenSince = new Set<string>();
    ranges.forEach((p, i) => {
      if (Number(res.responses[preKeys.length + i].response_range.count) > 0) writtenSince.add(rangeId(p));
    });
    const failed = checkPreconditions(pre, {
      read: (k) => state.get(k),
      writtenAfter: (prefix, revision) => writtenSince.has(rangeId({ prefix, noWritesAfter: revision })),
    });
    return { ok: false, failed, revision };
  }

  // ---- change feed and compaction -----------------------------------------------------

  watch(opts: WatchOptions, handlers: WatchHandlers): Watcher {
    this.assertOpen();
    const prefixes = watchedPrefixes(opts);
    const wholeNamespace = prefixes[0] === '';
    // One etcd watch over the smallest range covering every prefix keeps one revision
    // order; what lies between the prefixes is dropped here.
    let range = { key: this.ns, range_end: prefixEnd(this.ns) };
    if (!wholeNamespace) {
      const starts = prefixes.map((p) => this.key(p)).sort(Buffer.compare);
      const ends = prefixes.map((p) => prefixEnd(this.key(p))).sort(Buffer.compare);
      range = { key: starts[0] as Buffer, range_end: ends[ends.length - 1] as Buffer };
    }
    const select = watchFilter({ prefixes });
    const feed = new EtcdFeed(
      {
        client: this.client,
        base: this.base,
        nsLength: this.ns.length,
        isMarker: (k) => k.equals(this.ns),
        remove: (f) => this.feeds.delete(f),
      },
      range,
      wholeNamespace,
      prefixes.length === 1 ? null : select,
      opts.fromRevision,
      handlers,
    );
    this.feeds.add(feed);
    feed.start();
    return feed;
  }

  async compact(revision: number): Promise<void> {
    this.assertOpen();
    await this.read('compact', async () => {
      const head = await this.head();
      const target = Math.min(Math.floor(revision) + this.base, head);
      if (target <= this.base) return;
      try {
        await this.client.kv.compact({ revision: target, physical: false });
      } catch (err) {
        // Already compacted at or beyond this point: compaction is monotonic.
        if (!isCompactionOutOfRange(asError(err))) throw err;
      }
    });
  }

  // ---- lifecycle ----------------------------------------------------------------------

  async healthy(): Promise<boolean> {
    if (this.closed) return false;
    try {
      // Short deadline: /ping should answer promptly, also during an election.
      await this.track(this.head(2000));
      return true;
    } catch {
      return false;
    }
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    this.mirror?.close();
    for (const f of [...this.feeds]) f.fail(new StoreClosedError());
    this.closing = (async () => {
      // Requests already sent finish normally (a commit lands or fails on its own).
      await this.inFlight.settled();
      this.client.close();
    })();
    return this.closing;
  }
}

/**
 * Runs fn, retrying errors `retryable` accepts with backoff until the deadline.
 * Gives up with StoreClosedError once `closed()` says so.
 */
async function retrying<T>(timeoutMs: number, closed: () => boolean, retryable: (e: Error) => boolean, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 25;
  for (;;) {
    if (closed()) throw new StoreClosedError();
    try {
      return await fn();
    } catch (err) {
      const e = asError(err);
      if (!retryable(e) || Date.now() + delay > deadline) throw e;
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 500);
  }
}

/** Names a range precondition (its prefix and revision). */
function rangeId(p: RangeUnwritten): string {
  return `${p.noWritesAfter}\u0000${p.prefix}`;
}
