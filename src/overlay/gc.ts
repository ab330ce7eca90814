/**
 * The log sweep: keeps the shootdown log (src/overlay/log.ts) bounded. Each pass asks the
 * in-memory log (the mapping index's) what nobody needs any more and commits that:
 * - log entries every recipient has removed, or older than maxAgeMs (default 24 h);
 * - gone records no stored entry falls into any more;
 * - node states of nodes on no vnet; and, for a node with more than maxPerNode pending
 *   events (a dead or stuck node), a state whose cursor drops the oldest.
 * Deletes carry `present` preconditions and state writes the state's revision, so
 * replicas sweeping at once do not write twice: the loser's commit fails and changes
 * nothing. Keys of the earlier per-node event format (ovl/ev/, ovl/vgen/) are deleted too.
 *
 * Mappings need no sweeping: NIC deletes remove them outright (no tombstones).
 */
import { LEGACY_PREFIXES, nodeStateKey } from './keys.js';
import type { TrimOptions, TrimPlan } from './log.js';
import type { Op, Precondition, Store } from '../store/types.js';

export interface LogSweepSource {
  /** What may go now; null while the source is not caught up with the store. */
  trimPlan(opts: TrimOptions): TrimPlan | null;
}

export interface LogSweepOptions {
  /** Log entries older than this are deleted (default 24 h). */
  maxAgeMs?: number;
  /** At most this many pending events are kept per node, the newest (default 10,000). */
  maxPerNode?: number;
  /** Time between sweeps (default 5 s). */
  intervalMs?: number;
  /** Keys per delete batch (kept under etcd's default of 128 operations per transaction). */
  batchSize?: number;
  now?: () => number;
  onError?: (err: Error) => void;
}

export const DEFAULT_EVENT_MAX_AGE_MS = 24 * 3600 * 1000;
export const DEFAULT_EVENTS_PER_NODE = 10_000;

export interface SweepResult {
  /** Log entries and gone records deleted. */
  deleted: number;
  /** Node states rewritten or deleted. */
  states: number;
  /** Keys of the earlier format deleted. */
  legacy: number;
}

/** One pass: commits the source's trim plan. */
export async function sweepLog(store: Store, source: LogSweepSource, opts: LogSweepOptions = {}): Promise<SweepResult> {
  const batchSize = Math.min(opts.batchSize ?? 100, 100);
  const result: SweepResult = { deleted: 0, states: 0, legacy: await sweepLegacy(store, batchSize) };
  const plan = source.trimPlan({
    nowMs: (opts.now ?? Date.now)(),
    maxAgeMs: opts.maxAgeMs ?? DEFAULT_EVENT_MAX_AGE_MS,
    maxPerNode: opts.maxPerNode ?? DEFAULT_EVENTS_PER_NODE,
  });
  if (!plan) return result;
  let ops: Op[] = [];
  let pre: Precondition[] = [];
  const flush = async (): Promise<void> => {
    if (ops.length === 0) return;
    const batch = { ops, preconditions: pre };
    ops = [];
    pre = [];
    const res = await store.commit(batch);
    if (res.ok) result.deleted += batch.ops.length;
  };
  for (const group of plan.deletes) {
    if (ops.length + group.length > batchSize) await flush();
    for (const key of group) {
      ops.push({ type: 'del', key });
      pre.push({ key, present: true });
    }
  }
  await flush();
  for (let i = 0; i < plan.states.length; i += batchSize) {
    const chunk = plan.states.slice(i, i + batchSize);
    const res = await store.commit({
      preconditions: chunk.map((u) => (u.modRevision > 0 ? { key: nodeStateKey(u.cn), modRevision: u.modRevision } : { key: nodeStateKey(u.cn), absent: true })),
      ops: chunk.map((u): Op => (u.state ? { type: 'put', key: nodeStateKey(u.cn), value: JSON.stringify(u.state) } : { type: 'del', key: nodeStateKey(u.cn) })),
    });
    if (res.ok) result.states += chunk.length;
  }
  return result;
}

async function sweepLegacy(store: Store, batchSize: number): Promise<number> {
  let n = 0;
  for (const prefix of LEGACY_PREFIXES) {
    for (;;) {
      const { kvs } = await store.range({ prefix, limit: batchSize });
      if (kvs.length === 0) break;
      await store.commit({ ops: kvs.map((kv) => ({ type: 'del' as const, key: kv.key })) });
      n += kvs.length;
      if (kvs.length < batchSize) break;
    }
  }
  return n;
}

export interface LogSweep {
  /** Runs a sweep now (serialised with the periodic ones). */
  sweepNow(): Promise<SweepResult>;
  stop(): Promise<void>;
}

/** Starts periodic sweeps; stop() waits for a sweep in progress. */
export function startLogSweep(store: Store, source: LogSweepSource, opts: LogSweepOptions = {}): LogSweep {
  const interval = opts.intervalMs ?? 5000;
  let running: Promise<SweepResult> | undefined;
  let stopped = false;
  const run = (): Promise<SweepResult> => {
    const p = (running ?? Promise.resolve(undefined))
      .catch(() => undefined)
      .then(() => sweepLog(store, source, opts));
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
