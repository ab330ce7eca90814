/**
 * NICs (napi/nics/<mac>): the record's constants, serialization, its overlay view,
 * loading, and the filtered, paged listing behind GET /nics. Writes are in
 * ./nic-write.ts, their validation in ./nic-placement.ts.
 */
import { type FieldValidator, vBool } from '../../rest/validate.js';
import type { NapiConfig } from '../context.js';
import { tryCanonicalMac } from '../../net/addr.js';
import { subnetOf } from '../ipmath.js';
import { NIC_PREFIX, nicIndexPrefix, nicKey } from '../keys.js';
import type { Tx } from '../../store/txn.js';
import type { NicOverlayView } from '../../overlay/derive.js';
import type { NetworkRecord, NicRecord } from './records.js';

export const NIC_STATES = ['provisioning', 'stopped', 'running'] as const;
export const ALLOW_FLAGS = [
  'allow_dhcp_spoofing',
  'allow_ip_spoofing',
  'allow_mac_spoofing',
  'allow_restricted_traffic',
  'allow_unfiltered_promisc',
] as const;
export type AllowFlag = (typeof ALLOW_FLAGS)[number];

/** A boolean field for every allow_* flag. */
export const ALLOW_FLAG_FIELDS = Object.fromEntries(ALLOW_FLAGS.map((f) => [f, vBool])) as Record<AllowFlag, FieldValidator<boolean>>;

export const MSG = {
  ownerMatch: 'network owner_uuids do not match',
  poolIp: 'IP cannot be specified with a network pool',
  notIpv4Network: 'The network UUID is valid, but its address family must be IPv4',
  ipv4Only: 'Specified address must be IPv4',
  noNetwork: 'network does not exist',
  ipNoVlanTag: 'required if IP specified but not network_uuid',
  underlayServer: 'Only server NICs can be underlay NICs',
  nicNotFound: 'nic not found',
  tagMissing: 'nic tag does not exist',
} as const;

// ---- serialization ----------------------------------------------------------------

export interface SerializedNic {
  mac: string;
  owner_uuid: string;
  belongs_to_uuid: string;
  belongs_to_type: string;
  primary: boolean;
  state: string;
  created_timestamp: string;
  modified_timestamp: string;
  [field: string]: unknown;
}

export function serializeNic(nic: NicRecord, network: NetworkRecord | undefined, config: NapiConfig): SerializedNic {
  const s: SerializedNic = {
    mac: nic.mac,
    owner_uuid: nic.owner_uuid,
    belongs_to_uuid: nic.belongs_to_uuid,
    belongs_to_type: nic.belongs_to_type,
    primary: nic.primary === true,
    state: nic.state,
    created_timestamp: nic.created_timestamp ?? new Date(0).toISOString(),
    modified_timestamp: nic.modified_timestamp ?? new Date(0).toISOString(),
  };
  if (nic.cn_uuid) s.cn_uuid = nic.cn_uuid;
  if (nic.model) s.model = nic.model;
  if (nic.nic_tag) s.nic_tag = nic.nic_tag;
  if (nic.nic_tags_provided && nic.nic_tags_provided.length > 0) s.nic_tags_provided = nic.nic_tags_provided;
  for (const f of ALLOW_FLAGS) if (nic[f] === true) s[f] = true;
  if (nic.underlay === true) s.underlay = true;
  if (nic.ip && network) {
    s.ip = nic.ip;
    s.network_uuid = network.uuid;
    s.mtu = network.mtu;
    s.nic_tag = network.fabric ? `${config.overlay.overlayNicTag}/${network.vnet_id}` : network.nic_tag;
    s.resolvers = network.resolvers ?? [];
    s.vlan_id = network.vlan_id;
    const netmask = netmaskFor(network);
    if (netmask) s.netmask = netmask;
    // IPv6 has no netmask: the NIC carries its network's prefix as the subnet.
    else s.subnet = network.subnet;
    if (network.gateway) s.gateway = network.gateway;
    if (network.routes && Object.keys(network.routes).length > 0) {
      const routes: Record<string, string> = {};
      for (const [dst, hop] of Object.entries(network.routes)) routes[dst] = hop === 'linklocal' ? `macs[${nic.mac}]` : hop;
      s.routes = routes;
    }
    if (network.fabric) {
      s.fabric = true;
      s.internet_nat = network.internet_nat ?? true;
      if (network.gateway) s.gateway_provisioned = network.gateway_provisioned === true;
    }
  }
  return s;
}

/** Netmask text by subnet text (null: IPv6): every NIC reply needs its network's. */
const netmasks = new Map<string, string | null>();

function netmaskFor(network: NetworkRecord): string | undefined {
  let m = netmasks.get(network.subnet);
  if (m === undefined) {
    const sub = subnetOf(network.subnet);
    const mask = sub.bits === 0 ? 0 : (0xffffffff << (32 - sub.bits)) >>> 0;
    m = sub.family === 'ipv4' ? [24, 16, 8, 0].map((sh) => (mask >>> sh) & 255).join('.') : null;
    if (netmasks.size >= 4096) netmasks.clear();
    netmasks.set(network.subnet, m);
  }
  return m ?? undefined;
}

/** The overlay view of a NIC joined with its network (see src/overlay/derive.ts). */
export function overlayView(nic: NicRecord | undefined, network: NetworkRecord | undefined): NicOverlayView | null {
  if (!nic) return null;
  const v: NicOverlayView = {
    mac: nic.mac,
    belongs_to_type: nic.belongs_to_type,
    belongs_to_uuid: nic.belongs_to_uuid,
    ip: nic.ip,
    cn_uuid: nic.cn_uuid,
    underlay: nic.underlay,
  };
  if (network && nic.ip) {
    v.network = { uuid: network.uuid, nic_tag: network.nic_tag, vlan_id: network.vlan_id, fabric: network.fabric, vnet_id: network.vnet_id };
  }
  return v;
}

