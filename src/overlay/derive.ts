/**
 * What a NIC write does to the overlay (the NAPI contract, "What a NIC write does to the
 * overlay"), as a pure function of the NIC before and after the write:
 *
 * | change to a fabric NIC      | mapping                     | events, for every node already on the vnet |
 * |-----------------------------|-----------------------------|---------------------------------------------|
 * | create                      | put (vnet,ip) and (vnet,mac)| VL3 for the IP                              |
 * | nothing overlay-relevant    | nothing                     | nothing                                     |
 * | IP change                   | old ip row removed, new put | VL3 for the old IP, VL3 for the new IP      |
 * | cn_uuid change (migration)  | put with the new node       | VL2 for the MAC, then VL3 for the IP        |
 * | delete                      | both rows removed           | VL2 for the MAC                             |
 *
 * A fabric NIC is a zone NIC with an IP on a fabric network (which carries a vnet_id)
 * and a cn_uuid. A change of vnet (or a NIC that stops or starts being a fabric NIC) is a
 * delete on the old placement plus a create on the new one.
 *
 * The events are recorded once per vnet, in one log entry (ovl/vlog/<vnet>/<id>), whatever
 * the number of nodes: a write is a constant number of store operations. Who receives
 * them is decided by the entry's revision (src/overlay/log.ts): every node that had a
 * vnode row on the vnet just before it (upstream's vnetCns, computed before the change),
 * the NIC's own node included when it already had NICs there. So a migration's old node
 * gets the VL2, and a node that joins the vnet with this very write gets nothing (it has
 * nothing cached yet). The write only reads and rewrites the vnode rows of the nodes its
 * NIC leaves or joins; a row's createRevision is when its node joined, and a node that
 * leaves (count 0) leaves a gone record naming that revision, so membership at any
 * revision a log entry can have is recoverable from the store.
 *
 * Overlay-relevant fields: ip, cn_uuid, the network's vlan_id and vnet_id. A change of
 * vlan alone re-puts the rows and sends a VL3 (the VL3 event carries the vlan).
 *
 * Underlay NICs (server NIC, underlay=true, on the underlay nic tag) define their
 * node's underlay address: put/delete ovl/ul/<belongs_to_uuid> {cn_uuid, ip, port}.
 * Unlike upstream, a NIC that stops being an underlay NIC removes the record, and a node
 * whose recorded address changes or goes is shot down on every vnet it has fabric NICs
 * on (deriveUnderlayMove: a VL2 per NIC, so any SVP client forgets where they were), in
 * one multi-vnet log entry (ovl/vlog/multi/<id>): one op, however many vnets.
 *
 * Mappings are deleted outright (no tombstones).
 */
import { v7 as uuidv7 } from 'uuid';
import type { Op } from '../store/types.js';
import {
  DEFAULT_VXLAN_PORT,
  type GoneNode,
  type IpMapping,
  type LogEvent,
  type MacMapping,
  type MultiVnetLogEntry,
  type UnderlayRecord,
  type VnetLogEntry,
  type VnetNode,
  goneKey,
  ipMappingKey,
  macMappingKey,
  underlayKey,
  vlogKey,
  vnodeKey,
} from './keys.js';

export interface NicOverlayNetwork {
  uuid: string;
  nic_tag: string;
  vlan_id: number;
  fabric?: boolean;
  vnet_id?: number;
}

/** The slice of a NIC (joined with its network) that the overlay depends on. */
export interface NicOverlayView {
  mac: string;
  belongs_to_type: string;
  belongs_to_uuid: string;
  ip?: string;
  cn_uuid?: string;
  underlay?: boolean;
  network?: NicOverlayNetwork;
}

export interface DeriveConfig {
  underlayNicTag: string;
  vxlanPort?: number;
}

/** A node's vnode row on a vnet as the write read it. */
export interface VnodeRow {
  count: number;
  /** The row's createRevision: when the node joined the vnet. */
  joined: number;
}

