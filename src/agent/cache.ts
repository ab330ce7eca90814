/**
 * The agent's mapping cache: answers from the controller, kept until a shootdown says
 * otherwise (mappings are never expired by time — the controller pushes invalidations),
 * NOTFOUND answers kept briefly, and one lookup in flight per destination however many
 * misses ask for it. Pure: the clock and the lookup function are injected.
 *
 * A lookup that was in flight when its key was invalidated does not fill the cache: the
 * answer may predate the change the shootdown announced.
 */

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** Where an answer came from (for metrics and tests). */
export type CacheSource = 'hit' | 'negative' | 'lookup' | 'coalesced';

export interface CacheResult<T> {
  /** null: the controller said NOTFOUND. */
  value: T | null;
  source: CacheSource;
  /** The key was invalidated while the lookup was in flight: the answer may predate that change. */
  stale?: true;
}

interface Fetched<T> {
  value: T | null;
  stale: boolean;
}

export interface ResolvingCacheOptions {
  /** How long a NOTFOUND answer is remembered. Default 2000 ms. */
  negativeTtlMs?: number;
  clock?: Clock;
}

interface Entry<T> {
  value: T | null;
  /** Infinity for positive answers. */
  expires: number;
}

export class ResolvingCache<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly inflight = new Map<string, Promise<Fetched<T>>>();
  /** Bumped by every invalidation of a key, so a lookup racing it is not cached. */
  private readonly generations = new Map<string, number>();
  private readonly negativeTtlMs: number;
  private readonly clock: Clock;

  constructor(opts: ResolvingCacheOptions = {}) {
    this.negativeTtlMs = opts.negativeTtlMs ?? 2000;
    this.clock = opts.clock ?? systemClock;
  }

  /** The cached answer (undefined: not cached or the negative entry expired). */
  peek(key: string): T | null | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.expires <= this.clock.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }

  /**
   * The answer for key: from the cache, from a lookup already in flight, or from a new
   * call to lookup (null = NOTFOUND). A rejected lookup caches nothing.
   */
  async resolve(key: string, lookup: () => Promise<T | null>): Promise<CacheResult<T>> {
    const cached = this.peek(key);
    if (cached !== undefined) return { value: cached, source: cached === null ? 'negative' : 'hit' };
    const pending = this.inflight.get(key);
    const source: CacheSource = pending ? 'coalesced' : 'lookup';
    const { value, stale } = await (pending ?? this.fetch(key, lookup));
    return stale ? { value, source, stale } : { value, source };
  }

  /** Forgets key and looks it up again (later resolves share this lookup). */
  async refresh(key: string, lookup: () => Promise<T | null>): Promise<Fetched<T>> {
    this.invalidate(key);
    return this.fetch(key, lookup);
  }

  private fetch(key: string, lookup: () => Promise<T | null>): Promise<Fetched<T>> {
    const gen = this.generations.get(key) ?? 0;
    const p: Promise<Fetched<T>> = lookup()
      .then((value) => {
        const stale = (this.generations.get(key) ?? 0) !== gen;
        if (!stale) this.set(key, value);
        return { value, stale };
      })
      .finally(() => {
        if (this.inflight.get(key) === p) this.inflight.delete(key);
      });
    this.inflight.set(key, p);
    return p;
  }

  /** Stores an answer (null = NOTFOUND, remembered for the negative TTL). */
  set(key: string, value: T | null): void {
    this.entries.set(key, { value, expires: value === null ? this.clock.now() + this.negativeTtlMs : Infinity });
  }

  /** Forgets key; a lookup in flight for it will not be cached. True when something was cached. */
  invalidate(key: string): boolean {
    this.generations.set(key, (this.generations.get(key) ?? 0) + 1);
    if (this.inflight.has(key)) this.inflight.delete(key);
    return this.entries.delete(key);
  }

  /** Forgets every positive entry whose value matches; returns their keys. */
  invalidateWhere(pred: (key: string, value: T) => boolean): string[] {
    const gone: string[] = [];
    for (const [k, e] of this.entries) if (e.value !== null && pred(k, e.value)) gone.push(k);
    for (const k of gone) this.invalidate(k);
    return gone;
  }

  /** Marks lookups in flight whose key matches as stale (their answers are not cached). */
  invalidateInflight(pred: (key: string) => boolean): number {
    const keys = [...this.inflight.keys()].filter(pred);
    for (const k of keys) this.invalidate(k);
    return keys.length;
  }

  /** Positive and negative entries (expired negatives included until touched). */
  sizes(): { positive: number; negative: number; inflight: number } {
    let positive = 0;
    let negative = 0;
    const now = this.clock.now();
    for (const e of this.entries.values()) {
      if (e.value !== null) positive++;
      else if (e.expires > now) negative++;
    }
    return { positive, negative, inflight: this.inflight.size };
  }

  entriesList(): Array<[string, T]> {
    const out: Array<[string, T]> = [];
    for (const [k, e] of this.entries) if (e.value !== null) out.push([k, e.value]);
    return out;
  }
}

/** What a VL3 lookup tells the agent: the MAC owning the IP, and its node's underlay. */
export interface Vl3Mapping {
  mac: string;
  underlay: string;
  port: number;
  /** The fabric VLAN of the MAC's NIC (looked up for VLAN-aware data planes). */
  vlan?: number;
}

/** What a VL2 lookup tells the agent: the node holding the MAC. */
export interface Vl2Mapping {
  underlay: string;
  port: number;
  /** The fabric VLAN of the MAC's NIC (looked up for VLAN-aware data planes). */
  vlan?: number;
}

export function vl3Key(vnet: number, ip: string): string {
  return `${vnet}/${ip}`;
}

export function vl2Key(vnet: number, mac: string): string {
  return `${vnet}/${mac.toLowerCase()}`;
}
