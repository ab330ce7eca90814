/**
 * Networks: stored records, serialization, loading, and the create / update / delete
 * logic shared by /networks and /fabrics/…/networks. Every function that writes takes a
 * Tx (src/napi/txn.ts): validation reads go through it, so a concurrent change forces a
 * retry on fresh data and nothing is ever half-written.
 *
 * Exported for the NIC side: loadNetwork, loadNetworkKv, serializeNetwork,
 * isNetworkOwner, listNetworkRecords, and the subnet helpers re-exported from ../ipmath.
 */
import { v4 as uuidv4 } from 'uuid';
import type { NapiConfig } from '../context.js';
import {
  type FieldError,
  NapiError,
  duplicateParam,
  inUse,
  invalidParam,
  invalidParams,
  missingParam,
  notFound,
  usedBy,
} from '../errors.js';
import {
  broadcastAddress,
  compareIps,
  familyOf,
  isPrivateSubnet,
  isRfc1918,
  netmaskOf,
  type Subnet,
  subnetContains,
  subnetOf,
  subnetsOverlap,
  subnetText,
} from '../ipmath.js';
import {
  NETWORK_GEN_KEY,
  NETWORK_PREFIX,
  POOL_PREFIX,
  ipKey,
  ipPrefix,
  networkKey,
  networkNameKey,
  nicIndexPrefix,
  nicTagKey,
} from '../keys.js';
import type { KeyValue } from '../../store/types.js';
import { type Tx, transact } from '../txn.js';
import type { Store } from '../../store/types.js';
import {
  type FieldValidator,
  type Params,
  type Schema,
  fail,
  macFromNumber,
  rejectField,
  vBool,
  vIp,
  vString,
  vUuid,
  vVlan,
  vVnetId,
  validateParams,
} from '../validate.js';
import {
  vFamily,
  vFields,
  vGateway,
  vIps,
  vNetworkMtu,
  vRoutes,
  vSubnet,
  vUuids,
  vUuidsOrNull,
  routeFamily,
} from './params.js';
import type { IpRecord, NetworkPoolRecord, NetworkRecord, NicTagRecord } from './records.js';

export {
  broadcastAddress,
  compareIps,
  ipAdd,
  ipRange,
  rangeSize,
  subnetContains,
  subnetOf,
  subnetsOverlap,
  subnetText,
  type Subnet,
} from '../ipmath.js';

export const NO_OWNER_UUID = '00000000-0000-0000-0000-000000000000';

/** Every key a serialized network can have (for `fields`). */
export const NETWORK_FIELDS = [
  'description',
  'fabric',
  'family',
  'gateway',
  'gateway_provisioned',
  'internet_nat',
  'mtu',
  'name',
  'netmask',
  'nic_tag',
  'owner_uuid',
  'owner_uuids',
  'provision_end_ip',
  'provision_start_ip',
  'resolvers',
  'routes',
  'subnet',
  'uuid',
  'vlan_id',
  'vnet_id',
] as const;

/** What `fields` may name on the fabric network routes (NAPI leaves these four out there). */
export const FABRIC_NETWORK_FIELDS: readonly string[] = NETWORK_FIELDS.filter(
  (f) => !['family', 'gateway_provisioned', 'netmask', 'vnet_id'].includes(f),
);

export interface SerializedNetwork {
  uuid: string;
  name: string;
  family: 'ipv4' | 'ipv6';
  subnet: string;
  netmask?: string;
  provision_start_ip: string;
  provision_end_ip: string;
  vlan_id: number;
  nic_tag: string;
  mtu: number;
  resolvers: string[];
  gateway?: string;
  routes?: Record<string, string>;
  description?: string;
  owner_uuids?: string[];
  owner_uuid?: string;
  fabric?: true;
  vnet_id?: number;
  internet_nat?: boolean;
  gateway_provisioned?: boolean;
}

export interface SerializeNetworkOptions {
  /** Under /fabrics/…: emit the single `owner_uuid` instead of `owner_uuids`. */
  fabricDisplay?: boolean;
  fields?: string[];
}