/**
 * vnet_id -> (cn_uuid -> row) as it was before the write, for the rows the write changes
 * (rowsTouched); a missing row means the node is not on the vnet.
 */
export type VnetNodes = ReadonlyMap<number, ReadonlyMap<string, VnodeRow>>;

export interface DeriveOptions {
  /** ISO time stamped on log entries. */
  now?: string;
  /** Log entry id generator (UUIDv7 by default, so a vnet's entries sort oldest first). */
  newId?: () => string;
}

export interface VnodeChange {
  vnet_id: number;
  cn_uuid: string;
  /** The node's new count; 0 means the row is deleted. */
  count: number;
  /** True when the node joins (0 -> n) or leaves (n -> 0) the vnet. */
  membership: boolean;
  /** For a node that leaves: the revision it had joined (its gone record names it). */
  joined?: number;
}

export interface LoggedEvents {
  id: string;
  entry: VnetLogEntry;
}

/** An underlay move's events: stored at vlogMultiKey(id). */
export interface LoggedMoveEvents {
  id: string;
  entry: MultiVnetLogEntry;
}

export interface OverlayDerivation {
  /** ovl/ip and ovl/mac puts and deletes. */
  mappings: Op[];
  /** ovl/ul puts and deletes. */
  underlay: Op[];
  vnodes: VnodeChange[];
  /** One log entry per vnet whose nodes get events. */
  log: LoggedEvents[];
}

interface Placement {
  vnet: number;
  ip: string;
  mac: string;
  cn: string;
  vlan: number;
}

/** Where a fabric NIC sits on the overlay, or undefined for any other NIC. */
export function fabricPlacement(v: NicOverlayView | null | undefined): Placement | undefined {
  if (!v || v.belongs_to_type !== 'zone' || !v.ip || !v.cn_uuid) return undefined;
  const n = v.network;
  if (!n || !n.fabric || typeof n.vnet_id !== 'number') return undefined;
  return { vnet: n.vnet_id, ip: v.ip, mac: v.mac.toLowerCase(), cn: v.cn_uuid, vlan: n.vlan_id };
}

/** The underlay record a NIC defines, or undefined. */
export function underlayOf(v: NicOverlayView | null | undefined, cfg: DeriveConfig): UnderlayRecord | undefined {
  if (!v || v.belongs_to_type !== 'server' || v.underlay !== true || !v.ip) return undefined;
  if (!v.network || v.network.nic_tag !== cfg.underlayNicTag) return undefined;
  return { cn_uuid: v.belongs_to_uuid, ip: v.ip, port: cfg.vxlanPort ?? DEFAULT_VXLAN_PORT };
}

/** A change in the number of a node's fabric NICs on a vnet. */
interface VnodeDelta {
  vnet: number;
  cn: string;
  delta: number;
}

/** The fabric side of a write (the decision table above): mapping ops, events by vnet, vnode deltas. */
interface FabricChanges {
  mappings: Op[];
  events: Map<number, LogEvent[]>;
  deltas: Map<string, VnodeDelta>;
}

