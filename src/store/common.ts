/** Pure helpers shared by every Store backend. */
import { type Batch, type ChangeSet, type KeyValue, type Precondition, type RangeOptions, type RangeUnwritten, type WatchOptions, isRangePrecondition } from './types.js';

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
  for (const p of batch.preconditions ?? []) {
    if (!isRangePrecondition(p)) continue;
    if (typeof p.prefix !== 'string' || p.prefix === '') throw new InvalidBatchError('a range precondition needs a non-empty prefix');
    if (!Number.isInteger(p.noWritesAfter) || p.noWritesAfter < 0) {
      throw new InvalidBatchError(`range precondition on ${p.prefix}: noWritesAfter must be a non-negative integer`);
    }
  }
}

/**
 * Current state as a commit sees it: a key's value, and whether a key under a prefix was
 * last written after a revision.
 */
export interface PreconditionState {
  read(key: string): KeyValue | undefined;
  writtenAfter(prefix: string, revision: number): boolean;
}

/** Indexes of the preconditions that do not hold, given a reader of current state. */
export function checkPreconditions(pre: Precondition[], state: PreconditionState): number[] {
  const failed: number[] = [];
  pre.forEach((p, i) => {
    const holds = isRangePrecondition(p) ? !state.writtenAfter(p.prefix, p.noWritesAfter) : preconditionHolds(p, state.read(p.key));
    if (!holds) failed.push(i);
  });
  return failed;
}

export function preconditionHolds(p: Exclude<Precondition, RangeUnwritten>, kv: KeyValue | undefined): boolean {
  if ('absent' in p) return kv === undefined;
  if ('present' in p) return kv !== undefined;
  if ('modRevision' in p) return kv !== undefined && kv.modRevision === p.modRevision;
  return kv !== undefined && kv.value === p.value;
}

/** The keys a batch's preconditions name (range preconditions name none). */
export function preconditionKeys(pre: readonly Precondition[]): string[] {
  const keys: string[] = [];
  for (const p of pre) if (!isRangePrecondition(p)) keys.push(p.key);
  return keys;
}

export function inRange(key: string, opts: RangeOptions): boolean {
  if (opts.prefix !== undefined && !key.startsWith(opts.prefix)) return false;
  if (opts.gte !== undefined && compareKeys(key, opts.gte) < 0) return false;
  if (opts.gt !== undefined && compareKeys(key, opts.gt) <= 0) return false;
  if (opts.lt !== undefined && compareKeys(key, opts.lt) >= 0) return false;
  return true;
}

/** Rejects range options whose meaning would differ between backends. */
export function validateRangeOptions(opts: RangeOptions): void {
  if (opts.limit !== undefined && !(Number.isInteger(opts.limit) && opts.limit >= 0)) {
    throw new RangeError(`range limit must be a non-negative integer (got ${opts.limit})`);
  }
}

/**
 * Key order as the persistent backends see it: UTF-8 bytewise, which is code point order.
 * Plain `<` compares UTF-16 code units, which puts characters above U+FFFF (surrogate
 * pairs) before U+E000..U+FFFF; remap so every backend agrees.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/** The part of a change set under prefix, or null when nothing under it changed. */
export function filterChangeSet(set: ChangeSet, prefix: string): ChangeSet | null {
  if (prefix === '') return set;
  const changes = set.changes.filter((c) => c.key.startsWith(prefix));
  return changes.length > 0 ? { revision: set.revision, changes } : null;
}

/** The prefixes a watch selects ('' selects everything). */
export function watchedPrefixes(opts: Pick<WatchOptions, 'prefix' | 'prefixes'>): string[] {
  const list = opts.prefixes !== undefined ? [...opts.prefixes] : [opts.prefix ?? ''];
  if (list.length === 0) throw new RangeError('watch prefixes must not be empty');
  return list.includes('') ? [''] : list;
}

/**
 * What a watcher with these options is handed of a committed set: the changes under its
 * prefixes, an empty set when it asked for progress, or null.
 */
export function watchFilter(opts: Pick<WatchOptions, 'prefix' | 'prefixes' | 'progress'>): (set: ChangeSet) => ChangeSet | null {
  const prefixes = watchedPrefixes(opts);
  const progress = opts.progress === true;
  if (prefixes.length === 1) {
    const only = prefixes[0];
    return (set) => filterChangeSet(set, only) ?? (progress ? { revision: set.revision, changes: [] } : null);
  }
  return (set) => {
    const changes = set.changes.filter((c) => prefixes.some((p) => c.key.startsWith(p)));
    if (changes.length > 0) return { revision: set.revision, changes };
    return progress ? { revision: set.revision, changes: [] } : null;
  };
}

/** Operations still running against a backend, so close() can wait for them before tearing it down. */
export class InFlight {
  private readonly ops = new Set<Promise<unknown>>();

  track<T>(p: Promise<T>): Promise<T> {
    this.ops.add(p);
    const done = (): void => void this.ops.delete(p);
    p.then(done, done);
    return p;
  }

  /** Resolves once everything tracked so far has settled (never rejects). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.ops]);
  }
}
