/**
 * Open-addressing hash table over fixed-width u32 keys and values, stored in typed arrays.
 *
 * Why: a million JS Map entries with string keys and object values cost ~200 bytes each;
 * this costs (4·(K+V)+1)/load bytes per entry and creates no garbage on lookup. Linear
 * probing with backward-shift deletion (no tombstones), power-of-two capacity, grown at
 * 3/4 load.
 */
/** Receives a table's backing arrays (keys, values, occupancy). */
export type StorageWatcher = (keys: Uint32Array, vals: Uint32Array, used: Uint8Array) => void;

export class U32Table {
  private cap: number;
  private mask: number;
  private keys: Uint32Array;
  private vals: Uint32Array;
  private used: Uint8Array;
  private count = 0;
  private storageWatcher: StorageWatcher | undefined;

  constructor(
    readonly keyWords: number,
    readonly valueWords: number,
    initialCapacity = 1024,
  ) {
    let cap = 16;
    while (cap < initialCapacity) cap *= 2;
    this.cap = cap;
    this.mask = cap - 1;
    this.keys = new Uint32Array(cap * keyWords);
    this.vals = new Uint32Array(cap * valueWords);
    this.used = new Uint8Array(cap);
  }

  /**
   * Calls fn with the backing arrays now and whenever they are replaced (growth): for a
   * reader outside JS (the native SVP front end) that reads them in place.
   */
  watchStorage(fn: StorageWatcher): void {
    this.storageWatcher = fn;
    fn(this.keys, this.vals, this.used);
  }

  get size(): number {
    return this.count;
  }

  get capacity(): number {
    return this.cap;
  }

  /** Bytes held by the backing arrays. */
  get byteLength(): number {
    return this.keys.byteLength + this.vals.byteLength + this.used.byteLength;
  }

  private hashOf(key: ArrayLike<number>, koff: number): number {
    let h = 0x811c9dc5 ^ this.keyWords;
    for (let i = 0; i < this.keyWords; i++) {
      h = Math.imul(h ^ key[koff + i], 0x9e3779b1);
      h ^= h >>> 16;
    }
    h = Math.imul(h ^ (h >>> 13), 0x85ebca6b);
    h ^= h >>> 16;
    return h >>> 0;
  }

  private keyEquals(slot: number, key: ArrayLike<number>): boolean {
    const base = slot * this.keyWords;
    for (let i = 0; i < this.keyWords; i++) if (this.keys[base + i] !== key[i]) return false;
    return true;
  }

  /** Slot holding key, or -1. */
  find(key: ArrayLike<number>): number {
    let slot = this.hashOf(key, 0) & this.mask;
    while (this.used[slot]) {
      if (this.keyEquals(slot, key)) return slot;
      slot = (slot + 1) & this.mask;
    }
    return -1;
  }

  /** Value word w of an occupied slot. */
  value(slot: number, w: number): number {
    return this.vals[slot * this.valueWords + w];
  }

  /** Inserts or replaces; values are taken from vals[0..valueWords). */
  set(key: ArrayLike<number>, vals: ArrayLike<number>): void {
    if ((this.count + 1) * 4 > this.cap * 3) this.resize(this.cap * 2);
    let slot = this.hashOf(key, 0) & this.mask;
    while (this.used[slot]) {
      if (this.keyEquals(slot, key)) {
        this.writeValues(slot, vals);
        return;
      }
      slot = (slot + 1) & this.mask;
    }
    this.used[slot] = 1;
    const kb = slot * this.keyWords;
    for (let i = 0; i < this.keyWords; i++) this.keys[kb + i] = key[i];
    this.writeValues(slot, vals);
    this.count++;
  }

  private writeValues(slot: number, vals: ArrayLike<number>): void {
    const vb = slot * this.valueWords;
    for (let i = 0; i < this.valueWords; i++) this.vals[vb + i] = vals[i];
  }

  /** Removes key; returns whether it was present. */
  delete(key: ArrayLike<number>): boolean {
    let hole = this.find(key);
    if (hole < 0) return false;
    this.used[hole] = 0;
    this.count--;
    // Backward shift: pull later members of the probe run into the hole when their home
    // slot does not lie cyclically in (hole, j].
    let j = hole;
    for (;;) {
      j = (j + 1) & this.mask;
      if (!this.used[j]) break;
      const home = this.hashOf(this.keys, j * this.keyWords) & this.mask;
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      this.moveSlot(j, hole);
      hole = j;
    }
    return true;
  }

  private moveSlot(from: number, to: number): void {
    this.keys.copyWithin(to * this.keyWords, from * this.keyWords, (from + 1) * this.keyWords);
    this.vals.copyWithin(to * this.valueWords, from * this.valueWords, (from + 1) * this.valueWords);
    this.used[to] = 1;
    this.used[from] = 0;
  }

  private resize(newCap: number): void {
    const { keys, vals, used, cap, keyWords, valueWords } = this;
    this.cap = newCap;
    this.mask = newCap - 1;
    this.keys = new Uint32Array(newCap * keyWords);
    this.vals = new Uint32Array(newCap * valueWords);
    this.used = new Uint8Array(newCap);
    for (let s = 0; s < cap; s++) {
      if (!used[s]) continue;
      let slot = this.hashOf(keys, s * keyWords) & this.mask;
      while (this.used[slot]) slot = (slot + 1) & this.mask;
      this.used[slot] = 1;
      this.keys.set(keys.subarray(s * keyWords, (s + 1) * keyWords), slot * keyWords);
      this.vals.set(vals.subarray(s * valueWords, (s + 1) * valueWords), slot * valueWords);
    }
    this.storageWatcher?.(this.keys, this.vals, this.used);
  }

  clear(): void {
    this.used.fill(0);
    this.count = 0;
  }

  /** Visits every entry (key and value views are only valid during the call). */
  forEach(fn: (key: Uint32Array, vals: Uint32Array) => void): void {
    for (let s = 0; s < this.cap; s++) {
      if (!this.used[s]) continue;
      fn(
        this.keys.subarray(s * this.keyWords, (s + 1) * this.keyWords),
        this.vals.subarray(s * this.valueWords, (s + 1) * this.valueWords),
      );
    }
  }
}
