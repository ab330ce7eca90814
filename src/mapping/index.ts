/**
 * MappingIndex: the in-memory view of the overlay keys (src/overlay/keys.ts) that the SVP
 * server answers from: a reducer over a StoreView (src/store/view.ts), which loads every
 * `ovl/` key, follows the change feed and reloads after compaction, so answers are never
 * older than the last commit applied (`revision`; `waitForRevision` lets a writer wait
 * until its commit is visible).
 *
 * Memory: mappings live in typed-array hash tables (U32Table); nodes (compute nodes) are
 * interned to small integers. Shootdowns are kept once per write in the vnets' logs
 * (src/overlay/log.ts), and each node's pending events are derived from them on demand;
 * LOG_RM writes a node's consumption through ./log-rm.ts.
 */
import {
  IP_PREFIX,
  MAC_PREFIX,
  OVERLAY_FENCE_KEY,
  OVERLAY_PREFIX,
  UNDERLAY_PREFIX,
  type IpMapping,
  type MacMapping,
  type UnderlayRecord,
} from '../overlay/keys.js';
import { encodeEventId } from '../overlay/event-id.js';
import { ShootdownLog, type TrimOptions, type TrimPlan } from '../overlay/log.js';
import type { Change, ChangeSet, Store } from '../store/types.js';
import { StoreView } from '../store/view.js';
import { ipFromBytes, ipToBytes, isV4Mapped, macToBytes } from '../net/addr.js';
import { LogRemover } from './log-rm.js';
import type { Logger } from '../log/index.js';
import { U32Table } from './table.js';

/** Where a node's VXLAN traffic goes. Shared, immutable objects: do not modify. */
export interface UnderlayAddress {
  readonly cnUuid: string;
  /** 16 bytes, IPv4 as v4-mapped. */
  readonly ip: Buffer;
  readonly ipText: string;
  readonly port: number;
}

/** A shootdown event pending for one node; id is that node's 16-byte event id. */
export type PendingEvent =
  | { readonly type: 'vl2'; readonly id: Buffer; readonly vnetId: number; readonly mac: Buffer }
  | { readonly type: 'vl3'; readonly id: Buffer; readonly vnetId: number; readonly ip: Buffer; readonly vlan: number };

export interface Vl2Lookup {
  cnUuid: string;
  underlay: UnderlayAddress;
}

export interface Vl3Lookup {
  mac: string;
  cnUuid: string;
  underlay: UnderlayAddress;
}

export interface MappingIndexOptions {
  store: Store;
  logger?: Logger;
  /** Keys per range read while loading. */
  pageSize?: number;
  /** First delay before retrying after the feed fails for a reason other than compaction. */
  retryBaseMs?: number;
  /** Upper bound on waiting for a LOG_RM's write to reach the index before acking. */
  removeVisibleTimeoutMs?: number;
}

export interface MappingIndexStats {
  macMappings: number;
  ipMappings: number;
  nodes: number;
  underlays: number;
  /** Shootdown events held in the vnets' logs (each once, whatever its recipients). */
  events: number;
  logEntries: number;
  invalidRecords: number;
  reloads: number;
  /** Bytes held by the mapping hash tables. */
  tableBytes: number;
}

interface NodeRec {
  uuid: string;
  underlay: UnderlayAddress | null;
}

/** Everything that a reload rebuilds and swaps in at once. */
class IndexState {
  /** key [vnet, macHi16, macLo32] -> [node] */
  readonly macs = new U32Table(3, 1);
  /** key [vnet, ipv4] -> [macHi16, macLo32, node] */
  readonly ip4 = new U32Table(2, 3);
  /** key [vnet, ip words 0..3] -> [macHi16, macLo32, node] */
  readonly ip6 = new U32Table(5, 3);
  readonly nodes: NodeRec[] = [];
  readonly nodeByUuid = new Map<string, number>();
  /** hex of the 16-byte underlay address -> node indexes claiming it */
  readonly nodesByUnderlay = new Map<string, number[]>();
  readonly log = new ShootdownLog();
  invalid = 0;

  node(uuid: string): number {
    let n = this.nodeByUuid.get(uuid);
    if (n === undefined) {
      n = this.nodes.length;
      this.nodes.push({ uuid, underlay: null });
      this.nodeByUuid.set(uuid, n);
    }
    return n;
  }
}

