/**
 * Where overlay state lives in the Store, and its value shapes. Written by the NIC write
 * path (src/napi + src/overlay derivation) in the same batch as the NIC, by LOG_RM and by
 * the log sweep (src/overlay/gc.ts); read by the mapping index (src/mapping) that the SVP
 * server answers from.
 *
 *   ovl/mac/<vnet:8>/<mac:12hex>          MacMapping      where a virtual MAC lives
 *   ovl/ip/<vnet:8>/<ip>                  IpMapping       which MAC owns a virtual IP (and where)
 *   ovl/ul/<cn_uuid>                      UnderlayRecord  a node's underlay address and port
 *   ovl/vnode/<vnet:8>/<cn_uuid>          VnetNode        a node's mapped NICs on a vnet; the
 *                                                         key's createRevision is when it joined
 *   ovl/vgone/<vnet:8>/<cn_uuid>/<joined:12>  GoneNode    a stint of a node that has left the vnet;
 *                                                         createRevision is when it left
 *   ovl/vlog/<vnet:8>/<uuidv7>            VnetLogEntry    one write's shootdown events on a vnet
 *   ovl/vlog/multi/<uuidv7>               MultiVnetLogEntry  one write's events on several vnets
 *                                                         (an underlay move: one op, whatever
 *                                                         the moved node's number of vnets)
 *   ovl/vrm/<cn_uuid>                     NodeLogState    how far the node has removed its events
 *   ovl/fence                             written by the mapping index to learn how far its
 *                                         feed has come (src/store/view.ts)
 *
 * A log entry's events go to the nodes that were on its vnet just before the entry's
 * revision (src/overlay/log.ts). vnet ids are zero-padded decimal so that a vnet's rows
 * are one contiguous range; MACs are 12 lowercase hex digits; IPs are in canonical text
 * form (IPv4 dotted quad, IPv6 RFC 5952); revisions in keys are 12 decimal digits.
 */

export const OVERLAY_PREFIX = 'ovl/';
/** Written by the mapping index's view to learn how far its feed has come (store/view.ts). */
export const OVERLAY_FENCE_KEY = 'ovl/fence';
export const MAC_PREFIX = 'ovl/mac/';
export const IP_PREFIX = 'ovl/ip/';
export const UNDERLAY_PREFIX = 'ovl/ul/';
export const VNODE_PREFIX = 'ovl/vnode/';
export const GONE_PREFIX = 'ovl/vgone/';
export const VLOG_PREFIX = 'ovl/vlog/';
/** Under VLOG_PREFIX: entries with events on several vnets (not a vnet's zero-padded number). */
export const VLOG_MULTI_PREFIX = 'ovl/vlog/multi/';
export const NODE_STATE_PREFIX = 'ovl/vrm/';
/** Keys of the earlier per-node event format (one event key per node per write); the sweep deletes them. */
export const LEGACY_PREFIXES = ['ovl/ev/', 'ovl/vgen/'] as const;

/** The VXLAN UDP port every underlay record carries unless configured otherwise. */
export const DEFAULT_VXLAN_PORT = 4789;

export interface MacMapping {
  mac: string; // aa:bb:cc:dd:ee:ff
  vnet_id: number;
  cn_uuid: string;
  vlan_id: number;
  ip?: string;
}

export interface IpMapping {
  ip: string;
  mac: string;
  vnet_id: number;
  cn_uuid: string;
  vlan_id: number;
}

export interface UnderlayRecord {
  cn_uuid: string;
  ip: string;
  port: number;
}

export interface VnetNode {
  vnet_id: number;
  cn_uuid: string;
  /** Mapped NICs this node has on the vnet; the row is deleted when it drops to 0. */
  count: number;
}

export interface GoneNode {
  vnet_id: number;
  cn_uuid: string;
  /** The revision the node joined (its vnode row's createRevision). */
  joined: number;
}

/** A shootdown event as recorded in a log entry (SVP VL2 / VL3 log entries). */
export type LogEvent = { type: 'vl2'; mac: string } | { type: 'vl3'; ip: string; vlan_id: number };

export interface VnetLogEntry {
  vnet_id: number;
  /** ISO time of the write. */
  created: string;
  events: LogEvent[];
}

/**
 * One write's events on several vnets, in one record: each vnet's part goes to that
 * vnet's nodes exactly as a VnetLogEntry of the same revision would.
 */
export interface MultiVnetLogEntry {
  /** ISO time of the write. */
  created: string;
  vnets: Array<{ vnet_id: number; events: LogEvent[] }>;
}

/**
 * A node's consumption of its events. Positions are [revision, vnet, k] (k: the event's
 * index among its revision's events on that vnet). Every event at or before `cursor` is
 * removed, and so are those listed in `removed` (all after the cursor).
 */
export interface NodeLogState {
  cursor: [number, number, number];
  removed?: Array<[number, number, number]>;
}

export function padVnet(vnet: number): string {
  return String(vnet).padStart(8, '0');
}

/** 'aa:bb:cc:dd:ee:ff' (any case, ':' or '-' separated, or bare hex) -> 'aabbccddeeff'. */
export function macKeyPart(mac: string): string {
  return mac.replace(/[:-]/g, '').toLowerCase();
}

export function macMappingKey(vnet: number, mac: string): string {
  return `${MAC_PREFIX}${padVnet(vnet)}/${macKeyPart(mac)}`;
}

export function ipMappingKey(vnet: number, ip: string): string {
  return `${IP_PREFIX}${padVnet(vnet)}/${ip}`;
}

export function underlayKey(cnUuid: string): string {
  return `${UNDERLAY_PREFIX}${cnUuid}`;
}

export function vnodePrefix(vnet: number): string {
  return `${VNODE_PREFIX}${padVnet(vnet)}/`;
}

export function vnodeKey(vnet: number, cnUuid: string): string {
  return `${vnodePrefix(vnet)}${cnUuid}`;
}

export function padRevision(rev: number): string {
  return String(rev).padStart(12, '0');
}

export function goneKey(vnet: number, cnUuid: string, joined: number): string {
  return `${GONE_PREFIX}${padVnet(vnet)}/${cnUuid}/${padRevision(joined)}`;
}

export function vlogPrefix(vnet: number): string {
  return `${VLOG_PREFIX}${padVnet(vnet)}/`;
}

export function vlogKey(vnet: number, id: string): string {
  return `${vlogPrefix(vnet)}${id}`;
}

export function vlogMultiKey(id: string): string {
  return `${VLOG_MULTI_PREFIX}${id}`;
}

export function nodeStateKey(cnUuid: string): string {
  return `${NODE_STATE_PREFIX}${cnUuid}`;
}
