/**
 * Garbage collection of shootdown events (ovl/ev/<cn>/<uuidv7>). Events are normally
 * removed by the node that consumed them (SVP LOG_RM); a node that is dead or gone
 * would let its queue grow forever, so a periodic sweep deletes, per node, events older
 * than maxAgeMs and the oldest ones beyond maxPerNode. Event ids are UUIDv7, so a key
 * carries its creation time and a node's keys sort oldest first: no values are read.
 *
 * Mappings need no sweeping: NIC deletes remove them outright (no tombstones).
 */
import { EVENT_PREFIX } from './keys.js';
import type { Op, Store } from '../store/types.js';

export interface EventGcOptions {
  /** Events older than this are deleted (default 24 h). */
  maxAgeMs?: number;
  /** At most this many events are kept per node, the newest (default 10,000). */
  maxPerNode?: number;
  /** Time between sweeps (default 60 s). */
  intervalMs?: number;
  /** Keys per range read and per delete batch. */
  pageSize?: number;
  now?: () => number;
  onError?: (err: Error) => void;
}

export const DEFAULT_EVENT_MAX_AGE_MS = 24 * 3600 * 1000;
export const DEFAULT_EVENTS_PER_NODE = 10_000;

/** Milliseconds since the epoch encoded in a UUIDv7, or undefined for other ids. */
export function uuidv7Time(id: string): number | undefined {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return undefined;
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

export interface SweepResult {
  deleted: number;
  nodes: number;
}

/** One pass over every node's events; deletes the expired and the excess. */
export async function sweepEvents(store: Store, opts: EventGcOptions = {}): Promise<SweepResult> {
  const maxAge = opts.maxAgeMs ?? DEFAULT_EVENT_MAX_AGE_MS;
  const cap = opts.maxPerNode ?? DEFAULT_EVENTS_PER_NODE;
  const page = opts.pageSize ?? 1000;
  const cutoff = (opts.now ?? Date.now)() - maxAge;
  let deleted = 0;
  let nodes = 0;
  let pending: Op[] = [];
  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    const ops = pending;
    pending = [];
    const res = await store.commit({ ops });
    if (res.ok) deleted += ops.length;
  };

  // Walk node by node: collect one node's keys (oldest first), decide, move on.
  let node: string | undefined;
  let keys: string[] = [];
  const finishNode = async (): Promise<void> => {
    if (node === undefined) return;
    nodes++;
    let drop = Math.max(0, keys.length - cap);
    while (drop < keys.length) {
      const t = uuidv7Time(keys[drop].slice(keys[drop].lastIndexOf('/') + 1));
      // Non-v7 ids have no age; only the cap applies to them.
      if (t === undefined || t >= cutoff) break;
      drop++;
    }
    for (let i = 0; i < drop; i++) {
      pending.push({ type: 'del', key: keys[i] });
      if (pending.length >= page) await flush();
    }
    keys = [];
  };

  let gt: string | undefined;
  for (;;) {
    const { kvs } = await store.range({ prefix: EVENT_PREFIX, ...(gt ? { gt } : {}), limit: page });
    for (const kv of kvs) {
      const rest = kv.key.slice(EVENT_PREFIX.length);
      const cn = rest.slice(0, rest.indexOf('/'));
      if (cn !== node) {
        await finishNode();
        node = cn;
      }
      keys.push(kv.key);
    }
    if (kvs.length < page) break;
    gt = kvs[kvs.length - 1].key;
  }
  await finishNode();
  await flush();
  return { deleted, nodes };
}

export interface EventGc {
  /** Runs a sweep now (serialised with the periodic ones). */
  sweepNow(): Promise<SweepResult>;
  stop(): Promise<void>;
}

/** Starts periodic sweeps; stop() waits for a sweep in progress. */
export function startEventGc(store: Store, opts: EventGcOptions = {}): EventGc {
  const interval = opts.intervalMs ?? 60_000;
  let running: Promise<SweepResult> | undefined;
  let stopped = false;
  const run = (): Promise<SweepResult> => {
    const p = (running ?? Promise.resolve(undefined))
      .catch(() => undefined)
      .then(() => sweepEvents(store, opts));
    running = p;
    return p;
  };
  const timer = setInterval(() => {
    if (stopped) return;
    run().catch((err: Error) => opts.onError?.(err));
  }, interval);
  timer.unref();
  return {
    sweepNow: run,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await running?.catch(() => undefined);
    },
  };
}
