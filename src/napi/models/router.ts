/**
 * Routers (issue #12): an owner connects some of its fabric networks, which then reach
 * each other through the distributed gateway on every node. A router lives under its
 * owner (napi/routers/<owner>/<uuid>); its networks must exist, be that owner's fabric
 * networks with a gateway, of one family, and have subnets that do not overlap.
 * `routerProblems` is the pure check (unit-tested); the writes run it inside their
 * transaction, so a refused write leaves nothing.
 */
import ipaddr from 'ipaddr.js';
import { v4 as uuidv4 } from 'uuid';
import { type FieldError, invalidParam, invalidParams, notFound } from '../../rest/errors.js';
import { type FieldValidator, type Params, fail, schema, toList, vString, vUuid, validateParams } from '../../rest/validate.js';
import type { Tx } from '../../store/txn.js';
import { isUuid } from '../../net/addr.js';
import { networkKey, routerKey, routerPrefix } from '../keys.js';
import { bumpNetworkGeneration } from './network.js';
import { vUuids } from './params.js';
import type { NetworkRecord, RouterRecord } from './records.js';

export const MAX_ROUTER_NETWORKS = 64;
export const ROUTER_FIELDS = ['created_timestamp', 'description', 'modified_timestamp', 'name', 'networks', 'owner_uuid', 'uuid'] as const;

export interface SerializedRouter {
  uuid: string;
  name: string;
  owner_uuid: string;
  networks: string[];
  description?: string;
  created_timestamp: string;
  modified_timestamp: string;
}

export function serializeRouter(rec: RouterRecord): SerializedRouter {
  const s: SerializedRouter = { uuid: rec.uuid, name: rec.name, owner_uuid: rec.owner_uuid, networks: rec.networks, created_timestamp: rec.created_timestamp, modified_timestamp: rec.modified_timestamp };
  if (rec.description !== undefined) s.description = rec.description;
  return s;
}

/** `networks`: 1–64 UUIDs, sorted and de-duplicated (what they name is checked after). */
const vRouterNetworks: FieldValidator<string[]> = (field, v, p, ctx) => {
  const list = toList(v);
  if (list && list.length === 0) return fail(field, 'a router must connect at least one network');
  const uuids = vUuids(field, v, p, ctx);
  if (!Array.isArray(uuids)) return uuids;
  if (uuids.length > MAX_ROUTER_NETWORKS) return fail(field, `maximum ${MAX_ROUTER_NETWORKS} networks per router`);
  return uuids;
};

export const CREATE_ROUTER_SCHEMA = schema({
  required: { owner_uuid: vUuid, name: vString, networks: vRouterNetworks },
  optional: { description: vString, uuid: vUuid },
});

export const UPDATE_ROUTER_SCHEMA = schema({
  optional: { name: vString, description: vString, networks: vRouterNetworks },
});

function overlaps(a: string, b: string): boolean {
  const [na, ba] = ipaddr.parseCIDR(a);
  const [nb, bb] = ipaddr.parseCIDR(b);
  if (na.kind() !== nb.kind()) return false;
  return ba <= bb ? nb.match(na, ba) : na.match(nb, bb);
}

/**
 * Why these networks (uuids asked for; the records found) cannot be one router of owner,
 * as NAPI field errors on `networks` — empty when they can.
 */
export function routerProblems(owner: string, uuids: readonly string[], found: ReadonlyMap<string, NetworkRecord>): FieldError[] {
  const missing = uuids.filter((u) => !found.has(u));
  if (missing.length > 0) return [invalidParam('networks', missing.length === 1 ? 'unknown network' : 'unknown networks', { invalid: missing })];
  const nets = uuids.map((u) => found.get(u)!);
  const foreign = nets.filter((n) => n.fabric !== true || n.owner_uuids?.[0] !== owner).map((n) => n.uuid);
  if (foreign.length > 0) return [invalidParam('networks', `networks must be fabric networks of owner ${owner}`, { invalid: foreign })];
  const noGateway = nets.filter((n) => !n.gateway).map((n) => n.uuid);
  if (noGateway.length > 0) return [invalidParam('networks', 'networks on a router must have a gateway', { invalid: noGateway })];
  if (new Set(nets.map((n) => n.family)).size > 1) return [invalidParam('networks', 'address family of all networks on a router must match')];
  const clash = new Set<string>();
  for (let i = 0; i < nets.length; i++) {
    for (let j = i + 1; j < nets.length; j++) {
      if (overlaps(nets[i]!.subnet, nets[j]!.subnet)) clash.add(nets[i]!.uuid).add(nets[j]!.uuid);
    }
  }
  if (clash.size > 0) return [invalidParam('networks', 'subnets of networks on one router must not overlap', { invalid: [...clash].sort() })];
  return [];
}

