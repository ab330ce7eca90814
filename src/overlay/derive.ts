/**
 * What a NIC write does to the overlay (the NAPI contract, "What a NIC write does to the
 * overlay"), as a pure function of the NIC before and after the write:
 *
 * | change to a fabric NIC      | mapping                     | events, one per node already on the vnet |
 * |-----------------------------|-----------------------------|-------------------------------------------|
 * | create                      | put (vnet,ip) and (vnet,mac)| VL3 for the IP                            |
 * | nothing overlay-relevant    | nothing                     | nothing                                   |
 * | IP change                   | old ip row removed, new put | VL3 for the old IP, VL3 for the new IP    |
 * | cn_uuid change (migration)  | put with the new node       | VL2 for the MAC, then VL3 for the IP      |
 * | delete                      | both rows removed           | VL2 for the MAC                           |
 *
 * A fabric NIC is a zone NIC with an IP on a fabric network (which carries a vnet_id)
 * and a cn_uuid. A change of vnet (or a NIC that stops or starts being a fabric NIC) is a
 * delete on the old placement plus a create on the new one.
 *
 * Recipients: every node that had a vnode row on the vnet before the write (upstream's
 * vnetCns, computed before the change), the NIC's own node included when it already
 * had NICs there. So a migration's old node gets the VL2, and a node that joins the vnet
 * with this very write gets nothing (it has nothing cached yet).
 *
 * Overlay-relevant fields: ip, cn_uuid, the network's vlan_id and vnet_id. A change of
 * vlan alone re-puts the rows and sends a VL3 (the VL3 event carries the vlan).
 *
 * Underlay NICs (server NIC, underlay=true, on the underlay nic tag) define their
 * node's underlay address: put/delete ovl/ul/<belongs_to_uuid> {cn_uuid, ip, port}. No
 * events. Unlike upstream, a NIC that stops being an underlay NIC removes the record.
 *
 * Mappings are deleted outright (no tombstones).
 */
import { v7 as uuidv7 } from 'uuid';
import type { Op } from '../store/types.js';
import {
  DEFAULT_VXLAN_PORT,
  type IpMapping,
  type MacMapping,
  type OverlayEvent,
  type UnderlayRecord,
  type VnetNode,
  eventKey,
  ipMappingKey,
  macMappingKey,
  underlayKey,
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

/** vnet_id -> (cn_uuid -> mapped NIC count) as it was before the write. */
export type VnetNodes = ReadonlyMap<number, ReadonlyMap<string, number>>;

export interface DeriveOptions {
  /** ISO time stamped on events. */
  now?: string;
  /** Event id generator (UUIDv7 by default, so a node's events sort oldest first). */
  newId?: () => string;
}

export interface VnodeChange {
  vnet_id: number;
  cn_uuid: string;
  /** The node's new count; 0 means the row is deleted. */
  count: number;
  /** True when the node joins (0 -> n) or leaves (n -> 0) the vnet. */
  membership: boolean;
}

export interface OverlayDerivation {
  /** ovl/ip and ovl/mac puts and deletes. */
  mappings: Op[];
  /** ovl/ul puts and deletes. */
  underlay: Op[];
  vnodes: VnodeChange[];
  events: OverlayEvent[];
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

/** The nodes that receive events for a write on this vnet: sorted, count > 0. */
export function recipients(nodes: VnetNodes, vnet: number): string[] {
  const m = nodes.get(vnet);
  if (!m) return [];
  return [...m.entries()]
    .filter(([, c]) => c > 0)
    .map(([cn]) => cn)
    .sort();
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
  const mappings: Op[] = [];
  const events: OverlayEvent[] = [];
  const deltas = new Map<string, { vnet: number; cn: string; delta: number }>();

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
  const vl2 = (p: Placement): void => {
    for (const cn of recipients(nodes, p.vnet)) {
      events.push({ id: newId(), type: 'vl2', cn_uuid: cn, vnet_id: p.vnet, mac: p.mac, created: now });
    }
  };
  const vl3 = (p: Placement): void => {
    for (const cn of recipients(nodes, p.vnet)) {
      events.push({ id: newId(), type: 'vl3', cn_uuid: cn, vnet_id: p.vnet, vlan_id: p.vlan, ip: p.ip, created: now });
    }
  };

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

  const vnodes: VnodeChange[] = [];
  for (const { vnet, cn, delta } of deltas.values()) {
    if (delta === 0) continue;
    const was = nodes.get(vnet)?.get(cn) ?? 0;
    const count = Math.max(0, was + delta);
    vnodes.push({ vnet_id: vnet, cn_uuid: cn, count, membership: (was > 0) !== (count > 0) });
  }

  const underlay: Op[] = [];
  const ub = underlayOf(before, cfg);
  const ua = underlayOf(after, cfg);
  if (ub && (!ua || ua.cn_uuid !== ub.cn_uuid)) underlay.push({ type: 'del', key: underlayKey(ub.cn_uuid) });
  if (ua && (!ub || ub.cn_uuid !== ua.cn_uuid || ub.ip !== ua.ip || ub.port !== ua.port)) {
    underlay.push({ type: 'put', key: underlayKey(ua.cn_uuid), value: JSON.stringify(ua) });
  }

  return { mappings, underlay, vnodes, events };
}

/** Every store op of a derivation: mappings, underlay, vnode rows, one key per event. */
export function derivationOps(d: OverlayDerivation): Op[] {
  const ops: Op[] = [...d.mappings, ...d.underlay];
  for (const v of d.vnodes) {
    const key = vnodeKey(v.vnet_id, v.cn_uuid);
    if (v.count === 0) ops.push({ type: 'del', key });
    else {
      const row: VnetNode = { vnet_id: v.vnet_id, cn_uuid: v.cn_uuid, count: v.count };
      ops.push({ type: 'put', key, value: JSON.stringify(row) });
    }
  }
  for (const e of d.events) ops.push({ type: 'put', key: eventKey(e.cn_uuid, e.id), value: JSON.stringify(e) });
  return ops;
}

/** Vnets whose nodes a write must read (none when nothing overlay-relevant changes). */
export function vnetsTouched(before: NicOverlayView | null, after: NicOverlayView | null): number[] {
  const s = new Set<number>();
  const b = fabricPlacement(before);
  const a = fabricPlacement(after);
  if (b && a && b.vnet === a.vnet && b.mac === a.mac && b.ip === a.ip && b.cn === a.cn && b.vlan === a.vlan) return [];
  if (b) s.add(b.vnet);
  if (a) s.add(a.vnet);
  return [...s];
}
