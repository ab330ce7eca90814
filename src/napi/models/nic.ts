/**
 * NICs (napi/nics/<mac>): validation, IP/MAC allocation, serialization, and the create /
 * update / delete logic behind /nics and /networks/:uuid/nics.
 *
 * Every write is one transaction (src/napi/txn.ts) holding: the NIC record, its
 * secondary index keys (napi/idx/nic/{belongs_to,cn,network}/…), the IP record(s), the
 * network record when a fabric gateway is taken or released, the primary-flag clearing
 * on sibling NICs, and the overlay derivation (mappings, underlay record, vnode counts,
 * one shootdown event per node already on the vnet). Nothing is half-written; a
 * concurrent writer makes the whole body run again on fresh data.
 */
import type { NapiConfig } from '../context.js';
import { type FieldError, duplicateParam, invalidParam, invalidParams, missingParam } from '../errors.js';
import { familyOf, subnetContains, subnetOf } from '../ipmath.js';
import {
  NIC_PREFIX,
  type NicIndex,
  ipKey,
  networkKey,
  nicIndexKey,
  nicIndexPrefix,
  nicKey,
  nicTagKey,
  poolKey,
} from '../keys.js';
import type { Tx } from '../txn.js';
import {
  type FieldValidator,
  type Params,
  fail,
  isUuid,
  parseMac,
  rejectField,
  toList,
  vBool,
  vIp,
  vString,
  vUuid,
  vVlan,
  vVnetId,
  validateParams,
} from '../validate.js';
import { allocateIpOrNull, checkExplicitIp } from '../alloc/ip.js';
import { allocateMac } from '../alloc/mac.js';
import { applyOverlayWrite } from '../../overlay/write.js';
import type { NicOverlayView } from '../../overlay/derive.js';
import { subnetFull } from '../errors.js';
import { BELONGS_TO_TYPES, releasedIp, vBelongsToType } from './ip.js';
import type { IpRecord, NetworkPoolRecord, NetworkRecord, NicRecord, NicTagRecord } from './records.js';
import { loadNetwork } from './network.js';

export const NIC_STATES = ['provisioning', 'stopped', 'running'] as const;
export const ALLOW_FLAGS = [
  'allow_dhcp_spoofing',
  'allow_ip_spoofing',
  'allow_mac_spoofing',
  'allow_restricted_traffic',
  'allow_unfiltered_promisc',
] as const;

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

const vState: FieldValidator = (field, v) =>
  typeof v === 'string' && (NIC_STATES as readonly string[]).includes(v)
    ? v
    : fail(field, `must be one of: ${NIC_STATES.map((s) => JSON.stringify(s)).join(', ')}`);

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

function netmaskFor(network: NetworkRecord): string | undefined {
  const sub = subnetOf(network.subnet);
  if (sub.family !== 'ipv4') return undefined;
  const bits = sub.bits;
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return [24, 16, 8, 0].map((sh) => (mask >>> sh) & 255).join('.');
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
  const mac = parseMac(macParam);
  if (!mac) return undefined;
  const kv = await tx.get(nicKey(mac));
  return kv ? { rec: JSON.parse(kv.value) as NicRecord, modRevision: kv.modRevision } : undefined;
}

/** The network a NIC may be placed on; one being deleted counts as gone. */
async function loadNetworkRec(tx: Tx, uuidOrAdmin: string): Promise<NetworkRecord | undefined> {
  const rec = await loadNetwork(tx, uuidOrAdmin);
  return rec?.deleting ? undefined : rec;
}

function isOwner(owners: string[] | undefined, owner: string, adminUuid: string): boolean {
  if (!owners || owners.length === 0) return true;
  return owner === adminUuid || owners.includes(owner);
}

// ---- parameter pre-reads (async lookups the field validators close over) ----------------

interface Lookups {
  network?: NetworkRecord;
  pool?: NetworkPoolRecord;
  tag?: NicTagRecord;
  tagVnet?: number;
  provided: Map<string, NicTagRecord | undefined>;
}

