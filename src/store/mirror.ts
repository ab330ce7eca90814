/**
 * StoreMirror: a replica's in-memory copy of some key prefixes of a shared store (etcd),
 * loaded and then kept up by the change feed (a StoreView), for Store.getStale: the
 * guarded reads of a transaction's first attempt are answered from memory instead of one
 * round trip each.
 *
 * Stale, never wrong. A copy may lag the store (the feed is behind, lost, or reloading),
 * but every entry is a value the key really had, with that value's exact createRevision
 * and modRevision, and an absent key was really absent at the copy's revision: a read from
 * here is a read from the past. A transaction's reads are preconditions of its commit, so
 * one that changed since fails the commit and transact() runs again on fresh reads.
 *
 * Exact revisions. Load pages may be newer than the first page (R0), and the feed replays
 * from R0+1: a change at revision E is applied only when it is newer than the entry held
 * (E > modRevision), a put of a key not held creates it with createRevision E. The copy is
 * exact, and served, only once the feed has passed the last page's revision (`ready`);
 * before that, and for keys outside the prefixes, getStale answers undefined-as-unknown
 * (`MISS`) and the store reads itself. After compaction or a lost feed the view reloads
 * beside the copy in use, which keeps answering (older, still exact) until the new one is
 * ready.
 */
import type { ChangeSet, KeyValue, Store } from './types.js';
import { StoreView, type ViewLogger } from './view.js';

/** getStale's answer for a key the mirror cannot answer: read the store. */
export const MISS = Symbol('mirror miss');

export interface StoreMirrorOptions {
  store: Store;
  /** Key prefixes copied. */
  prefixes: readonly string[];
  pageSize?: number;
  retryBaseMs?: number;
  logger?: ViewLogger;
}

export class StoreMirror {
  /** The copy answering reads (null until the first load is ready). */
  private serving: Map<string, KeyValue> | null = null;
  /** The revision the copy in use reflects, kept while a reload builds the next one. */
  private servingRevision = 0;
  /** The copy being loaded or followed. */
  private building = new Map<string, KeyValue>();
  /** A loaded copy waiting for the feed to reach the revision it is exact at. */
  private pending: { copy: Map<string, KeyValue>; exactAt: number } | null = null;
  private readonly view: StoreView;
  private readonly prefixes: readonly string[];

  constructor(opts: StoreMirrorOptions) {
    this.prefixes = opts.prefixes;
    this.view = new StoreView(
      {
        store: opts.store,
        prefixes: opts.prefixes,
        pageSize: opts.pageSize ?? 5000,
        retryBaseMs: opts.retryBaseMs ?? 500,
        name: 'store mirror',
        ...(opts.logger ? { logger: opts.logger } : {}),
      },
      {
        beginLoad: () => {
          this.building = new Map();
          this.pending = null;
        },
        loadPage: (kvs) => {
          for (const kv of kvs) this.building.set(kv.key, kv);
        },
        endLoad: (_revision, _reload, exactAt) => {
          this.pending = { copy: this.building, exactAt };
        },
        apply: (set) => {
          this.apply(set);
          this.settle();
        },
      },
    );
  }

  /** Starts loading in the background (reads miss until the copy is ready). */
  start(): void {
    this.view.start().catch(() => undefined);
  }

  close(): void {
    this.view.close();
    this.serving = null;
  }

  /** The store revision the copy in use reflects (0 before one is ready). */
  get revision(): number {
    this.settle();
    return this.serving ? this.servingRevision : 0;
  }

  /** The key's value as of `revision`, undefined when it was absent, MISS when unknown here. */
  read(key: string): KeyValue | undefined | typeof MISS {
    this.settle();
    if (!this.serving || !this.covers(key)) return MISS;
    return this.serving.get(key);
  }

  private covers(key: string): boolean {
    for (const p of this.prefixes) if (key.startsWith(p)) return true;
    return false;
  }

  /** Serves a loaded copy once the feed has reached the revision it is exact at. */
  private settle(): void {
    const p = this.pending;
    if (p && p.copy === this.building && this.view.revision >= p.exactAt) {
      this.serving = p.copy;
      this.pending = null;
    }
    if (this.serving === this.building) this.servingRevision = this.view.revision;
  }

  private apply(set: ChangeSet): void {
    const copy = this.building;
    for (const c of set.changes) {
      const held = copy.get(c.key);
      // Replayed over a newer load page: that page already has it, or something later.
      if (held && held.modRevision >= set.revision) continue;
      if (c.type === 'del') copy.delete(c.key);
      else copy.set(c.key, { key: c.key, value: c.value ?? '', createRevision: held ? held.createRevision : set.revision, modRevision: set.revision });
    }
  }
}
