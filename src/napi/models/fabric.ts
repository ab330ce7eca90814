/**
 * Fabrics: one 24-bit vnet_id per owner (allocated at random with the owner's first
 * VLAN, unique through a CAS on napi/vnets/<vnet>) and the owner's VLANs
 * (sdc-napi lib/models/fabric.js, lib/models/vlan.js).
 */
import { randomInt } from 'node:crypto';
import { type NapiError, internalError, notFound, preconditionRequired } from '../../rest/errors.js';
import { fabricKey, vlanKey, vnetKey } from '../keys.js';
import type { Tx } from '../../store/txn.js';
import type { FabricRecord, FabricVlanRecord } from './records.js';

export const MAX_VNET_ID = 16777215;
export const VLAN_FIELDS = ['description', 'name', 'owner_uuid', 'vlan_id', 'vnet_id'] as const;

export interface SerializedVlan {
  name?: string;
  owner_uuid: string;
  vlan_id: number;
  vnet_id: number;
  description?: string;
}

export function serializeVlan(rec: FabricVlanRecord, fields?: string[]): Partial<SerializedVlan> {
  const s: SerializedVlan = { owner_uuid: rec.owner_uuid, vlan_id: rec.vlan_id, vnet_id: rec.vnet_id };
  if (rec.name !== undefined) s.name = rec.name;
  if (rec.description !== undefined) s.description = rec.description;
  if (!fields) return s;
  const out: Record<string, unknown> = {};
  for (const f of fields) if (f in s) out[f] = (s as unknown as Record<string, unknown>)[f];
  return out as Partial<SerializedVlan>;
}

export async function loadFabric(tx: Tx, owner: string): Promise<FabricRecord | undefined> {
  return tx.getJson<FabricRecord>(fabricKey(owner));
}

/**
 * The owner's fabric, created with a random free vnet_id when absent. The vnet key read
 * is a precondition, so two owners racing for one vnet_id cannot both win: the loser's
 * transaction retries and draws again.
 */
export async function ensureFabric(tx: Tx, owner: string, draw: () => number = () => randomInt(0, MAX_VNET_ID)): Promise<FabricRecord> {
  const existing = await loadFabric(tx, owner);
  if (existing) return existing;
  for (let i = 0; i < 64; i++) {
    const vnet = draw();
    if (await tx.get(vnetKey(vnet))) continue;
    const rec: FabricRecord = { owner_uuid: owner, vnet_id: vnet };
    tx.put(vnetKey(vnet), owner);
    tx.putJson(fabricKey(owner), rec);
    return rec;
  }
  throw internalError('no free vnet_id found');
}

export interface LoadedVlan {
  rec: FabricVlanRecord;
  modRevision: number;
}

export async function loadVlanKv(tx: Tx, owner: string, vlan: number): Promise<LoadedVlan | undefined> {
  const kv = await tx.get(vlanKey(owner, vlan));
  return kv ? { rec: JSON.parse(kv.value) as FabricVlanRecord, modRevision: kv.modRevision } : undefined;
}

export async function mustLoadVlan(tx: Tx, owner: string, vlan: number): Promise<LoadedVlan> {
  const v = await loadVlanKv(tx, owner, vlan);
  if (!v) throw notFound('vlan not found');
  return v;
}

export const overlayDisabled = (): NapiError => preconditionRequired('overlay networking is not enabled');
