/**
 * Applies a NIC write's overlay derivation (./derive.ts) inside the NIC's transaction:
 * reads the vnet's node set consistently, derives, and buffers every op in the same tx.
 *
 * Consistency of the recipient set: the tx reads ovl/vgen/<vnet> (a precondition), then
 * scans the vnet's vnode rows. Every write that makes a node join or leave a vnet bumps
 * that counter, so if the set changes between our read and our commit, the commit
 * conflicts and the NIC write is retried on fresh data. Writes that only change a node's
 * count (another NIC on a node already there) don't touch the counter, so concurrent
 * NIC creates on a busy vnet only collide when they share a node.
 */
import type { Tx } from '../store/txn.js';
import {
  type DeriveConfig,
  type DeriveOptions,
  type NicOverlayView,
  type OverlayDerivation,
  deriveOverlay,
  derivationOps,
  fabricPlacement,
  vnetsTouched,
} from './derive.js';
import { type VnetNode, vnodeGenKey, vnodeKey, vnodePrefix } from './keys.js';

export async function readVnetNodes(tx: Tx, vnet: number): Promise<Map<string, number>> {
  await tx.get(vnodeGenKey(vnet));
  const m = new Map<string, number>();
  const prefix = vnodePrefix(vnet);
  for (const kv of await tx.range({ prefix })) {
    try {
      const row = JSON.parse(kv.value) as VnetNode;
      if (typeof row.count === 'number' && row.count > 0) m.set(kv.key.slice(prefix.length), row.count);
    } catch {
      // A malformed row counts as absent.
    }
  }
  return m;
}

export async function applyOverlayWrite(
  tx: Tx,
  before: NicOverlayView | null,
  after: NicOverlayView | null,
  cfg: DeriveConfig,
  opts: DeriveOptions = {},
): Promise<OverlayDerivation> {
  const nodes = new Map<number, Map<string, number>>();
  for (const vnet of vnetsTouched(before, after)) nodes.set(vnet, await readVnetNodes(tx, vnet));
  // Exact counts (as preconditions) for the rows this write rewrites.
  for (const p of [fabricPlacement(before), fabricPlacement(after)]) {
    if (!p || !nodes.has(p.vnet)) continue;
    const row = await tx.getJson<VnetNode>(vnodeKey(p.vnet, p.cn));
    const m = nodes.get(p.vnet)!;
    if (row && row.count > 0) m.set(p.cn, row.count);
    else m.delete(p.cn);
  }
  const d = deriveOverlay(before, after, nodes, cfg, opts);
  for (const op of derivationOps(d)) {
    if (op.type === 'put') tx.put(op.key, op.value);
    else tx.del(op.key);
  }
  for (const vnet of new Set(d.vnodes.filter((v) => v.membership).map((v) => v.vnet_id))) {
    const kv = await tx.get(vnodeGenKey(vnet));
    tx.put(vnodeGenKey(vnet), String((kv ? Number(kv.value) || 0 : 0) + 1));
  }
  return d;
}