export function serializeNetwork(rec: NetworkRecord, opts: SerializeNetworkOptions = {}): Partial<SerializedNetwork> {
  const s: SerializedNetwork = {
    uuid: rec.uuid,
    name: rec.name,
    family: rec.family,
    subnet: rec.subnet,
    provision_start_ip: rec.provision_start_ip,
    provision_end_ip: rec.provision_end_ip,
    vlan_id: rec.vlan_id,
    nic_tag: rec.nic_tag,
    mtu: rec.mtu,
    resolvers: rec.resolvers ?? [],
  };
  const netmask = netmaskOf(subnetOf(rec.subnet));
  if (netmask) s.netmask = netmask;
  if (rec.gateway) s.gateway = rec.gateway;
  if (rec.routes && Object.keys(rec.routes).length > 0) s.routes = rec.routes;
  if (rec.description) s.description = rec.description;
  if (rec.owner_uuids && rec.owner_uuids.length > 0) {
    if (opts.fabricDisplay) s.owner_uuid = rec.owner_uuids[0];
    else s.owner_uuids = rec.owner_uuids;
  }
  if (rec.fabric) {
    s.fabric = true;
    s.vnet_id = rec.vnet_id;
    s.internet_nat = rec.internet_nat ?? true;
    if (rec.gateway) s.gateway_provisioned = rec.gateway_provisioned ?? false;
  }
  if (!opts.fields) return s;
  const out: Partial<SerializedNetwork> = {};
  for (const f of opts.fields) {
    if (f in s) (out as Record<string, unknown>)[f] = (s as unknown as Record<string, unknown>)[f];
  }
  return out;
}

/** NAPI's name_str: fabric networks' names are unique per owner, others globally. */
export function nameStrOf(name: string, fabricOwner?: string): string {
  return `${fabricOwner ?? 'global'}:${name}`;
}

/** Owner check: no owners means anyone; the admin UUID owns everything. */
export function isNetworkOwner(rec: Pick<NetworkRecord, 'owner_uuids'>, owner: string, adminUuid: string): boolean {
  if (!rec.owner_uuids || rec.owner_uuids.length === 0) return true;
  return owner === adminUuid || rec.owner_uuids.includes(owner);
}

export interface LoadedNetwork {
  rec: NetworkRecord;
  /** For the ETag. */
  modRevision: number;
}

/** Resolves `admin` (the network named admin) or a UUID; undefined when absent. */
export async function loadNetworkKv(tx: Tx, uuidOrAdmin: string): Promise<LoadedNetwork | undefined> {
  let uuid = uuidOrAdmin;
  if (uuidOrAdmin === 'admin') {
    const idx = await tx.get(networkNameKey(nameStrOf('admin')));
    if (!idx) return undefined;
    uuid = idx.value;
  }
  if (!/^[0-9a-f-]{36}$/.test(uuid)) return undefined;
  const kv = await tx.get(networkKey(uuid));
  return kv ? { rec: JSON.parse(kv.value) as NetworkRecord, modRevision: kv.modRevision } : undefined;
}

export async function loadNetwork(tx: Tx, uuidOrAdmin: string): Promise<NetworkRecord | undefined> {
  return (await loadNetworkKv(tx, uuidOrAdmin))?.rec;
}

/** Like loadNetworkKv but 404 "network not found" when absent. */
export async function mustLoadNetwork(tx: Tx, uuidOrAdmin: string): Promise<LoadedNetwork> {
  const n = await loadNetworkKv(tx, uuidOrAdmin);
  if (!n) throw notFound('network not found');
  return n;
}

/** Every network record (unsorted). A scan, not a precondition: see bumpNetworkGeneration. */
export async function listNetworkRecords(tx: Pick<Tx, 'range'>): Promise<NetworkRecord[]> {
  const kvs: KeyValue[] = await tx.range({ prefix: NETWORK_PREFIX });
  return kvs.map((kv) => JSON.parse(kv.value) as NetworkRecord);
}