/** The header's decision table: what a fabric NIC's write puts, removes and tells (and its vnode deltas). */
function fabricChanges(before: NicOverlayView | null, after: NicOverlayView | null): FabricChanges {
  const mappings: Op[] = [];
  const events = new Map<number, LogEvent[]>();
  const record = (vnet: number, e: LogEvent): void => {
    const list = events.get(vnet);
    if (list) list.push(e);
    else events.set(vnet, [e]);
  };
  const deltas = new Map<string, VnodeDelta>();

  const bump = (vnet: number, cn: string, delta: number): void => {
    const k = `${vnet}/${cn}`;
    const d = deltas.get(k) ?? { vnet, cn, delta: 0 };
    d.delta += delta;
    deltas.set(k, d);
  };
  const putRows = (p: Placement): void => {
    const ipRow: IpMapping = { ip: p.ip, mac: p.mac, vnet_id: p.vnet, cn_uuid: p.cn, vlan_id: p.vlan };
    const macRow: MacMapping = { mac: p.mac, vnet_id: p.vnet, cn_uuid: p.cn, vlan_id: p.vlan, ip: p.ip };
    mappings.push({ type: 'put', key: ipMappingKey(p.vnet, p.ip), value: JSON.stringify(ipRow) });
    mappings.push({ type: 'put', key: macMappingKey(p.vnet, p.mac), value: JSON.stringify(macRow) });
  };
  const vl2 = (p: Placement): void => record(p.vnet, { type: 'vl2', mac: p.mac });
  const vl3 = (p: Placement): void => record(p.vnet, { type: 'vl3', ip: p.ip, vlan_id: p.vlan });

  const b = fabricPlacement(before);
  const a = fabricPlacement(after);
  if (b && a && b.vnet === a.vnet && b.mac === a.mac) {
    const sameIp = b.ip === a.ip;
    const sameCn = b.cn === a.cn;
    const sameVlan = b.vlan === a.vlan;
    if (!(sameIp && sameCn && sameVlan)) {
      if (!sameIp) mappings.push({ type: 'del', key: ipMappingKey(b.vnet, b.ip) });
      putRows(a);
      if (!sameCn) {
        bump(b.vnet, b.cn, -1);
        bump(a.vnet, a.cn, +1);
        vl2(a);
      }
      if (!sameIp) vl3(b);
      vl3(a);
    }
  } else {
    if (b) {
      mappings.push({ type: 'del', key: ipMappingKey(b.vnet, b.ip) });
      mappings.push({ type: 'del', key: macMappingKey(b.vnet, b.mac) });
      bump(b.vnet, b.cn, -1);
      vl2(b);
    }
    if (a) {
      putRows(a);
      bump(a.vnet, a.cn, +1);
      vl3(a);
    }
  }
  return { mappings, events, deltas };
}

/** The vnode rows the deltas change, from the rows as the write read them. */
function vnodeChanges(deltas: Iterable<VnodeDelta>, nodes: VnetNodes): VnodeChange[] {
  const vnodes: VnodeChange[] = [];
  for (const { vnet, cn, delta } of deltas) {
    if (delta === 0) continue;
    const row = nodes.get(vnet)?.get(cn);
    const was = row && row.count > 0 ? row.count : 0;
    const count = Math.max(0, was + delta);
    const change: VnodeChange = { vnet_id: vnet, cn_uuid: cn, count, membership: (was > 0) !== (count > 0) };
    if (was > 0 && count === 0 && row) change.joined = row.joined;
    vnodes.push(change);
  }
  return vnodes;
}

/** The ovl/ul ops of a write: an underlay NIC's record put, moved or removed. */
function underlayOps(before: NicOverlayView | null, after: NicOverlayView | null, cfg: DeriveConfig): Op[] {
  const underlay: Op[] = [];
  const ub = underlayOf(before, cfg);
  const ua = underlayOf(after, cfg);
  if (ub && (!ua || ua.cn_uuid !== ub.cn_uuid)) underlay.push({ type: 'del', key: underlayKey(ub.cn_uuid) });
  if (ua && (!ub || ub.cn_uuid !== ua.cn_uuid || ub.ip !== ua.ip || ub.port !== ua.port)) {
    underlay.push({ type: 'put', key: underlayKey(ua.cn_uuid), value: JSON.stringify(ua) });
  }
  return underlay;
}

export function deriveOverlay(
  before: NicOverlayView | null,
  after: NicOverlayView | null,
  nodes: VnetNodes,
  cfg: DeriveConfig,
  opts: DeriveOptions = {},
): OverlayDerivation {
  const now = opts.now ?? new Date().toISOString();
  const newId = opts.newId ?? (() => uuidv7());
  const { mappings, events, deltas } = fabricChanges(before, after);
  const vnodes = vnodeChanges(deltas.values(), nodes);
  const underlay = underlayOps(before, after, cfg);
  const log: LoggedEvents[] = [];
  for (const [vnet, list] of events) log.push({ id: newId(), entry: { vnet_id: vnet, created: now, events: list } });
  return { mappings, underlay, vnodes, log };
}

