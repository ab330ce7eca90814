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

/** A random MAC 'xx:xx:xx:xx:xx:xx' whose first three bytes are the OUI (6 hex digits). */
export function randomMacInOui(oui: string, random: () => Buffer = () => randomBytes(3)): string {
  const o = oui.replace(/[:-]/g, '').toLowerCase();
  if (!/^[0-9a-f]{6}$/.test(o)) throw new Error(`invalid MAC OUI ${oui}`);
  const tail = random().subarray(0, 3).toString('hex').padStart(6, '0');
  return (o + tail).match(/../g)!.join(':');
}

/** Picks an unused MAC in the OUI inside tx; the chosen NIC key must still be absent at commit. */
export async function allocateMac(tx: Tx, oui: string, random?: () => Buffer): Promise<string> {
  for (let i = 0; i < MAC_RETRIES; i++) {
    const mac = randomMacInOui(oui, random);
    if (!(await tx.get(nicKey(mac)))) return mac;
  }
  throw internalError('no more free MAC addresses');
}