export function sortByName(a: NetworkRecord, b: NetworkRecord): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0;
}

/**
 * Writes that change which networks exist (or which pools reference them) bump one
 * counter; scans that must see a consistent set (overlap, in-use) read it, so a
 * concurrent change to the set makes the transaction retry.
 */
export async function bumpNetworkGeneration(tx: Tx): Promise<void> {
  const kv = await tx.get(NETWORK_GEN_KEY);
  tx.put(NETWORK_GEN_KEY, String((kv ? Number(kv.value) : 0) + 1));
}

/** Reads the counter only: a concurrent network create/delete then forces a retry. */
export async function watchNetworkGeneration(tx: Tx): Promise<void> {
  await tx.get(NETWORK_GEN_KEY);
}

function adminReservation(network: NetworkRecord, ip: string, adminUuid: string, now: string): IpRecord {
  return {
    ip,
    network_uuid: network.uuid,
    reserved: true,
    belongs_to_type: 'other',
    belongs_to_uuid: adminUuid,
    owner_uuid: adminUuid,
    modified_timestamp: now,
  };
}

// ---- create ----

export interface CreateNetworkOptions {
  /** Created through /fabrics/…: `fields` takes that route's names. */
  fabricRoute?: boolean;
}

const vSubnetPrefix: FieldValidator = (field, v) => (v === 24 || v === '24' ? 24 : fail(field, 'Only /24 is supported'));

/** Addresses of the family check, collected as NAPI's after-validators would. */
function familyErrors(clean: Params, subnet: Subnet): FieldError[] {
  const fam = subnet.family;
  const errs: FieldError[] = [];
  const gw = clean.gateway as string | undefined;
  if (gw && familyOf(gw) !== fam) errs.push(invalidParam('gateway', `gateway should match subnet type (${fam})`));
  const resolvers = (clean.resolvers as string[] | undefined) ?? [];
  const badRes = resolvers.filter((r) => familyOf(r) !== fam);
  if (badRes.length > 0) {
    errs.push(invalidParam('resolvers', `resolvers should match subnet type (${fam})`, { invalid: badRes }));
  }
  const routes = (clean.routes as Record<string, string> | undefined) ?? {};
  const badDst = Object.keys(routes).filter((d) => routeFamily(d) !== fam);
  if (badDst.length > 0) {
    errs.push(invalidParam('routes', `addresses used for routing should match subnet type (${fam})`, { invalid: badDst }));
  }
  const start = clean.provision_start_ip as string | undefined;
  const end = clean.provision_end_ip as string | undefined;
  if (start && end && familyOf(start) !== familyOf(end)) {
    errs.push(
      invalidParam(
        'provision_start_ip, provision_end_ip',
        'provision_start_ip and provision_end_ip must be both IPv4 or both IPv6 addresses',
      ),
    );
  }
  if (start && familyOf(start) !== fam) {
    errs.push(invalidParam('provision_start_ip', 'provision_start_ip and subnet must both be IPv4 or IPv6 addresses'));
  }
  if (end && familyOf(end) !== fam) {
    errs.push(invalidParam('provision_end_ip', 'provision_end_ip and subnet must both be IPv4 or IPv6 addresses'));
  }
  const badHop = Object.entries(routes).filter(([d, h]) => h !== 'linklocal' && routeFamily(d) !== familyOf(h));
  if (badDst.length === 0 && badHop.length > 0) {
    errs.push(
      invalidParam('routes', 'address family of route and next-hop address should match', {
        invalid: badHop.map(([d]) => d),
      }),
    );
  }
  return errs;
}