const scratchKey = new Uint32Array(5);
const scratchVal = new Uint32Array(3);

/** Parses 'a.b.c.d' into a u32, or -1. */
function parseDottedQuad(s: string): number {
  const parts = s.split('.');
  if (parts.length !== 4) return -1;
  let v = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return -1;
    const n = Number(p);
    if (n > 255) return -1;
    v = v * 256 + n;
  }
  return v;
}

function parseVnet(seg: string): number {
  if (!/^\d{1,10}$/.test(seg)) return -1;
  const n = Number(seg);
  return n <= 0xffffffff ? n : -1;
}

type Listener = () => void;

export class MappingIndex {
  private state = new IndexState();
  /** The state a (re)load is building; swapped in by endLoad. */
  private loading: IndexState | null = null;
  private readonly logger: Logger | undefined;
  private readonly view: StoreView;
  private readonly remover: LogRemover;
  private nodeListeners = new Map<string, Set<Listener>>();

  constructor(opts: MappingIndexOptions) {
    this.logger = opts.logger;
    this.remover = new LogRemover({
      store: opts.store,
      log: () => this.state.log,
      waitForRevision: (rev, ms) => this.view.waitForRevision(rev, ms),
      sync: (ms) => this.view.sync(ms),
      visibleTimeoutMs: opts.removeVisibleTimeoutMs ?? 2000,
    });
    this.view = new StoreView(
      {
        store: opts.store,
        prefixes: [OVERLAY_PREFIX],
        fenceKey: OVERLAY_FENCE_KEY,
        // Writers wait for revisions that changed ovl/ (they arrive by themselves): fence
        // only for a waiter that has waited long (LOG_RM's catch-up fences at once).
        fenceAfterMs: 1000,
        pageSize: opts.pageSize ?? 20000,
        retryBaseMs: opts.retryBaseMs ?? 500,
        name: 'mapping index',
        ...(opts.logger ? { logger: opts.logger } : {}),
      },
      {
        beginLoad: () => {
          this.loading = new IndexState();
        },
        loadPage: (kvs) => {
          const state = this.loading as IndexState;
          for (const kv of kvs) this.applyPut(state, kv.key, kv.value, kv.modRevision, kv.createRevision);
        },
        endLoad: () => {
          const state = this.loading as IndexState;
          this.loading = null;
          this.state = state;
          // Long-polls may have been waiting on nodes whose events came back with the reload.
          for (const cn of [...this.nodeListeners.keys()]) if (state.log.pending(cn, 1).length > 0) this.notifyNode(cn);
        },
        apply: (set) => this.applySet(set),
      },
    );
  }

  /** The last store revision whose changes are reflected in answers. */
  get revision(): number {
    return this.view.revision;
  }

  /** True once the initial load has caught up with the store. */
  get ready(): boolean {
    return this.view.ready;
  }

  /** Loads and starts following the feed; resolves once caught up with the store. */
  start(): Promise<void> {
    return this.view.start();
  }

  close(): void {
    this.view.close();
    this.remover.close();
  }

  /**
   * Resolves true once answers reflect store revision `rev` (a writer's commit revision),
   * false on timeout or close.
   */
  waitForRevision(rev: number, timeoutMs?: number): Promise<boolean> {
    return this.view.waitForRevision(rev, timeoutMs);
  }

  // -------------------------------------------------------------------------------------
  // Applying the feed

  private applySet(set: ChangeSet): void {
    const arrived: Array<{ vnet: number; rev: number }> = [];
    for (const c of set.changes) {
      if (!c.key.startsWith(OVERLAY_PREFIX)) continue;
      this.applyChange(c, set.revision, arrived);
    }
    if (arrived.length === 0 || this.nodeListeners.size === 0) return;
    // Whoever was on the vnet just before this revision has new events.
    const touched = new Set<string>();
    for (const a of arrived) for (const cn of this.state.log.recipients(a.vnet, a.rev)) if (this.nodeListeners.has(cn)) touched.add(cn);
    for (const cn of touched) this.notifyNode(cn);
  }

