/**
 * Validating a NIC write: the records the parameters name are read first (the network
 * or pool, the nic tags), the module-level schemas check every field against them, then
 * NAPI's validateNetworkParams decides where the NIC's address comes from (the
 * placement) and the checks that depend on it run, in that order, stopping at the first
 * failure as restify-warden's "after" validators do.
 */
import { isUuid, tryCanonicalMac } from '../../net/addr.js';
import { type FieldError, invalidParams, missingParam } from '../../rest/errors.js';
import {
  type FieldValidator,
  type Params,
  type Validated,
  fail,
  rejectField,
  schema,
  toList,
  vBool,
  vString,
  vUuid,
  validateParams,
} from '../../rest/validate.js';
import { checkExplicitIp } from '../alloc/ip.js';
import type { NapiConfig } from '../context.js';
import { familyOf, subnetContains, subnetOf } from '../ipmath.js';
import { networkKey, nicTagKey, poolKey } from '../keys.js';
import type { Tx } from '../../store/txn.js';
import { vIp, vVlan, vVnetId } from '../validate.js';
import { vBelongsToType } from './ip.js';
import { loadNetwork } from './network.js';
import { ALLOW_FLAG_FIELDS, MSG, NIC_STATES } from './nic.js';
import type { IpRecord, NetworkPoolRecord, NetworkRecord, NicRecord, NicTagRecord } from './records.js';

// ---- what the parameters name, read before validation -----------------------------------

export interface NicLookups {
  network?: NetworkRecord;
  pool?: NetworkPoolRecord;
  tag?: NicTagRecord;
  provided: Map<string, NicTagRecord | undefined>;
}

/** The network a NIC may be placed on; one being deleted counts as gone. */
async function loadNetworkRec(tx: Tx, uuidOrAdmin: string): Promise<NetworkRecord | undefined> {
  const rec = await loadNetwork(tx, uuidOrAdmin);
  return rec?.deleting ? undefined : rec;
}

/** The network (or pool) and nic tags the raw parameters name, read through tx. */
export async function readNicLookups(tx: Tx, raw: Params): Promise<NicLookups> {
  const out: NicLookups = { provided: new Map() };
  const nu = raw.network_uuid;
  if (typeof nu === 'string' && (nu === 'admin' || isUuid(nu))) {
    out.network = await loadNetworkRec(tx, nu);
    if (!out.network && isUuid(nu)) out.pool = await tx.getJson<NetworkPoolRecord>(poolKey(nu));
  }
  if (typeof raw.nic_tag === 'string') {
    const [name] = raw.nic_tag.split('/');
    if (/^[A-Za-z0-9_]{1,31}$/.test(name)) out.tag = await tx.getJson<NicTagRecord>(nicTagKey(name));
  }
  const provided = raw.nic_tags_provided;
  const list = provided === '' ? [] : toList(provided);
  for (const t of list ?? []) {
    if (typeof t === 'string' && /^[A-Za-z0-9_]{1,31}$/.test(t) && !out.provided.has(t)) {
      out.provided.set(t, await tx.getJson<NicTagRecord>(nicTagKey(t)));
    }
  }
  return out;
}

// ---- field validators --------------------------------------------------------------------

/** `nic_tag`, optionally with the vnet it names: "sdc_overlay/1234" (NAPI-348). */
export interface NicTagParam {
  name: string;
  vnet?: number;
}

const vState: FieldValidator<NicRecord['state']> = (field, v) =>
  typeof v === 'string' && (NIC_STATES as readonly string[]).includes(v)
    ? (v as NicRecord['state'])
    : fail(field, `must be one of: ${NIC_STATES.map((s) => JSON.stringify(s)).join(', ')}`);

/** An IPv6 fabric network: the only kind of IPv6 network a NIC may be on (NAPI's NICs are IPv4). */
export function isIpv6Fabric(n: Pick<NetworkRecord, 'family' | 'fabric'> | undefined): boolean {
  return n?.family === 'ipv6' && n.fabric === true;
}

