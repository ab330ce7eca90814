/**
 * Writes overlay keys the way the NAPI write path does (src/overlay/keys.ts), for SVP and
 * mapping-index tests.
 */
import { v7 as uuidv7 } from 'uuid';
import {
  type IpMapping,
  type MacMapping,
  type OverlayEvent,
  type UnderlayRecord,
  eventKey,
  ipMappingKey,
  macMappingKey,
  underlayKey,
} from '../../src/overlay/keys.js';
import type { Op, Store } from '../../src/store/types.js';

export interface NicSpec {
  mac: string;
  ip?: string;
  vnet: number;
  cn: string;
  vlan?: number;
}

export function nicOps(n: NicSpec): Op[] {
  const mac: MacMapping = { mac: n.mac, vnet_id: n.vnet, cn_uuid: n.cn, vlan_id: n.vlan ?? 0, ...(n.ip ? { ip: n.ip } : {}) };
  const ops: Op[] = [{ type: 'put', key: macMappingKey(n.vnet, n.mac), value: JSON.stringify(mac) }];
  if (n.ip) {
    const ip: IpMapping = { ip: n.ip, mac: n.mac, vnet_id: n.vnet, cn_uuid: n.cn, vlan_id: n.vlan ?? 0 };
    ops.push({ type: 'put', key: ipMappingKey(n.vnet, n.ip), value: JSON.stringify(ip) });
  }
  return ops;
}

export async function putNic(store: Store, n: NicSpec): Promise<number> {
  const r = await store.commit({ ops: nicOps(n) });
  if (!r.ok) throw new Error('commit failed');
  return r.revision;
}

export async function deleteNic(store: Store, n: NicSpec): Promise<number> {
  const ops: Op[] = [{ type: 'del', key: macMappingKey(n.vnet, n.mac) }];
  if (n.ip) ops.push({ type: 'del', key: ipMappingKey(n.vnet, n.ip) });
  const r = await store.commit({ ops });
  return r.revision;
}

export async function putUnderlay(store: Store, cn: string, ip: string, port = 4789): Promise<number> {
  const rec: UnderlayRecord = { cn_uuid: cn, ip, port };
  const r = await store.commit({ ops: [{ type: 'put', key: underlayKey(cn), value: JSON.stringify(rec) }] });
  return r.revision;
}

export type EventSpec =
  | { type: 'vl2'; cn: string; vnet: number; mac: string }
  | { type: 'vl3'; cn: string; vnet: number; ip: string; vlan?: number };

export function eventOp(e: EventSpec, id = uuidv7()): { op: Op; id: string } {
  const created = new Date().toISOString();
  const ev: OverlayEvent =
    e.type === 'vl2'
      ? { id, type: 'vl2', cn_uuid: e.cn, vnet_id: e.vnet, mac: e.mac, created }
      : { id, type: 'vl3', cn_uuid: e.cn, vnet_id: e.vnet, vlan_id: e.vlan ?? 0, ip: e.ip, created };
  return { op: { type: 'put', key: eventKey(e.cn, id), value: JSON.stringify(ev) }, id };
}

/** Commits events in one batch; returns their ids in order. */
export async function putEvents(store: Store, events: EventSpec[]): Promise<{ ids: string[]; revision: number }> {
  const made = events.map((e) => eventOp(e));
  const r = await store.commit({ ops: made.map((m) => m.op) });
  return { ids: made.map((m) => m.id), revision: r.revision };
}

export const CN1 = 'b4e5ff64-7b40-11e4-a6fa-d34c824a42cd';
export const CN2 = '5d0c7c5e-0a8f-4f5b-9d8e-1f2a3b4c5d6e';
export const CN3 = '9a7f3e21-6c4d-4b8a-a1b2-c3d4e5f60718';
