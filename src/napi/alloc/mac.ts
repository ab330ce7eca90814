/**
 * MAC allocation as NAPI does it: a random address inside the configured OUI, unique by
 * compare-and-set on the NIC key (read through the tx, so a concurrent create that
 * picks the same MAC conflicts and retries). After MAC_RETRIES addresses that are all
 * taken: 500 "no more free MAC addresses".
 */
import { randomBytes } from 'node:crypto';
import { internalError } from '../../rest/errors.js';
import { nicKey } from '../keys.js';
import type { Tx } from '../../store/txn.js';

export const MAC_RETRIES = 50;

/** Random bytes drawn from a pool refilled 3 KiB at a time (one RNG call per 1,024 MACs). */
const POOL_BYTES = 3 * 1024;
let pool = Buffer.alloc(0);
let poolAt = 0;
function pooledRandom3(): Buffer {
  if (poolAt + 3 > pool.length) {
    pool = randomBytes(POOL_BYTES);
    poolAt = 0;
  }
  poolAt += 3;
  return pool.subarray(poolAt - 3, poolAt);
}

/** 'xx:xx:xx:' for each OUI seen (normalised and checked once). */
const ouiPrefixes = new Map<string, string>();
function ouiPrefix(oui: string): string {
  let p = ouiPrefixes.get(oui);
  if (p === undefined) {
    const o = oui.replace(/[:-]/g, '').toLowerCase();
    if (!/^[0-9a-f]{6}$/.test(o)) throw new Error(`invalid MAC OUI ${oui}`);
    p = `${o.slice(0, 2)}:${o.slice(2, 4)}:${o.slice(4, 6)}:`;
    if (ouiPrefixes.size < 64) ouiPrefixes.set(oui, p);
  }
  return p;
}

const hex2 = (b: number): string => (b < 16 ? '0' : '') + b.toString(16);

/** A random MAC 'xx:xx:xx:xx:xx:xx' whose first three bytes are the OUI (6 hex digits). */
export function randomMacInOui(oui: string, random: () => Buffer = pooledRandom3): string {
  const prefix = ouiPrefix(oui);
  const got = random();
  const r = got.length >= 3 ? got : Buffer.concat([Buffer.alloc(3 - got.length), got]);
  return `${prefix}${hex2(r[0] ?? 0)}:${hex2(r[1] ?? 0)}:${hex2(r[2] ?? 0)}`;
}

/**
 * Picks an unused MAC in the OUI inside tx; the chosen NIC key must still be absent at
 * commit. `alongside` names other keys of a candidate (the new NIC's index keys) to read
 * in the same store round trip as its NIC key: the transaction has then read every key it
 * will write, and its commit reads nothing more.
 */
export async function allocateMac(tx: Tx, oui: string, random?: () => Buffer, alongside?: (mac: string) => string[]): Promise<string> {
  for (let i = 0; i < MAC_RETRIES; i++) {
    const mac = randomMacInOui(oui, random);
    const key = nicKey(mac);
    const others = alongside?.(mac) ?? [];
    // One store read for all of them (one etcd transaction, one LevelDB snapshot).
    const taken = others.length > 0 ? (await tx.getMany([key, ...others])).has(key) : (await tx.get(key)) !== undefined;
    if (!taken) return mac;
  }
  throw internalError('no more free MAC addresses');
}
