/**
 * Group commit's evaluation, pure: the commits that queued behind one LevelDB write, in
 * order, against the stored state plus the group's own earlier commits. LevelStore reads
 * the state, calls this, and writes what it returns as one batch.
 */
import { checkPreconditions } from './common.js';
import type { Batch, Change, ChangeSet, CommitResult, KeyValue } from './types.js';
/**
 * A group's commits in order against state (the database plus the group's earlier
 * commits, updated in place): each commit's preconditions checked, its ops applied at the
 * next revision. ranges holds the stored keys under each range precondition's prefix.
 */
export function applyGroup(
  group: readonly { batch: Batch }[],
  state: Map<string, KeyValue | undefined>,
  ranges: ReadonlyMap<string, KeyValue[]>,
  from: number,
): { results: CommitResult[]; sets: ChangeSet[]; touched: Set<string>; revision: number } {
  let rev = from;
  const results: CommitResult[] = [];
  const sets: ChangeSet[] = [];
  const touched = new Set<string>();
  for (const { batch } of group) {
    const failed = checkPreconditions(batch.preconditions ?? [], {
      read: (k) => state.get(k),
      // The database's keys of the range as the group's earlier commits left them, and the keys they created.
      writtenAfter: (prefix, revision) => {
        for (const kv of ranges.get(prefix) ?? []) {
          const cur = state.has(kv.key) ? state.get(kv.key) : kv;
          if (cur && cur.modRevision > revision) return true;
        }
        for (const [k, kv] of state) if (kv && kv.modRevision > revision && k.startsWith(prefix)) return true;
        return false;
      },
    });
    if (failed.length > 0) {
      results.push({ ok: false, failed, revision: rev });
      continue;
    }
    rev++;
    const changes: Change[] = [];
    for (const op of batch.ops) {
      const prev = state.get(op.key);
      if (op.type === 'put') {
        state.set(op.key, { key: op.key, value: op.value, createRevision: prev ? prev.createRevision : rev, modRevision: rev });
        changes.push({ type: 'put', key: op.key, value: op.value });
        touched.add(op.key);
      } else if (prev) {
        state.set(op.key, undefined);
        changes.push({ type: 'del', key: op.key });
        touched.add(op.key);
      }
    }
    sets.push({ revision: rev, changes });
    results.push({ ok: true, revision: rev });
  }
  return { results, sets, touched, revision: rev };
}
