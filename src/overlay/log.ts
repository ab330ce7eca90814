/**
 * The shootdown log in memory: which events each node has still to be told about. Pure
 * (no I/O): the mapping index feeds it the store's log records (src/overlay/keys.ts), the
 * SVP server reads nodes' pending events from it, and LOG_RM and the sweep compute their
 * writes with it.
 *
 * Records: log entries ovl/vlog/<vnet>/<id> and ovl/vlog/multi/<id> (a part per vnet;
 * revision R: their createRevision), vnode
 * rows ovl/vnode/<vnet>/<cn> (createRevision J: the node joined at J), gone records
 * ovl/vgone/<vnet>/<cn>/<J> (createRevision L: that stint ended at L) and node states
 * ovl/vrm/<cn> (a cursor and removed positions).
 *
 * Invariant (who gets what). Event k of revision R — position (R, V, k), k numbering the
 * events of all of R's entries, vnet by vnet and in key order within a vnet (a multi-vnet
 * entry's part on V sorting as its key + '#' + V) — is pending
 * for node X iff X was on V just before R (a row with J < R, or a gone stint with
 * J < R <= L), its entry is still stored, and the position is after X's cursor and not
 * among X's removed positions. Everything here is a function of the records, so every
 * replica, and a replica that restarts, derives the same pending events. The entries of
 * one revision are trimmed together, so k never shifts.
 *
 * Each node's copy of an event has its own wire id (./event-id.ts): the same on every
 * replica, naming node and event.
 */
import { ipToBytes, macToBytes } from '../net/addr.js';
import { MAX_EVENTS_PER_REVISION, nodeTag, stampKey } from './event-id.js';
import {
  GONE_PREFIX,
  type GoneNode,
  NODE_STATE_PREFIX,
  type NodeLogState,
  VLOG_MULTI_PREFIX,
  VLOG_PREFIX,
  VNODE_PREFIX,
  type LogEvent,
  type MultiVnetLogEntry,
  type VnetLogEntry,
  padVnet,
} from './keys.js';

const MAX_REVISION = 2 ** 48 - 1;
const MAX_VNET = 0xffffff;
const MAX_K = MAX_EVENTS_PER_REVISION - 1;

export interface LogPos {
  rev: number;
  vnet: number;
  k: number;
}

export function comparePos(a: LogPos, b: LogPos): number {
  return a.rev - b.rev || a.vnet - b.vnet || a.k - b.k;
}

/** A position as a Map/Set key. */
export function posKey(p: LogPos): string {
  return `${p.rev}.${p.vnet}.${p.k}`;
}

/** A log event with its address bytes parsed once. */
export type ParsedEvent = { type: 'vl2'; mac: Buffer } | { type: 'vl3'; ip: Buffer; vlan: number };

export interface PendingLogEvent {
  pos: LogPos;
  /** The entry's creation time (Unix ms), part of the event's wire id. */
  timeMs: number;
  event: ParsedEvent;
}

interface EntryRec {
  /** Orders the revision's entries on a vnet: the stored key, or a multi-vnet entry's key#vnet. */
  key: string;
  /** The record it came from (a multi-vnet record has one EntryRec per vnet). */
  storeKey: string;
  vnet: number;
  rev: number;
  timeMs: number;
  events: ParsedEvent[];
  /** k of the first event (the revision's entries share the k space, vnet by vnet). */
  k0: number;
}

interface Stint {
  joined: number;
  left: number;
  key: string;
}

class VnetRec {
  /** Sorted by (rev, key). */
  readonly entries: EntryRec[] = [];
  /** node -> revision it joined (its current row). */
  readonly members = new Map<string, number>();
  /** node -> its earlier stints on the vnet. */
  readonly gone = new Map<string, Stint[]>();
  events = 0;

  constructor(readonly vnet: number) {}

