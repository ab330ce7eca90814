/**
 * Networks: stored records, serialization, loading, the generation counter, and the
 * delete logic shared by /networks and /fabrics/…/networks. Create and update are in
 * ./network-write.ts. Every function that writes takes a Tx (src/store/txn.ts).
 *
 * Exported for the NIC side: loadNetwork, loadNetworkKv, serializeNetwork,
 * isNetworkOwner, listNetworkRecords.
 */
import { type FieldError, inUse, notFound, usedBy } from '../../rest/errors.js';
import { macFromNumber } from '../../net/addr.js';
import { netmaskOf, subnetOf } from '../ipmath.js';
import { NETWORK_GEN_KEY, NETWORK_PREFIX, POOL_PREFIX, ROUTER_PREFIX, ipPrefix, networkKey, networkNameKey, nicIndexPrefix } from '../keys.js';
import type { KeyValue, Store } from '../../store/types.js';
import { type Tx, transact } from '../../store/txn.js';
import type { NetworkPoolRecord, NetworkRecord, RouterRecord } from './records.js';

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

/** Routers (of any owner) that connect this network. */
export async function routersWithNetwork(tx: Pick<Tx, 'range'>, uuid: string): Promise<RouterRecord[]> {
  const kvs = await tx.range({ prefix: ROUTER_PREFIX });
  return kvs.map((kv) => JSON.parse(kv.value) as RouterRecord).filter((r) => r.networks.includes(uuid));
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
  // A router still naming the network would route into nothing: disconnect it first.
  const routers = await routersWithNetwork(tx, rec.uuid);
  if (routers.length > 0) throw inUse('Network is in use', routers.map((r) => usedByNoField('router', r.uuid)));
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