/** Provision range and gateway inside the subnet, not the broadcast, start < end. */
function rangeErrors(subnet: Subnet, start: string, end: string, gateway: string | undefined): FieldError[] {
  const errs: FieldError[] = [];
  let s: string | undefined = start;
  let e: string | undefined = end;
  if (!subnetContains(subnet, start)) {
    errs.push(invalidParam('provision_start_ip', 'provision_start_ip cannot be outside subnet'));
    s = undefined;
  }
  if (!subnetContains(subnet, end)) {
    errs.push(invalidParam('provision_end_ip', 'provision_end_ip cannot be outside subnet'));
    e = undefined;
  }
  if (gateway && !subnetContains(subnet, gateway)) {
    errs.push(invalidParam('gateway', 'gateway cannot be outside subnet'));
  }
  const bcast = broadcastAddress(subnet);
  if (bcast !== undefined && s === bcast) {
    errs.push(invalidParam('provision_start_ip', 'provision_start_ip cannot be the broadcast address'));
    s = undefined;
  }
  if (bcast !== undefined && e === bcast) {
    errs.push(invalidParam('provision_end_ip', 'provision_end_ip cannot be the broadcast address'));
    e = undefined;
  }
  if (s && e && compareIps(s, e) >= 0) {
    errs.push(invalidParam('provision_end_ip', 'provision_start_ip must be before provision_end_ip'));
    errs.push(invalidParam('provision_start_ip', 'provision_start_ip must be before provision_end_ip'));
  }
  return errs;
}

function overlapError(conflicts: NetworkRecord[]): NapiError {
  const errs = conflicts
    .map((n) => usedBy('subnet', 'network', n.uuid, 'subnet overlaps with another network'))
    .sort((a, b) => (a.id! < b.id! ? -1 : a.id! > b.id! ? 1 : 0));
  return invalidParams(errs);
}

/** Which existing networks a new subnet may not overlap (NAPI-203, TRITON-297). */
function overlapping(all: NetworkRecord[], subnet: Subnet, self: string, fabricVnet: number | undefined): NetworkRecord[] {
  return all.filter((n) => {
    if (n.uuid === self) return false;
    if (fabricVnet !== undefined) return n.fabric === true && n.vnet_id === fabricVnet && subnetsOverlap(subnetOf(n.subnet), subnet);
    return !n.fabric && subnetsOverlap(subnetOf(n.subnet), subnet);
  });
}

const nameInUse = (): NapiError =>
  invalidParams([duplicateParam('name')], 'name is in use by another network');

/** The nic tag `name` as read in this transaction (undefined when absent or unnamed). */
async function readNicTag(tx: Tx, name: unknown): Promise<NicTagRecord | undefined> {
  if (typeof name !== 'string' || !/^[A-Za-z0-9_]{1,31}$/.test(name)) return undefined;
  return tx.getJson<NicTagRecord>(nicTagKey(name));
}

function vExistingNicTag(tag: NicTagRecord | undefined): FieldValidator {
  return (field, v) => {
    const name = Array.isArray(v) && v.length === 1 ? v[0] : v;
    if (typeof name !== 'string') return fail(field, 'must be a string');
    if (!tag || tag.name !== name) return fail(field, 'nic tag does not exist');
    return name;
  };
}

/**
 * CreateNetwork inside a transaction: validates (warden's two phases, then the
 * cross-field checks in NAPI's order), then writes the network, its unique name index
 * entry and its reserved IP records. Returns the stored record.
 */
