/**
 * StoreView: the one loop that keeps an in-memory state in step with part of the Store.
 * A reducer owns the state; the view feeds it.
 *
 * - Load: paged range reads of every watched prefix. The first page fixes R0; later pages
 *   may be newer. Following the feed from R0+1 replays every change since, and replaying
 *   state-setting puts and deletes over a state that is already partly newer converges,
 *   so the state is exact once the view has applied the last page's revision (`ready`).
 * - Follow: the change feed from R0+1, one change set at a time, in revision order.
 * - Lost feed: CompactedError reloads at once; any other failure reloads after an
 *   exponential backoff. A reload builds the new state beside the old one, which keeps
 *   serving until the new one is installed.
 * - Generation token: everything from an abandoned load or feed is ignored.
 * - waitForRevision(rev): resolves once the state reflects every watched change up to
 *   store revision rev (a writer waits for its own commit this way).
 */
import { type ChangeSet, CompactedError, type KeyValue, type Store, StoreClosedError, type Watcher } from './types.js';

export interface ViewLogger {
  warn(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
}

/** What a view feeds. Calls never overlap; a returned promise is awaited. */
export interface ViewReducer {
  /** A (re)load starts: build the next state aside, the current one keeps serving. */
  beginLoad(): void;
  /** Keys of the load, in key order per prefix. */
  loadPage(kvs: readonly KeyValue[]): void;
  /** The loaded state becomes current. revision: the load's first page; reload: not the first load. */
  endLoad(revision: number, reload: boolean): void | Promise<void>;
  /** A committed change set after the load (possibly with no changes: progress only). */
  apply(set: ChangeSet): void | Promise<void>;
  /** The feed failed; the view reloads (after err's backoff) unless the store is closed. */
  feedLost?(err: Error): void;
}

export interface StoreViewOptions {
  store: Store;
  /** Key prefixes loaded into the state (and followed). */
  prefixes: readonly string[];
  /** Prefix the feed follows (default: the only entry of prefixes, else the whole keyspace). */
  watchPrefix?: string;
  /** Keys per range read while loading. */
  pageSize?: number;
  /** First delay before reloading after the feed fails for a reason other than compaction. */
  retryBaseMs?: number;
  /** Longest delay between reload attempts. */
  retryMaxMs?: number;
  /** Who is following (log messages). */
  name?: string;
  logger?: ViewLogger;
}

interface RevisionWaiter {
  rev: number;
  resolve: (ok: boolean) => void;
  timer?: NodeJS.Timeout;
}

export class StoreView {
  private readonly store: Store;
  private readonly pageSize: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly name: string;
  private readonly logger: ViewLogger | undefined;
  private watcher: Watcher | null = null;
  private closed = false;
  private started: Promise<void> | null = null;
  private rev = 0;
  private readyAt = Infinity;
  private loadedOnce = false;
  private reloadCount = 0;
  private retries = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private generation = 0;
  private revWaiters: RevisionWaiter[] = [];
  private readyWaiters: (() => void)[] = [];

  constructor(
    private readonly opts: StoreViewOptions,
    private readonly reducer: ViewReducer,
  ) {
    this.store = opts.store;
    this.pageSize = opts.pageSize ?? 20000;
    this.retryBaseMs = opts.retryBaseMs ?? 500;
    this.retryMaxMs = opts.retryMaxMs ?? 30000;
    this.name = opts.name ?? 'store view';
    this.logger = opts.logger;
  }

  /** The last store revision whose watched changes the state reflects. */
  get revision(): number {
    return this.rev;
  }

  /** True once the initial load has caught up with the store. */
  get ready(): boolean {
    return this.rev >= this.readyAt;
  }

  /** Full reloads since the first load (after compaction or a lost feed). */
  get reloads(): number {
    return this.reloadCount;
  }

