/**
 * Network pools: up to 64 networks of one address family, tried in order when
 * provisioning (sdc-napi lib/models/network-pool.js). Exported for the NIC side:
 * loadPool, isPoolOwner, serializePool.
 */
import { v4 as uuidv4 } from 'uuid';
import { invalidParams, invalidParam, notFound } from '../../rest/errors.js';
import { POOL_PREFIX, networkKey, poolKey } from '../keys.js';
import type { Tx } from '../../store/txn.js';
import { isUuid } from '../../net/addr.js';
import {
  type FieldValidator,
  type Params,
  fail,
  schema,
  toList,
  vString,
  vUuid,
  validateParams,
} from '../../rest/validate.js';
import { bumpNetworkGeneration } from './network.js';
import { vUuids, vUuidsOrNull } from './params.js';
import type { NetworkPoolRecord, NetworkRecord } from './records.js';

export const MAX_POOL_NETWORKS = 64;

export interface LoadedPool {
  rec: NetworkPoolRecord;
  modRevision: number;
}

export async function loadPoolKv(tx: Tx, uuid: string): Promise<LoadedPool | undefined> {
  if (!isUuid(uuid)) return undefined;
  const kv = await tx.get(poolKey(uuid));
  return kv ? { rec: JSON.parse(kv.value) as NetworkPoolRecord, modRevision: kv.modRevision } : undefined;
}

export async function loadPool(tx: Tx, uuid: string): Promise<NetworkPoolRecord | undefined> {
  return (await loadPoolKv(tx, uuid))?.rec;
}

export async function mustLoadPool(tx: Tx, uuid: string): Promise<LoadedPool> {
  const p = await loadPoolKv(tx, uuid);
  if (!p) throw notFound('network pool not found');
  return p;
}

export async function listPoolRecords(tx: Pick<Tx, 'range'>): Promise<NetworkPoolRecord[]> {
  return (await tx.range({ prefix: POOL_PREFIX })).map((kv) => JSON.parse(kv.value) as NetworkPoolRecord);
}

/** No owners means anyone; the admin UUID may always provision. */
export function isPoolOwner(rec: Pick<NetworkPoolRecord, 'owner_uuids'>, owner: string, adminUuid: string): boolean {
  if (!rec.owner_uuids || rec.owner_uuids.length === 0) return true;
  return owner === adminUuid || rec.owner_uuids.includes(owner);
}

export interface SerializedPool {
  uuid: string;
  name: string;
  description?: string;
  family: 'ipv4' | 'ipv6';
  networks: string[];
  nic_tag: string;
  nic_tags_present: string[];
  owner_uuids?: string[];
}

export function serializePool(rec: NetworkPoolRecord): SerializedPool {
  const s: SerializedPool = {
    uuid: rec.uuid,
    name: rec.name,
    family: rec.family,
    networks: rec.networks,
    nic_tag: rec.nic_tag,
    nic_tags_present: rec.nic_tags_present,
  };
  if (rec.description !== undefined) s.description = rec.description;
  if (rec.owner_uuids && rec.owner_uuids.length > 0) s.owner_uuids = rec.owner_uuids;
  return s;
}

/** Field check for `networks`: 1–64 UUIDs (existence is checked after). */
const vPoolNetworks: FieldValidator<string[]> = (field, v, p, ctx) => {
  const list = toList(v);
  if (list && list.length === 0) return fail(field, 'network pool must contain at least one network');
  const uuids = vUuids(field, v, p, ctx);
  if (!Array.isArray(uuids)) return uuids;
  if (uuids.length > MAX_POOL_NETWORKS) return fail(field, `maximum ${MAX_POOL_NETWORKS} networks per network pool`);
  return uuids;
};

/** Reads the member networks; 'unknown network(s)' when some do not exist. */
async function readMembers(tx: Tx, uuids: string[]): Promise<NetworkRecord[]> {
  const got = await tx.getMany(uuids.map(networkKey));
  const missing = uuids.filter((u) => !got.has(networkKey(u)));
  if (missing.length > 0) {
    throw invalidParams([
      invalidParam('networks', missing.length === 1 ? 'unknown network' : 'unknown networks', { invalid: missing }),
    ]);
  }
  return uuids.map((u) => JSON.parse(got.get(networkKey(u))!.value) as NetworkRecord);
}