export async function createNetworkTx(
  tx: Tx,
  config: NapiConfig,
  raw: Params,
  opts: CreateNetworkOptions = {},
): Promise<NetworkRecord> {
  const tag = await readNicTag(tx, Array.isArray(raw.nic_tag) && raw.nic_tag.length === 1 ? raw.nic_tag[0] : raw.nic_tag);
  const schema: Schema = {
    required: { name: vString, nic_tag: vExistingNicTag(tag), vlan_id: vVlan },
    optional: {
      subnet: vSubnet,
      provision_start_ip: vIp,
      provision_end_ip: vIp,
      gateway: vGateway,
      resolvers: vIps,
      routes: vRoutes(config.allowLinklocal),
      owner_uuids: vUuids,
      description: vString,
      mtu: vNetworkMtu,
      uuid: vUuid,
      fabric: vBool,
      vnet_id: vVnetId,
      internet_nat: vBool,
      subnet_alloc: vBool,
      family: vFamily,
      subnet_prefix: vSubnetPrefix,
      fields: vFields(opts.fabricRoute ? FABRIC_NETWORK_FIELDS : NETWORK_FIELDS),
    },
    after: [
      (c) => {
        if (c.subnet_alloc === true) return;
        const missing = ['provision_end_ip', 'provision_start_ip', 'subnet'].filter((f) => c[f] === undefined);
        if (missing.length > 0) throw invalidParams(missing.map((f) => missingParam(f)));
      },
      (c) => {
        if (c.fabric === true && ((c.owner_uuids as string[] | undefined)?.length ?? 0) !== 1) {
          rejectField('owner_uuids', 'Fabric networks must have exactly one owner');
        }
      },
      (c) => {
        if (c.fabric === true && c.vnet_id === undefined) throw invalidParams([missingParam('vnet_id')]);
      },
      (c) => {
        if (!c.subnet) return;
        const errs = familyErrors(c, c.subnet as Subnet);
        if (errs.length > 0) throw invalidParams(errs);
      },
      (c) => {
        if (c.subnet_alloc === true) {
          rejectField('subnet_auto_alloc', 'Subnet allocation is not enabled on this instance');
        }
        if (c.subnet_prefix !== undefined) rejectField('subnet_prefix', 'Auto allocation parameter not allowed');
        if (c.family !== undefined && c.family !== (c.subnet as Subnet).family) {
          rejectField('family', `family must match subnet type (${(c.subnet as Subnet).family})`);
        }
      },
      (c) => {
        // A NAT-ed fabric network needs a gateway: the first provisionable address.
        if (c.fabric === true && c.internet_nat !== false && !c.gateway) c.gateway = c.provision_start_ip;
        const errs = rangeErrors(
          c.subnet as Subnet,
          c.provision_start_ip as string,
          c.provision_end_ip as string,
          c.gateway as string | undefined,
        );
        if (errs.length > 0) throw invalidParams(errs);
      },
      async (c) => {
        const subnet = c.subnet as Subnet;
        const isFabric = c.fabric === true;
        if (isFabric) {
          if (subnet.family !== 'ipv4') rejectField('subnet', 'Fabric networks must be IPv4');
          if (!isRfc1918(subnet)) rejectField('subnet', 'subnet must be within private ranges');
        } else if (isPrivateSubnet(subnet)) {
          return;
        }
        await bumpNetworkGeneration(tx);
        const conflicts = overlapping(await listNetworkRecords(tx), subnet, '', isFabric ? (c.vnet_id as number) : undefined);
        if (conflicts.length > 0) throw overlapError(conflicts);
      },
      (c) => {
        const mtu = (c.mtu as number | undefined) ?? 1500;
        if (tag && mtu > tag.mtu) rejectField('mtu', 'network mtu must be under nic_tag mtu');
      },
    ],
  };
  const c = await validateParams(schema, raw);
  const subnet = c.subnet as Subnet;
  const isFabric = c.fabric === true;
  const owners = (c.owner_uuids as string[] | undefined) ?? [];
  const uuid = (c.uuid as string | undefined) ?? uuidv4();
  const now = new Date().toISOString();
  const rec: NetworkRecord = {
    uuid,
    name: c.name as string,
    name_str: nameStrOf(c.name as string, isFabric ? owners[0] : undefined),
    family: subnet.family,
    subnet: subnetText(subnet),
    provision_start_ip: c.provision_start_ip as string,
    provision_end_ip: c.provision_end_ip as string,
    vlan_id: c.vlan_id as number,
    nic_tag: c.nic_tag as string,
    mtu: (c.mtu as number | undefined) ?? 1500,
    resolvers: (c.resolvers as string[] | undefined) ?? [],
    created_timestamp: now,
    modified_timestamp: now,
  };
  if (c.gateway) rec.gateway = c.gateway as string;
  if (c.routes && Object.keys(c.routes as object).length > 0) rec.routes = c.routes as Record<string, string>;
  if (c.description !== undefined) rec.description = c.description as string;
  if (owners.length > 0) rec.owner_uuids = owners;
  if (isFabric) {
    rec.fabric = true;
    rec.vnet_id = c.vnet_id as number;
    rec.internet_nat = c.internet_nat !== false;
    if (rec.gateway) rec.gateway_provisioned = false;
  }

  if (await tx.get(networkNameKey(rec.name_str))) throw nameInUse();
  if (c.uuid !== undefined && (await tx.get(networkKey(uuid)))) {
    throw invalidParams([duplicateParam('uuid')]);
  }
  // Overlap-free private networks skipped the counter above; every create still bumps it
  // so in-use scans (pools, nic tags, VLANs) see a consistent set.
  await bumpNetworkGeneration(tx);
  tx.putJson(networkKey(uuid), rec);
  tx.put(networkNameKey(rec.name_str), uuid);

  const ips = new Map<string, IpRecord>();
  if (rec.gateway) {
    if (isFabric && rec.internet_nat === false) {
      ips.set(rec.gateway, {
        ...adminReservation(rec, rec.gateway, config.adminUuid, now),
        owner_uuid: owners[0],
        belongs_to_uuid: NO_OWNER_UUID,
      });
    } else {
      ips.set(rec.gateway, adminReservation(rec, rec.gateway, config.adminUuid, now));
    }
  }
  for (const r of rec.resolvers) {
    if (subnetContains(subnet, r) && !ips.has(r)) ips.set(r, adminReservation(rec, r, config.adminUuid, now));
  }
  const bcast = broadcastAddress(subnet);
  if (bcast && !ips.has(bcast)) ips.set(bcast, adminReservation(rec, bcast, config.adminUuid, now));
  for (const ip of ips.values()) tx.putJson(ipKey(uuid, ip.ip), ip);
  return rec;
}

