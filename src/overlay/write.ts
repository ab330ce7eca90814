/**
 * Applies a NIC write's overlay derivation (./derive.ts) inside the NIC's transaction:
 * reads the vnode rows the write changes, derives, and buffers every op in the same tx.
 *
 * Invariant: a NIC write is a constant number of store operations whatever the number of
 * nodes on its vnet. It reads (as preconditions) only the vnode rows of the node(s) its
 * NIC leaves or joins, writes its shootdown events once, as a log entry per vnet, and
 * never reads or writes a per-vnet counter: concurrent NIC writes on one vnet conflict
 * only when they change the same node's row. Who receives the entry's events follows
 * from its commit revision and the vnode rows' create revisions (src/overlay/log.ts), so
 * the write needs no consistent read of the vnet's node set.
 */
import type { Tx } from '../store/txn.js';
import type { KeyValue } from '../store/types.js';
import {
  type DeriveConfig,
  type DeriveOptions,
  type NicOverlayView,
  type OverlayDerivation,
  type VnodeRow,
  deriveOverlay,
  derivationOps,
  rowsTouched,
} from './derive.js';
import { type VnetNode, vnodeKey } from './keys.js';

/** A node's vnode row as read (a precondition of the commit); undefined when absent. */
function vnodeRow(kv: KeyValue | undefined): VnodeRow | undefined {
  if (!kv) return undefined;
  try {
    const row = JSON.parse(kv.value) as VnetNode;
    return typeof row.count === 'number' && row.count > 0 ? { count: row.count, joined: kv.createRevision } : undefined;
  } catch {
    return undefined; // a malformed row counts as absent
  }
}

export async function applyOverlayWrite(
  tx: Tx,
  before: NicOverlayView | null,
  after: NicOverlayView | null,
  cfg: DeriveConfig,
  opts: DeriveOptions = {},
): Promise<OverlayDerivation> {
  const nodes = new Map<number, Map<string, VnodeRow>>();
  const rows = rowsTouched(before, after);
  // One read for both rows of a migration.
  const kvs = rows.length > 0 ? await tx.getMany(rows.map((r) => vnodeKey(r.vnet, r.cn))) : new Map<string, KeyValue>();
  for (const { vnet, cn } of rows) {
    const row = vnodeRow(kvs.get(vnodeKey(vnet, cn)));
    let m = nodes.get(vnet);
    if (!m) nodes.set(vnet, (m = new Map()));
    if (row) m.set(cn, row);
  }
  const d = deriveOverlay(before, after, nodes, cfg, opts);
  for (const op of derivationOps(d)) {
    if (op.type === 'put') tx.put(op.key, op.value);
    else tx.del(op.key);
  }
  return d;
}
