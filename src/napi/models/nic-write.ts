/**
 * CreateNic / ProvisionNic, UpdateNic and DeleteNic, each one transaction (src/store/txn.ts)
 * holding: the NIC record, its secondary index keys (napi/idx/nic/{belongs_to,cn,network}/…),
 * the IP record(s), the network record when a fabric gateway is taken or released, the
 * primary-flag clearing on sibling NICs, and the overlay derivation (mappings, underlay
 * record, vnode counts, one shootdown event per node already on the vnet). Nothing is
 * half-written; a concurrent writer makes the whole body run again on fresh data.
 *
 * A create is validate (./nic-placement.ts) → reserve its MAC and address → build the
 * record → write; an update is validate → build the record → move or keep its address →
 * write.
 */
import { duplicateParam, invalidParams, missingParam, subnetFull } from '../../rest/errors.js';
import { rejectField, type Params } from '../../rest/validate.js';
import { allocateIpOrNull } from '../alloc/ip.js';
import { allocateMac } from '../alloc/mac.js';
import type { NapiConfig } from '../context.js';
import { NIC_PREFIX, type NicIndex, ipKey, networkKey, nicIndexKey, nicIndexPrefix, nicKey } from '../keys.js';
import type { Tx } from '../../store/txn.js';
import { type NodeNics, applyOverlayWrite } from '../../overlay/write.js';
import type { NicOverlayView } from '../../overlay/derive.js';
import { releasedIp } from './ip.js';
import { ALLOW_FLAGS, overlayView } from './nic.js';
import {
  type CreateNicParams,
  type Placement,
  type UpdateNicParams,
  readNicLookups,
  validateNicCreate,
  validateNicUpdate,
} from './nic-placement.js';
import type { IpRecord, NetworkRecord, NicRecord } from './records.js';

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
    if (a && (a !== b || !before || (idx === 'cn' && placementMayChange(before, after!)))) tx.put(nicIndexKey(idx, a, after!.mac), '');
  }
}

/**
 * Whether a NIC that stays on its node may change where it sits on the overlay (network
 * or address): its cn index entry is rewritten then, so that an underlay move of the node
 * that listed the node's NICs before this write (nodeNics, a guarded range) is retried
 * and shoots it down where it now is.
 */