  /** Was cn on the vnet just before revision rev? */
  had(cn: string, rev: number): boolean {
    const j = this.members.get(cn);
    if (j !== undefined && j < rev) return true;
    for (const s of this.gone.get(cn) ?? []) if (s.joined < rev && rev <= s.left) return true;
    return false;
  }

  /** Index of the first entry with revision >= rev. */
  firstAt(rev: number): number {
    let lo = 0;
    let hi = this.entries.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.entries[mid] as EntryRec).rev < rev) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

}

interface NodeState {
  cursor: LogPos;
  /** Sorted, all after the cursor. */
  removed: LogPos[];
  removedKeys: Set<string>;
  /** modRevision of ovl/vrm/<cn>; 0 when absent. */
  modRevision: number;
}

class NodeRec {
  readonly tag: bigint;
  readonly vnets = new Set<VnetRec>();
  state: NodeState = emptyState();

  constructor(readonly cn: string) {
    this.tag = nodeTag(cn);
  }
}

function emptyState(): NodeState {
  return { cursor: { rev: 0, vnet: 0, k: 0 }, removed: [], removedKeys: new Set(), modRevision: 0 };
}

export interface PutResult {
  invalid?: string;
  /** A log entry arrived: the vnets it has events on, and its revision. */
  entries?: Array<{ vnet: number; rev: number }>;
}

export interface StateUpdate {
  cn: string;
  /** The new state, or null to delete the node's state key. */
  state: NodeLogState | null;
  /** Precondition: the state key's modRevision as known here (0: absent). */
  modRevision: number;
}

export interface TrimOptions {
  nowMs: number;
  /** Entries older than this are deleted whoever still needs them. */
  maxAgeMs: number;
  /** A node keeps at most this many pending events, the newest. */
  maxPerNode: number;
}

export interface TrimPlan {
  /** Log entries and gone records nobody needs any more, in groups each deleted at once. */
  deletes: string[][];
  /** Node states to rewrite (capped) or delete (the node is on no vnet and has no stint left). */
  states: StateUpdate[];
}

function parseJson<T>(text: string): T | null {
  try {
    const v: unknown = JSON.parse(text);
    return v !== null && typeof v === 'object' ? (v as T) : null;
  } catch {
    return null;
  }
}

function parseVnet(seg: string): number {
  if (!/^\d{1,10}$/.test(seg)) return -1;
  const n = Number(seg);
  return n <= MAX_VNET ? n : -1;
}

function parseEvent(e: unknown): ParsedEvent | null {
  if (!e || typeof e !== 'object') return null;
  const ev = e as { type?: unknown; mac?: unknown; ip?: unknown; vlan_id?: unknown };
  try {
    if (ev.type === 'vl2' && typeof ev.mac === 'string') return { type: 'vl2', mac: macToBytes(ev.mac) };
    if (ev.type === 'vl3' && typeof ev.ip === 'string') {
      const vlan = typeof ev.vlan_id === 'number' && Number.isInteger(ev.vlan_id) ? ev.vlan_id & 0xffff : 0;
      return { type: 'vl3', ip: ipToBytes(ev.ip), vlan };
    }
  } catch {
    return null;
  }
  return null;
}

function parsePos(v: unknown): LogPos | null {
  if (!Array.isArray(v) || v.length !== 3 || !v.every((n) => Number.isInteger(n) && n >= 0)) return null;
  const [rev, vnet, k] = v as number[];
  if (rev > MAX_REVISION || vnet > MAX_VNET || k > MAX_K) return null;
  return { rev, vnet, k };
}

const posArray = (p: LogPos): [number, number, number] => [p.rev, p.vnet, p.k];

