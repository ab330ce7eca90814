/**
 * A bounded cache of a single-writer store's current values, absent keys included.
 *
 * The writer updates every key it commits right after the write is durable, so an entry
 * is always the value as of the store's latest acknowledged revision. Reads fill it only
 * when nothing could have changed underneath them (see LevelStore): the cache never
 * holds a value a reader could not have read from the database at that revision.
 *
 * Eviction is least-recently-used by insertion order of a Map (a hit re-inserts), a
 * tenth of the capacity at a time.
 */
import type { KeyValue } from './types.js';

/** undefined: not cached; null: cached as absent. */
export type Cached = KeyValue | null | undefined;

export class ReadCache {
  private readonly entries = new Map<string, KeyValue | null>();

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  lookup(key: string): Cached {
    const v = this.entries.get(key);
    if (v === undefined) return undefined;
    // Refresh recency (cheap: one delete + one insert on a Map).
    this.entries.delete(key);
    this.entries.set(key, v);
    return v;
  }

  /** Records key's current value (undefined: absent). */
  store(key: string, kv: KeyValue | undefined): void {
    if (this.capacity <= 0) return;
    this.entries.delete(key);
    this.entries.set(key, kv ?? null);
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
