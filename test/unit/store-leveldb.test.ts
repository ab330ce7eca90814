/** LevelStore behaviour beyond the shared conformance suite: group commit, trimming, locking, reopen. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LevelStore, StoreLockedError } from '../../src/store/leveldb.js';
import { openStore } from '../../src/store/index.js';
import { CompactedError, type ChangeSet, type CommitResult, type Store } from '../../src/store/types.js';
import { withDir, withStore } from '../helpers/level-store.js';

/** Collects the revisions a watcher delivers, or the error that ended it. */
function watchAll(store: Store, fromRevision: number): { revs: number[]; error: Promise<Error>; upTo(rev: number): Promise<void> } {
  const revs: number[] = [];
  let fail: (e: Error) => void = () => undefined;
  const error = new Promise<Error>((resolve) => (fail = resolve));
  const waiters: Array<[number, () => void]> = [];
  const w = store.watch({ fromRevision }, {
    onChange: (set: ChangeSet) => {
      revs.push(set.revision);
      for (const [rev, wake] of waiters) if (set.revision >= rev) wake();
    },
    onError: (e) => fail(e),
  });
  return {
    revs,
    error: error.finally(() => w.close()),
    upTo: (rev) =>
      revs.length > 0 && (revs.at(-1) as number) >= rev ? Promise.resolve() : new Promise((resolve) => waiters.push([rev, resolve])),
  };
}