// ---- loading ------------------------------------------------------------------------

export interface LoadedNic {
  rec: NicRecord;
  modRevision: number;
}

/** The NIC for a MAC in any accepted form (read through tx), or undefined. */
export async function loadNic(tx: Tx, macParam: unknown): Promise<LoadedNic | undefined> {
  const mac = tryCanonicalMac(macParam);
  if (!mac) return undefined;
  const kv = await tx.get(nicKey(mac));
  return kv ? { rec: JSON.parse(kv.value) as NicRecord, modRevision: kv.modRevision } : undefined;
}

// ---- list ------------------------------------------------------------------------------

export const LIST_FILTERS = [
  'owner_uuid',
  'cn_uuid',
  'belongs_to_uuid',
  'network_uuid',
  'belongs_to_type',
  'nic_tag',
  'nic_tags_provided',
  'state',
  'underlay',
  ...ALLOW_FLAGS,
] as const;

export interface NicFilter {
  owner_uuid?: string[];
  cn_uuid?: string[];
  belongs_to_uuid?: string[];
  network_uuid?: string[];
  belongs_to_type?: string[];
  nic_tag?: string[];
  nic_tags_provided?: string[];
  state?: string[];
  flags: Array<[string, boolean]>;
}

export function nicMatches(nic: NicRecord, f: NicFilter): boolean {
  const inList = (list: string[] | undefined, v: string | undefined): boolean => !list || (v !== undefined && list.includes(v));
  if (!inList(f.owner_uuid, nic.owner_uuid)) return false;
  if (!inList(f.cn_uuid, nic.cn_uuid)) return false;
  if (!inList(f.belongs_to_uuid, nic.belongs_to_uuid)) return false;
  if (!inList(f.network_uuid, nic.ip ? nic.network_uuid : undefined)) return false;
  if (!inList(f.belongs_to_type, nic.belongs_to_type)) return false;
  if (!inList(f.nic_tag, nic.nic_tag)) return false;
  if (!inList(f.state, nic.state)) return false;
  if (f.nic_tags_provided) {
    const have = `,${(nic.nic_tags_provided ?? []).join(',')},`;
    if (!f.nic_tags_provided.some((t) => have.includes(t))) return false;
  }
  for (const [flag, want] of f.flags) {
    if (((nic as unknown as Record<string, unknown>)[flag] === true) !== want) return false;
  }
  return true;
}

/** The index scans a filter allows (most selective first); undefined = full scan. */
export function indexPrefixesFor(f: NicFilter): string[] | undefined {
  if (f.belongs_to_uuid) return f.belongs_to_uuid.map((u) => nicIndexPrefix('belongs_to', u));
  if (f.cn_uuid) return f.cn_uuid.map((u) => nicIndexPrefix('cn', u));
  if (f.network_uuid) return f.network_uuid.map((u) => nicIndexPrefix('network', u));
  return undefined;
}

/** Keys read per store round trip while paging through NICs. */
const NIC_SCAN_CHUNK = 256;

/**
 * One page (offset, limit) of the NIC records matching the filter, in MAC order — the
 * page paginate() would cut from the whole sorted list, without reading the whole list:
 * NIC keys (and each index's keys) sort by MAC, so records are read and parsed in key
 * order, a chunk at a time, and the scan stops once the page is full. An index scan over
 * several values merges their MACs (keys only) before reading any record.
 */
export async function pageNicRecords(tx: Tx, f: NicFilter, offset: number, limit: number): Promise<NicRecord[]> {
  const out: NicRecord[] = [];
  let skip = offset;
  const take = (recs: NicRecord[]): boolean => {
    for (const n of recs) {
      if (!nicMatches(n, f)) continue;
      if (skip > 0) skip--;
      else out.push(n);
      if (out.length >= limit) return true;
    }
    return false;
  };
  if (limit <= 0) return out;
  const prefixes = indexPrefixesFor(f);
  if (prefixes) {
    const macs = new Set<string>();
    for (const p of prefixes) for (const kv of await tx.range({ prefix: p })) macs.add(kv.key.slice(p.length));
    const ordered = [...macs].sort();
    for (let i = 0; i < ordered.length; i += NIC_SCAN_CHUNK) {
      const keys = ordered.slice(i, i + NIC_SCAN_CHUNK).map((m) => NIC_PREFIX + m);
      const got = await tx.store.getMany(keys);
      const recs = keys.flatMap((k) => {
        const kv = got.get(k);
        return kv ? [JSON.parse(kv.value) as NicRecord] : [];
      });
      if (take(recs)) break;
    }
    return out;
  }
  let gt: string | undefined;
  for (;;) {
    const kvs = await tx.range({ prefix: NIC_PREFIX, ...(gt === undefined ? {} : { gt }), limit: NIC_SCAN_CHUNK });
    if (take(kvs.map((kv) => JSON.parse(kv.value) as NicRecord))) break;
    if (kvs.length < NIC_SCAN_CHUNK) break;
    gt = kvs[kvs.length - 1]!.key;
  }
  return out;
}

/** Every NIC record matching the filter, sorted by MAC. Reads through tx (no preconditions on scans). */
export async function listNicRecords(tx: Tx, f: NicFilter): Promise<NicRecord[]> {
  return pageNicRecords(tx, f, 0, Number.POSITIVE_INFINITY);
}

