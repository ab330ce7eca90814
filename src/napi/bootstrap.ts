/**
 * Initial data, as NAPI's loadInitialData does: the overlay and underlay nic tags exist
 * whenever the overlay is enabled. Idempotent; safe to run on every start and from
 * several replicas at once.
 */
import { v4 as uuidv4 } from 'uuid';
import type { NapiContext } from './context.js';
import { nicTagKey } from './keys.js';
import type { NicTagRecord } from './models/records.js';
import { transact } from '../store/txn.js';


export async function ensureInitialData(ctx: Pick<NapiContext, 'store' | 'config'>): Promise<void> {
  const { overlay } = ctx.config;
  if (!overlay.enabled) return;
  const wanted: Array<{ name: string; mtu: number }> = [
    { name: overlay.overlayNicTag, mtu: Math.max(overlay.defaultOverlayMTU, 1500) },
    { name: overlay.underlayNicTag, mtu: Math.max(overlay.defaultUnderlayMTU, 1500) },
  ];
  for (const tag of wanted) {
    await transact(ctx.store, async (tx) => {
      if (await tx.get(nicTagKey(tag.name))) return;
      const rec: NicTagRecord = { name: tag.name, uuid: uuidv4(), mtu: tag.mtu };
      tx.putJson(nicTagKey(tag.name), rec);
    });
  }
}
