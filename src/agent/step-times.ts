/**
 * Where an attach or a detach spends its time: each operation (timedOperation) collects
 * the durations of the steps run inside it (step), across awaits and into the backend,
 * without passing anything down (AsyncLocalStorage). Off unless RHUMB_STEP_TIMES names a
 * file: then one JSON line per operation is appended to it ({op, mac, total, steps:
 * [[name, startMs, durationMs], …]}), which bench/convergence reads. Costs one property
 * read per step when off.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { appendFileSync } from 'node:fs';

interface Operation {
  t0: number;
  steps: Array<[string, number, number]>;
}

const current = new AsyncLocalStorage<Operation>();
const target = process.env.RHUMB_STEP_TIMES || undefined;

/** Runs fn as one step of the operation in progress (if any is being timed). */
export async function step<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const op = target === undefined ? undefined : current.getStore();
  if (!op) return fn();
  const t = performance.now();
  try {
    return await fn();
  } finally {
    op.steps.push([name, round(t - op.t0), round(performance.now() - t)]);
  }
}

/** Runs fn as an operation whose steps are timed and written out when it ends. */
export async function timedOperation<T>(op: string, detail: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
  if (target === undefined) return fn();
  const rec: Operation = { t0: performance.now(), steps: [] };
  try {
    return await current.run(rec, fn);
  } finally {
    const line = { op, ...detail, at: performance.timeOrigin + rec.t0, total: round(performance.now() - rec.t0), steps: rec.steps };
    try {
      appendFileSync(target, `${JSON.stringify(line)}\n`);
    } catch {
      // A diagnostic: never fails the operation.
    }
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