/** Whether replacing a node's underlay record `before` with `after` (undefined: deleted) moves it. */
export function underlayMoved(before: UnderlayRecord | undefined, after: UnderlayRecord | undefined): boolean {
  return before !== undefined && (after === undefined || after.ip !== before.ip || after.port !== before.port);
}

/**
 * The shootdowns for a node whose underlay address changed or went (underlayMoved): peers
 * cache, per MAC, the address of the node it lives on. One multi-vnet log entry with a
 * part per vnet the node has fabric NICs on, a VL2 for each of them there (at most `limit`
 * events in all: the log's per-revision budget), so every node on those vnets forgets
 * them and asks again. One store op, whatever the moved node's vnets and their peers;
 * undefined when the node has no fabric NIC (or no budget is left).
 */
export function deriveUnderlayMove(
  cn: string,
  nics: ReadonlyArray<NicOverlayView>,
  limit: number,
  opts: DeriveOptions = {},
): LoggedMoveEvents | undefined {
  const now = opts.now ?? new Date().toISOString();
  const newId = opts.newId ?? (() => uuidv7());
  const byVnet = new Map<number, Set<string>>();
  for (const v of nics) {
    const p = fabricPlacement(v);
    if (!p || p.cn !== cn) continue;
    let macs = byVnet.get(p.vnet);
    if (!macs) byVnet.set(p.vnet, (macs = new Set()));
    macs.add(p.mac);
  }
  const vnets: MultiVnetLogEntry['vnets'] = [];
  let budget = limit;
  for (const vnet of [...byVnet.keys()].sort((a, b) => a - b)) {
    const events: LogEvent[] = [...byVnet.get(vnet)!].sort().slice(0, Math.max(0, budget)).map((mac) => ({ type: 'vl2', mac }));
    budget -= events.length;
    if (events.length > 0) vnets.push({ vnet_id: vnet, events });
  }
  return vnets.length > 0 ? { id: newId(), entry: { created: now, vnets } } : undefined;
}

/**
 * Every store op of a derivation: mappings, underlay, vnode rows (a node that leaves
 * also gets its gone record), one log entry per vnet with events.
 */
export function derivationOps(d: OverlayDerivation): Op[] {
  const ops: Op[] = [...d.mappings, ...d.underlay];
  for (const v of d.vnodes) {
    const key = vnodeKey(v.vnet_id, v.cn_uuid);
    if (v.count === 0) {
      ops.push({ type: 'del', key });
      if (v.joined !== undefined) {
        const gone: GoneNode = { vnet_id: v.vnet_id, cn_uuid: v.cn_uuid, joined: v.joined };
        ops.push({ type: 'put', key: goneKey(v.vnet_id, v.cn_uuid, v.joined), value: JSON.stringify(gone) });
      }
    } else {
      const row: VnetNode = { vnet_id: v.vnet_id, cn_uuid: v.cn_uuid, count: v.count };
      ops.push({ type: 'put', key, value: JSON.stringify(row) });
    }
  }
  for (const l of d.log) ops.push({ type: 'put', key: vlogKey(l.entry.vnet_id, l.id), value: JSON.stringify(l.entry) });
  return ops;
}

/**
 * The vnode rows (vnet, node) whose counts a write changes and must read: the NIC's
 * placement before and after (none when nothing overlay-relevant changes).
 */
export function rowsTouched(before: NicOverlayView | null, after: NicOverlayView | null): Array<{ vnet: number; cn: string }> {
  const b = fabricPlacement(before);
  const a = fabricPlacement(after);
  if (b && a && b.vnet === a.vnet && b.mac === a.mac && b.cn === a.cn) return [];
  const rows: Array<{ vnet: number; cn: string }> = [];
  if (b) rows.push({ vnet: b.vnet, cn: b.cn });
  if (a && !(b && b.vnet === a.vnet && b.cn === a.cn)) rows.push({ vnet: a.vnet, cn: a.cn });
  return rows;
}