  private applyChange(c: Change, revision: number, arrived: Array<{ vnet: number; rev: number }>): void {
    if (c.type === 'put') {
      const entries = this.applyPut(this.state, c.key, c.value ?? '', revision);
      if (entries) arrived.push(...entries);
    } else {
      this.applyDel(this.state, c.key);
    }
  }

  private invalid(state: IndexState, key: string, why: string): undefined {
    state.invalid++;
    this.logger?.warn({ key, why }, 'mapping index: ignoring invalid overlay record');
    return undefined;
  }

  /**
   * Applies a put at modRevision (createRevision when known: a load); returns the vnet and
   * revision of each vnet's part of a log entry it added.
   */
  private applyPut(state: IndexState, key: string, value: string, modRevision: number, createRevision?: number): Array<{ vnet: number; rev: number }> | undefined {
    if (key.startsWith(MAC_PREFIX)) {
      const m = this.macKey(key);
      if (!m) return this.invalid(state, key, 'bad key');
      const rec = parseJson<MacMapping>(value);
      if (!rec || typeof rec.cn_uuid !== 'string') {
        state.macs.delete(scratchKey);
        return this.invalid(state, key, 'bad value');
      }
      scratchVal[0] = state.node(rec.cn_uuid);
      state.macs.set(scratchKey, scratchVal);
    } else if (key.startsWith(IP_PREFIX)) {
      const table = this.ipKey(state, key);
      if (!table) return this.invalid(state, key, 'bad key');
      const rec = parseJson<IpMapping>(value);
      const mac = rec && typeof rec.mac === 'string' ? macWords(rec.mac) : null;
      if (!rec || !mac || typeof rec.cn_uuid !== 'string') {
        table.delete(scratchKey);
        return this.invalid(state, key, 'bad value');
      }
      scratchVal[0] = mac[0];
      scratchVal[1] = mac[1];
      scratchVal[2] = state.node(rec.cn_uuid);
      table.set(scratchKey, scratchVal);
    } else if (key.startsWith(UNDERLAY_PREFIX)) {
      const cn = key.slice(UNDERLAY_PREFIX.length);
      const rec = parseJson<UnderlayRecord>(value);
      let ip: Buffer | null;
      try {
        ip = rec && typeof rec.ip === 'string' ? ipToBytes(rec.ip) : null;
      } catch {
        ip = null;
      }
      const port = rec?.port;
      if (!ip || typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 0xffff) {
        this.setUnderlay(state, cn, null);
        return this.invalid(state, key, 'bad value');
      }
      this.setUnderlay(state, cn, { cnUuid: cn, ip, ipText: ipFromBytes(ip), port });
    } else if (ShootdownLog.handles(key)) {
      const res = state.log.put(key, value, modRevision, createRevision);
      if (res.invalid) return this.invalid(state, key, res.invalid);
      return res.entries;
    }
    return undefined;
  }

  private applyDel(state: IndexState, key: string): void {
    if (key.startsWith(MAC_PREFIX)) {
      if (this.macKey(key)) state.macs.delete(scratchKey);
    } else if (key.startsWith(IP_PREFIX)) {
      const table = this.ipKey(state, key);
      if (table) table.delete(scratchKey);
    } else if (key.startsWith(UNDERLAY_PREFIX)) {
      this.setUnderlay(state, key.slice(UNDERLAY_PREFIX.length), null);
    } else if (ShootdownLog.handles(key)) {
      state.log.del(key);
    }
  }

  /** Fills scratchKey from ovl/mac/<vnet>/<12hex>; false when malformed. */
  private macKey(key: string): boolean {
    const rest = key.slice(MAC_PREFIX.length);
    const slash = rest.indexOf('/');
    if (slash < 0) return false;
    const vnet = parseVnet(rest.slice(0, slash));
    const hex = rest.slice(slash + 1);
    if (vnet < 0 || !/^[0-9a-f]{12}$/.test(hex)) return false;
    scratchKey[0] = vnet;
    scratchKey[1] = parseInt(hex.slice(0, 4), 16);
    scratchKey[2] = parseInt(hex.slice(4), 16);
    return true;
  }

