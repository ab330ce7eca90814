/**
 * Writes overlay keys the way the NAPI write path does (src/overlay/keys.ts), for SVP and
 * mapping-index tests.
 */
import { v7 as uuidv7 } from 'uuid';
import {
  type IpMapping,
  type LogEvent,
  type MacMapping,
  type UnderlayRecord,
  type VnetLogEntry,
  type VnetNode,
  ipMappingKey,
  macMappingKey,
  underlayKey,
  vlogKey,
  vnodeKey,
} from '../../src/overlay/keys.js';
import { encodeEventId, nodeTag } from '../../src/overlay/event-id.js';
import { uuidFromBytes } from '../../src/net/addr.js';
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

/** Puts vnode rows for the nodes not yet on the vnet (they join at the returned revision). */
export async function joinVnet(store: Store, vnet: number, cns: string[]): Promise<number> {
  const have = await store.getMany(cns.map((cn) => vnodeKey(vnet, cn)));
  const ops: Op[] = cns
    .filter((cn) => !have.has(vnodeKey(vnet, cn)))
    .map((cn) => {
      const row: VnetNode = { vnet_id: vnet, cn_uuid: cn, count: 1 };
      return { type: 'put', key: vnodeKey(vnet, cn), value: JSON.stringify(row) };
    });
  if (ops.length === 0) return store.revision();
  const r = await store.commit({ ops });
  if (!r.ok) throw new Error('commit failed');
  return r.revision;
}

function logEvent(e: EventSpec): LogEvent {
  return e.type === 'vl2' ? { type: 'vl2', mac: e.mac } : { type: 'vl3', ip: e.ip, vlan_id: e.vlan ?? 0 };
}

/** Events one fixture commit records (a revision numbers at most 256 events). */
const EVENTS_PER_COMMIT = 128;

/**
 * Records events the way NIC writes do: each spec's node joins the spec's vnet first (if
 * it is not on it yet), then commits of up to 128 events hold one log entry per vnet.
 * Every node on a vnet gets that vnet's events; the ids returned are the spec's node's
 * copies, in spec order, and revision is the last commit's.
 */
export async function putEvents(store: Store, events: EventSpec[]): Promise<{ ids: string[]; revision: number }> {
  for (const [vnet, cns] of groupBy(events, (e) => e.vnet)) await joinVnet(store, vnet, [...new Set(cns.map((e) => e.cn))]);
  const ids: string[] = [];
  let revision = 0;
  for (let i = 0; i < events.length; i += EVENTS_PER_COMMIT) {
    const chunk = events.slice(i, i + EVENTS_PER_COMMIT);
    const created = new Date().toISOString();
    const byVnet = [...groupBy(chunk, (e) => e.vnet)].sort(([a], [b]) => a - b);
    const ops: Op[] = byVnet.map(([vnet, list]) => {
      const entry: VnetLogEntry = { vnet_id: vnet, created, events: list.map(logEvent) };
      return { type: 'put', key: vlogKey(vnet, uuidv7()), value: JSON.stringify(entry) };
    });
    const r = await store.commit({ ops });
    if (!r.ok) throw new Error('commit failed');
    revision = r.revision;
    // k numbers the revision's events, vnet by vnet.
    const first = new Map<number, number>();
    let k = 0;
    for (const [vnet, list] of byVnet) {
      first.set(vnet, k);
      k += list.length;
    }
    const seen = new Map<number, number>();
    for (const e of chunk) {
      const n = seen.get(e.vnet) ?? 0;
      seen.set(e.vnet, n + 1);
      const ref = { timeMs: Date.parse(created), rev: r.revision, k: (first.get(e.vnet) as number) + n };
      ids.push(uuidFromBytes(encodeEventId(ref, nodeTag(e.cn))));
    }
  }
  return { ids, revision };
}

function groupBy<T, K>(list: readonly T[], key: (t: T) => K): Map<K, T[]> {
  const m = new Map<K, T[]>();
  for (const t of list) {
    const k = key(t);
    const l = m.get(k);
    if (l) l.push(t);
    else m.set(k, [t]);
  }
  return m;
}

export const CN1 = 'b4e5ff64-7b40-11e4-a6fa-d34c824a42cd';
export const CN2 = '5d0c7c5e-0a8f-4f5b-9d8e-1f2a3b4c5d6e';
export const CN3 = '9a7f3e21-6c4d-4b8a-a1b2-c3d4e5f60718';