// ---- update ----

const IMMUTABLE_FIELDS = ['fabric', 'family', 'gateway_provisioned', 'internet_nat', 'nic_tag', 'vlan_id', 'vnet_id', 'subnet'];
const FABRIC_FORBIDDEN = ['gateway', 'owner_uuids'];

function sameValue(field: string, sent: unknown, rec: NetworkRecord): boolean {
  const stored = (rec as unknown as Record<string, unknown>)[field];
  switch (field) {
    case 'fabric':
    case 'gateway_provisioned':
    case 'internet_nat': {
      const b = sent === true || sent === 'true' ? true : sent === false || sent === 'false' ? false : sent;
      return b === (stored ?? (field === 'fabric' ? false : undefined));
    }
    case 'vlan_id':
    case 'vnet_id':
      return String(sent) === String(stored);
    case 'subnet': {
      const r = typeof sent === 'string' ? sent.trim() : sent;
      try {
        return subnetText(subnetOf(String(r))) === stored;
      } catch {
        return false;
      }
    }
    default:
      return sent === stored;
  }
}

/**
 * UpdateNetwork inside a transaction. `loaded` is the current record (read through tx).
 * Returns the new record.
 */
export async function updateNetworkTx(tx: Tx, config: NapiConfig, loaded: NetworkRecord, raw: Params): Promise<NetworkRecord> {
  const rec = loaded;
  const subnet = subnetOf(rec.subnet);
  const optional: Record<string, FieldValidator> = {
    name: vString,
    description: vString,
    mtu: vNetworkMtu,
    owner_uuids: vUuidsOrNull,
    gateway: vIp,
    provision_start_ip: vIp,
    provision_end_ip: vIp,
    resolvers: vIps,
    routes: vRoutes(config.allowLinklocal),
  };
  for (const f of IMMUTABLE_FIELDS) {
    optional[f] = (field, v) => (sameValue(field, v, rec) ? undefined : fail(field, 'Network updates for this field are not supported'));
  }
  if (rec.fabric) {
    for (const f of FABRIC_FORBIDDEN) {
      optional[f] = (field) => fail(field, 'Network updates for this field are not supported on fabrics');
    }
  }
  const c = await validateParams(
    {
      optional,
      after: [
        (c) => {
          const errs = familyErrors(c, subnet);
          if (errs.length > 0) throw invalidParams(errs);
        },
        (c) => {
          if (c.provision_start_ip === undefined && c.provision_end_ip === undefined && c.gateway === undefined) return;
          const errs = rangeErrors(
            subnet,
            (c.provision_start_ip as string | undefined) ?? rec.provision_start_ip,
            (c.provision_end_ip as string | undefined) ?? rec.provision_end_ip,
            c.gateway as string | undefined,
          );
          if (errs.length > 0) throw invalidParams(errs);
        },
        async (c) => {
          if (c.mtu === undefined) return;
          const tag = await tx.getJson<NicTagRecord>(nicTagKey(rec.nic_tag));
          if (tag && (c.mtu as number) > tag.mtu) rejectField('mtu', 'network mtu must be under nic_tag mtu');
        },
      ],
    },
    raw,
  );

  const now = new Date().toISOString();
  const next: NetworkRecord = { ...rec, modified_timestamp: now };
  if (c.name !== undefined && c.name !== rec.name) {
    const owner = rec.fabric ? rec.owner_uuids?.[0] : undefined;
    const nameStr = nameStrOf(c.name as string, owner);
    const holder = await tx.get(networkNameKey(nameStr));
    if (holder && holder.value !== rec.uuid) throw nameInUse();
    tx.del(networkNameKey(rec.name_str));
    tx.put(networkNameKey(nameStr), rec.uuid);
    next.name = c.name as string;
    next.name_str = nameStr;
  }
  if (c.description !== undefined) next.description = c.description as string;
  if (c.mtu !== undefined) next.mtu = c.mtu as number;
  if (c.owner_uuids !== undefined) {
    const owners = c.owner_uuids as string[];
    if (owners.length > 0) next.owner_uuids = owners;
    else delete next.owner_uuids;
  }
  if (c.provision_start_ip !== undefined) next.provision_start_ip = c.provision_start_ip as string;
  if (c.provision_end_ip !== undefined) next.provision_end_ip = c.provision_end_ip as string;
  if (c.resolvers !== undefined) next.resolvers = c.resolvers as string[];
  if (c.routes !== undefined) {
    const routes = c.routes as Record<string, string>;
    if (Object.keys(routes).length > 0) next.routes = routes;
    else delete next.routes;
  }
  // A new gateway, and new resolvers inside the subnet, are reserved as at create.
  const toReserve: string[] = [];
  if (c.gateway !== undefined) {
    next.gateway = c.gateway as string;
    toReserve.push(next.gateway);
  }
  if (c.resolvers !== undefined) toReserve.push(...next.resolvers.filter((r) => subnetContains(subnet, r)));
  for (const ip of new Set(toReserve)) {
    const key = ipKey(rec.uuid, ip);
    const existing = await tx.getJson<IpRecord>(key);
    if (!existing) tx.putJson(key, adminReservation(next, ip, config.adminUuid, now));
    else if (!existing.reserved) tx.putJson(key, { ...existing, reserved: true, modified_timestamp: now });
  }
  tx.putJson(networkKey(rec.uuid), next);
  return next;
}

