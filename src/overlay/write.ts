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
 * the write needs no consistent read of the vnet's node set. A write that moves a node's
 * underlay address also writes one multi-vnet log entry with a part per vnet that node
 * has NICs on: one op more, and nothing per vnet or per peer node (it does read the
 * node's NICs: NodeNics, whose list is guarded as one range so that a NIC placed on the
 * node meanwhile makes the move run again rather than go without its shootdown).
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
  deriveUnderlayMove,
  derivationOps,
  rowsTouched,
  underlayMoved,
} from './derive.js';
import { MAX_EVENTS_PER_REVISION } from './event-id.js';
import { UNDERLAY_PREFIX, type UnderlayRecord, type VnetNode, underlayKey, vlogMultiKey, vnodeKey } from './keys.js';

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
  nodeNics?: NodeNics,
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
  // The stored underlay records, read before this write's own ops are buffered.
  const moves = d.underlay.length > 0 && nodeNics ? await underlayMoves(tx, d) : [];
  for (const op of derivationOps(d)) {
    if (op.type === 'put') tx.put(op.key, op.value);
    else tx.del(op.key);
  }
  if (moves.length > 0) await shootUnderlayMoves(tx, d, moves, nodeNics!, opts);
  return d;
}

/** The fabric NICs placed on a node (the NAPI layer reads them through its cn index). */
export type NodeNics = (tx: Tx, cn: string) => Promise<NicOverlayView[]>;

/** The nodes whose underlay record the write changes or deletes (compared with what is stored). */
async function underlayMoves(tx: Tx, d: OverlayDerivation): Promise<string[]> {
  const moved: string[] = [];
  for (const op of d.underlay) {
    const cn = op.key.slice(UNDERLAY_PREFIX.length);
    const after = op.type === 'put' && op.value !== undefined ? (JSON.parse(op.value) as UnderlayRecord) : undefined;
    if (underlayMoved(await tx.getJson<UnderlayRecord>(underlayKey(cn)), after)) moved.push(cn);
  }
  return moved;
}

/** Shootdowns for the NICs of nodes whose underlay moved (deriveUnderlayMove), in the same transaction. */
async function shootUnderlayMoves(tx: Tx, d: OverlayDerivation, moved: string[], nodeNics: NodeNics, opts: DeriveOptions): Promise<void> {
  let budget = MAX_EVENTS_PER_REVISION - d.log.reduce((n, l) => n + l.entry.events.length, 0);
  for (const cn of moved) {
    const move = deriveUnderlayMove(cn, await nodeNics(tx, cn), budget, opts);
    if (!move) continue;
    budget -= move.entry.vnets.reduce((n, p) => n + p.events.length, 0);
    tx.putJson(vlogMultiKey(move.id), move.entry);
  }
}