  /** Fills scratchKey from ovl/ip/<vnet>/<ip>; returns the table it belongs in. */
  private ipKey(state: IndexState, key: string): U32Table | null {
    const rest = key.slice(IP_PREFIX.length);
    const slash = rest.indexOf('/');
    if (slash < 0) return null;
    const vnet = parseVnet(rest.slice(0, slash));
    if (vnet < 0) return null;
    const text = rest.slice(slash + 1);
    scratchKey[0] = vnet;
    const v4 = parseDottedQuad(text);
    if (v4 >= 0) {
      scratchKey[1] = v4;
      return state.ip4;
    }
    let bytes: Buffer;
    try {
      bytes = ipToBytes(text);
    } catch {
      return null;
    }
    return fillIpKey(bytes, 0) ? state.ip4 : state.ip6;
  }

  private setUnderlay(state: IndexState, cn: string, ul: UnderlayAddress | null): void {
    const n = state.node(cn);
    const rec = state.nodes[n];
    if (rec.underlay) {
      const k = rec.underlay.ip.toString('hex');
      const list = (state.nodesByUnderlay.get(k) ?? []).filter((x) => x !== n);
      if (list.length > 0) state.nodesByUnderlay.set(k, list);
      else state.nodesByUnderlay.delete(k);
    }
    rec.underlay = ul;
    if (ul) {
      const k = ul.ip.toString('hex');
      const list = state.nodesByUnderlay.get(k) ?? [];
      list.push(n);
      state.nodesByUnderlay.set(k, list);
    }
  }

  // -------------------------------------------------------------------------------------
  // Lookups (hot path: no allocation)

  /**
   * VL2: where the MAC (6 bytes at mac[off]) lives on vnet. null when there is no mapping
   * or its node has no underlay record.
   */
  resolveVl2(vnet: number, mac: Uint8Array, off = 0): UnderlayAddress | null {
    const s = this.state;
    scratchKey[0] = vnet;
    scratchKey[1] = (mac[off] << 8) | mac[off + 1];
    scratchKey[2] = ((mac[off + 2] << 24) | (mac[off + 3] << 16) | (mac[off + 4] << 8) | mac[off + 5]) >>> 0;
    const slot = s.macs.find(scratchKey);
    if (slot < 0) return null;
    return s.nodes[s.macs.value(slot, 0)].underlay;
  }

  /**
   * VL3: the MAC owning the IP (16 bytes at ip[off]) on vnet, written into macOut[0..6),
   * and where that MAC's node lives. null when either is missing.
   */
  resolveVl3(vnet: number, ip: Uint8Array, off: number, macOut: Uint8Array): UnderlayAddress | null {
    const s = this.state;
    scratchKey[0] = vnet;
    const table = fillIpKey(ip, off) ? s.ip4 : s.ip6;
    const slot = table.find(scratchKey);
    if (slot < 0) return null;
    const ul = s.nodes[table.value(slot, 2)].underlay;
    if (!ul) return null;
    const hi = table.value(slot, 0);
    const lo = table.value(slot, 1);
    macOut[0] = hi >>> 8;
    macOut[1] = hi & 0xff;
    macOut[2] = lo >>> 24;
    macOut[3] = (lo >>> 16) & 0xff;
    macOut[4] = (lo >>> 8) & 0xff;
    macOut[5] = lo & 0xff;
    return ul;
  }

  /** Friendly VL2 lookup by text (tests, tools). */
  lookupVl2(vnet: number, mac: string): Vl2Lookup | null {
    const ul = this.resolveVl2(vnet, macToBytes(mac));
    return ul ? { cnUuid: ul.cnUuid, underlay: ul } : null;
  }

  /** Friendly VL3 lookup by text (tests, tools). */
  lookupVl3(vnet: number, ip: string): Vl3Lookup | null {
    const mac = Buffer.alloc(6);
    const ul = this.resolveVl3(vnet, ipToBytes(ip), 0, mac);
    if (!ul) return null;
    return { mac: [...mac].map((b) => b.toString(16).padStart(2, '0')).join(':'), cnUuid: ul.cnUuid, underlay: ul };
  }

  /**
   * The node whose underlay record has this address (16 bytes). 'ambiguous' when several
   * nodes claim it (upstream answers FATAL then too).
   */
  nodeByUnderlay(ip: Uint8Array, off = 0): string | 'ambiguous' | undefined {
    const k = Buffer.from(ip.buffer, ip.byteOffset + off, 16).toString('hex');
    const list = this.state.nodesByUnderlay.get(k);
    if (!list || list.length === 0) return undefined;
    if (list.length > 1) return 'ambiguous';
    return this.state.nodes[list[0]].uuid;
  }