export class ShootdownLog {
  private readonly vnets = new Map<number, VnetRec>();
  private readonly nodes = new Map<string, NodeRec>();
  private readonly byTag = new Map<bigint, string[]>();
  /** Stored key -> its entries (one, or a multi-vnet record's parts). */
  private readonly entryKeys = new Map<string, EntryRec[]>();
  /** revision -> its entries, sorted by (vnet, key). */
  private readonly byRev = new Map<number, EntryRec[]>();
  /** (created, revision mod 2^16) -> revisions: how wire ids find their entries. */
  private readonly byStamp = new Map<string, Set<number>>();
  private eventCount = 0;

  /** Log events held (each counted once, whatever the number of recipients). */
  get events(): number {
    return this.eventCount;
  }

  get entries(): number {
    return this.entryKeys.size;
  }

  // ---- records ------------------------------------------------------------------------

  /** True for the keys this log keeps. */
  static handles(key: string): boolean {
    return key.startsWith(VLOG_PREFIX) || key.startsWith(VNODE_PREFIX) || key.startsWith(GONE_PREFIX) || key.startsWith(NODE_STATE_PREFIX);
  }

  /**
   * A put of one of its keys. modRevision: the revision of the put; createRevision: when
   * known (a load); for a change from the feed an existing row keeps the one it has.
   */
  put(key: string, value: string, modRevision: number, createRevision?: number): PutResult {
    if (key.startsWith(VLOG_PREFIX)) return this.putEntry(key, value, createRevision ?? modRevision);
    if (key.startsWith(VNODE_PREFIX)) {
      const at = this.vnetNode(key.slice(VNODE_PREFIX.length));
      if (!at) return { invalid: 'bad key' };
      const v = this.vnet(at.vnet);
      if (!v.members.has(at.cn)) {
        v.members.set(at.cn, createRevision ?? modRevision);
        this.node(at.cn).vnets.add(v);
      } else if (createRevision !== undefined) v.members.set(at.cn, createRevision);
      return {};
    }
    if (key.startsWith(GONE_PREFIX)) return this.putGone(key, value, createRevision ?? modRevision);
    if (key.startsWith(NODE_STATE_PREFIX)) return this.putState(key.slice(NODE_STATE_PREFIX.length), value, modRevision);
    return {};
  }

  del(key: string): void {
    if (key.startsWith(VLOG_PREFIX)) this.delEntry(key);
    else if (key.startsWith(VNODE_PREFIX)) {
      const at = this.vnetNode(key.slice(VNODE_PREFIX.length));
      const v = at && this.vnets.get(at.vnet);
      if (!at || !v) return;
      v.members.delete(at.cn);
      this.forgetIfIdle(v, at.cn);
    } else if (key.startsWith(GONE_PREFIX)) this.delGone(key);
    else if (key.startsWith(NODE_STATE_PREFIX)) {
      const n = this.nodes.get(key.slice(NODE_STATE_PREFIX.length));
      if (n) n.state = emptyState();
    }
  }

  private vnetNode(rest: string): { vnet: number; cn: string } | null {
    const slash = rest.indexOf('/');
    if (slash <= 0) return null;
    const vnet = parseVnet(rest.slice(0, slash));
    const cn = rest.slice(slash + 1);
    return vnet >= 0 && cn !== '' && !cn.includes('/') ? { vnet, cn } : null;
  }

  private vnet(id: number): VnetRec {
    let v = this.vnets.get(id);
    if (!v) this.vnets.set(id, (v = new VnetRec(id)));
    return v;
  }

  private node(cn: string): NodeRec {
    let n = this.nodes.get(cn);
    if (!n) {
      n = new NodeRec(cn);
      this.nodes.set(cn, n);
      const list = this.byTag.get(n.tag);
      if (list) list.push(cn);
      else this.byTag.set(n.tag, [cn]);
    }
    return n;
  }

  /** Drops a node's link to a vnet it no longer has a row or stint on. */
  private forgetIfIdle(v: VnetRec, cn: string): void {
    if (v.members.has(cn) || v.gone.has(cn)) return;
    this.nodes.get(cn)?.vnets.delete(v);
  }

