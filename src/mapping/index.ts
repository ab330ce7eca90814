/**
 * MappingIndex: the in-memory view of the overlay keys (src/overlay/keys.ts) that the SVP
 * server answers from. It loads every `ovl/` key with paged range reads, then follows the
 * store's change feed, so answers are never older than the last commit it has applied
 * (`revision`; `waitForRevision` lets a writer wait until its commit is visible). On
 * CompactedError it reloads.
 *
 * Memory: mappings live in typed-array hash tables (U32Table); nodes (compute nodes) are
 * interned to small integers. Per-node shootdown events are kept in id order (UUIDv7, so
 * oldest first) with their SVP log entry bytes precomputed.
 */
import {
  EVENT_PREFIX,
  IP_PREFIX,
  MAC_PREFIX,
  OVERLAY_PREFIX,
  UNDERLAY_PREFIX,
  type IpMapping,
  type MacMapping,
  type OverlayEvent,
  type UnderlayRecord,
} from '../overlay/keys.js';
import { type Change, type ChangeSet, CompactedError, type Store, StoreClosedError, type Watcher } from '../store/types.js';
import { ipFromBytes, ipToBytes, isV4Mapped, macToBytes, uuidToBytes } from '../net/addr.js';
import { LogType, encodeLogEntry } from '../svp/codec.js';
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

export interface PendingEvent {
  readonly id: string;
  readonly key: string;
  readonly type: 'vl2' | 'vl3';
  /** The SVP log entry (32 bytes VL2, 44 bytes VL3). */
  readonly entry: Buffer;
}

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
}

export interface MappingIndexStats {
  macMappings: number;
  ipMappings: number;
  nodes: number;
  underlays: number;
  events: number;
  invalidRecords: number;
  reloads: number;
  /** Bytes held by the mapping hash tables. */
  tableBytes: number;
}

interface NodeRec {
  uuid: string;
  underlay: UnderlayAddress | null;
  /** Pending events sorted by id. */
  events: PendingEvent[];
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
  readonly eventById = new Map<string, { node: number; key: string }>();
  invalid = 0;

  node(uuid: string): number {
    let n = this.nodeByUuid.get(uuid);
    if (n === undefined) {
      n = this.nodes.length;
      this.nodes.push({ uuid, underlay: null, events: [] });
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
  private readonly store: Store;
  private readonly logger: Logger | undefined;
  private readonly pageSize: number;
  private readonly retryBaseMs: number;
  private watcher: Watcher | null = null;
  private closed = false;
  private started: Promise<void> | null = null;
  private rev = 0;
  private readyAt = Infinity;
  private reloads = 0;
  private retries = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private revWaiters: { rev: number; resolve: (ok: boolean) => void; timer?: NodeJS.Timeout }[] = [];
  private nodeListeners = new Map<string, Set<Listener>>();
  private readyWaiters: (() => void)[] = [];
  private generation = 0;
  private loadedOnce = false;

  constructor(opts: MappingIndexOptions) {
    this.store = opts.store;
    this.logger = opts.logger;
    this.pageSize = opts.pageSize ?? 20000;
    this.retryBaseMs = opts.retryBaseMs ?? 500;
  }

  /** The last store revision whose changes are reflected in answers. */
  get revision(): number {
    return this.rev;
  }

  /** True once the initial load has caught up with the store. */
  get ready(): boolean {
    return this.rev >= this.readyAt;
  }

  /** Loads and starts following the feed; resolves once caught up with the store. */
  start(): Promise<void> {
    if (!this.started) {
      this.started = this.load().then(() => this.whenReady());
    }
    return this.started;
  }

  private whenReady(): Promise<void> {
    if (this.ready || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    this.watcher = null;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const w of this.revWaiters) {
      if (w.timer) clearTimeout(w.timer);
      w.resolve(false);
    }
    this.revWaiters = [];
    for (const r of this.readyWaiters) r();
    this.readyWaiters = [];
  }

  /**
   * Resolves true once answers reflect store revision `rev` (a writer's commit revision),
   * false on timeout or close.
   */
  waitForRevision(rev: number, timeoutMs?: number): Promise<boolean> {
    if (this.rev >= rev) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const w: { rev: number; resolve: (ok: boolean) => void; timer?: NodeJS.Timeout } = { rev, resolve };
      if (timeoutMs !== undefined) {
        w.timer = setTimeout(() => {
          this.revWaiters = this.revWaiters.filter((x) => x !== w);
          resolve(false);
        }, timeoutMs);
      }
      this.revWaiters.push(w);
    });
  }

