/**
 * A Bloom filter over a single-writer store's keys: "not there" is certain, so a point
 * read of a key that was never written (a candidate MAC, a free address, a new NIC's index
 * entries) is answered without a database read.
 *
 * The writer adds every key a commit batch puts before it issues the batch, and the
 * store's keys are added once at open (a keys-only scan): the filter holds a superset of
 * the keys that exist. Deleted keys stay (a false "maybe": the database answers). Fixed
 * size; with far more keys than it was sized for it answers "maybe" more often, never
 * wrongly.
 */

/** Probes per key. */
const PROBES = 7;

export class KeyFilter {
  private readonly words: Uint32Array;
  private readonly mask: number;

  /** bits: the filter's size, rounded up to a power of two (at least 64). */
  constructor(bits: number) {
    let size = 64;
    while (size < bits && size < 2 ** 31) size *= 2;
    this.words = new Uint32Array(size / 32);
    this.mask = size - 1;
  }

  add(key: string): void {
    let h = hash(key);
    const step = stepOf(h);
    for (let i = 0; i < PROBES; i++, h = (h + step) | 0) {
      const bit = h & this.mask;
      this.words[bit >>> 5] |= 1 << (bit & 31);
    }
  }

  /** false: the key was never added. */
  mayContain(key: string): boolean {
    let h = hash(key);
    const step = stepOf(h);
    for (let i = 0; i < PROBES; i++, h = (h + step) | 0) {
      const bit = h & this.mask;
      if ((this.words[bit >>> 5] & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }
}

/** 32-bit FNV-1a of the UTF-16 code units, with murmur3's finaliser for the high bits. */
function hash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** The probe stride (double hashing), odd so it cycles the whole filter. */
function stepOf(h: number): number {
  return (Math.imul(h, 0x9e3779b1) >>> 7) | 1;
}
