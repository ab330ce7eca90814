/**
 * CreateNetwork and UpdateNetwork, shared by /networks and /fabrics/…/networks. Each is
 * validate (a module-level schema: warden's two phases, then the cross-field checks in
 * NAPI's order) → build the record → write it and reserve its addresses, inside the
 * caller's transaction (src/store/txn.ts): validation reads go through it, so a concurrent
 * change forces a retry on fresh data and nothing is ever half-written.
 */
import { v4 as uuidv4 } from 'uuid';
import { duplicateParam, invalidParams, missingParam } from '../../rest/errors.js';
import {
  type FieldValidator,
  type Params,
  type Validated,
  fail,
  rejectField,
  schema,
  vBool,
  vString,
  vUuid,
  validateParams,
} from '../../rest/validate.js';
import type { NapiConfig } from '../context.js';
import { broadcastAddress, isPrivateSubnet, isRfc1918, isUla, type Subnet, subnetContains, subnetOf, subnetText } from '../ipmath.js';
import { ipKey, networkKey, networkNameKey, nicTagKey } from '../keys.js';
import type { Tx } from '../../store/txn.js';
import { vIp, vVlan, vVnetId } from '../validate.js';
import {
  IMMUTABLE_FIELDS,
  familyErrors,
  anycastErrors,
  nameInUse,
  overlapError,
  overlapping,
  rangeErrors,
  sameValue,
} from './network-checks.js';
import {
  FABRIC_NETWORK_FIELDS,
  NETWORK_FIELDS,
  NO_OWNER_UUID,
  bumpNetworkGeneration,
  listNetworkRecords,
  nameStrOf,
} from './network.js';
import { vFamily, vFields, vGateway, vIps, vNetworkMtu, vRoutes, vSubnet, vUuids, vUuidsOrNull } from './params.js';
import type { IpRecord, NetworkRecord, NicTagRecord } from './records.js';

/** An address the network itself holds (gateway, resolver, broadcast), reserved to the admin. */
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

const vRoutesWithLinklocal = vRoutes(true);
const vRoutesWithoutLinklocal = vRoutes(false);

/** Routes, with 'linklocal' as a next hop where the configuration allows it. */
const vNetworkRoutes: FieldValidator<Record<string, string>, { config: NapiConfig }> = (field, v, p, ctx) =>
  (ctx.config.allowLinklocal ? vRoutesWithLinklocal : vRoutesWithoutLinklocal)(field, v, p);

// ---- create ----

export interface CreateNetworkOptions {
  /** Created through /fabrics/…: `fields` takes that route's names. */
  fabricRoute?: boolean;
}

/** What CreateNetwork's validators and checks look at besides the parameters. */
interface CreateContext {
  tx: Tx;
  config: NapiConfig;
  /** The nic tag the parameters name, as read in this transaction. */
  tag: NicTagRecord | undefined;
  fabricRoute: boolean;
}

const vSubnetPrefix: FieldValidator<24> = (field, v) => (v === 24 || v === '24' ? 24 : fail(field, 'Only /24 is supported'));

const vNetworkFields = vFields(NETWORK_FIELDS);
const vFabricNetworkFields = vFields(FABRIC_NETWORK_FIELDS);

const vCreateFields: FieldValidator<string[], CreateContext> = (field, v, p, ctx) =>
  (ctx.fabricRoute ? vFabricNetworkFields : vNetworkFields)(field, v, p);

/** The nic tag must exist (read before validation; a one-element array counts as its element). */
const vExistingNicTag: FieldValidator<string, CreateContext> = (field, v, _p, ctx) => {
  const name = Array.isArray(v) && v.length === 1 ? v[0] : v;
  if (typeof name !== 'string') return fail(field, 'must be a string');
  if (!ctx.tag || ctx.tag.name !== name) return fail(field, 'nic tag does not exist');
  return name;
};

const CREATE_FIELDS = {
  required: { name: vString, nic_tag: vExistingNicTag, vlan_id: vVlan },
  optional: {
    subnet: vSubnet,
    provision_start_ip: vIp,
    provision_end_ip: vIp,
    gateway: vGateway,
    resolvers: vIps,
    routes: vNetworkRoutes,
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
    fields: vCreateFields,
  },
};
type CreateParams = Validated<typeof CREATE_FIELDS>;

/** The subnet and provision range: present once requireRange passed (subnet_alloc is refused). */
function rangeOf(c: CreateParams): { subnet: Subnet; start: string; end: string } {
  const { subnet, provision_start_ip: start, provision_end_ip: end } = c;
  if (!subnet || !start || !end) throw new Error('the provision range is checked before it is required');
  return { subnet, start, end };
}

