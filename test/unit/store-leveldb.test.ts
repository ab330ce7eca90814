/** LevelStore behaviour beyond the shared conformance suite: group commit, trimming, locking, reopen. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelStore, StoreLockedError } from '../../src/store/leveldb.js';
import { openStore } from '../../src/store/index.js';
import { CompactedError, type ChangeSet, type CommitResult, type Store } from '../../src/store/types.js';

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'rhumb-level-'));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

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
    withDir(async (base) => {
      const dir = join(base, 'nested', 'store');
      let s = await LevelStore.open(dir);
      assert.ok((await stat(dir)).isDirectory());
      for (let i = 0; i < 7; i++) await s.commit({ ops: [{ type: 'put', key: `k/${i}`, value: String(i) }] });
      await s.compact(3);
      await s.close();
      s = await LevelStore.open(dir);
      try {
        assert.equal(await s.revision(), 7);
        assert.equal(s.compactedRevision(), 3);
        assert.equal(await s.count('k/'), 7);
        const r = await s.commit({ ops: [{ type: 'put', key: 'k/0', value: 'again' }] });
        assert.deepEqual(r, { ok: true, revision: 8 });
        assert.deepEqual(await s.get('k/0'), { key: 'k/0', value: 'again', createRevision: 1, modRevision: 8 });
      } finally {
        await s.close();
      }
    }));

  it('refuses a directory that is already open, with a clear error', () =>
    withDir(async (dir) => {
      const s = await LevelStore.open(dir);
      try {
        await assert.rejects(LevelStore.open(dir), (err: Error) => {
          assert.ok(err instanceof StoreLockedError);
          assert.match(err.message, /in use by another process/);
          assert.match(err.message, new RegExp(dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
          return true;
        });
        // The holder is unaffected.
        assert.equal((await s.commit({ ops: [{ type: 'put', key: 'a', value: '1' }] })).ok, true);
      } finally {
        await s.close();
      }
      // Once closed, the directory can be opened again.
      const again = await LevelStore.open(dir);
      assert.equal(await again.revision(), 1);
      await again.close();
    }));

  it('group-commits 200 concurrent synced creates into a few write batches', () =>
    withDir(async (dir) => {
      const s = await LevelStore.open(dir, { sync: true });
      try {
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
      } finally {
        await s.close();
      }
    }));

  it('evaluates each commit of a group against the ones before it', () =>
    withDir(async (dir) => {
      const s = await LevelStore.open(dir);
      try {
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
      } finally {
        await s.close();
      }
    }));

  it('trims history beyond retainRevisions automatically and keeps the recent part', () =>
    withDir(async (dir) => {
      let s = await LevelStore.open(dir, { retainRevisions: 10 });
      for (let i = 1; i <= 60; i++) await s.commit({ ops: [{ type: 'put', key: 'k', value: String(i) }] });
      const compacted = s.compactedRevision();
      assert.ok(compacted >= 60 - 10 - 1 && compacted <= 50, `compacted at ${compacted}`);
      assert.ok((await watchAll(s, 1).error) instanceof CompactedError);
      const recent = watchAll(s, 51);
      await recent.upTo(60);
      assert.deepEqual(recent.revs, Array.from({ length: 10 }, (_, i) => 51 + i));
      await s.close(); // waits for background trimming

      // The trimmed point was persisted; what is kept is still replayable.
      s = await LevelStore.open(dir, { retainRevisions: 1000 });
      try {
        assert.equal(s.compactedRevision(), compacted);
        assert.ok((await watchAll(s, compacted).error) instanceof CompactedError);
        const kept = watchAll(s, compacted + 1);
        await kept.upTo(60);
        assert.equal(kept.revs.length, 60 - compacted);
      } finally {
        await s.close();
      }
    }));

  it('works with sync turned off', () =>
    withDir(async (dir) => {
      let s = await LevelStore.open(dir, { sync: false });
      await Promise.all(Array.from({ length: 50 }, (_, i) => s.commit({ ops: [{ type: 'put', key: `n/${i}`, value: '' }] })));
      await s.close();
      s = await LevelStore.open(dir);
      assert.equal(await s.count('n/'), 50);
      assert.equal(await s.revision(), 50);
      await s.close();
    }));

  it('is healthy while open and not after close', () =>
    withDir(async (dir) => {
      const s = await LevelStore.open(dir);
      assert.equal(await s.healthy(), true);
      await s.close();
      assert.equal(await s.healthy(), false);
    }));
});

describe('openStore', () => {
  it('opens memory and leveldb stores', () =>
    withDir(async (dir) => {
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
