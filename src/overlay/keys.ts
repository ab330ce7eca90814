/**
 * Where overlay state lives in the Store, and its value shapes. Written by the NIC write
 * path (src/napi + src/overlay derivation) in the same batch as the NIC; read by the
 * mapping index (src/mapping) that the SVP server answers from.
 *
 *   ovl/mac/<vnet:8>/<mac:12hex>   MacMapping   where a virtual MAC lives
 *   ovl/ip/<vnet:8>/<ip>           IpMapping    which MAC owns a virtual IP (and where)
 *   ovl/ul/<cn_uuid>               UnderlayRecord  a node's underlay address and port
 *   ovl/vnode/<vnet:8>/<cn_uuid>   VnetNode     how many mapped NICs a node has on a vnet
 *   ovl/ev/<cn_uuid>/<event id>    OverlayEvent a pending shootdown for that node
 *   ovl/vgen/<vnet:8>              counter bumped whenever the set of nodes on a vnet
 *                                  changes, so writes that fan events out to "every node
 *                                  already on the vnet" read that set consistently
 *
 * vnet ids are zero-padded decimal so that a vnet's rows are one contiguous range; MACs
 * are 12 lowercase hex digits; IPs are in canonical text form (IPv4 dotted quad, IPv6
 * RFC 5952). Event ids are UUIDv7, so a node's events sort oldest first.
 */

export const OVERLAY_PREFIX = 'ovl/';
/** Written by the mapping index's view to learn how far its feed has come (store/view.ts). */
export const OVERLAY_FENCE_KEY = 'ovl/fence';
export const MAC_PREFIX = 'ovl/mac/';
export const IP_PREFIX = 'ovl/ip/';
export const UNDERLAY_PREFIX = 'ovl/ul/';
export const VNODE_PREFIX = 'ovl/vnode/';
export const EVENT_PREFIX = 'ovl/ev/';
export const VNODE_GEN_PREFIX = 'ovl/vgen/';

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

export type OverlayEvent =
  | { id: string; type: 'vl2'; cn_uuid: string; vnet_id: number; mac: string; created: string }
  | { id: string; type: 'vl3'; cn_uuid: string; vnet_id: number; vlan_id: number; ip: string; created: string };

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

export function eventPrefix(cnUuid: string): string {
  return `${EVENT_PREFIX}${cnUuid}/`;
}

export function eventKey(cnUuid: string, id: string): string {
  return `${eventPrefix(cnUuid)}${id}`;
}

export function vnodeGenKey(vnet: number): string {
  return `${VNODE_GEN_PREFIX}${padVnet(vnet)}`;
}
