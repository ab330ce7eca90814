/**
 * Set-ups of the LevelStore tests: a temporary directory, a store opened and always
 * closed, a store on disk reopened with an empty cache, and a tap on the LevelDB handle
 * under a store (to count its reads, or to hold a read or a write batch while a test
 * races something past it).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelStore, type LevelStoreOptions } from '../../src/store/leveldb.js';
import type { Batch } from '../../src/store/types.js';

/** Runs body with a fresh temporary directory, removed afterwards whatever happens. */
export async function withDir(tag: string, body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), `rhumb-${tag}-${process.pid}-`));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Opens a LevelStore in dir, runs body with it and closes it, whatever happens. */
export async function withStore<T>(dir: string, body: (s: LevelStore) => Promise<T>, opts?: LevelStoreOptions): Promise<T> {
  const s = await LevelStore.open(dir, opts);
  try {
    return await body(s);
  } finally {
    await s.close();
  }
}

/** Commits these batches to the store in dir and closes it: the next open starts with an empty cache. */
export function seedStore(dir: string, ...batches: Batch[]): Promise<void> {
  return withStore(dir, async (s) => {
    for (const b of batches) if (!(await s.commit(b)).ok) throw new Error('seedStore: a seed commit failed its preconditions');
  });
}

type Callback = (err?: Error | null, value?: unknown) => void;

/** The slice of LevelStore's private leveldown handle the tests intercept. */
export interface LevelDb {
  getMany(keys: string[], opts: object): Promise<unknown[]>;
  batch(ops: unknown[], opts: object, cb: Callback): void;
}

/** A promise and what opens it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { opened, open };
}

/**
 * The LevelDB handle under a store, with its own getMany and batch kept: the tests
 * replace them on `db` and call through to these; restore() puts them back.
 */
export class DbTap {
  readonly db: LevelDb;
  readonly getMany: LevelDb['getMany'];
  readonly batch: LevelDb['batch'];
  /** Write batches issued since holdFirstBatch(). */
  batches = 0;

  constructor(s: LevelStore) {
    this.db = (s as unknown as { db: LevelDb }).db;
    this.getMany = this.db.getMany.bind(this.db);
    this.batch = this.db.batch.bind(this.db);
  }

  /** From now on, the keys of every database read, one list a read. */
  recordReads(): string[][] {
    const reads: string[][] = [];
    this.db.getMany = (keys, opts) => {
      reads.push(keys);
      return this.getMany(keys, opts);
    };
    return reads;
  }

  /**
   * The next database read reads at once but answers only when the returned function is
   * called. It is picked at the call, not at completion: another read (a commit's own) may
   * finish first on another thread-pool thread, and holding that one could deadlock.
   */
  holdNextRead(): () => void {
    const g = gate();
    let held = false;
    this.db.getMany = async (keys, opts) => {
      const first = !held;
      held = true;
      const values = await this.getMany(keys, opts);
      if (first) await g.opened;
      return values;
    };
    return g.open;
  }

  /**
   * The next write batch waits until the returned function is called (commits behind it
   * queue into one group); later batches go to `later`, by default written.
   */
  holdFirstBatch(later: LevelDb['batch'] = this.batch): () => void {
    const g = gate();
    this.batches = 0;
    this.db.batch = (ops, opts, cb) => {
      if (++this.batches === 1) return void g.opened.then(() => this.batch(ops, opts, cb));
      later(ops, opts, cb);
    };
    return g.open;
  }

  restore(): void {
    this.db.getMany = this.getMany;
    this.db.batch = this.batch;
  }
}
