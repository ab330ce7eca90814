/** Pure helpers shared by every Store backend. */
import type { Batch, ChangeSet, KeyValue, Precondition, RangeOptions } from './types.js';

export class InvalidBatchError extends Error {
  readonly code = 'InvalidBatch';
  constructor(message: string) {
    super(message);
    this.name = 'InvalidBatchError';
  }
}

/** Rejects batches no backend could apply atomically or unambiguously. */
export function validateBatch(batch: Batch): void {
  if (!Array.isArray(batch.ops)) throw new InvalidBatchError('batch.ops must be an array');
  const seen = new Set<string>();
  for (const op of batch.ops) {
    if (typeof op.key !== 'string' || op.key.length === 0) throw new InvalidBatchError('every op needs a non-empty key');
    if (seen.has(op.key)) throw new InvalidBatchError(`key ${op.key} appears twice in one batch`);
    seen.add(op.key);
    if (op.type === 'put' && typeof op.value !== 'string') throw new InvalidBatchError(`put ${op.key}: value must be a string`);
    if (op.type !== 'put' && op.type !== 'del') throw new InvalidBatchError(`unknown op type for ${(op as { key: string }).key}`);
  }
}

/** Indexes of the preconditions that do not hold, given a reader of current state. */
export function checkPreconditions(
  pre: Precondition[],
  read: (key: string) => KeyValue | undefined,
): number[] {
  const failed: number[] = [];
  pre.forEach((p, i) => {
    const kv = read(p.key);
    if (!preconditionHolds(p, kv)) failed.push(i);
  });
  return failed;
}

export function preconditionHolds(p: Precondition, kv: KeyValue | undefined): boolean {
  if ('absent' in p) return kv === undefined;
  if ('present' in p) return kv !== undefined;
  if ('modRevision' in p) return kv !== undefined && kv.modRevision === p.modRevision;
  return kv !== undefined && kv.value === p.value;
}

export function inRange(key: string, opts: RangeOptions): boolean {
  if (opts.prefix !== undefined && !key.startsWith(opts.prefix)) return false;
  if (opts.gte !== undefined && key < opts.gte) return false;
  if (opts.gt !== undefined && key <= opts.gt) return false;
  if (opts.lt !== undefined && key >= opts.lt) return false;
  return true;
}

/** The part of a change set under prefix, or null when nothing under it changed. */
export function filterChangeSet(set: ChangeSet, prefix: string): ChangeSet | null {
  if (prefix === '') return set;
  const changes = set.changes.filter((c) => c.key.startsWith(prefix));
  return changes.length > 0 ? { revision: set.revision, changes } : null;
}