function requireRange(c: CreateParams): void {
  if (c.subnet_alloc === true) return;
  const missing = (['provision_end_ip', 'provision_start_ip', 'subnet'] as const).filter((f) => c[f] === undefined);
  if (missing.length > 0) throw invalidParams(missing.map((f) => missingParam(f)));
}

function fabricHasOneOwner(c: CreateParams): void {
  if (c.fabric === true && (c.owner_uuids?.length ?? 0) !== 1) {
    rejectField('owner_uuids', 'Fabric networks must have exactly one owner');
  }
}

function fabricHasVnet(c: CreateParams): void {
  if (c.fabric === true && c.vnet_id === undefined) throw invalidParams([missingParam('vnet_id')]);
}

function familiesMatchSubnet(c: CreateParams): void {
  if (!c.subnet) return;
  const errs = familyErrors(c, c.subnet);
  if (errs.length > 0) throw invalidParams(errs);
}

function noAutoAllocation(c: CreateParams): void {
  if (c.subnet_alloc === true) rejectField('subnet_auto_alloc', 'Subnet allocation is not enabled on this instance');
  if (c.subnet_prefix !== undefined) rejectField('subnet_prefix', 'Auto allocation parameter not allowed');
  const { subnet } = rangeOf(c);
  if (c.family !== undefined && c.family !== subnet.family) rejectField('family', `family must match subnet type (${subnet.family})`);
}

function rangeInsideSubnet(c: CreateParams): void {
  // A NAT-ed fabric network needs a gateway: the first provisionable address.
  if (c.fabric === true && c.internet_nat !== false && !c.gateway) c.gateway = c.provision_start_ip;
  const { subnet, start, end } = rangeOf(c);
  const errs = [...rangeErrors(subnet, start, end, c.gateway), ...anycastErrors(subnet, { start, gateway: c.gateway })];
  if (errs.length > 0) throw invalidParams(errs);
}

/**
 * Fabric networks are private: RFC 1918 IPv4 or unique local IPv6 (fd00::/8); public
 * subnets (and a vnet's fabric subnets) must not overlap.
 */
async function noOverlap(c: CreateParams, _raw: Params, ctx: CreateContext): Promise<void> {
  const { subnet } = rangeOf(c);
  const isFabric = c.fabric === true;
  if (isFabric) {
    if (!(subnet.family === 'ipv4' ? isRfc1918(subnet) : isUla(subnet))) rejectField('subnet', 'subnet must be within private ranges');
  } else if (isPrivateSubnet(subnet)) {
    return;
  }
  await bumpNetworkGeneration(ctx.tx);
  const conflicts = overlapping(await listNetworkRecords(ctx.tx), subnet, '', isFabric ? c.vnet_id : undefined);
  if (conflicts.length > 0) throw overlapError(conflicts);
}

function mtuUnderTag(c: CreateParams, _raw: Params, ctx: CreateContext): void {
  const mtu = c.mtu ?? 1500;
  if (ctx.tag && mtu > ctx.tag.mtu) rejectField('mtu', 'network mtu must be under nic_tag mtu');
}

const CREATE_SCHEMA = schema(CREATE_FIELDS, [
  requireRange,
  fabricHasOneOwner,
  fabricHasVnet,
  familiesMatchSubnet,
  noAutoAllocation,
  rangeInsideSubnet,
  noOverlap,
  mtuUnderTag,
]);

/** The nic tag `name` as read in this transaction (undefined when absent or unnamed). */
async function readNicTag(tx: Tx, name: unknown): Promise<NicTagRecord | undefined> {
  if (typeof name !== 'string' || !/^[A-Za-z0-9_]{1,31}$/.test(name)) return undefined;
  return tx.getJson<NicTagRecord>(nicTagKey(name));
}

async function validateCreate(tx: Tx, config: NapiConfig, raw: Params, opts: CreateNetworkOptions): Promise<CreateParams> {
  const tag = await readNicTag(tx, Array.isArray(raw.nic_tag) && raw.nic_tag.length === 1 ? raw.nic_tag[0] : raw.nic_tag);
  return validateParams(CREATE_SCHEMA, raw, { tx, config, tag, fabricRoute: opts.fabricRoute === true });
}

/** The record a validated create describes. */
function buildNetworkRecord(c: CreateParams, now: string): NetworkRecord {
  const { subnet, start, end } = rangeOf(c);
  const isFabric = c.fabric === true;
  const owners = c.owner_uuids ?? [];
  const rec: NetworkRecord = {
    uuid: c.uuid ?? uuidv4(),
    name: c.name,
    name_str: nameStrOf(c.name, isFabric ? owners[0] : undefined),
    family: subnet.family,
    subnet: subnetText(subnet),
    provision_start_ip: start,
    provision_end_ip: end,
    vlan_id: c.vlan_id,
    nic_tag: c.nic_tag,
    mtu: c.mtu ?? 1500,
    resolvers: c.resolvers ?? [],
    created_timestamp: now,
    modified_timestamp: now,
  };
  if (c.gateway) rec.gateway = c.gateway;
  if (c.routes && Object.keys(c.routes).length > 0) rec.routes = c.routes;
  if (c.description !== undefined) rec.description = c.description;
  if (owners.length > 0) rec.owner_uuids = owners;
  if (isFabric) {
    rec.fabric = true;
    rec.vnet_id = c.vnet_id;
    rec.internet_nat = c.internet_nat !== false;
    if (rec.gateway) rec.gateway_provisioned = false;
  }
  return rec;
}