// ---- delete ----

/** MACs (colon form) of the NICs on a network, from the NIC side's index. */
export async function nicsOnNetwork(tx: Pick<Tx, 'range'>, uuid: string): Promise<string[]> {
  const prefix = nicIndexPrefix('network', uuid);
  const kvs = await tx.range({ prefix });
  return kvs.map((kv) => macFromNumber(parseInt(kv.key.slice(prefix.length), 16)));
}

/** Pools that contain this network. */
export async function poolsWithNetwork(tx: Pick<Tx, 'range'>, uuid: string): Promise<NetworkPoolRecord[]> {
  const kvs = await tx.range({ prefix: POOL_PREFIX });
  return kvs.map((kv) => JSON.parse(kv.value) as NetworkPoolRecord).filter((p) => p.networks.includes(uuid));
}

function usedByNoField(type: string, id: string): FieldError {
  const e = usedBy('', type, id) as Partial<FieldError>;
  delete e.field;
  return e as FieldError;
}

/**
 * IP records deleted with the network in its own transaction; deleteNetwork removes the
 * rest in batches of this size afterwards, so every transaction fits etcd's default limit
 * of 128 operations.
 */
const IP_RECORDS_PER_COMMIT = 64;

/**
 * DeleteNetwork inside a transaction: refuses while NICs are on it (and, unless
 * skipPools, while a pool holds it); removes the record, its name and (the first of) its
 * IP records.
 */
