/**
 * LevelStore's read cache and group commit edge cases: a read racing a commit never
 * leaves a stale value behind, cached reads follow the writer, a failed group write fails
 * every member and writes nothing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ReadCache } from '../../src/store/read-cache.js';
import { KeyFilter } from '../../src/store/key-filter.js';
import { transact } from '../../src/store/txn.js';
import type { CommitResult } from '../../src/store/types.js';
import { DbTap, seedStore, withDir, withStore } from '../helpers/level-store.js';

describe('ReadCache', () => {
  it('keeps at most capacity entries, evicting the least recently used, and remembers absence', () => {
    const kv = (key: string) => ({ key, value: key, createRevision: 1, modRevision: 1 });
    const c = new ReadCache(10);
    c.store('a', kv('a'));
    c.store('b', undefined);
    assert.equal(c.lookup('b'), null); // cached as absent
    for (let i = 0; i < 8; i++) c.store(`k${i}`, kv(`k${i}`));
    assert.deepEqual(c.lookup('a'), kv('a')); // a is now the most recent
    assert.equal(c.size, 10);
    c.store('c', kv('c')); // one over: down to nine tenths, least recently used first (b, k0)
    assert.equal(c.size, 9);
    assert.equal(c.lookup('b'), undefined);
    assert.equal(c.lookup('k0'), undefined);
    assert.deepEqual(c.lookup('k1'), kv('k1'));
    assert.deepEqual(c.lookup('a'), kv('a'));
    assert.deepEqual(c.lookup('c'), kv('c'));
    for (let i = 0; i < 1000; i++) c.store(`x${i}`, kv(`x${i}`));
    assert.ok(c.size <= 10);
    assert.deepEqual(c.lookup('x999'), kv('x999'));
    const off = new ReadCache(0);
    off.store('a', kv('a'));
    assert.equal(off.lookup('a'), undefined);
  });
});

describe('ReadCache recency', () => {
  it('keeps a key that is looked up now and then, however many others pass through', () => {
    const kv = (key: string) => ({ key, value: key, createRevision: 1, modRevision: 1 });
    const c = new ReadCache(100);
    c.store('hot', kv('hot'));
    for (let i = 0; i < 5000; i++) {
      c.store(`k${i}`, kv(`k${i}`));
      if (i % 10 === 0) assert.deepEqual(c.lookup('hot'), kv('hot'), `hot evicted after ${i} inserts`);
    }
    assert.ok(c.size <= 100);
    // Never looked up again: gone.
    assert.equal(c.lookup('k0'), undefined);
  });
});

describe('LevelStore read cache', () => {
  it('a read that started before a commit landed does not leave its old value cached', () =>
    withDir('level-cache', async (dir) => {
      await seedStore(dir, { ops: [{ type: 'put', key: 'k', value: 'v1' }] });
      await withStore(dir, async (s) => {
        const tap = new DbTap(s);
        const release = tap.holdNextRead();
        const early = s.get('k'); // reads v1 now, answers after the commit below
        await new Promise((r) => setImmediate(r));
        assert.equal((await s.commit({ ops: [{ type: 'put', key: 'k', value: 'v2' }] })).ok, true);
        release();
        assert.equal((await early)?.value, 'v1');
        tap.restore();
        assert.equal((await s.get('k'))?.value, 'v2');
        assert.equal((await s.getMany(['k'])).get('k')?.value, 'v2');
      });
    }));

  it('point reads missing the cache in one event-loop turn share one database read', () =>
    withDir('level-cache', async (dir) => {
      await seedStore(dir, { ops: [{ type: 'put', key: 'a', value: '1' }, { type: 'put', key: 'b', value: '2' }] });
      await withStore(dir, async (t) => {
        const calls = new DbTap(t).recordReads();
        const got = await Promise.all([t.get('a'), t.get('b'), t.get('a'), t.get('nope')]);
        assert.deepEqual(got.map((kv) => kv?.value), ['1', '2', '1', undefined]);
        assert.deepEqual(calls, [['d/a', 'd/b', 'd/nope']]);
        // Now cached, absence included: no further database reads.
        assert.equal((await t.get('nope')), undefined);
        assert.equal((await t.get('b'))?.value, '2');
        assert.equal(calls.length, 1);
      });
    }));

  it('cached values follow commits; a group whose keys are all cached reads nothing from disk', () =>
    withDir('level-cache', async (dir) => {
      await withStore(dir, async (s) => {
        await s.commit({ ops: [{ type: 'put', key: 'a', value: '1' }, { type: 'put', key: 'b', value: '1' }] });
        assert.equal((await s.get('a'))?.value, '1');
        assert.equal(await s.get('missing'), undefined);
        const diskReads = new DbTap(s).recordReads();
        const r = await s.commit({
          preconditions: [{ key: 'a', modRevision: 1 }, { key: 'missing', absent: true }],
          ops: [{ type: 'put', key: 'a', value: '2' }, { type: 'put', key: 'missing', value: 'now' }],
        });
        assert.deepEqual(r, { ok: true, revision: 2 });
        assert.deepEqual(diskReads, []);
        const many = await s.getMany(['a', 'b', 'missing']);
        assert.deepEqual([...many.values()].map((kv) => [kv.key, kv.value, kv.createRevision, kv.modRevision]), [
          ['a', '2', 1, 2],
          ['b', '1', 1, 1],
          ['missing', 'now', 2, 2],
        ]);
        // A stale precondition still fails against the cached state.
        const stale = await s.commit({ preconditions: [{ key: 'a', modRevision: 1 }], ops: [{ type: 'del', key: 'a' }] });
        assert.deepEqual(stale, { ok: false, failed: [0], revision: 2 });
        assert.equal((await s.get('a'))?.value, '2');
      });
    }));
});

describe('LevelStore reads racing commit batches', () => {
  it('a read racing a batch caches the keys that batch does not write, and only those', () =>
    withDir('level-cache', async (dir) => {
      await seedStore(dir, { ops: [{ type: 'put', key: 'w', value: 'old' }, { type: 'put', key: 'other', value: 'o' }] });
      await withStore(dir, async (s) => {
        const tap = new DbTap(s);
        const release = tap.holdFirstBatch();
        // The commit's own group read happens before its batch is issued.
        const committed = s.commit({ ops: [{ type: 'put', key: 'w', value: 'new' }] });
        await new Promise((r) => setTimeout(r, 10));
        const during = await Promise.all([s.get('w'), s.get('other'), s.get('absent')]);
        assert.deepEqual(during.map((kv) => kv?.value), ['old', 'o', undefined]);
        release();
        assert.deepEqual(await committed, { ok: true, revision: 2 });
        tap.restore();
        let diskReads = tap.recordReads();
        assert.equal((await s.get('other'))?.value, 'o');
        assert.equal(await s.get('absent'), undefined);
        assert.deepEqual(diskReads, [], 'keys the racing batch did not write were cached');
        // The written key: the batch itself recorded its new value.
        assert.equal((await s.get('w'))?.value, 'new');
        diskReads = tap.recordReads();
        assert.equal((await s.getMany(['w', 'other'])).get('w')?.value, 'new');
        assert.deepEqual(diskReads, []);
      });
    }));

  it('a read that returns after a later batch wrote its key does not cache the old value', () =>
    withDir('level-cache', async (dir) => {
      await seedStore(dir, { ops: [{ type: 'put', key: 'k', value: 'v1' }] });
      await withStore(dir, async (s) => {
        const tap = new DbTap(s);
        const releaseBatch = tap.holdFirstBatch();
        const first = s.commit({ ops: [{ type: 'put', key: 'unrelated', value: '1' }] }); // batch 1, held
        await new Promise((r) => setTimeout(r, 10));
        const releaseRead = tap.holdNextRead();
        const early = s.get('k'); // snapshot at v1 while batch 1 is in flight; answers late
        await new Promise((r) => setImmediate(r));
        await new Promise((r) => setTimeout(r, 10));
        releaseBatch();
        await first;
        // Batch 2 writes k while the early read is still out.
        assert.equal((await s.commit({ ops: [{ type: 'put', key: 'k', value: 'v2' }] })).ok, true);
        releaseRead();
        assert.equal((await early)?.value, 'v1');
        tap.restore();
        assert.equal((await s.get('k'))?.value, 'v2');
      });
    }));

  it('commits queued behind a busy writer are read ahead, and their group is evaluated from memory', () =>
    withDir('level-cache', async (dir) => {
      await seedStore(dir, { ops: [{ type: 'put', key: 'a', value: '1' }] });
      await withStore(dir, async (s) => {
        const tap = new DbTap(s);
        const release = tap.holdFirstBatch();
        const first = s.commit({ ops: [{ type: 'put', key: 'first', value: '1' }] });
        const group = [
          s.commit({ preconditions: [{ key: 'a', modRevision: 1 }], ops: [{ type: 'put', key: 'a', value: '2' }] }),
          // Sees the write before it in the same group, not the value read ahead.
          s.commit({ preconditions: [{ key: 'a', value: '2' }], ops: [{ type: 'put', key: 'b', value: 'x' }] }),
          s.commit({ preconditions: [{ key: 'a', modRevision: 1 }], ops: [{ type: 'put', key: 'c', value: 'stale' }] }),
          s.commit({ preconditions: [{ key: 'fresh', absent: true }], ops: [{ type: 'put', key: 'fresh', value: 'y' }, { type: 'del', key: 'nothing' }] }),
        ];
        await new Promise((r) => setTimeout(r, 30)); // the read-ahead lands
        const before = s.stats();
        release();
        assert.deepEqual(await first, { ok: true, revision: 2 });
        const results = await Promise.all(group);
        assert.deepEqual(results, [
          { ok: true, revision: 3 },
          { ok: true, revision: 4 },
          { ok: false, failed: [0], revision: 4 },
          { ok: true, revision: 5 },
        ]);
        assert.equal(s.stats().groupReads - before.groupReads, 0, 'the group read nothing from disk');
        assert.equal(s.stats().writeBatches - before.writeBatches, 2);
        tap.restore();
        const got = await s.getMany(['a', 'b', 'c', 'fresh']);
        assert.deepEqual([...got.values()].map((kv) => [kv.key, kv.value, kv.createRevision, kv.modRevision]), [
          ['a', '2', 1, 3],
          ['b', 'x', 4, 4],
          ['fresh', 'y', 5, 5],
        ]);
      });
      await withStore(dir, async (s) => {
        const got = await s.getMany(['a', 'b', 'c', 'fresh']);
        assert.deepEqual([...got.values()].map((kv) => [kv.key, kv.value, kv.modRevision]), [
          ['a', '2', 3],
          ['b', 'x', 4],
          ['fresh', 'y', 5],
        ]);
      });
    }));

  it('concurrent read-modify-write transactions over slow, racing batches lose no update', () =>
    withDir('level-cache', async (dir) => {
      const counters = ['n/0', 'n/1', 'n/2'];
      const WORKERS = 24;
      const EACH = 15;
      await withStore(dir, async (s) => {
        const tap = new DbTap(s);
        // Batches take a while, so reads keep racing them and commits queue into groups.
        tap.db.batch = (ops, opts, cb) => void setTimeout(() => tap.batch(ops, opts, cb), Math.random() * 4);
        let attempts = 0;
        const worker = async (w: number): Promise<void> => {
          for (let i = 0; i < EACH; i++) {
            const key = counters[(w + i) % counters.length];
            await transact(s, async (tx) => {
              attempts++;
              const kv = await tx.get(key);
              // Other keys read and written too, so groups mix hits, misses and fresh keys.
              await tx.get(`noise/${(w * 7 + i) % 40}`);
              tx.put(key, String(Number(kv?.value ?? '0') + 1));
              tx.put(`log/${w}/${i}`, key);
            });
          }
        };
        await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
        assert.ok(attempts > WORKERS * EACH, 'some transactions conflicted and ran again');
        const got = await s.getMany(counters);
        const total = counters.reduce((sum, k) => sum + Number(got.get(k)?.value ?? '0'), 0);
        assert.equal(total, WORKERS * EACH);
        assert.ok(s.stats().largestGroup > 1, 'commits were grouped');
        tap.restore();
      }, { cacheEntries: 50 });
      await withStore(dir, async (s) => {
        const got = await s.getMany(counters);
        assert.equal(counters.reduce((sum, k) => sum + Number(got.get(k)?.value ?? '0'), 0), WORKERS * EACH);
        assert.equal((await s.range({ prefix: 'log/' })).kvs.length, WORKERS * EACH);
      });
    }));
});

describe('LevelStore group commit', () => {
  it('a group whose write fails fails every member and writes nothing', () =>
    withDir('level-cache', async (dir) => {
      await withStore(dir, async (s) => {
        await s.commit({ ops: [{ type: 'put', key: 'x', value: 'before' }] });
        assert.equal((await s.get('x'))?.value, 'before');
        const tap = new DbTap(s);
        // The first batch (one commit) holds the writer so the next three queue as one group;
        // that group's write fails.
        const release = tap.holdFirstBatch((_ops, _opts, cb) => cb(new Error('disk on fire')));
        const first = s.commit({ ops: [{ type: 'put', key: 'first', value: '1' }] });
        const group: Promise<CommitResult>[] = [
          s.commit({ ops: [{ type: 'put', key: 'x', value: 'g1' }] }),
          s.commit({ preconditions: [{ key: 'y', absent: true }], ops: [{ type: 'put', key: 'y', value: 'g2' }] }),
          s.commit({ preconditions: [{ key: 'x', value: 'g1' }], ops: [{ type: 'del', key: 'x' }] }),
        ];
        const settled = Promise.allSettled(group);
        await new Promise((r) => setTimeout(r, 20));
        release();
        assert.deepEqual(await first, { ok: true, revision: 2 });
        const results = await settled;
        assert.equal(tap.batches, 2, 'the three queued commits were written as one group');
        for (const r of results) {
          assert.equal(r.status, 'rejected');
          assert.match(((r as PromiseRejectedResult).reason as Error).message, /disk on fire/);
        }
        // Nothing of the group is visible: not through the cache, not on disk, no revision.
        assert.equal((await s.get('x'))?.value, 'before');
        assert.equal(await s.get('y'), undefined);
        assert.equal(await s.revision(), 2);
        assert.equal(await s.healthy(), false);
        tap.restore();
      });
      await withStore(dir, async (s) => {
        assert.equal(await s.revision(), 2);
        assert.equal((await s.get('x'))?.value, 'before');
        assert.equal(await s.get('y'), undefined);
        assert.equal((await s.get('first'))?.value, '1');
      });
    }));
});

describe('KeyFilter', () => {
  it('never forgets a key it was given, and rarely claims one it was not', () => {
    const f = new KeyFilter(2 ** 20);
    const key = (i: number): string => `napi/idx/nic/belongs_to/be0c0000-0000-4000-8000-${String(i).padStart(12, '0')}/90b8d0${i}`;
    for (let i = 0; i < 50_000; i++) f.add(key(i));
    for (let i = 0; i < 50_000; i++) assert.equal(f.mayContain(key(i)), true, key(i));
    let falsePositives = 0;
    for (let i = 50_000; i < 100_000; i++) if (f.mayContain(key(i))) falsePositives++;
    assert.ok(falsePositives < 500, `${falsePositives} false positives in 50,000 (20 bits a key)`);
    assert.equal(new KeyFilter(0).mayContain('a'), false);
    const tiny = new KeyFilter(1); // 64 bits
    for (let i = 0; i < 100; i++) tiny.add(key(i));
    assert.equal(tiny.mayContain(key(5)), true);
  });
});

describe('LevelStore key filter', () => {
  it('answers reads of keys never written without the database, and finds every stored key after a reopen', () =>
    withDir('level-cache', async (dir) => {
      await seedStore(dir, ...Array.from({ length: 50 }, (_, i) => ({ ops: [{ type: 'put' as const, key: `k/${i}`, value: String(i) }] })), { ops: [{ type: 'del', key: 'k/7' }] });
      // No cache: the filter alone answers.
      await withStore(dir, async (s) => {
        assert.equal(await s.keyFilterLoaded(), true);
        const tap = new DbTap(s);
        let diskReads = tap.recordReads();
        for (let i = 0; i < 200; i++) assert.equal(await s.get(`never/${i}`), undefined);
        assert.equal((await s.getMany(['never/a', 'never/b'])).size, 0);
        assert.ok(diskReads.length <= 2, `${diskReads.length} database reads for 202 keys never written`);
        // Stored keys (and a deleted one, which the filter still holds) are read from the database.
        diskReads = tap.recordReads();
        for (let i = 0; i < 50; i++) assert.equal((await s.get(`k/${i}`))?.value, i === 7 ? undefined : String(i), `k/${i}`);
        assert.ok(diskReads.length > 0);
        // A commit's evaluation needs no read for keys never written either.
        const before = s.stats();
        assert.deepEqual(await s.commit({ preconditions: [{ key: 'fresh', absent: true }], ops: [{ type: 'put', key: 'fresh/idx', value: '' }] }), { ok: true, revision: 52 });
        assert.equal(s.stats().groupReads - before.groupReads, 0);
        tap.restore();
        assert.equal((await s.get('fresh/idx'))?.value, '');
      }, { cacheEntries: 0 });
    }));

  it('a key written while the filter is still loading is found, and a filter too small only costs reads', () =>
    withDir('level-cache', async (dir) => {
      await seedStore(dir, { ops: Array.from({ length: 2000 }, (_, i) => ({ type: 'put' as const, key: `seed/${String(i).padStart(5, '0')}`, value: 'x' })) });
      await withStore(dir, async (s) => {
        // Before the scan can be done: written now, read after the filter is in use.
        await s.commit({ ops: [{ type: 'put', key: 'during/load', value: 'here' }] });
        assert.equal(await s.keyFilterLoaded(), true);
        assert.equal((await s.get('during/load'))?.value, 'here');
        assert.equal((await s.get('seed/01999'))?.value, 'x');
        assert.equal(await s.get('seed/02000'), undefined);
      }, { cacheEntries: 0 });
      // 64 bits for 2,000 keys: every answer is "maybe", and the database decides.
      await withStore(dir, async (s) => {
        assert.equal(await s.keyFilterLoaded(), true);
        assert.equal((await s.get('seed/00042'))?.value, 'x');
        assert.equal(await s.get('absent/really'), undefined);
        const r = await s.commit({ preconditions: [{ key: 'seed/00001', absent: true }], ops: [{ type: 'put', key: 'x', value: '1' }] });
        assert.equal(r.ok, false);
      }, { keyFilterBits: 64 });
    }));
});