async function checkNetworks(tx: Tx, owner: string, uuids: string[]): Promise<void> {
  const got = await tx.getMany(uuids.map(networkKey));
  const found = new Map<string, NetworkRecord>();
  for (const u of uuids) {
    const kv = got.get(networkKey(u));
    if (kv) {
      const rec = JSON.parse(kv.value) as NetworkRecord;
      if (!rec.deleting) found.set(u, rec);
    }
  }
  const problems = routerProblems(owner, uuids, found);
  if (problems.length > 0) throw invalidParams(problems);
}

export interface LoadedRouter {
  rec: RouterRecord;
  modRevision: number;
}

export async function mustLoadRouter(tx: Tx, owner: string, uuid: unknown): Promise<LoadedRouter> {
  const kv = isUuid(uuid) ? await tx.get(routerKey(owner, uuid)) : undefined;
  if (!kv) throw notFound('router not found');
  return { rec: JSON.parse(kv.value) as RouterRecord, modRevision: kv.modRevision };
}

export async function listRouterRecords(tx: Pick<Tx, 'range'>, owner: string): Promise<RouterRecord[]> {
  return (await tx.range({ prefix: routerPrefix(owner) })).map((kv) => JSON.parse(kv.value) as RouterRecord);
}

async function checkName(tx: Tx, owner: string, name: string, self?: string): Promise<void> {
  const taken = (await listRouterRecords(tx, owner)).some((r) => r.name === name && r.uuid !== self);
  if (taken) throw invalidParams([{ field: 'name', code: 'Duplicate', message: 'name is already in use by another router of this owner' }]);
}

/** CreateRouter inside a transaction (raw carries the path's owner_uuid). */
export async function createRouterTx(tx: Tx, raw: Params): Promise<RouterRecord> {
  const c = await validateParams(CREATE_ROUTER_SCHEMA, raw);
  const uuid = c.uuid ?? uuidv4();
  if (c.uuid !== undefined && (await tx.get(routerKey(c.owner_uuid, uuid)))) throw invalidParams([{ field: 'uuid', code: 'Duplicate', message: 'Already exists' }]);
  await checkName(tx, c.owner_uuid, c.name);
  await checkNetworks(tx, c.owner_uuid, c.networks);
  const now = new Date().toISOString();
  const rec: RouterRecord = { uuid, owner_uuid: c.owner_uuid, name: c.name, networks: c.networks, created_timestamp: now, modified_timestamp: now };
  if (c.description !== undefined) rec.description = c.description;
  // Network deletes check routers under the same generation counter (no router names a deleted network).
  await bumpNetworkGeneration(tx);
  tx.putJson(routerKey(c.owner_uuid, uuid), rec);
  return rec;
}

/** UpdateRouter inside a transaction. */
export async function updateRouterTx(tx: Tx, current: RouterRecord, raw: Params): Promise<RouterRecord> {
  const c = await validateParams(UPDATE_ROUTER_SCHEMA, raw);
  const next: RouterRecord = { ...current, modified_timestamp: new Date().toISOString() };
  if (c.name !== undefined) {
    await checkName(tx, current.owner_uuid, c.name, current.uuid);
    next.name = c.name;
  }
  if (c.description !== undefined) next.description = c.description;
  if (c.networks !== undefined) {
    await checkNetworks(tx, current.owner_uuid, c.networks);
    next.networks = c.networks;
    await bumpNetworkGeneration(tx);
  }
  tx.putJson(routerKey(current.owner_uuid, current.uuid), next);
  return next;
}