async function lookups(tx: Tx, raw: Params): Promise<Lookups> {
  const out: Lookups = { provided: new Map() };
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

function nicFieldValidators(l: Lookups): Record<string, FieldValidator> {
  const v: Record<string, FieldValidator> = {
    cn_uuid: vUuid,
    check_owner: vBool,
    ip: (field, val, p) => {
      const r = vIp(field, val, p);
      if (typeof r !== 'string') return r;
      return familyOf(r) === 'ipv4' ? r : fail(field, MSG.ipv4Only);
    },
    mac: (field, val) => parseMac(val) ?? fail(field, 'invalid MAC address'),
    model: vString,
    network_uuid: (field, val) => {
      if (typeof val !== 'string' || (val !== 'admin' && !isUuid(val))) return fail(field, 'invalid UUID');
      if (l.network) return l.network.family === 'ipv4' ? l.network.uuid : fail(field, MSG.notIpv4Network);
      if (l.pool) return l.pool.family === 'ipv4' ? l.pool.uuid : fail(field, MSG.notIpv4Network);
      return fail(field, MSG.noNetwork);
    },
    nic_tag: (field, val) => {
      const s = vString(field, val, {});
      if (typeof s !== 'string') return s;
      const parts = s.split('/');
      if (parts.length > 2) return fail(field, 'nic_tag must contain at most one "/"');
      if (!l.tag || l.tag.name !== parts[0]) return fail(field, MSG.tagMissing);
      if (parts.length === 2) {
        const vn = vVnetId(field, parts[1], {});
        if (typeof vn !== 'number') return vn;
        l.tagVnet = vn;
      }
      return parts[0];
    },
    nic_tags_provided: (field, val) => {
      if (val === '' || (Array.isArray(val) && val.length === 0)) return [];
      const list = toList(val);
      if (!list || list.some((t) => typeof t !== 'string')) return fail(field, 'must be an array of strings');
      const missing = (list as string[]).filter((t) => !l.provided.get(t));
      if (missing.length > 0) {
        return fail(field, missing.length === 1 ? MSG.tagMissing : 'nic tags do not exist', { invalid: missing });
      }
      return [...new Set(list as string[])];
    },
    nic_tags_available: (field, val) => {
      const list = toList(val);
      return list && list.every((t) => typeof t === 'string') ? list : fail(field, 'must be an array of strings');
    },
    primary: vBool,
    reserved: vBool,
    state: vState,
    underlay: vBool,
    vlan_id: vVlan,
  };
  for (const f of ALLOW_FLAGS) v[f] = vBool;
  return v;
}

// ---- network resolution (NAPI's validateNetworkParams) ---------------------------------

interface Placement {
  network?: NetworkRecord;
  pool?: NetworkPoolRecord;
  /** An explicit address (already checked provisionable) and its current record. */
  ip?: string;
  ipRecord?: IpRecord;
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

function checkTagAndVlan(c: Params, network: NetworkRecord, l: Lookups, config: NapiConfig): void {
  if (c.nic_tag !== undefined) {
    const given = c.nic_tag as string;
    const tagOk = given === network.nic_tag && (l.tagVnet === undefined || l.tagVnet === network.vnet_id);
    if (!tagOk) {
      const have = network.fabric ? `${config.overlay.overlayNicTag}/${network.vnet_id}` : network.nic_tag;
      const sent = l.tagVnet !== undefined ? `${given}/${l.tagVnet}` : given;
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
  c: Params,
  l: Lookups,
  config: NapiConfig,
  owner: string,
  opts: { fallbackNetwork?: NetworkRecord; claimant?: string; requireIpForNetwork?: boolean },
): Promise<Placement> {
  const ip = c.ip as string | undefined;
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
  if (network) checkTagAndVlan(c, network, l, config);
  if (!ip) return { network };
  if (!network) network = opts.fallbackNetwork;
  if (!network) {
    const errs: FieldError[] = [];
    if (c.nic_tag === undefined) errs.push(missingParam('nic_tag', MSG.ipNoVlanTag));
    if (c.vlan_id === undefined) errs.push(missingParam('vlan_id', MSG.ipNoVlanTag));
    if (errs.length > 0) throw invalidParams(errs);
    network = await findNetworkForIp(tx, ip, c.nic_tag as string, c.vlan_id as number, l.tagVnet);
    if (checkOwner && !isOwner(network.owner_uuids, owner, config.adminUuid)) rejectField('owner_uuid', MSG.ownerMatch);
  }
  const ipRecord = await checkExplicitIp(tx, network, ip, config.adminUuid, opts.claimant);
  return { network, ip, ipRecord };
}

// ---- writes shared by create / update / delete ---------------------------------------------

const INDEXES: Array<[NicIndex, (n: NicRecord) => string | undefined]> = [
  ['belongs_to', (n) => n.belongs_to_uuid],
  ['cn', (n) => n.cn_uuid],
  ['network', (n) => (n.ip ? n.network_uuid : undefined)],
];

function writeIndexes(tx: Tx, before: NicRecord | undefined, after: NicRecord | undefined): void {
  for (const [idx, get] of INDEXES) {
    const b = before ? get(before) : undefined;
    const a = after ? get(after) : undefined;
    if (b && b !== a) tx.del(nicIndexKey(idx, b, before!.mac));
    if (a && (a !== b || !before)) tx.put(nicIndexKey(idx, a, after!.mac), '');
  }
}

/** primary=true clears primary on every other NIC of the same belongs_to_uuid. */
async function clearOtherPrimaries(tx: Tx, nic: NicRecord, now: string): Promise<void> {
  // The index scan is not a precondition: bumping a per-instance counter makes two
  // concurrent primary writes for one instance conflict, so the loser retries and sees
  // the winner's NIC.
  const genKey = `napi/gen/primary/${nic.belongs_to_uuid}`;
  const gen = await tx.get(genKey);
  tx.put(genKey, String(Number(gen?.value ?? '0') + 1));
  const prefix = nicIndexPrefix('belongs_to', nic.belongs_to_uuid);
  for (const kv of await tx.range({ prefix })) {
    const hex = kv.key.slice(prefix.length);
    if (hex === nicKey(nic.mac).slice(NIC_PREFIX.length)) continue;
    const other = await tx.getJson<NicRecord>(NIC_PREFIX + hex);
    if (other && other.primary) tx.putJson(NIC_PREFIX + hex, { ...other, primary: false, modified_timestamp: now });
  }
}

/** gateway_provisioned follows whether a NIC holds a fabric network's gateway. */
async function setGatewayProvisioned(tx: Tx, networkUuid: string, value: boolean, now: string): Promise<NetworkRecord | undefined> {
  const net = await tx.getJson<NetworkRecord>(networkKey(networkUuid));
  if (!net || !net.fabric || (net.gateway_provisioned === true) === value) return net;
  const next = { ...net, gateway_provisioned: value, modified_timestamp: now };
  tx.putJson(networkKey(networkUuid), next);
  return next;
}

function ipForNic(nic: NicRecord, network: NetworkRecord, ip: string, previous: IpRecord | undefined, reserved: boolean | undefined, now: string): IpRecord {
  return {
    ip,
    network_uuid: network.uuid,
    reserved: reserved ?? previous?.reserved ?? false,
    belongs_to_uuid: nic.belongs_to_uuid,
    belongs_to_type: nic.belongs_to_type,
    owner_uuid: nic.owner_uuid,
    modified_timestamp: now,
  };
}

/** Releases the NIC's address if the record still names this NIC's owner object. */
async function releaseNicIp(tx: Tx, nic: NicRecord, now: string): Promise<void> {
  if (!nic.ip || !nic.network_uuid) return;
  const key = ipKey(nic.network_uuid, nic.ip);
  const rec = await tx.getJson<IpRecord>(key);
  if (rec && rec.belongs_to_uuid === nic.belongs_to_uuid) tx.putJson(key, releasedIp(rec, now));
  const net = await tx.getJson<NetworkRecord>(networkKey(nic.network_uuid));
  if (net?.fabric && net.gateway === nic.ip) await setGatewayProvisioned(tx, net.uuid, false, now);
}

function overlayConfig(config: NapiConfig): { underlayNicTag: string } {
  return { underlayNicTag: config.overlay.underlayNicTag };
}

export interface NicWriteResult {
  nic: NicRecord;
  network?: NetworkRecord;
}

// ---- create ----------------------------------------------------------------------------

/** CreateNic / ProvisionNic inside tx. `attempt` is transact()'s attempt number. */
export async function createNicTx(tx: Tx, config: NapiConfig, raw: Params, attempt = 0): Promise<NicWriteResult> {
  const l = await lookups(tx, raw);
  let placement: Placement = {};
  const c = await validateParams(
    {
      required: { belongs_to_uuid: vUuid, belongs_to_type: vBelongsToType, owner_uuid: vUuid },
      optional: nicFieldValidators(l),
      after: [
        async (c) => {
          placement = await resolvePlacement(tx, c, l, config, c.owner_uuid as string, {});
        },
        (c) => {
          if (placement.network?.fabric && c.cn_uuid === undefined) throw invalidParams([missingParam('cn_uuid')]);
        },
        (c) => {
          if (c.underlay === true && c.belongs_to_type !== 'server') rejectField('underlay', MSG.underlayServer);
        },
      ],
    },
    raw,
  );

  const now = new Date().toISOString();
  let mac: string;
  if (c.mac !== undefined) {
    mac = c.mac as string;
    if (await tx.get(nicKey(mac))) throw invalidParams([duplicateParam('mac')]);
  } else {
    mac = await allocateMac(tx, config.macOUI);
  }

  let network = placement.network;
  let ip = placement.ip;
  let previous = placement.ipRecord;
  if (placement.pool) {
    const pool = placement.pool;
    for (const uuid of pool.networks) {
      const n = await tx.getJson<NetworkRecord>(networkKey(uuid));
      if (!n) continue;
      if (c.nic_tag !== undefined && n.nic_tag !== c.nic_tag) continue;
      const avail = c.nic_tags_available as string[] | undefined;
      if (c.nic_tag === undefined && avail && !avail.includes(n.nic_tag)) continue;
      const got = await allocateIpOrNull(tx, n, { attempt });
      if (got) {
        network = n;
        ip = got.ip;
        previous = got.previous;
        break;
      }
    }
    if (!network) rejectField('network_uuid', `All networks in pool ${pool.uuid} are full`);
    if (network.fabric && c.cn_uuid === undefined) throw invalidParams([missingParam('cn_uuid')]);
  } else if (network && !ip) {
    const got = await allocateIpOrNull(tx, network, { attempt });
    if (!got) throw subnetFull(network.uuid);
    ip = got.ip;
    previous = got.previous;
  }

  const nic: NicRecord = {
    mac,
    owner_uuid: c.owner_uuid as string,
    belongs_to_uuid: c.belongs_to_uuid as string,
    belongs_to_type: c.belongs_to_type as NicRecord['belongs_to_type'],
    primary: c.primary === true,
    state: (c.state as NicRecord['state'] | undefined) ?? 'provisioning',
    created_timestamp: now,
    modified_timestamp: now,
  };
  if (c.cn_uuid !== undefined) nic.cn_uuid = c.cn_uuid as string;
  if (c.model !== undefined) nic.model = c.model as string;
  if (network) nic.nic_tag = network.nic_tag;
  else if (c.nic_tag !== undefined) nic.nic_tag = c.nic_tag as string;
  const provided = c.nic_tags_provided as string[] | undefined;
  if (provided && provided.length > 0) nic.nic_tags_provided = provided;
  for (const f of ALLOW_FLAGS) if (c[f] === true) nic[f] = true;
  if (c.underlay === true) nic.underlay = true;
  if (network && ip) {
    nic.ip = ip;
    nic.network_uuid = network.uuid;
    tx.putJson(ipKey(network.uuid, ip), ipForNic(nic, network, ip, previous, c.reserved as boolean | undefined, now));
    if (network.fabric && network.gateway === ip) network = (await setGatewayProvisioned(tx, network.uuid, true, now)) ?? network;
  }
  if (nic.primary) await clearOtherPrimaries(tx, nic, now);
  tx.putJson(nicKey(mac), nic);
  writeIndexes(tx, undefined, nic);
  await applyOverlayWrite(tx, null, overlayView(nic, network), overlayConfig(config), { now });
  return { nic, network };
}

// ---- update ----------------------------------------------------------------------------

/** UpdateNic inside tx; `existing` was read through tx. */
export async function updateNicTx(tx: Tx, config: NapiConfig, existing: NicRecord, raw: Params): Promise<NicWriteResult> {
  const params: Params = { ...raw };
  delete params.mac; // the path's MAC names the NIC; a body MAC is ignored
  const l = await lookups(tx, params);
  const currentNetwork = existing.network_uuid ? await tx.getJson<NetworkRecord>(networkKey(existing.network_uuid)) : undefined;
  let placement: Placement = {};
  const validators = nicFieldValidators(l);
  const c = await validateParams(
    {
      optional: { ...validators, belongs_to_uuid: vUuid, belongs_to_type: vBelongsToType, owner_uuid: vUuid },
      after: [
        async (c) => {
          const owner = (c.owner_uuid as string | undefined) ?? existing.owner_uuid;
          // network_uuid alone does not move the NIC; only `ip` does.
          const movingParams = { ...c };
          if (c.ip === undefined) delete movingParams.network_uuid;
          placement = await resolvePlacement(tx, movingParams, l, config, owner, {
            fallbackNetwork: currentNetwork,
            claimant: existing.belongs_to_uuid,
          });
          if (c.ip !== undefined && placement.pool) rejectField('ip', MSG.poolIp);
        },
        (c) => {
          const net = placement.network ?? currentNetwork;
          const cn = (c.cn_uuid as string | undefined) ?? existing.cn_uuid;
          if (net?.fabric && (c.ip !== undefined || existing.ip) && cn === undefined) throw invalidParams([missingParam('cn_uuid')]);
        },
        (c) => {
          const type = (c.belongs_to_type as string | undefined) ?? existing.belongs_to_type;
          if (c.underlay === true && type !== 'server') rejectField('underlay', MSG.underlayServer);
        },
      ],
    },
    params,
  );

  const now = new Date().toISOString();
  const next: NicRecord = { ...existing, modified_timestamp: now };
  for (const f of ['owner_uuid', 'belongs_to_uuid', 'belongs_to_type', 'cn_uuid', 'model', 'state'] as const) {
    if (c[f] !== undefined) (next as unknown as Record<string, unknown>)[f] = c[f];
  }
  if (c.primary !== undefined) next.primary = c.primary === true;
  for (const f of ALLOW_FLAGS) {
    if (c[f] === true) next[f] = true;
    else if (c[f] === false) delete next[f];
  }
  if (c.underlay === true) next.underlay = true;
  else if (c.underlay === false) delete next.underlay;
  if (c.nic_tags_provided !== undefined) {
    const p = c.nic_tags_provided as string[];
    if (p.length > 0) next.nic_tags_provided = p;
    else delete next.nic_tags_provided;
  }
  if (c.nic_tag !== undefined && !existing.ip) next.nic_tag = c.nic_tag as string;

  let network = currentNetwork;
  const moving = placement.ip !== undefined && placement.network !== undefined &&
    (placement.ip !== existing.ip || placement.network.uuid !== existing.network_uuid);
  if (moving) {
    await releaseNicIp(tx, existing, now);
    network = (await tx.getJson<NetworkRecord>(networkKey(placement.network!.uuid))) ?? placement.network;
    next.ip = placement.ip;
    next.network_uuid = network!.uuid;
    next.nic_tag = network!.nic_tag;
    tx.putJson(ipKey(network!.uuid, placement.ip!), ipForNic(next, network!, placement.ip!, placement.ipRecord, c.reserved as boolean | undefined, now));
    if (network!.fabric && network!.gateway === placement.ip) network = (await setGatewayProvisioned(tx, network!.uuid, true, now)) ?? network;
  } else if (next.ip && next.network_uuid) {
    // The NIC keeps its address: propagate ownership changes to the IP record.
    const key = ipKey(next.network_uuid, next.ip);
    const rec = await tx.getJson<IpRecord>(key);
    const changed =
      c.belongs_to_uuid !== undefined || c.belongs_to_type !== undefined || c.owner_uuid !== undefined || c.reserved !== undefined;
    if (rec && changed && (rec.belongs_to_uuid === existing.belongs_to_uuid || !rec.belongs_to_uuid)) {
      tx.putJson(key, ipForNic(next, network ?? ({ uuid: next.network_uuid } as NetworkRecord), next.ip, rec, c.reserved as boolean | undefined, now));
    }
  }
  // A freshly re-read network (gateway_provisioned may have flipped on release).
  if (network && !moving) network = (await tx.getJson<NetworkRecord>(networkKey(network.uuid))) ?? network;

  if (next.primary && (c.primary === true || c.belongs_to_uuid !== undefined)) await clearOtherPrimaries(tx, next, now);
  tx.putJson(nicKey(next.mac), next);
  writeIndexes(tx, existing, next);
  await applyOverlayWrite(tx, overlayView(existing, currentNetwork), overlayView(next, network), overlayConfig(config), { now });
  return { nic: next, network };
}

// ---- delete ----------------------------------------------------------------------------

export async function deleteNicTx(tx: Tx, config: NapiConfig, existing: NicRecord): Promise<void> {
  const now = new Date().toISOString();
  const network = existing.network_uuid ? await tx.getJson<NetworkRecord>(networkKey(existing.network_uuid)) : undefined;
  await releaseNicIp(tx, existing, now);
  tx.del(nicKey(existing.mac));
  writeIndexes(tx, existing, undefined);
  await applyOverlayWrite(tx, overlayView(existing, network), null, overlayConfig(config), { now });
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

export { BELONGS_TO_TYPES, invalidParam };