/** IPv4, or IPv6 unless the network named is not an IPv6 fabric network (checked again once placed). */
const vNicIp: FieldValidator<string, NicLookups> = (field, val, p, l) => {
  const r = vIp(field, val, p);
  if (typeof r !== 'string') return r;
  if (familyOf(r) === 'ipv4') return r;
  return l.pool || (l.network && !isIpv6Fabric(l.network)) ? fail(field, MSG.ipv4Only) : r;
};

const vNicMac: FieldValidator<string> = (field, val) => tryCanonicalMac(val) ?? fail(field, 'invalid MAC address');

/** The network or pool the lookups found; IPv4, or an IPv6 fabric network. */
const vNetworkUuid: FieldValidator<string, NicLookups> = (field, val, _p, l) => {
  if (typeof val !== 'string' || (val !== 'admin' && !isUuid(val))) return fail(field, 'invalid UUID');
  if (l.network) return l.network.family === 'ipv4' || isIpv6Fabric(l.network) ? l.network.uuid : fail(field, MSG.notIpv4Network);
  if (l.pool) return l.pool.family === 'ipv4' ? l.pool.uuid : fail(field, MSG.notIpv4Network);
  return fail(field, MSG.noNetwork);
};

const vNicTag: FieldValidator<NicTagParam, NicLookups> = (field, val, _p, l) => {
  const s = vString(field, val, {});
  if (typeof s !== 'string') return s;
  const parts = s.split('/');
  if (parts.length > 2) return fail(field, 'nic_tag must contain at most one "/"');
  if (!l.tag || l.tag.name !== parts[0]) return fail(field, MSG.tagMissing);
  if (parts.length === 2) {
    const vn = vVnetId(field, parts[1], {});
    if (typeof vn !== 'number') return vn;
    return { name: parts[0]!, vnet: vn };
  }
  return { name: parts[0]! };
};

const vNicTagsProvided: FieldValidator<string[], NicLookups> = (field, val, _p, l) => {
  if (val === '' || (Array.isArray(val) && val.length === 0)) return [];
  const list = toList(val);
  if (!list || list.some((t) => typeof t !== 'string')) return fail(field, 'must be an array of strings');
  const missing = (list as string[]).filter((t) => !l.provided.get(t));
  if (missing.length > 0) {
    return fail(field, missing.length === 1 ? MSG.tagMissing : 'nic tags do not exist', { invalid: missing });
  }
  return [...new Set(list as string[])];
};

const vNicTagsAvailable: FieldValidator<string[]> = (field, val) => {
  const list = toList(val);
  return list && list.every((t) => typeof t === 'string') ? (list as string[]) : fail(field, 'must be an array of strings');
};

/** The optional fields of every NIC write. */
const NIC_FIELDS = {
  cn_uuid: vUuid,
  check_owner: vBool,
  ip: vNicIp,
  mac: vNicMac,
  model: vString,
  network_uuid: vNetworkUuid,
  nic_tag: vNicTag,
  nic_tags_provided: vNicTagsProvided,
  nic_tags_available: vNicTagsAvailable,
  primary: vBool,
  reserved: vBool,
  state: vState,
  underlay: vBool,
  vlan_id: vVlan,
  ...ALLOW_FLAG_FIELDS,
};

const OWNERSHIP_FIELDS = { belongs_to_uuid: vUuid, belongs_to_type: vBelongsToType, owner_uuid: vUuid };

const CREATE_FIELDS = { required: OWNERSHIP_FIELDS, optional: NIC_FIELDS };
export type CreateNicParams = Validated<typeof CREATE_FIELDS>;
const CREATE_SCHEMA = schema(CREATE_FIELDS);

const UPDATE_FIELDS = { optional: { ...NIC_FIELDS, ...OWNERSHIP_FIELDS } };
export type UpdateNicParams = Validated<typeof UPDATE_FIELDS>;
const UPDATE_SCHEMA = schema(UPDATE_FIELDS);