/** Writes a new network and its name, both unique. */
async function insertNetwork(tx: Tx, rec: NetworkRecord, uuidGiven: boolean): Promise<void> {
  if (await tx.get(networkNameKey(rec.name_str))) throw nameInUse();
  if (uuidGiven && (await tx.get(networkKey(rec.uuid)))) throw invalidParams([duplicateParam('uuid')]);
  // Overlap-free private networks skipped the counter in noOverlap; every create still
  // bumps it so in-use scans (pools, nic tags, VLANs) see a consistent set.
  await bumpNetworkGeneration(tx);
  tx.putJson(networkKey(rec.uuid), rec);
  tx.put(networkNameKey(rec.name_str), rec.uuid);
}

/**
 * A new network's own addresses: its gateway (held for the owner when a fabric network
 * does no NAT), the resolvers inside its subnet, and its broadcast address.
 */
function reserveNewNetworkIps(tx: Tx, rec: NetworkRecord, subnet: Subnet, adminUuid: string, now: string): void {
  const ips = new Map<string, IpRecord>();
  if (rec.gateway) {
    if (rec.fabric && rec.internet_nat === false) {
      ips.set(rec.gateway, {
        ...adminReservation(rec, rec.gateway, adminUuid, now),
        owner_uuid: rec.owner_uuids?.[0],
        belongs_to_uuid: NO_OWNER_UUID,
      });
    } else {
      ips.set(rec.gateway, adminReservation(rec, rec.gateway, adminUuid, now));
    }
  }
  for (const r of rec.resolvers) {
    if (subnetContains(subnet, r) && !ips.has(r)) ips.set(r, adminReservation(rec, r, adminUuid, now));
  }
  const bcast = broadcastAddress(subnet);
  if (bcast && !ips.has(bcast)) ips.set(bcast, adminReservation(rec, bcast, adminUuid, now));
  for (const ip of ips.values()) tx.putJson(ipKey(rec.uuid, ip.ip), ip);
}

/**
 * CreateNetwork inside a transaction: validates, then writes the network, its unique
 * name index entry and its reserved IP records. Returns the stored record.
 */
export async function createNetworkTx(tx: Tx, config: NapiConfig, raw: Params, opts: CreateNetworkOptions = {}): Promise<NetworkRecord> {
  const c = await validateCreate(tx, config, raw, opts);
  const now = new Date().toISOString();
  const rec = buildNetworkRecord(c, now);
  await insertNetwork(tx, rec, c.uuid !== undefined);
  reserveNewNetworkIps(tx, rec, rangeOf(c).subnet, config.adminUuid, now);
  return rec;
}

// ---- update ----

/** What UpdateNetwork's validators and checks look at besides the parameters. */
interface UpdateContext {
  tx: Tx;
  config: NapiConfig;
  /** The network being updated, as read in this transaction. */
  rec: NetworkRecord;
  subnet: Subnet;
}

/** An immutable field passes only when it repeats the stored value (and is then dropped). */
const vUnchanged: FieldValidator<undefined, UpdateContext> = (field, v, _p, ctx) =>
  sameValue(field, v, ctx.rec) ? undefined : fail(field, 'Network updates for this field are not supported');

/** Fabric networks keep their gateway and owner. */
function notOnFabrics<T>(v: FieldValidator<T>): FieldValidator<T, UpdateContext> {
  return (field, value, p, ctx) =>
    ctx.rec.fabric ? fail(field, 'Network updates for this field are not supported on fabrics') : v(field, value, p);
}

const UPDATE_FIELDS = {
  optional: {
    name: vString,
    description: vString,
    mtu: vNetworkMtu,
    owner_uuids: notOnFabrics(vUuidsOrNull),
    gateway: notOnFabrics(vIp),
    provision_start_ip: vIp,
    provision_end_ip: vIp,
    resolvers: vIps,
    routes: vNetworkRoutes,
    ...(Object.fromEntries(IMMUTABLE_FIELDS.map((f) => [f, vUnchanged])) as Record<(typeof IMMUTABLE_FIELDS)[number], typeof vUnchanged>),
  },
};
type UpdateParams = Validated<typeof UPDATE_FIELDS>;