  underlayOf(cnUuid: string): UnderlayAddress | null {
    const n = this.state.nodeByUuid.get(cnUuid);
    return n === undefined ? null : this.state.nodes[n].underlay;
  }

  /** A node's pending events, oldest first (at most limit). */
  pendingEvents(cnUuid: string, limit = Infinity): PendingEvent[] {
    const log = this.state.log;
    const pend = log.pending(cnUuid, limit);
    if (pend.length === 0) return [];
    const tag = log.tagOf(cnUuid);
    return pend.map(({ pos, timeMs, event }) => {
      const id = encodeEventId({ timeMs, rev: pos.rev, k: pos.k }, tag);
      return event.type === 'vl2' ? { type: 'vl2', id, vnetId: pos.vnet, mac: event.mac } : { type: 'vl3', id, vnetId: pos.vnet, ip: event.ip, vlan: event.vlan };
    });
  }

  /**
   * LOG_RM: removes events by their 16-byte ids (each names its node), durably, and
   * resolves once this index no longer serves them with how many were pending. Unknown
   * and already removed ids are ignored.
   */
  removeEvents(ids: readonly Uint8Array[]): Promise<number> {
    return this.remover.remove(ids);
  }

  /** False when removing these ids cannot change anything (none is held or recent): ack at once. */
  mayRemoveEvents(ids: readonly Uint8Array[]): boolean {
    return this.remover.mayRemove(ids);
  }

  /** What the log sweep may delete (src/overlay/gc.ts); null until the index has caught up. */
  trimPlan(opts: TrimOptions): TrimPlan | null {
    return this.view.ready ? this.state.log.trimPlan(opts) : null;
  }

  /** Calls fn (synchronously, after the change is applied) whenever the node gains events. */
  onNodeEvents(cnUuid: string, fn: Listener): () => void {
    let set = this.nodeListeners.get(cnUuid);
    if (!set) {
      set = new Set();
      this.nodeListeners.set(cnUuid, set);
    }
    set.add(fn);
    return () => {
      const s = this.nodeListeners.get(cnUuid);
      if (!s) return;
      s.delete(fn);
      if (s.size === 0) this.nodeListeners.delete(cnUuid);
    };
  }

  private notifyNode(cnUuid: string): void {
    const set = this.nodeListeners.get(cnUuid);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn();
      } catch (err) {
        this.logger?.warn({ err: (err as Error).message }, 'mapping index: event listener threw');
      }
    }
  }

  stats(): MappingIndexStats {
    const s = this.state;
    let underlays = 0;
    for (const n of s.nodes) if (n.underlay) underlays++;
    return {
      macMappings: s.macs.size,
      ipMappings: s.ip4.size + s.ip6.size,
      nodes: s.nodes.length,
      underlays,
      events: s.log.events,
      logEntries: s.log.entries,
      invalidRecords: s.invalid,
      reloads: this.view.reloads,
      tableBytes: s.macs.byteLength + s.ip4.byteLength + s.ip6.byteLength,
    };
  }
}

/** Fills scratchKey[1..] from 16 address bytes; true when it is IPv4 (one word). */
function fillIpKey(ip: Uint8Array, off: number): boolean {
  if (isV4Mapped(ip, off)) {
    scratchKey[1] = ((ip[off + 12] << 24) | (ip[off + 13] << 16) | (ip[off + 14] << 8) | ip[off + 15]) >>> 0;
    return true;
  }
  for (let w = 0; w < 4; w++) {
    const o = off + 4 * w;
    scratchKey[1 + w] = ((ip[o] << 24) | (ip[o + 1] << 16) | (ip[o + 2] << 8) | ip[o + 3]) >>> 0;
  }
  return false;
}

function macWords(mac: string): [number, number] | null {
  const hex = mac.replace(/[:-]/g, '').toLowerCase();
  if (!/^[0-9a-f]{12}$/.test(hex)) return null;
  return [parseInt(hex.slice(0, 4), 16), parseInt(hex.slice(4), 16)];
}

function parseJson<T>(text: string): T | null {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' ? (v as T) : null;
  } catch {
    return null;
  }
}