// ---- placement (NAPI's validateNetworkParams) ----------------------------------------------

/** Where the NIC's address comes from. */
export interface Placement {
  network?: NetworkRecord;
  pool?: NetworkPoolRecord;
  /** An explicit address (already checked provisionable) and its current record. */
  ip?: string;
  ipRecord?: IpRecord;
}

/** The parameters placement reads. */
type PlacementParams = Pick<UpdateNicParams, 'ip' | 'network_uuid' | 'check_owner' | 'nic_tag' | 'nic_tags_available' | 'vlan_id'>;

function isOwner(owners: string[] | undefined, owner: string, adminUuid: string): boolean {
  if (!owners || owners.length === 0) return true;
  return owner === adminUuid || owners.includes(owner);
}

async function findNetworkForIp(tx: Tx, ip: string, tag: string, vlan: number, vnet: number | undefined): Promise<NetworkRecord> {
  const all = (await tx.range({ prefix: 'napi/networks/' })).map((kv) => JSON.parse(kv.value) as NetworkRecord);
  const matches = all.filter(
    (n) =>
      n.nic_tag === tag &&
      n.vlan_id === vlan &&
      (vnet === undefined || n.vnet_id === vnet) &&
      familyOf(ip) === n.family &&
      subnetContains(subnetOf(n.subnet), ip),
  );
  if (matches.length === 0) {
    rejectField('ip', `No networks matching this nic_tag ("${tag}") and vlan_id (${vlan}) contained the IP address ${ip}`);
  }
  if (matches.length > 1) {
    const uuids = matches.map((n) => n.uuid).sort().join(', ');
    rejectField(
      'ip',
      `Multiple (overlapping) networks (${uuids}) matching this nic_tag ("${tag}") and vlan_id (${vlan}) contain the IP address ${ip}`,
    );
  }
  // Read through tx so a concurrent change to that network is a conflict.
  return (await tx.getJson<NetworkRecord>(networkKey(matches[0].uuid))) ?? matches[0];
}

function checkTagAndVlan(c: PlacementParams, network: NetworkRecord, config: NapiConfig): void {
  if (c.nic_tag !== undefined) {
    const { name: given, vnet } = c.nic_tag;
    const tagOk = given === network.nic_tag && (vnet === undefined || vnet === network.vnet_id);
    if (!tagOk) {
      const have = network.fabric ? `${config.overlay.overlayNicTag}/${network.vnet_id}` : network.nic_tag;
      const sent = vnet !== undefined ? `${given}/${vnet}` : given;
      rejectField('nic_tag', `The nic_tag of all specified IPv4 and IPv6 networks must match (have "${have}" and "${sent}")`);
    }
  }
  if (c.vlan_id !== undefined && c.vlan_id !== network.vlan_id) {
    rejectField('vlan_id', `The vlan_id of all specified IPv4 and IPv6 networks must match (have "${network.vlan_id}" and "${c.vlan_id}")`);
  }
}

/**
 * Resolves where the NIC's IP comes from. `fallbackNetwork` is the NIC's current network
 * (update with `ip` but no `network_uuid`). `claimant` is the NIC's belongs_to_uuid for
 * explicit IPs the NIC itself already holds.
 */