function placementMayChange(before: NicRecord, after: NicRecord): boolean {
  return before.network_uuid !== after.network_uuid || before.ip !== after.ip;
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

/**
 * The NICs placed on a node, with their networks (an underlay move shoots them down).
 * A node may have NICs on hundreds of vnets, and one precondition each would pass etcd's
 * 128: the node's cn index is read as one guarded range instead, and a write that places
 * a NIC on the node or changes the network or address of one there rewrites its index
 * entry (writeIndexes), so a move that listed the node before such a write commits is
 * retried (else a peer could learn the NIC's old address in between and never be told).
 * The NIC and network records are read unguarded: what of them moves a NIC on the
 * overlay rewrites the index entry; a NIC leaving the node meanwhile gets its own VL2
 * (one more VL2 from the move is harmless).
 */
const nodeNics: NodeNics = async (tx, cn) => {
  const prefix = nicIndexPrefix('cn', cn);
  const macs = (await tx.rangeGuarded(prefix)).map((kv) => kv.key.slice(prefix.length));
  const nics = [...(await tx.getManyUnguarded(macs.map((m) => nicKey(m)))).values()].map((kv) => JSON.parse(kv.value) as NicRecord);
  const networkKeys = [...new Set(nics.flatMap((n) => (n.network_uuid ? [networkKey(n.network_uuid)] : [])))];
  const networks = await tx.getManyUnguarded(networkKeys);
  const out: NicOverlayView[] = [];
  for (const nic of nics) {
    const kv = nic.network_uuid ? networks.get(networkKey(nic.network_uuid)) : undefined;
    const view = overlayView(nic, kv ? (JSON.parse(kv.value) as NetworkRecord) : undefined);
    if (view) out.push(view);
  }
  return out;
};

export interface NicWriteResult {
  nic: NicRecord;
  network?: NetworkRecord;
}

// ---- create ----------------------------------------------------------------------------

/** A new NIC's MAC, and its address with the network it is on (none: no address). */
interface NicAddresses {
  mac: string;
  network?: NetworkRecord;
  ip?: string;
  /** The address's record before this write. */
  previous?: IpRecord;
}

/** The first address free on a pool member the NIC's nic tag allows, tried in the pool's order. */
async function allocateFromPool(tx: Tx, c: CreateNicParams, pool: NonNullable<Placement['pool']>, attempt: number) {
  for (const uuid of pool.networks) {
    const n = await tx.getJson<NetworkRecord>(networkKey(uuid));
    if (!n) continue;
    if (c.nic_tag !== undefined && n.nic_tag !== c.nic_tag.name) continue;
    const avail = c.nic_tags_available;
    if (c.nic_tag === undefined && avail && !avail.includes(n.nic_tag)) continue;
    const got = await allocateIpOrNull(tx, n, { attempt });
    if (got) return { network: n, ip: got.ip, previous: got.previous };
  }
  return rejectField('network_uuid', `All networks in pool ${pool.uuid} are full`);
}

/**
 * The index keys a new NIC gets that are known before its address is (its owner object,
 * its node, a network it was placed on): a MAC candidate's are read with its NIC key.
 */
function knownIndexKeys(c: CreateNicParams, placement: Placement): (mac: string) => string[] {
  return (mac) => {
    const keys = [nicIndexKey('belongs_to', c.belongs_to_uuid, mac)];
    if (c.cn_uuid !== undefined) keys.push(nicIndexKey('cn', c.cn_uuid, mac));
    if (placement.network) keys.push(nicIndexKey('network', placement.network.uuid, mac));
    return keys;
  };
}

async function reserveMac(tx: Tx, config: NapiConfig, c: CreateNicParams, placement: Placement): Promise<string> {
  if (c.mac === undefined) return allocateMac(tx, config.macOUI, undefined, knownIndexKeys(c, placement));
  if (await tx.get(nicKey(c.mac))) throw invalidParams([duplicateParam('mac')]);
  return c.mac;
}

async function reserveAddress(tx: Tx, c: CreateNicParams, placement: Placement, attempt: number): Promise<Omit<NicAddresses, 'mac'>> {
  if (placement.pool) {
    const got = await allocateFromPool(tx, c, placement.pool, attempt);
    if (got.network.fabric && c.cn_uuid === undefined) throw invalidParams([missingParam('cn_uuid')]);
    return got;
  }
  const { network, ip, ipRecord } = placement;
  if (network && !ip) {
    const got = await allocateIpOrNull(tx, network, { attempt });
    if (!got) throw subnetFull(network.uuid);
    return { network, ip: got.ip, previous: got.previous };
  }
  return { network, ip, previous: ipRecord };
}

/**
 * Claims the NIC's MAC (given, or allocated) and its address (explicit, or allocated).
 * The two are independent, so they run side by side: the store can serve their key reads
 * in one round trip. Both finish before an error is reported (a MAC error first), so
 * nothing of this attempt is still running when it ends.
 */
async function reserveNicAddresses(tx: Tx, config: NapiConfig, c: CreateNicParams, placement: Placement, attempt: number): Promise<NicAddresses> {
  const [mac, addr] = await Promise.allSettled([reserveMac(tx, config, c, placement), reserveAddress(tx, c, placement, attempt)]);
  if (mac.status === 'rejected') throw mac.reason;
  if (addr.status === 'rejected') throw addr.reason;
  return { mac: mac.value, ...addr.value };
}

/** The record a validated create describes, on the addresses it reserved. */
function buildNicRecord(c: CreateNicParams, addr: NicAddresses, now: string): NicRecord {
  const nic: NicRecord = {
    mac: addr.mac,
    owner_uuid: c.owner_uuid,
    belongs_to_uuid: c.belongs_to_uuid,
    belongs_to_type: c.belongs_to_type,
    primary: c.primary === true,
    state: c.state ?? 'provisioning',
    created_timestamp: now,
    modified_timestamp: now,
  };
  if (c.cn_uuid !== undefined) nic.cn_uuid = c.cn_uuid;
  if (c.model !== undefined) nic.model = c.model;
  if (addr.network) nic.nic_tag = addr.network.nic_tag;
  else if (c.nic_tag !== undefined) nic.nic_tag = c.nic_tag.name;
  const provided = c.nic_tags_provided;
  if (provided && provided.length > 0) nic.nic_tags_provided = provided;
  for (const f of ALLOW_FLAGS) if (c[f] === true) nic[f] = true;
  if (c.underlay === true) nic.underlay = true;
  if (addr.network && addr.ip) {
    nic.ip = addr.ip;
    nic.network_uuid = addr.network.uuid;
  }
  return nic;
}

/** CreateNic / ProvisionNic inside tx. `attempt` is transact()'s attempt number. */
export async function createNicTx(tx: Tx, config: NapiConfig, raw: Params, attempt = 0): Promise<NicWriteResult> {
  const { c, placement } = await validateNicCreate(tx, config, raw);
  const now = new Date().toISOString();
  const addr = await reserveNicAddresses(tx, config, c, placement, attempt);
  const nic = buildNicRecord(c, addr, now);
  let network = addr.network;
  if (network && addr.ip) {
    tx.putJson(ipKey(network.uuid, addr.ip), ipForNic(nic, network, addr.ip, addr.previous, c.reserved, now));
    if (network.fabric && network.gateway === addr.ip) network = (await setGatewayProvisioned(tx, network.uuid, true, now)) ?? network;
  }
  if (nic.primary) await clearOtherPrimaries(tx, nic, now);
  tx.putJson(nicKey(nic.mac), nic);
  writeIndexes(tx, undefined, nic);
  await applyOverlayWrite(tx, null, overlayView(nic, network), overlayConfig(config), { now }, nodeNics);
  return { nic, network };
}

// ---- update ----------------------------------------------------------------------------

/** The NIC after a validated update, its address aside. */
function applyNicChanges(existing: NicRecord, c: UpdateNicParams, now: string): NicRecord {
  const next: NicRecord = { ...existing, modified_timestamp: now };
  if (c.owner_uuid !== undefined) next.owner_uuid = c.owner_uuid;
  if (c.belongs_to_uuid !== undefined) next.belongs_to_uuid = c.belongs_to_uuid;
  if (c.belongs_to_type !== undefined) next.belongs_to_type = c.belongs_to_type;
  if (c.cn_uuid !== undefined) next.cn_uuid = c.cn_uuid;
  if (c.model !== undefined) next.model = c.model;
  if (c.state !== undefined) next.state = c.state;
  if (c.primary !== undefined) next.primary = c.primary === true;
  for (const f of ALLOW_FLAGS) {
    if (c[f] === true) next[f] = true;
    else if (c[f] === false) delete next[f];
  }
  if (c.underlay === true) next.underlay = true;
  else if (c.underlay === false) delete next.underlay;
  if (c.nic_tags_provided !== undefined) {
    const p = c.nic_tags_provided;
    if (p.length > 0) next.nic_tags_provided = p;
    else delete next.nic_tags_provided;
  }
  if (c.nic_tag !== undefined && !existing.ip) next.nic_tag = c.nic_tag.name;
  return next;
}

/**
 * Moves the NIC to the placement's address (releasing its old one), or, when it keeps
 * its address, carries ownership changes over to the IP record. Returns the network the
 * NIC is on afterwards, re-read, and whether it moved.
 */
async function moveOrKeepAddress(
  tx: Tx,
  existing: NicRecord,
  next: NicRecord,
  c: UpdateNicParams,
  placement: Placement,
  currentNetwork: NetworkRecord | undefined,
  now: string,
): Promise<{ network: NetworkRecord | undefined; moving: boolean }> {
  let network = currentNetwork;
  const target = placement.ip !== undefined && placement.network !== undefined ? { ip: placement.ip, network: placement.network } : undefined;
  const moving = target !== undefined && (target.ip !== existing.ip || target.network.uuid !== existing.network_uuid);
  if (target && moving) {
    await releaseNicIp(tx, existing, now);
    const moved = (await tx.getJson<NetworkRecord>(networkKey(target.network.uuid))) ?? target.network;
    network = moved;
    next.ip = target.ip;
    next.network_uuid = moved.uuid;
    next.nic_tag = moved.nic_tag;
    tx.putJson(ipKey(moved.uuid, target.ip), ipForNic(next, moved, target.ip, placement.ipRecord, c.reserved, now));
    if (moved.fabric && moved.gateway === target.ip) network = (await setGatewayProvisioned(tx, moved.uuid, true, now)) ?? network;
  } else if (next.ip && next.network_uuid) {
    // The NIC keeps its address: propagate ownership changes to the IP record.
    const key = ipKey(next.network_uuid, next.ip);
    const rec = await tx.getJson<IpRecord>(key);
    const changed =
      c.belongs_to_uuid !== undefined || c.belongs_to_type !== undefined || c.owner_uuid !== undefined || c.reserved !== undefined;
    if (rec && changed && (rec.belongs_to_uuid === existing.belongs_to_uuid || !rec.belongs_to_uuid)) {
      const onNetwork = network ?? ({ uuid: next.network_uuid } as NetworkRecord);
      tx.putJson(key, ipForNic(next, onNetwork, next.ip, rec, c.reserved, now));
    }
  }
  // A freshly re-read network (gateway_provisioned may have flipped on release).
  if (network && !moving) network = (await tx.getJson<NetworkRecord>(networkKey(network.uuid))) ?? network;
  return { network, moving };
}

/** UpdateNic inside tx; `existing` was read through tx. */
export async function updateNicTx(tx: Tx, config: NapiConfig, existing: NicRecord, raw: Params): Promise<NicWriteResult> {
  const params: Params = { ...raw };
  delete params.mac; // the path's MAC names the NIC; a body MAC is ignored
  const l = await readNicLookups(tx, params);
  const currentNetwork = existing.network_uuid ? await tx.getJson<NetworkRecord>(networkKey(existing.network_uuid)) : undefined;
  const { c, placement } = await validateNicUpdate(tx, config, existing, currentNetwork, params, l);
  const now = new Date().toISOString();
  const next = applyNicChanges(existing, c, now);
  const { network } = await moveOrKeepAddress(tx, existing, next, c, placement, currentNetwork, now);
  if (next.primary && (c.primary === true || c.belongs_to_uuid !== undefined)) await clearOtherPrimaries(tx, next, now);
  tx.putJson(nicKey(next.mac), next);
  writeIndexes(tx, existing, next);
  await applyOverlayWrite(tx, overlayView(existing, currentNetwork), overlayView(next, network), overlayConfig(config), { now }, nodeNics);
  return { nic: next, network };
}

// ---- delete ----------------------------------------------------------------------------

export async function deleteNicTx(tx: Tx, config: NapiConfig, existing: NicRecord): Promise<void> {
  const now = new Date().toISOString();
  const network = existing.network_uuid ? await tx.getJson<NetworkRecord>(networkKey(existing.network_uuid)) : undefined;
  await releaseNicIp(tx, existing, now);
  tx.del(nicKey(existing.mac));
  writeIndexes(tx, existing, undefined);
  await applyOverlayWrite(tx, overlayView(existing, network), null, overlayConfig(config), { now }, nodeNics);
}
