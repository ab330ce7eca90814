/**
 * LevelStore's read cache and group commit edge cases: a read racing a commit never
 * leaves a stale value behind, cached reads follow the writer, a failed group write fails
 * every member and writes nothing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelStore } from '../../src/store/leveldb.js';
import { ReadCache } from '../../src/store/read-cache.js';
import type { CommitResult } from '../../src/store/types.js';

async function withDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'rhumb-level-cache-'));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

type Callback = (err?: Error | null, value?: unknown) => void;
/** The slice of the private leveldown handle the tests intercept. */
interface DbHooks {
  getMany(keys: string[], opts: object): Promise<unknown[]>;
  batch(ops: unknown[], opts: object, cb: Callback): void;
}
const dbOf = (s: LevelStore): DbHooks => (s as unknown as { db: DbHooks }).db;

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

describe('LevelStore read cache', () => {
  it('a read that started before a commit landed does not leave its old value cached', () =>
    withDir(async (dir) => {
      let s = await LevelStore.open(dir);
      await s.commit({ ops: [{ type: 'put', key: 'k', value: 'v1' }] });
      await s.close();
      s = await LevelStore.open(dir); // empty cache
      try {
        const db = dbOf(s);
        const realGetMany = db.getMany.bind(db);
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        let reads = 0;
        db.getMany = async (keys, opts) => {
          // Count at the call, not at completion: the commit's own read may finish first
          // on another thread-pool thread, and holding it would deadlock the commit.
          const nth = reads++;
          const values = await realGetMany(keys, opts);
          if (nth === 0) await held;
          return values;
        };
        const early = s.get('k'); // reads v1 now, answers after the commit below
        await new Promise((r) => setImmediate(r));
        assert.equal((await s.commit({ ops: [{ type: 'put', key: 'k', value: 'v2' }] })).ok, true);
        release();
        assert.equal((await early)?.value, 'v1');
        db.getMany = realGetMany;
        assert.equal((await s.get('k'))?.value, 'v2');
        assert.equal((await s.getMany(['k'])).get('k')?.value, 'v2');
      } finally {
        await s.close();
      }
    }));

  it('point reads missing the cache in one event-loop turn share one database read', () =>
    withDir(async (dir) => {
      const s = await LevelStore.open(dir);
      try {
        await s.commit({ ops: [{ type: 'put', key: 'a', value: '1' }, { type: 'put', key: 'b', value: '2' }] });
        await s.close();
      } catch (err) {
        await s.close();
        throw err;
      }
      const t = await LevelStore.open(dir); // empty cache
      try {
        const db = dbOf(t);
        const realGetMany = db.getMany.bind(db);
        const calls: string[][] = [];
        db.getMany = (keys, opts) => {
          calls.push(keys);
          return realGetMany(keys, opts);
        };
        const got = await Promise.all([t.get('a'), t.get('b'), t.get('a'), t.get('nope')]);
        assert.deepEqual(got.map((kv) => kv?.value), ['1', '2', '1', undefined]);
        assert.deepEqual(calls, [['d/a', 'd/b', 'd/nope']]);
        // Now cached, absence included: no further database reads.
        assert.equal((await t.get('nope')), undefined);
        assert.equal((await t.get('b'))?.value, '2');
        assert.equal(calls.length, 1);
      } finally {
        await t.close();
      }
    }));

  it('cached values follow commits; a group whose keys are all cached reads nothing from disk', () =>
    withDir(async (dir) => {
      const s = await LevelStore.open(dir);
      try {
        await s.commit({ ops: [{ type: 'put', key: 'a', value: '1' }, { type: 'put', key: 'b', value: '1' }] });
        assert.equal((await s.get('a'))?.value, '1');
        assert.equal(await s.get('missing'), undefined);
        const db = dbOf(s);
        const realGetMany = db.getMany.bind(db);
        let diskReads = 0;
        db.getMany = (keys, opts) => {
          diskReads++;
          return realGetMany(keys, opts);
        };
        const r = await s.commit({
          preconditions: [{ key: 'a', modRevision: 1 }, { key: 'missing', absent: true }],
          ops: [{ type: 'put', key: 'a', value: '2' }, { type: 'put', key: 'missing', value: 'now' }],
        });
        assert.deepEqual(r, { ok: true, revision: 2 });
        assert.equal(diskReads, 0);
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
      } finally {
        await s.close();
      }
    }));
});

describe('LevelStore group commit', () => {
  it('a group whose write fails fails every member and writes nothing', () =>
    withDir(async (dir) => {
      let s = await LevelStore.open(dir);
      try {
        await s.commit({ ops: [{ type: 'put', key: 'x', value: 'before' }] });
        assert.equal((await s.get('x'))?.value, 'before');
        const db = dbOf(s);
        const realBatch = db.batch.bind(db);
        let release!: () => void;
        const gate = new Promise<void>((r) => (release = r));
        let batches = 0;
        db.batch = (ops, opts, cb) => {
          batches++;
          // The first batch (one commit) holds the writer so the next three queue as one group;
          // that group's write fails.
          if (batches === 1) return void gate.then(() => realBatch(ops, opts, cb));
          cb(new Error('disk on fire'));
        };
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
        assert.equal(batches, 2, 'the three queued commits were written as one group');
        for (const r of results) {
          assert.equal(r.status, 'rejected');
          assert.match(((r as PromiseRejectedResult).reason as Error).message, /disk on fire/);
        }
        // Nothing of the group is visible: not through the cache, not on disk, no revision.
        assert.equal((await s.get('x'))?.value, 'before');
        assert.equal(await s.get('y'), undefined);
        assert.equal(await s.revision(), 2);
        assert.equal(await s.healthy(), false);
        db.batch = realBatch;
      } finally {
        await s.close();
      }
      s = await LevelStore.open(dir);
      try {
        assert.equal(await s.revision(), 2);
        assert.equal((await s.get('x'))?.value, 'before');
        assert.equal(await s.get('y'), undefined);
        assert.equal((await s.get('first'))?.value, '1');
      } finally {
        await s.close();
      }
    }));
});