export async function deleteNetworkTx(tx: Tx, rec: NetworkRecord, opts: { skipPoolCheck?: boolean } = {}): Promise<void> {
  await bumpNetworkGeneration(tx);
  const macs = await nicsOnNetwork(tx, rec.uuid);
  if (macs.length > 0) {
    throw inUse('network must have no NICs provisioned', macs.map((m) => usedByNoField('nic', m)));
  }
  if (!opts.skipPoolCheck) {
    const pools = await poolsWithNetwork(tx, rec.uuid);
    if (pools.length > 0) {
      throw inUse('Network is in use', pools.map((p) => usedByNoField('network pool', p.uuid)));
    }
  }
  tx.del(networkKey(rec.uuid));
  const nameKey = networkNameKey(rec.name_str);
  const holder = await tx.get(nameKey);
  if (holder?.value === rec.uuid) tx.del(nameKey);
  for (const kv of await tx.range({ prefix: ipPrefix(rec.uuid), limit: IP_RECORDS_PER_COMMIT })) tx.del(kv.key);
}

/**
 * The IP records of a deleted network that did not fit in its delete, in batches. They
 * are unreachable once the network record is gone (a new network gets a new uuid).
 */
async function deleteLeftoverIps(store: Store, uuid: string): Promise<void> {
  for (;;) {
    const { kvs } = await store.range({ prefix: ipPrefix(uuid), limit: IP_RECORDS_PER_COMMIT });
    if (kvs.length === 0) return;
    await store.commit({ ops: kvs.map((kv) => ({ type: 'del' as const, key: kv.key })) });
  }
}

export { usedByNoField };

/**
 * Deletes a network in two commits. The first marks it `deleting`, which changes the
 * record every NIC write reads, so a NIC create racing with it retries and then finds no
 * network. The second scans for NICs and pools and deletes; when the network is still in
 * use it clears the mark instead and the InUse error is returned to the caller.
 * `load` re-reads (and authorises) the network inside each transaction.
 */
export async function deleteNetwork(
  store: Store,
  load: (tx: Tx, phase: 'mark' | 'delete' | 'unmark') => Promise<LoadedNetwork>,
  opts: { skipPoolCheck?: boolean } = {},
): Promise<void> {
  await transact(store, async (tx) => {
    const n = await load(tx, 'mark');
    if (!n.rec.deleting) tx.putJson(networkKey(n.rec.uuid), { ...n.rec, deleting: true });
  });
  let deleted: string;
  try {
    deleted = (
      await transact(store, async (tx) => {
        const n = await load(tx, 'delete');
        await deleteNetworkTx(tx, n.rec, opts);
        return n.rec.uuid;
      })
    ).value;
  } catch (err) {
    // Refused (in use) or failed: the network stays, provisionable again.
    await transact(store, async (tx) => {
      const n = await load(tx, 'unmark');
      if (!n.rec.deleting) return;
      const { deleting: _marked, ...unmarked } = n.rec;
      tx.putJson(networkKey(n.rec.uuid), unmarked);
    }).catch(() => undefined);
    throw err;
  }
  await deleteLeftoverIps(store, deleted);
}
