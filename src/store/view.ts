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
 *
 * Progress. The view follows only its prefixes, so a revision that changed nothing there
 * never arrives as such. In-process backends report every revision (Store.reportsProgress).
 * On etcd, whose progress notifications are not ordered with events in every 3.4/3.5
 * release, the view writes a fence key under its prefixes when it must know: the fence's
 * own change set, delivered in order, proves every earlier revision has been seen. A
 * waiter whose revision has not arrived after fenceAfterMs gets one (coalesced: one fence
 * in flight at a time); fence() asks for one at once.
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
  /**
   * The loaded state becomes current. revision: the load's first page; reload: not the first
   * load; exactAt: the last page's revision, from which on (once `revision` reaches it) the
   * state is exact.
   */
  endLoad(revision: number, reload: boolean, exactAt: number): void | Promise<void>;
  /** A committed change set after the load (possibly with no changes: progress only). */
  apply(set: ChangeSet): void | Promise<void>;
  /** The feed failed; the view reloads (after err's backoff) unless the store is closed. */
  feedLost?(err: Error): void;
}

export interface StoreViewOptions {
  store: Store;
  /** Key prefixes loaded into the state. */
  prefixes: readonly string[];
  /** Prefixes the feed follows (default: prefixes); must cover them. */
  watchPrefixes?: readonly string[];
  /** A key under watchPrefixes the view may write to learn how far the feed has come. */
  fenceKey?: string;
  /** How long a revision waiter waits for its revision before a fence is written (default 50 ms). */
  fenceAfterMs?: number;
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
  private fenceTimer: NodeJS.Timeout | null = null;
  private fenceRunning = false;
  private fenceAgain = false;

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
    if (this.fenceTimer) clearTimeout(this.fenceTimer);
    this.fenceTimer = null;
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
      this.scheduleFence();
    });
  }

  /**
   * Makes sure the view soon reflects every revision committed before this call: a no-op
   * when the store reports progress, else a fence (coalesced with one in flight).
   */
  fence(): void {
    if (!this.canFence()) return;
    if (this.fenceTimer) clearTimeout(this.fenceTimer);
    this.fenceTimer = null;
    this.runFence();
  }

  /** Resolves true once the view reflects everything committed before this call. */
  async sync(timeoutMs?: number): Promise<boolean> {
    const target = await this.store.revision();
    this.fence();
    return this.waitForRevision(target, timeoutMs);
  }

  private canFence(): boolean {
    return this.opts.fenceKey !== undefined && this.store.reportsProgress !== true && !this.closed;
  }

  private scheduleFence(): void {
    if (!this.canFence() || this.fenceTimer || this.fenceRunning) {
      if (this.fenceRunning) this.fenceAgain = true;
      return;
    }
    this.fenceTimer = setTimeout(() => {
      this.fenceTimer = null;
      if (this.revWaiters.some((w) => w.rev > this.rev)) this.runFence();
    }, this.opts.fenceAfterMs ?? 50);
  }

  private runFence(): void {
    if (this.fenceRunning) {
      this.fenceAgain = true;
      return;
    }
    this.fenceRunning = true;
    this.fenceAgain = false;
    const key = this.opts.fenceKey as string;
    let fenced = Infinity;
    this.store
      .commit({ ops: [{ type: 'put', key, value: String(Date.now()) }] })
      .then(
        (res) => {
          fenced = res.revision;
        },
        (err: Error) => this.logger?.warn({ err: err.message }, `${this.name}: fence write failed`),
      )
      .finally(() => {
        this.fenceRunning = false;
        // Waiters that came while the fence was in flight may need a later one.
        if (this.fenceAgain && this.revWaiters.some((w) => w.rev > fenced)) this.runFence();
        else this.fenceAgain = false;
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
    await this.reducer.endLoad(r0, reloading, last);
    if (this.closed || gen !== this.generation) return;
    this.loadedOnce = true;
    if (reloading) this.reloadCount++;
    this.rev = Math.max(this.rev, r0);
    this.readyAt = last;
    this.follow(r0 + 1, gen);
    this.settle();
    // Later pages were newer than the first: learn when the feed has passed them.
    if (!this.ready) this.fence();
  }

  private follow(fromRevision: number, gen: number): void {
    this.watcher?.close();
    const prefixes = this.opts.watchPrefixes ?? this.opts.prefixes;
    this.watcher = this.store.watch(
      { prefixes, fromRevision, progress: true },
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