function updateFamiliesMatchSubnet(c: UpdateParams, _raw: Params, ctx: UpdateContext): void {
  const errs = familyErrors(c, ctx.subnet);
  if (errs.length > 0) throw invalidParams(errs);
}

function updateRangeInsideSubnet(c: UpdateParams, _raw: Params, ctx: UpdateContext): void {
  if (c.provision_start_ip === undefined && c.provision_end_ip === undefined && c.gateway === undefined) return;
  const start = c.provision_start_ip ?? ctx.rec.provision_start_ip;
  const end = c.provision_end_ip ?? ctx.rec.provision_end_ip;
  const errs = [...rangeErrors(ctx.subnet, start, end, c.gateway), ...anycastErrors(ctx.subnet, { start: c.provision_start_ip, gateway: c.gateway })];
  if (errs.length > 0) throw invalidParams(errs);
}

async function updateMtuUnderTag(c: UpdateParams, _raw: Params, ctx: UpdateContext): Promise<void> {
  if (c.mtu === undefined) return;
  const tag = await ctx.tx.getJson<NicTagRecord>(nicTagKey(ctx.rec.nic_tag));
  if (tag && c.mtu > tag.mtu) rejectField('mtu', 'network mtu must be under nic_tag mtu');
}

const UPDATE_SCHEMA = schema(UPDATE_FIELDS, [updateFamiliesMatchSubnet, updateRangeInsideSubnet, updateMtuUnderTag]);

/** The record after a validated update (name index aside). */
function buildUpdatedNetwork(rec: NetworkRecord, c: UpdateParams, now: string): NetworkRecord {
  const next: NetworkRecord = { ...rec, modified_timestamp: now };
  if (c.name !== undefined && c.name !== rec.name) {
    next.name = c.name;
    next.name_str = nameStrOf(c.name, rec.fabric ? rec.owner_uuids?.[0] : undefined);
  }
  if (c.description !== undefined) next.description = c.description;
  if (c.mtu !== undefined) next.mtu = c.mtu;
  if (c.owner_uuids !== undefined) {
    if (c.owner_uuids.length > 0) next.owner_uuids = c.owner_uuids;
    else delete next.owner_uuids;
  }
  if (c.provision_start_ip !== undefined) next.provision_start_ip = c.provision_start_ip;
  if (c.provision_end_ip !== undefined) next.provision_end_ip = c.provision_end_ip;
  if (c.resolvers !== undefined) next.resolvers = c.resolvers;
  if (c.routes !== undefined) {
    if (Object.keys(c.routes).length > 0) next.routes = c.routes;
    else delete next.routes;
  }
  if (c.gateway !== undefined) next.gateway = c.gateway;
  return next;
}

/** Moves the network's unique name index entry to its new name. */
async function renameNetwork(tx: Tx, rec: NetworkRecord, next: NetworkRecord): Promise<void> {
  const holder = await tx.get(networkNameKey(next.name_str));
  if (holder && holder.value !== rec.uuid) throw nameInUse();
  tx.del(networkNameKey(rec.name_str));
  tx.put(networkNameKey(next.name_str), rec.uuid);
}

/** A new gateway, and new resolvers inside the subnet, are reserved as at create. */
async function reserveUpdatedNetworkIps(tx: Tx, next: NetworkRecord, c: UpdateParams, ctx: UpdateContext, now: string): Promise<void> {
  const { subnet, config } = ctx;
  const toReserve: string[] = [];
  if (c.gateway !== undefined) toReserve.push(c.gateway);
  if (c.resolvers !== undefined) toReserve.push(...next.resolvers.filter((r) => subnetContains(subnet, r)));
  for (const ip of new Set(toReserve)) {
    const key = ipKey(next.uuid, ip);
    const existing = await tx.getJson<IpRecord>(key);
    if (!existing) tx.putJson(key, adminReservation(next, ip, config.adminUuid, now));
    else if (!existing.reserved) tx.putJson(key, { ...existing, reserved: true, modified_timestamp: now });
  }
}

/**
 * UpdateNetwork inside a transaction. `loaded` is the current record (read through tx).
 * Returns the new record.
 */
export async function updateNetworkTx(tx: Tx, config: NapiConfig, loaded: NetworkRecord, raw: Params): Promise<NetworkRecord> {
  const ctx: UpdateContext = { tx, config, rec: loaded, subnet: subnetOf(loaded.subnet) };
  const c = await validateParams(UPDATE_SCHEMA, raw, ctx);
  const now = new Date().toISOString();
  const next = buildUpdatedNetwork(loaded, c, now);
  if (next.name !== loaded.name) await renameNetwork(tx, loaded, next);
  await reserveUpdatedNetworkIps(tx, next, c, ctx, now);
  tx.putJson(networkKey(loaded.uuid), next);
  return next;
}