const FAMILY_MSG = 'address family of all networks in a network pool must match';

function checkOwners(nets: NetworkRecord[], owners: string[] | undefined, adminUuid: string): void {
  if (!owners || owners.length === 0) return;
  const allowed = new Set([...owners, adminUuid]);
  const bad = nets
    .filter((n) => n.owner_uuids && n.owner_uuids.length > 0 && !n.owner_uuids.some((o) => allowed.has(o)))
    .map((n) => n.uuid);
  if (bad.length > 0) {
    throw invalidParams([
      invalidParam('networks', 'network owner_uuids do not match the owner_uuids of the pool', { invalid: bad }),
    ]);
  }
}

function tagsPresent(nets: NetworkRecord[]): string[] {
  return [...new Set(nets.map((n) => n.nic_tag))];
}

const CREATE_POOL_SCHEMA = schema({
  required: { name: vString, networks: vPoolNetworks },
  optional: { description: vString, owner_uuids: vUuids, uuid: vUuid },
});

const UPDATE_POOL_SCHEMA = schema({
  optional: { name: vString, description: vString, networks: vPoolNetworks, owner_uuids: vUuidsOrNull },
});

/** CreateNetworkPool inside a transaction. */
export async function createPoolTx(tx: Tx, adminUuid: string, raw: Params): Promise<NetworkPoolRecord> {
  const c = await validateParams(CREATE_POOL_SCHEMA, raw);
  const uuids = c.networks;
  const nets = await readMembers(tx, uuids);
  const family = nets[0].family;
  if (nets.some((n) => n.family !== family)) throw invalidParams([invalidParam('networks', FAMILY_MSG)]);
  const owners = c.owner_uuids;
  checkOwners(nets, owners, adminUuid);
  const uuid = c.uuid ?? uuidv4();
  if (c.uuid !== undefined && (await tx.get(poolKey(uuid)))) {
    throw invalidParams([{ field: 'uuid', code: 'Duplicate', message: 'Already exists' }]);
  }
  const tags = tagsPresent(nets);
  const rec: NetworkPoolRecord = { uuid, name: c.name, family, networks: uuids, nic_tag: tags[0], nic_tags_present: tags };
  if (c.description !== undefined) rec.description = c.description;
  if (owners && owners.length > 0) rec.owner_uuids = owners;
  await bumpNetworkGeneration(tx);
  tx.putJson(poolKey(uuid), rec);
  return rec;
}

/** UpdateNetworkPool inside a transaction; the pool's family cannot change. */
export async function updatePoolTx(tx: Tx, adminUuid: string, current: NetworkPoolRecord, raw: Params): Promise<NetworkPoolRecord> {
  const c = await validateParams(UPDATE_POOL_SCHEMA, raw);
  const next: NetworkPoolRecord = { ...current };
  if (c.name !== undefined) next.name = c.name;
  if (c.description !== undefined) next.description = c.description;
  if (c.owner_uuids !== undefined) {
    const owners = c.owner_uuids;
    if (owners.length > 0) next.owner_uuids = owners;
    else delete next.owner_uuids;
  }
  if (c.networks !== undefined || c.owner_uuids !== undefined) {
    const uuids = c.networks ?? current.networks;
    const nets = await readMembers(tx, uuids);
    if (nets.some((n) => n.family !== current.family)) throw invalidParams([invalidParam('networks', FAMILY_MSG)]);
    checkOwners(nets, next.owner_uuids, adminUuid);
    const tags = tagsPresent(nets);
    next.networks = uuids;
    next.nic_tags_present = tags;
    next.nic_tag = tags[0];
    await bumpNetworkGeneration(tx);
  }
  tx.putJson(poolKey(current.uuid), next);
  return next;
}