describe('LevelStore', () => {
  it('creates a missing directory and recovers revision and compaction point on reopen', () =>
    withDir('level', async (base) => {
      const dir = join(base, 'nested', 'store');
      await withStore(dir, async (s) => {
        assert.ok((await stat(dir)).isDirectory());
        for (let i = 0; i < 7; i++) await s.commit({ ops: [{ type: 'put', key: `k/${i}`, value: String(i) }] });
        await s.compact(3);
      });
      await withStore(dir, async (s) => {
        assert.equal(await s.revision(), 7);
        assert.equal(s.compactedRevision(), 3);
        assert.equal(await s.count('k/'), 7);
        const r = await s.commit({ ops: [{ type: 'put', key: 'k/0', value: 'again' }] });
        assert.deepEqual(r, { ok: true, revision: 8 });
        assert.deepEqual(await s.get('k/0'), { key: 'k/0', value: 'again', createRevision: 1, modRevision: 8 });
      });
    }));

  it('refuses a directory that is already open, with a clear error', () =>
    withDir('level', async (dir) => {
      await withStore(dir, async (s) => {
        await assert.rejects(LevelStore.open(dir), (err: Error) => {
          assert.ok(err instanceof StoreLockedError);
          assert.match(err.message, /in use by another process/);
          assert.match(err.message, new RegExp(dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
          return true;
        });
        // The holder is unaffected.
        assert.equal((await s.commit({ ops: [{ type: 'put', key: 'a', value: '1' }] })).ok, true);
      });
      // Once closed, the directory can be opened again.
      assert.equal(await withStore(dir, (again) => again.revision()), 1);
    }));

  it('group-commits 200 concurrent synced creates into a few write batches', () =>
    withDir('level', async (dir) => {
      await withStore(dir, async (s) => {
        const results = await Promise.all(
          Array.from({ length: 200 }, (_, i) =>
            s.commit({
              preconditions: [{ key: `nic/${i}`, absent: true }],
              ops: [
                { type: 'put', key: `nic/${i}`, value: '{}' },
                { type: 'put', key: `ip/${i}`, value: `nic/${i}` },
              ],
            }),
          ),
        );
        assert.deepEqual(results.map((r) => r.revision).sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i + 1));
        assert.ok(results.every((r) => r.ok));
        const st = s.stats();
        assert.equal(st.commits, 200);
        // The first commit goes alone; everything queued behind it shares the next batch.
        assert.ok(st.writeBatches <= 10, `expected group commit, got ${st.writeBatches} batches`);
        assert.equal(await s.count('nic/'), 200);
      }, { sync: true });
    }));

  it('evaluates each commit of a group against the ones before it', () =>
    withDir('level', async (dir) => {
      await withStore(dir, async (s) => {
        // The first commit occupies the writer, so the rest queue up as one group.
        const first = s.commit({ ops: [{ type: 'put', key: 'warmup', value: '' }] });
        const group: Promise<CommitResult>[] = [
          s.commit({ preconditions: [{ key: 'x', absent: true }], ops: [{ type: 'put', key: 'x', value: 'a' }] }),
          s.commit({ preconditions: [{ key: 'x', absent: true }], ops: [{ type: 'put', key: 'x', value: 'b' }] }),
          s.commit({ preconditions: [{ key: 'x', modRevision: 2 }], ops: [{ type: 'put', key: 'x', value: 'c' }] }),
          s.commit({ preconditions: [{ key: 'x', value: 'c' }], ops: [{ type: 'del', key: 'x' }] }),
          s.commit({ preconditions: [{ key: 'x', absent: true }], ops: [{ type: 'put', key: 'x', value: 'd' }] }),
        ];
        assert.equal((await first).revision, 1);
        assert.deepEqual(await Promise.all(group), [
          { ok: true, revision: 2 },
          { ok: false, failed: [0], revision: 2 },
          { ok: true, revision: 3 },
          { ok: true, revision: 4 },
          { ok: true, revision: 5 },
        ]);
        assert.equal(s.stats().writeBatches, 2);
        assert.equal(s.stats().failedCommits, 1);
        // Deleted and recreated inside one group: createRevision restarts.
        assert.deepEqual(await s.get('x'), { key: 'x', value: 'd', createRevision: 5, modRevision: 5 });
        const w = watchAll(s, 2);
        await w.upTo(5);
        assert.deepEqual(w.revs, [2, 3, 4, 5]);
      });
    }));

  it('trims history beyond retainRevisions automatically and keeps the recent part', () =>
    withDir('level', async (dir) => {
      // Closing waits for background trimming.
      const compacted = await withStore(dir, async (s) => {
        for (let i = 1; i <= 60; i++) await s.commit({ ops: [{ type: 'put', key: 'k', value: String(i) }] });
        const at = s.compactedRevision();
        assert.ok(at >= 60 - 10 - 1 && at <= 50, `compacted at ${at}`);
        assert.ok((await watchAll(s, 1).error) instanceof CompactedError);
        const recent = watchAll(s, 51);
        await recent.upTo(60);
        assert.deepEqual(recent.revs, Array.from({ length: 10 }, (_, i) => 51 + i));
        return at;
      }, { retainRevisions: 10 });

      // The trimmed point was persisted; what is kept is still replayable.
      await withStore(dir, async (s) => {
        assert.equal(s.compactedRevision(), compacted);
        assert.ok((await watchAll(s, compacted).error) instanceof CompactedError);
        const kept = watchAll(s, compacted + 1);
        await kept.upTo(60);
        assert.equal(kept.revs.length, 60 - compacted);
      }, { retainRevisions: 1000 });
    }));

  it('works with sync turned off', () =>
    withDir('level', async (dir) => {
      await withStore(dir, (s) => Promise.all(Array.from({ length: 50 }, (_, i) => s.commit({ ops: [{ type: 'put', key: `n/${i}`, value: '' }] }))), { sync: false });
      await withStore(dir, async (s) => {
        assert.equal(await s.count('n/'), 50);
        assert.equal(await s.revision(), 50);
      });
    }));

  it('is healthy while open and not after close', () =>
    withDir('level', async (dir) => {
      const s = await LevelStore.open(dir);
      assert.equal(await s.healthy(), true);
      await s.close();
      assert.equal(await s.healthy(), false);
    }));
});

describe('openStore', () => {
  it('opens memory and leveldb stores', () =>
    withDir('level', async (dir) => {
      const mem = await openStore({ kind: 'memory' });
      assert.equal(mem.kind, 'memory');
      await mem.close();
      const lvl = await openStore({ kind: 'leveldb', dir, retainRevisions: 5 });
      assert.equal(lvl.kind, 'leveldb');
      assert.equal((await lvl.commit({ ops: [{ type: 'put', key: 'a', value: '1' }] })).revision, 1);
      await lvl.close();
    }));

  it('says clearly when etcd cannot be reached', async () => {
    await assert.rejects(openStore({ kind: 'etcd', endpoints: ['http://127.0.0.1:1'], retryTimeoutMs: 200 }), /cannot open etcd store at http:\/\/127\.0\.0\.1:1/);
  });

  it('rejects a leveldb config without a directory', async () => {
    await assert.rejects(openStore({ kind: 'leveldb', dir: '' }), /needs a directory/);
  });
});
