/**
 * A bounded cache of a single-writer store's current values, absent keys included.
 *
 * The writer updates every key it commits right after the write is durable, so an entry
 * is always the value as of the store's latest acknowledged revision. Reads fill it only
 * when nothing could have changed underneath them (see LevelStore): the cache never
 * holds a value a reader could not have read from the database at that revision.
 *
 * Eviction is least-recently-used by insertion order of a Map, a tenth of the capacity
 * at a time. A hit re-inserts its entry only once it has aged past a quarter of the
 * capacity (it could not be evicted before that): a hot key costs one Map get per lookup,
 * not a delete and an insert (lookups are the hot path of every transaction read).
 */
import type { KeyValue } from './types.js';

/** undefined: not cached; null: cached as absent. */
export type Cached = KeyValue | null | undefined;

interface Entry {
  kv: KeyValue | null;
  /** The insertion clock when it was last (re-)inserted: its distance from the recent end. */
  stamp: number;
}

export class ReadCache {
  private readonly entries = new Map<string, Entry>();
  /** Insertions so far. */
  private clock = 0;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  lookup(key: string): Cached {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (this.clock - e.stamp > this.capacity >> 2) {
      this.entries.delete(key);
      e.stamp = ++this.clock;
      this.entries.set(key, e);
    }
    return e.kv;
  }

  /** Records key's current value (undefined: absent). */
  store(key: string, kv: KeyValue | undefined): void {
    if (this.capacity <= 0) return;
    this.entries.delete(key);
    this.entries.set(key, { kv: kv ?? null, stamp: ++this.clock });
    if (this.entries.size > this.capacity) this.evict();
  }

  /**
   * Drops the least recently used tenth in one pass. One at a time would be slow: a Map
   * keeps deleted slots until it rehashes, and every keys().next() from the start would
   * step over all of them again.
   */
  private evict(): void {
    let drop = this.entries.size - Math.floor(this.capacity * 0.9);
    for (const key of this.entries.keys()) {
      if (drop-- <= 0) break;
      this.entries.delete(key);
    }
  }

  clear(): void {
    this.entries.clear();
  }
}