  private putEntry(key: string, value: string, rev: number): PutResult {
    this.delEntry(key);
    const parts = entryParts(key, value);
    if (rev > MAX_REVISION || !parts) return { invalid: 'bad log entry' };
    const group = this.byRev.get(rev) ?? [];
    const count = parts.reduce((n, p) => n + p.events.length, 0);
    if (group.reduce((n, e) => n + e.events.length, count) > MAX_K + 1) return { invalid: 'too many events at one revision' };
    const multi = key.startsWith(VLOG_MULTI_PREFIX);
    const recs: EntryRec[] = [];
    for (const part of parts) {
      const entry: EntryRec = { key: multi ? `${key}#${padVnet(part.vnet)}` : key, storeKey: key, vnet: part.vnet, rev, timeMs: part.timeMs, events: part.events, k0: 0 };
      const v = this.vnet(part.vnet);
      // Usually the newest: append; else insert in (rev, key) order.
      let i = v.entries.length;
      while (i > 0) {
        const prev = v.entries[i - 1] as EntryRec;
        if (prev.rev < rev || (prev.rev === rev && prev.key < entry.key)) break;
        i--;
      }
      v.entries.splice(i, 0, entry);
      v.events += entry.events.length;
      group.push(entry);
      recs.push(entry);
    }
    group.sort((a, b) => a.vnet - b.vnet || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    this.byRev.set(rev, group);
    renumber(group);
    const stamp = stampKey(parts[0]!.timeMs, rev & 0xffff);
    const revs = this.byStamp.get(stamp) ?? new Set<number>();
    revs.add(rev);
    this.byStamp.set(stamp, revs);
    this.eventCount += count;
    this.entryKeys.set(key, recs);
    return { entries: recs.map((e) => ({ vnet: e.vnet, rev })) };
  }

  private delEntry(key: string): void {
    const recs = this.entryKeys.get(key);
    if (!recs) return;
    this.entryKeys.delete(key);
    for (const e of recs) {
      const v = this.vnets.get(e.vnet);
      const i = v ? v.entries.indexOf(e) : -1;
      if (v && i >= 0) {
        v.entries.splice(i, 1);
        v.events -= e.events.length;
      }
      this.eventCount -= e.events.length;
    }
    const rev = recs[0]!.rev;
    const group = (this.byRev.get(rev) ?? []).filter((x) => !recs.includes(x));
    if (group.length > 0) {
      this.byRev.set(rev, group);
      renumber(group);
    } else {
      this.byRev.delete(rev);
      const stamp = stampKey(recs[0]!.timeMs, rev & 0xffff);
      const revs = this.byStamp.get(stamp);
      revs?.delete(rev);
      if (revs?.size === 0) this.byStamp.delete(stamp);
    }
  }

  private putGone(key: string, value: string, left: number): PutResult {
    const rec = parseJson<GoneNode>(value);
    const at = this.goneKeyParts(key);
    this.delGone(key);
    if (!at || !rec || rec.cn_uuid !== at.cn || rec.joined !== at.joined) return { invalid: 'bad gone record' };
    const v = this.vnet(at.vnet);
    const list = v.gone.get(at.cn) ?? [];
    list.push({ joined: at.joined, left, key });
    v.gone.set(at.cn, list);
    this.node(at.cn).vnets.add(v);
    return {};
  }

  private delGone(key: string): void {
    const at = this.goneKeyParts(key);
    const v = at && this.vnets.get(at.vnet);
    if (!at || !v) return;
    const list = (v.gone.get(at.cn) ?? []).filter((s) => s.key !== key);
    if (list.length > 0) v.gone.set(at.cn, list);
    else v.gone.delete(at.cn);
    this.forgetIfIdle(v, at.cn);
  }

  private goneKeyParts(key: string): { vnet: number; cn: string; joined: number } | null {
    const parts = key.slice(GONE_PREFIX.length).split('/');
    if (parts.length !== 3 || !/^\d{1,15}$/.test(parts[2] as string)) return null;
    const vnet = parseVnet(parts[0] as string);
    return vnet >= 0 && parts[1] ? { vnet, cn: parts[1], joined: Number(parts[2]) } : null;
  }

  private putState(cn: string, value: string, modRevision: number): PutResult {
    const rec = parseJson<NodeLogState>(value);
    const cursor = rec ? parsePos(rec.cursor) : null;
    const removed = (Array.isArray(rec?.removed) ? rec.removed : []).map(parsePos);
    const n = this.node(cn);
    if (!cn || cn.includes('/') || !cursor || removed.some((p) => p === null)) {
      n.state = { ...emptyState(), modRevision };
      return { invalid: 'bad node state' };
    }
    const after = (removed as LogPos[]).filter((p) => comparePos(p, cursor) > 0).sort(comparePos);
    n.state = { cursor, removed: after, removedKeys: new Set(after.map(posKey)), modRevision };
    return {};
  }

  // ---- reading ------------------------------------------------------------------------

  /** Nodes that were on the vnet just before revision rev (an entry's recipients). */
  recipients(vnet: number, rev: number): string[] {
    const v = this.vnets.get(vnet);
    if (!v) return [];
    const out = new Set<string>();
    for (const [cn, j] of v.members) if (j < rev) out.add(cn);
    for (const [cn, stints] of v.gone) if (stints.some((s) => s.joined < rev && rev <= s.left)) out.add(cn);
    return [...out];
  }

  /** Nodes whose uuid has this event-id tag (normally one). */
  nodesByTag(tag: bigint): readonly string[] {
    return this.byTag.get(tag) ?? [];
  }

  tagOf(cn: string): bigint {
    return this.nodes.get(cn)?.tag ?? nodeTag(cn);
  }

  /** The position of event k of the entry created at timeMs at a revision ≡ revLow (mod 2^16), if stored. */
  locate(timeMs: number, revLow: number, k: number): LogPos | undefined {
    for (const rev of this.byStamp.get(stampKey(timeMs, revLow)) ?? []) {
      for (const e of this.byRev.get(rev) ?? []) {
        if (e.timeMs === timeMs && k >= e.k0 && k < e.k0 + e.events.length) return { rev, vnet: e.vnet, k };
      }
    }
    return undefined;
  }

  /** A node's state key revision as known here (0: absent). */
  stateRevision(cn: string): number {
    return this.nodes.get(cn)?.state.modRevision ?? 0;
  }

  /** The node's pending events, oldest first, at most limit of them. */
  pending(cn: string, limit = Infinity): PendingLogEvent[] {
    const n = this.nodes.get(cn);
    if (!n || limit <= 0) return [];
    const out: PendingLogEvent[] = [];
    // The oldest `limit` overall are among the oldest `limit` of each vnet.
    for (const v of n.vnets) {
      let taken = 0;
      this.scan(n, v, (e, j, pos) => {
        out.push({ pos, timeMs: e.timeMs, event: e.events[j] as ParsedEvent });
        return ++taken < limit;
      });
    }
    if (n.vnets.size > 1) out.sort((a, b) => comparePos(a.pos, b.pos));
    return out.length > limit ? out.slice(0, limit) : out;
  }

  /** How many events are pending for the node, counting no further than stopAt. */
  pendingCount(cn: string, stopAt = Infinity): number {
    const n = this.nodes.get(cn);
    if (!n) return 0;
    let count = 0;
    for (const v of n.vnets) {
      this.scan(n, v, () => ++count < stopAt);
      if (count >= stopAt) break;
    }
    return count;
  }

  /** Calls each(entry, event index, position) for n's pending events on v, oldest first, while it returns true. */
  private scan(n: NodeRec, v: VnetRec, each: (e: EntryRec, j: number, pos: LogPos) => boolean): void {
    const { cursor, removed, removedKeys } = n.state;
    for (let i = v.firstAt(cursor.rev); i < v.entries.length; i++) {
      const e = v.entries[i] as EntryRec;
      if (!v.had(n.cn, e.rev)) continue;
      for (let j = 0; j < e.events.length; j++) {
        const pos = { rev: e.rev, vnet: v.vnet, k: e.k0 + j };
        if (comparePos(pos, cursor) <= 0 || (removed.length > 0 && removedKeys.has(posKey(pos)))) continue;
        if (!each(e, j, pos)) return;
      }
    }
  }

  /**
   * The node's state once these positions are removed too (unknown, already removed and
   * foreign positions are ignored), or null when nothing changes. The cursor moves over
   * every leading removed event, so the state stays small when events are removed in order.
   */
  consume(cn: string, positions: readonly LogPos[]): { update: StateUpdate; taken: LogPos[] } | null {
    const n = this.nodes.get(cn);
    if (!n || positions.length === 0) return null;
    const pend = this.pending(cn);
    const pendKeys = new Set(pend.map((p) => posKey(p.pos)));
    const taking = new Set<string>();
    for (const p of positions) {
      const k = posKey(p);
      if (pendKeys.has(k)) taking.add(k);
    }
    if (taking.size === 0) return null;
    // The cursor moves over every removed event (new or listed) up to the first one kept.
    const walk = [...pend.map((p) => ({ pos: p.pos, removed: taking.has(posKey(p.pos)) })), ...n.state.removed.map((pos) => ({ pos, removed: true }))];
    walk.sort((a, b) => comparePos(a.pos, b.pos));
    let cursor = n.state.cursor;
    for (const w of walk) {
      if (!w.removed) break;
      cursor = w.pos;
    }
    const rest = new Map<string, LogPos>();
    for (const p of n.state.removed) if (comparePos(p, cursor) > 0) rest.set(posKey(p), p);
    for (const p of pend) if (taking.has(posKey(p.pos)) && comparePos(p.pos, cursor) > 0) rest.set(posKey(p.pos), p.pos);
    const removed = [...rest.values()].sort(comparePos).map(posArray);
    const state: NodeLogState = removed.length > 0 ? { cursor: posArray(cursor), removed } : { cursor: posArray(cursor) };
    const taken = pend.filter((p) => taking.has(posKey(p.pos))).map((p) => p.pos);
    return { update: { cn, state, modRevision: n.state.modRevision }, taken };
  }

  /** What the sweep may delete or rewrite (see TrimPlan). */
  trimPlan(opts: TrimOptions): TrimPlan {
    const deletes: string[][] = [];
    const states: StateUpdate[] = [];
    // Nodes over the cap lose their oldest events: their cursor moves.
    for (const n of this.nodes.values()) {
      if (this.pendingCount(n.cn, opts.maxPerNode + 1) <= opts.maxPerNode) continue;
      const pend = this.pending(n.cn);
      const last = (pend[pend.length - opts.maxPerNode - 1] as PendingLogEvent).pos;
      const removed = n.state.removed.filter((p) => comparePos(p, last) > 0).map(posArray);
      const state: NodeLogState = removed.length > 0 ? { cursor: posArray(last), removed } : { cursor: posArray(last) };
      states.push({ cn: n.cn, state, modRevision: n.state.modRevision });
    }
    const cutoff = opts.nowMs - opts.maxAgeMs;
    // The entries of one revision go together: their k numbering must not shift.
    const kept = new Set<EntryRec>();
    for (const group of this.byRev.values()) {
      const expired = group.every((e) => e.timeMs < cutoff);
      if (!expired && group.some((e) => this.entryNeeded(e))) for (const e of group) kept.add(e);
      else deletes.push([...new Set(group.map((e) => e.storeKey))]);
    }
    for (const v of this.vnets.values()) {
      for (const stints of v.gone.values()) {
        for (const s of stints) {
          if (!v.entries.some((e) => kept.has(e) && s.joined < e.rev && e.rev <= s.left)) deletes.push([s.key]);
        }
      }
    }
    // A node on no vnet, with no stint left, has no events: its state can go.
    const goneKeys = new Set(deletes.flat());
    for (const n of this.nodes.values()) {
      if (n.state.modRevision === 0) continue;
      let active = false;
      for (const v of n.vnets) {
        if (v.members.has(n.cn) || (v.gone.get(n.cn) ?? []).some((s) => !goneKeys.has(s.key))) active = true;
      }
      if (!active && !states.some((s) => s.cn === n.cn)) states.push({ cn: n.cn, state: null, modRevision: n.state.modRevision });
    }
    return { deletes, states };
  }

  /** Does any recipient of this entry still have one of its events pending? */
  private entryNeeded(e: EntryRec): boolean {
    const v = this.vnets.get(e.vnet);
    if (!v) return false;
    for (const cn of new Set<string>([...v.members.keys(), ...v.gone.keys()])) {
      if (!v.had(cn, e.rev)) continue;
      const st = this.nodes.get(cn)?.state ?? emptyState();
      if (e.rev < st.cursor.rev) continue;
      for (let k = e.k0; k < e.k0 + e.events.length; k++) {
        const pos = { rev: e.rev, vnet: e.vnet, k };
        if (comparePos(pos, st.cursor) > 0 && (st.removed.length === 0 || !st.removedKeys.has(posKey(pos)))) return true;
      }
    }
    return false;
  }

  stats(): { vnets: number; nodes: number; entries: number; events: number } {
    return { vnets: this.vnets.size, nodes: this.nodes.size, entries: this.entryKeys.size, events: this.eventCount };
  }
}

/** A log record's parts, one per vnet (a VnetLogEntry has one); null when malformed. */
function entryParts(key: string, value: string): Array<{ vnet: number; timeMs: number; events: ParsedEvent[] }> | null {
  let raw: Array<{ vnet: number; events: unknown }>;
  let created: unknown;
  if (key.startsWith(VLOG_MULTI_PREFIX)) {
    const rec = parseJson<MultiVnetLogEntry>(value);
    if (!rec || !Array.isArray(rec.vnets) || rec.vnets.length === 0 || key.length === VLOG_MULTI_PREFIX.length) return null;
    raw = rec.vnets.map((p) => ({ vnet: Number.isInteger(p?.vnet_id) && p.vnet_id >= 0 && p.vnet_id <= MAX_VNET ? p.vnet_id : -1, events: p?.events }));
    if (new Set(raw.map((p) => p.vnet)).size !== raw.length) return null; // one part per vnet
    created = rec.created;
  } else {
    const rest = key.slice(VLOG_PREFIX.length);
    const slash = rest.indexOf('/');
    const rec = parseJson<VnetLogEntry>(value);
    raw = [{ vnet: slash > 0 ? parseVnet(rest.slice(0, slash)) : -1, events: rec?.events }];
    created = rec?.created;
  }
  const ms = typeof created === 'string' ? Date.parse(created) : NaN;
  const timeMs = Number.isFinite(ms) && ms > 0 ? ms : 0;
  const parts: Array<{ vnet: number; timeMs: number; events: ParsedEvent[] }> = [];
  for (const p of raw) {
    const events = Array.isArray(p.events) ? (p.events as LogEvent[]).map(parseEvent) : null;
    if (p.vnet < 0 || !events || events.length === 0 || events.some((e) => e === null)) return null;
    parts.push({ vnet: p.vnet, timeMs, events: events as ParsedEvent[] });
  }
  return parts;
}

/** Numbers the events of one revision's entries (sorted by vnet, then key). */
function renumber(group: EntryRec[]): void {
  let k = 0;
  for (const e of group) {
    e.k0 = k;
    k += e.events.length;
  }
}