async function resolvePlacement(
  tx: Tx,
  c: PlacementParams,
  l: NicLookups,
  config: NapiConfig,
  owner: string,
  opts: { fallbackNetwork?: NetworkRecord | undefined; claimant?: string },
): Promise<Placement> {
  const ip = c.ip;
  if (ip && l.pool && c.network_uuid !== undefined) rejectField('ip', MSG.poolIp);
  const checkOwner = c.check_owner !== false;
  if (c.network_uuid !== undefined && l.network) {
    if (checkOwner && !isOwner(l.network.owner_uuids, owner, config.adminUuid)) rejectField('owner_uuid', MSG.ownerMatch);
  }
  if (c.network_uuid !== undefined && l.pool) {
    if (checkOwner && !isOwner(l.pool.owner_uuids, owner, config.adminUuid)) rejectField('owner_uuid', MSG.ownerMatch);
    const present = l.pool.nic_tags_present ?? [];
    if (present.length > 1 && c.nic_tag === undefined && c.nic_tags_available === undefined) {
      throw invalidParams([
        missingParam('nic_tags_available', `Network pool ${l.pool.uuid} has mixed nic_tag values (${present.join(', ')}); specify nic_tag or nic_tags_available`),
      ]);
    }
    return { pool: l.pool };
  }
  let network = c.network_uuid !== undefined ? l.network : undefined;
  if (network) checkTagAndVlan(c, network, config);
  if (!ip) return { network };
  if (!network) network = opts.fallbackNetwork;
  if (!network) {
    const errs: FieldError[] = [];
    if (c.nic_tag === undefined) errs.push(missingParam('nic_tag', MSG.ipNoVlanTag));
    if (c.vlan_id === undefined) errs.push(missingParam('vlan_id', MSG.ipNoVlanTag));
    if (errs.length > 0 || c.nic_tag === undefined || c.vlan_id === undefined) throw invalidParams(errs);
    network = await findNetworkForIp(tx, ip, c.nic_tag.name, c.vlan_id, c.nic_tag.vnet);
    if (network.family === 'ipv6' && !isIpv6Fabric(network)) rejectField('ip', MSG.ipv4Only);
    if (checkOwner && !isOwner(network.owner_uuids, owner, config.adminUuid)) rejectField('owner_uuid', MSG.ownerMatch);
  }
  const ipRecord = await checkExplicitIp(tx, network, ip, config.adminUuid, opts.claimant);
  return { network, ip, ipRecord };
}

// ---- validating a create or an update ------------------------------------------------------

export interface ValidNicCreate {
  c: CreateNicParams;
  placement: Placement;
}

/** CreateNic's parameters, checked; and where the NIC's address comes from. */
export async function validateNicCreate(tx: Tx, config: NapiConfig, raw: Params): Promise<ValidNicCreate> {
  const l = await readNicLookups(tx, raw);
  const c = await validateParams(CREATE_SCHEMA, raw, l);
  const placement = await resolvePlacement(tx, c, l, config, c.owner_uuid, {});
  if (placement.network?.fabric && c.cn_uuid === undefined) throw invalidParams([missingParam('cn_uuid')]);
  if (c.underlay === true && c.belongs_to_type !== 'server') rejectField('underlay', MSG.underlayServer);
  return { c, placement };
}

export interface ValidNicUpdate {
  c: UpdateNicParams;
  placement: Placement;
}

/**
 * UpdateNic's parameters (the path's MAC already removed), checked against the NIC and
 * its current network; and where its address comes from when it moves.
 */
export async function validateNicUpdate(
  tx: Tx,
  config: NapiConfig,
  existing: NicRecord,
  currentNetwork: NetworkRecord | undefined,
  params: Params,
  l: NicLookups,
): Promise<ValidNicUpdate> {
  const c = await validateParams(UPDATE_SCHEMA, params, l);
  const owner = c.owner_uuid ?? existing.owner_uuid;
  // network_uuid alone does not move the NIC; only `ip` does.
  const moving = c.ip === undefined ? { ...c, network_uuid: undefined } : c;
  const placement = await resolvePlacement(tx, moving, l, config, owner, {
    fallbackNetwork: currentNetwork,
    claimant: existing.belongs_to_uuid,
  });
  if (c.ip !== undefined && placement.pool) rejectField('ip', MSG.poolIp);
  const net = placement.network ?? currentNetwork;
  const cn = c.cn_uuid ?? existing.cn_uuid;
  if (net?.fabric && (c.ip !== undefined || existing.ip) && cn === undefined) throw invalidParams([missingParam('cn_uuid')]);
  const type = c.belongs_to_type ?? existing.belongs_to_type;
  if (c.underlay === true && type !== 'server') rejectField('underlay', MSG.underlayServer);
  return { c, placement };
}