  /** True while the feed is open (false after a failure, until the reload resumes it). */
  get following(): boolean {
    return this.watcher !== null;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Loads and starts following; resolves once caught up with the store. */
  start(): Promise<void> {
    if (!this.started) this.started = this.load().then(() => this.whenReady());
    return this.started;
  }

  close(): void {
    this.closed = true;
    this.generation++;
    this.watcher?.close();
    this.watcher = null;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    for (const w of this.revWaiters) {
      if (w.timer) clearTimeout(w.timer);
      w.resolve(false);
    }
    this.revWaiters = [];
    for (const r of this.readyWaiters) r();
    this.readyWaiters = [];
  }

  /**
   * Resolves true once the state reflects store revision `rev` (e.g. a writer's commit
   * revision), false on timeout or close.
   */
  waitForRevision(rev: number, timeoutMs?: number): Promise<boolean> {
    if (this.rev >= rev) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const w: RevisionWaiter = { rev, resolve };
      if (timeoutMs !== undefined) {
        w.timer = setTimeout(() => {
          this.revWaiters = this.revWaiters.filter((x) => x !== w);
          resolve(false);
        }, timeoutMs);
      }
      this.revWaiters.push(w);
    });
  }

  private whenReady(): Promise<void> {
    if (this.ready || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  private async load(): Promise<void> {
    const gen = ++this.generation;
    this.reducer.beginLoad();
    let r0 = -1;
    let last = 0;
    for (const prefix of this.opts.prefixes) {
      let gt: string | undefined;
      for (;;) {
        const page = await this.store.range({ prefix, gt, limit: this.pageSize });
        if (this.closed || gen !== this.generation) return;
        if (r0 < 0) r0 = page.revision;
        last = Math.max(last, page.revision);
        this.reducer.loadPage(page.kvs);
        if (page.kvs.length < this.pageSize) break;
        gt = page.kvs[page.kvs.length - 1].key;
      }
    }
    if (r0 < 0) r0 = last = await this.store.revision();
    const reloading = this.loadedOnce;
    await this.reducer.endLoad(r0, reloading);
    if (this.closed || gen !== this.generation) return;
    this.loadedOnce = true;
    if (reloading) this.reloadCount++;
    this.rev = Math.max(this.rev, r0);
    this.readyAt = last;
    this.follow(r0 + 1, gen);
    this.settle();
  }

  private follow(fromRevision: number, gen: number): void {
    this.watcher?.close();
    const prefix = this.opts.watchPrefix ?? (this.opts.prefixes.length === 1 ? this.opts.prefixes[0] : '');
    this.watcher = this.store.watch(
      { prefix, fromRevision },
      {
        onChange: (set) => (gen === this.generation ? this.applySet(set, gen) : undefined),
        onError: (err) => {
          if (gen !== this.generation || this.closed) return;
          this.onFeedError(err);
        },
      },
    );
  }

  private async applySet(set: ChangeSet, gen: number): Promise<void> {
    await this.reducer.apply(set);
    if (gen !== this.generation) return;
    if (set.revision > this.rev) this.rev = set.revision;
    this.settle();
  }

  private onFeedError(err: Error): void {
    this.generation++; // whatever the lost feed still delivers is stale
    this.watcher = null;
    this.reducer.feedLost?.(err);
    if (err instanceof StoreClosedError) {
      this.logger?.warn({ err: err.message }, `${this.name}: store closed, no longer following`);
      return;
    }
    if (err instanceof CompactedError) {
      this.logger?.info({ err: err.message }, `${this.name}: feed compacted, reloading`);
      this.reload(0);
      return;
    }
    const delay = Math.min(this.retryBaseMs * 2 ** this.retries, this.retryMaxMs);
    this.retries++;
    this.logger?.warn({ err: err.message, delayMs: delay }, `${this.name}: feed failed, reloading`);
    this.reload(delay);
  }

  private reload(delayMs: number): void {
    if (this.closed) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.load().then(
        () => {
          this.retries = 0;
        },
        (err: Error) => {
          if (!this.closed) this.onFeedError(err);
        },
      );
    }, delayMs);
  }

  /** Resolves revision waiters and, once caught up, the start() promise. */
  private settle(): void {
    if (this.revWaiters.length > 0) {
      const keep: RevisionWaiter[] = [];
      for (const w of this.revWaiters) {
        if (w.rev <= this.rev) {
          if (w.timer) clearTimeout(w.timer);
          w.resolve(true);
        } else keep.push(w);
      }
      this.revWaiters = keep;
    }
    if (this.ready && this.readyWaiters.length > 0) {
      const ws = this.readyWaiters;
      this.readyWaiters = [];
      for (const r of ws) r();
    }
  }
}