  // -------------------------------------------------------------------------------------
  // Loading and following

  /**
   * Paged load: the first page fixes R0; later pages may be newer. Following the feed from
   * R0+1 replays every change since, and replaying state-setting puts/deletes over a view
   * that is already partly newer converges to the right state, so the index is exact
   * once it has applied the last page's revision.
   */
  private async load(): Promise<void> {
    const gen = ++this.generation;
    const state = new IndexState();
    let first = true;
    let r0 = 0;
    let last: number;
    let gt: string | undefined;
    for (;;) {
      const page = await this.store.range({ prefix: OVERLAY_PREFIX, gt, limit: this.pageSize });
      if (this.closed || gen !== this.generation) return;
      if (first) {
        r0 = page.revision;
        first = false;
      }
      last = page.revision;
      for (const kv of page.kvs) this.applyPut(state, kv.key, kv.value);
      if (page.kvs.length < this.pageSize) break;
      gt = page.kvs[page.kvs.length - 1].key;
    }
    const reloading = this.loadedOnce;
    this.loadedOnce = true;
    this.state = state;
    this.rev = Math.max(this.rev, r0);
    this.readyAt = last;
    if (reloading) this.reloads++;
    this.follow(r0 + 1, gen);
    this.settle();
    // Long-polls may have been waiting on nodes whose events came back with the reload.
    for (const n of state.nodes) if (n.events.length > 0) this.notifyNode(n.uuid);
  }

  private follow(fromRevision: number, gen: number): void {
    this.watcher?.close();
    // Watch every key (not just ovl/) so `revision` advances with every commit, and
    // waitForRevision() works for any revision a writer got back.
    this.watcher = this.store.watch(
      { prefix: '', fromRevision },
      {
        onChange: (set) => {
          if (gen !== this.generation) return;
          this.applySet(set);
        },
        onError: (err) => {
          if (gen !== this.generation || this.closed) return;
          this.onFeedError(err);
        },
      },
    );
  }

  private onFeedError(err: Error): void {
    this.watcher = null;
    if (err instanceof StoreClosedError) {
      this.logger?.warn({ err: err.message }, 'mapping index: store closed, no longer following');
      return;
    }
    if (err instanceof CompactedError) {
      this.logger?.info({ err: err.message }, 'mapping index: feed compacted, reloading');
      this.reload(0);
      return;
    }
    const delay = Math.min(this.retryBaseMs * 2 ** this.retries, 30000);
    this.retries++;
    this.logger?.warn({ err: err.message, delayMs: delay }, 'mapping index: feed failed, reloading');
    this.reload(delay);
  }

