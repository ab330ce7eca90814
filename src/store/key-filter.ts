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
    const [h1, h2] = hashes(key);
    for (let i = 0; i < PROBES; i++) {
      const bit = (h1 + Math.imul(i, h2)) & this.mask;
      this.words[bit >>> 5] |= 1 << (bit & 31);
    }
  }

  /** false: the key was never added. */
  mayContain(key: string): boolean {
    const [h1, h2] = hashes(key);
    for (let i = 0; i < PROBES; i++) {
      const bit = (h1 + Math.imul(i, h2)) & this.mask;
      if ((this.words[bit >>> 5] & (1 << (bit & 31))) === 0) return false;
    }
    return true;
  }
}

/** Two independent 32-bit FNV-1a style hashes of the UTF-16 code units (h2 odd). */
function hashes(key: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ key.length;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  a ^= a >>> 16;
  a = Math.imul(a, 0x85ebca6b);
  a ^= a >>> 13;
  return [a >>> 0, (b | 1) >>> 0];
}