  private reload(delayMs: number): void {
    if (this.closed) return;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.load().then(
        () => {
          this.retries = 0;
        },
        (err: Error) => this.onFeedError(err),
      );
    }, delayMs);
  }

  private applySet(set: ChangeSet): void {
    const touched = new Set<string>();
    for (const c of set.changes) {
      if (!c.key.startsWith(OVERLAY_PREFIX)) continue;
      this.applyChange(c, touched);
    }
    this.rev = set.revision;
    this.settle();
    for (const cn of touched) this.notifyNode(cn);
  }

  private applyChange(c: Change, touched: Set<string>): void {
    if (c.type === 'put') {
      const cn = this.applyPut(this.state, c.key, c.value ?? '');
      if (cn) touched.add(cn);
    } else {
      this.applyDel(this.state, c.key);
    }
  }

  /** Resolves revision waiters and, once caught up, the start() promise. */
  private settle(): void {
    if (this.revWaiters.length > 0) {
      const keep: typeof this.revWaiters = [];
      for (const w of this.revWaiters) {
        if (w.rev <= this.rev) {
          if (w.timer) clearTimeout(w.timer);
          w.resolve(true);
        } else keep.push(w);
      }
      this.revWaiters = keep;
    }
    if (this.ready && this.readyWaiters.length > 0) {
      const ws = this.readyWaiters;
      this.readyWaiters = [];
      for (const r of ws) r();
    }
  }

  private invalid(state: IndexState, key: string, why: string): undefined {
    state.invalid++;
    this.logger?.warn({ key, why }, 'mapping index: ignoring invalid overlay record');
    return undefined;
  }

  /** Applies a put; returns the node uuid when it added a pending event for that node. */
  private applyPut(state: IndexState, key: string, value: string): string | undefined {
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
    } else if (key.startsWith(EVENT_PREFIX)) {
      const rest = key.slice(EVENT_PREFIX.length);
      const slash = rest.indexOf('/');
      const cn = slash > 0 ? rest.slice(0, slash) : '';
      const id = slash > 0 ? rest.slice(slash + 1) : '';
      const ev = parseJson<OverlayEvent>(value);
      const entry = ev && cn && id ? eventEntry(id, ev) : null;
      if (!entry) {
        this.removeEvent(state, key);
        return this.invalid(state, key, 'bad event');
      }
      this.addEvent(state, cn, { id, key, type: ev!.type, entry });
      return cn;
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
    } else if (key.startsWith(EVENT_PREFIX)) {
      this.removeEvent(state, key);
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

  private addEvent(state: IndexState, cn: string, ev: PendingEvent): void {
    const existing = state.eventById.get(ev.id);
    if (existing && existing.key !== ev.key) this.removeEvent(state, existing.key);
    const n = state.node(cn);
    const q = state.nodes[n].events;
    state.eventById.set(ev.id, { node: n, key: ev.key });
    if (q.length === 0 || q[q.length - 1].id < ev.id) {
      q.push(ev); // the common case: UUIDv7 ids arrive in order
      return;
    }
    const i = lowerBound(q, ev.id);
    if (i < q.length && q[i].id === ev.id) q[i] = ev;
    else q.splice(i, 0, ev);
  }

  private removeEvent(state: IndexState, key: string): void {
    const rest = key.slice(EVENT_PREFIX.length);
    const slash = rest.indexOf('/');
    if (slash <= 0) return;
    const id = rest.slice(slash + 1);
    const where = state.eventById.get(id);
    if (!where || where.key !== key) return;
    state.eventById.delete(id);
    const q = state.nodes[where.node].events;
    const i = lowerBound(q, id);
    if (i < q.length && q[i].id === id) q.splice(i, 1);
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

  /** A node's pending events, oldest first. The array is live: copy what you keep. */
  pendingEvents(cnUuid: string): readonly PendingEvent[] {
    const n = this.state.nodeByUuid.get(cnUuid);
    return n === undefined ? [] : this.state.nodes[n].events;
  }

  /** Store key of a pending event, by its id. */
  eventKey(id: string): string | undefined {
    return this.state.eventById.get(id)?.key;
  }

  /** A pending event by id: its store key and the node it is for. */
  eventRef(id: string): { key: string; cn: string } | undefined {
    const e = this.state.eventById.get(id);
    return e ? { key: e.key, cn: this.state.nodes[e.node]!.uuid } : undefined;
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
      events: s.eventById.size,
      invalidRecords: s.invalid,
      reloads: this.reloads,
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

/** The SVP log entry for an event, or null if it is malformed. */
function eventEntry(id: string, ev: OverlayEvent): Buffer | null {
  try {
    const idBytes = uuidToBytes(id);
    if (!Number.isInteger(ev.vnet_id)) return null;
    if (ev.type === 'vl2') return encodeLogEntry({ type: LogType.VL2, id: idBytes, mac: macToBytes(ev.mac), vnetId: ev.vnet_id });
    if (ev.type === 'vl3')
      return encodeLogEntry({ type: LogType.VL3, id: idBytes, ip: ipToBytes(ev.ip), vlan: ev.vlan_id ?? 0, vnetId: ev.vnet_id });
    return null;
  } catch {
    return null;
  }
}

function lowerBound(q: readonly PendingEvent[], id: string): number {
  let lo = 0;
  let hi = q.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (q[mid].id < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
