/**
 * The behaviour every Store backend must share. A backend's test file calls
 * runStoreConformance(name, factory); the factory hands out a fresh, empty store per test.
 *
 * Persistent backends also provide reopen(): close the current store and open the same
 * data again (a new LevelStore on the same directory, a new etcd client on the same
 * prefix). Volatile backends leave it out and the persistence test is skipped.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  type Batch,
  type ChangeSet,
  CompactedError,
  type CommitResult,
  type Store,
  StoreClosedError,
  type WatchOptions,
  type Watcher,
} from '../../src/store/types.js';

export interface StoreUnderTest {
  store: Store;
  /** Close `store` and open the same backend data again; the returned store replaces it. */
  reopen?: () => Promise<Store>;
  /** Close whatever is open and remove everything the factory created. */
  cleanup(): Promise<void>;
}

export type StoreFactory = () => Promise<StoreUnderTest>;

const WAIT_MS = 10_000;

function put(key: string, value: string): Batch {
  return { ops: [{ type: 'put', key, value }] };
}

async function ok(p: Promise<CommitResult>): Promise<number> {
  const r = await p;
  assert.equal(r.ok, true, `commit failed: ${JSON.stringify(r)}`);
  return r.revision;
}

/** Collects a watcher's change sets and lets a test wait for a revision to arrive. */
class Collector {
  readonly sets: ChangeSet[] = [];
  error: Error | null = null;
  readonly watcher: Watcher;
  private waiters: Array<() => void> = [];

  constructor(store: Store, opts: WatchOptions, onChange?: (set: ChangeSet) => Promise<void>) {
    this.watcher = store.watch(opts, {
      onChange: async (set) => {
        if (onChange) await onChange(set);
        this.sets.push(set);
        this.wake();
      },
      onError: (err) => {
        this.error = err;
        this.wake();
      },
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private async until(cond: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + WAIT_MS;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error(`watcher: timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  /** Resolves once a set at or beyond rev has been delivered. */
  untilRevision(rev: number): Promise<void> {
    return this.until(() => this.sets.length > 0 && (this.sets.at(-1) as ChangeSet).revision >= rev, `revision ${rev}`);
  }

  untilError(): Promise<Error> {
    return this.until(() => this.error !== null, 'an error').then(() => this.error as Error);
  }

  revisions(): number[] {
    return this.sets.map((s) => s.revision);
  }
}

/** Polls until cond holds (fails the test after WAIT_MS; not a timing assertion). */
async function eventually(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

export function runStoreConformance(name: string, factory: StoreFactory): void {
  /** Runs a test body against a fresh store and always cleans up. */
  function withStore(body: (store: Store, h: StoreUnderTest) => Promise<void>): () => Promise<void> {
    return async () => {
      const h = await factory();
      try {
        await body(h.store, h);
      } finally {
        await h.cleanup();
      }
    };
  }

  describe(`Store conformance: ${name}`, () => {
    describe('basic reads and writes', () => {
      it('starts empty at revision 0', withStore(async (s) => {
        assert.equal(await s.revision(), 0);
        assert.equal(await s.get('nothing'), undefined);
        assert.deepEqual(await s.range({}), { kvs: [], revision: 0 });
        assert.equal(await s.count(''), 0);
        assert.equal(await s.healthy(), true);
      }));

      it('put, get, overwrite and delete', withStore(async (s) => {
        const r1 = await ok(s.commit(put('a', 'one')));
        assert.equal(r1, 1);
        assert.deepEqual(await s.get('a'), { key: 'a', value: 'one', createRevision: 1, modRevision: 1 });
        const r2 = await ok(s.commit(put('a', 'two')));
        assert.deepEqual(await s.get('a'), { key: 'a', value: 'two', createRevision: 1, modRevision: r2 });
        const r3 = await ok(s.commit({ ops: [{ type: 'del', key: 'a' }] }));
        assert.equal(r3, r2 + 1);
        assert.equal(await s.get('a'), undefined);
        assert.equal(await s.revision(), r3);
      }));

      it('recreating a deleted key resets createRevision', withStore(async (s) => {
        await ok(s.commit(put('k', 'v1')));
        await ok(s.commit(put('k', 'v2')));
        await ok(s.commit({ ops: [{ type: 'del', key: 'k' }] }));
        const r = await ok(s.commit(put('k', 'v3')));
        assert.deepEqual(await s.get('k'), { key: 'k', value: 'v3', createRevision: r, modRevision: r });
      }));

      it('stores arbitrary strings as keys and values', withStore(async (s) => {
        const value = JSON.stringify({ text: 'ünïcödé ✓ 😀', nl: 'a\nb', nul: '\u0000' });
        await ok(s.commit(put('weird/ключ/😀', value)));
        assert.equal((await s.get('weird/ключ/😀'))?.value, value);
        await ok(s.commit(put('empty-value', '')));
        assert.equal((await s.get('empty-value'))?.value, '');
      }));

      it('getMany reads several keys, omitting missing ones', withStore(async (s) => {
        await ok(s.commit({ ops: [{ type: 'put', key: 'x', value: '1' }, { type: 'put', key: 'y', value: '2' }] }));
        const m = await s.getMany(['x', 'missing', 'y', 'x']);
        assert.deepEqual([...m.keys()].sort(), ['x', 'y']);
        assert.equal(m.get('x')?.value, '1');
        assert.equal(m.get('y')?.modRevision, 1);
        assert.equal((await s.getMany([])).size, 0);
      }));

      it('getMany never mixes revisions of one batch', withStore(async (s) => {
        const writes: Promise<CommitResult>[] = [];
        for (let i = 1; i <= 100; i++) {
          writes.push(s.commit({ ops: [{ type: 'put', key: 'p', value: String(i) }, { type: 'put', key: 'q', value: String(i) }] }));
        }
        const reads: Promise<Map<string, { value: string }>>[] = [];
        for (let i = 0; i < 30; i++) reads.push(s.getMany(['p', 'q']));
        await Promise.all(writes);
        for (const m of await Promise.all(reads)) {
          assert.equal(m.get('p')?.value, m.get('q')?.value);
        }
      }));
    });

    describe('range and count', () => {
      const keys = ['a', 'a/1', 'a/2', 'a/3', 'a/30', 'b/1', 'b/2', 'c'];
      async function seed(s: Store): Promise<void> {
        await ok(s.commit({ ops: keys.map((key) => ({ type: 'put' as const, key, value: `v:${key}` })) }));
      }
      const names = (r: { kvs: { key: string }[] }): string[] => r.kvs.map((kv) => kv.key);

      it('returns everything in key order', withStore(async (s) => {
        // Commit in shuffled order: order must come from the keys, not insertion.
        await ok(s.commit({ ops: [...keys].reverse().map((key) => ({ type: 'put' as const, key, value: `v:${key}` })) }));
        const r = await s.range({});
        assert.deepEqual(names(r), keys);
        assert.equal(r.kvs[0]?.value, 'v:a');
        assert.equal(r.revision, 1);
      }));

      it('prefix, gte, gt, lt, limit and reverse', withStore(async (s) => {
        await seed(s);
        assert.deepEqual(names(await s.range({ prefix: 'a/' })), ['a/1', 'a/2', 'a/3', 'a/30']);
        assert.deepEqual(names(await s.range({ prefix: 'a/', gte: 'a/2' })), ['a/2', 'a/3', 'a/30']);
        assert.deepEqual(names(await s.range({ prefix: 'a/', gt: 'a/2' })), ['a/3', 'a/30']);
        assert.deepEqual(names(await s.range({ prefix: 'a/', lt: 'a/3' })), ['a/1', 'a/2']);
        assert.deepEqual(names(await s.range({ gte: 'a/2', lt: 'b/2' })), ['a/2', 'a/3', 'a/30', 'b/1']);
        assert.deepEqual(names(await s.range({ gt: 'a/30' })), ['b/1', 'b/2', 'c']);
        assert.deepEqual(names(await s.range({ prefix: 'a/', limit: 2 })), ['a/1', 'a/2']);
        assert.deepEqual(names(await s.range({ prefix: 'a/', reverse: true })), ['a/30', 'a/3', 'a/2', 'a/1']);
        assert.deepEqual(names(await s.range({ prefix: 'a/', reverse: true, limit: 2 })), ['a/30', 'a/3']);
        assert.deepEqual(names(await s.range({ prefix: 'b/', lt: 'b/2', reverse: true })), ['b/1']);
        assert.deepEqual(names(await s.range({ prefix: 'a/', limit: 0 })), []);
        // Bounds outside the prefix narrow nothing / select nothing.
        assert.deepEqual(names(await s.range({ prefix: 'b/', gte: 'a' })), ['b/1', 'b/2']);
        assert.deepEqual(names(await s.range({ prefix: 'b/', gt: 'c' })), []);
        assert.deepEqual(names(await s.range({ prefix: 'zzz' })), []);
        assert.deepEqual(names(await s.range({ gte: 'b', lt: 'a' })), []);
      }));

      it('pages through a prefix with gt + limit', withStore(async (s) => {
        const all = range(0, 24).map((i) => `page/${String(i).padStart(3, '0')}`);
        await ok(s.commit({ ops: all.map((key) => ({ type: 'put' as const, key, value: '' })) }));
        const seen: string[] = [];
        let after: string | undefined;
        for (;;) {
          const r = await s.range({ prefix: 'page/', limit: 7, ...(after !== undefined ? { gt: after } : {}) });
          if (r.kvs.length === 0) break;
          seen.push(...names(r));
          after = r.kvs.at(-1)?.key;
        }
        assert.deepEqual(seen, all);
      }));

      it('orders keys by UTF-8 bytes (code points), not UTF-16 units', withStore(async (s) => {
        await ok(s.commit({ ops: ['u/\uffff', 'u/😀', 'u/é', 'u/z'].map((key) => ({ type: 'put' as const, key, value: '' })) }));
        assert.deepEqual(names(await s.range({ prefix: 'u/' })), ['u/z', 'u/é', 'u/\uffff', 'u/😀']);
        assert.deepEqual(names(await s.range({ prefix: 'u/', gt: 'u/\uffff' })), ['u/😀']);
        assert.deepEqual(names(await s.range({ prefix: 'u/', lt: 'u/😀' })), ['u/z', 'u/é', 'u/\uffff']);
      }));

      it('rejects a negative limit', withStore(async (s) => {
        await assert.rejects(s.range({ limit: -1 }));
      }));

      it('count counts keys under a prefix', withStore(async (s) => {
        await seed(s);
        assert.equal(await s.count(''), keys.length);
        assert.equal(await s.count('a'), 5);
        assert.equal(await s.count('a/'), 4);
        assert.equal(await s.count('b/'), 2);
        assert.equal(await s.count('nope'), 0);
        await ok(s.commit({ ops: [{ type: 'del', key: 'a/1' }] }));
        assert.equal(await s.count('a/'), 3);
      }));

      it('reports the exact revision each range reflects, under concurrent commits', withStore(async (s) => {
        const committedAt = new Map<string, number>();
        let writing = true;
        async function writer(w: number): Promise<void> {
          for (let i = 0; i < 40; i++) {
            const key = `r/${w}/${String(i).padStart(3, '0')}`;
            committedAt.set(key, await ok(s.commit(put(key, 'x'))));
          }
        }
        const results: { kvs: { key: string; modRevision: number }[]; revision: number }[] = [];
        async function reader(): Promise<void> {
          while (writing) results.push(await s.range({ prefix: 'r/' }));
        }
        const writers = Promise.all(range(1, 6).map(writer)).finally(() => (writing = false));
        await Promise.all([writers, reader(), reader()]);
        assert.ok(results.length > 0);
        for (const r of results) {
          const expected = [...committedAt].filter(([, rev]) => rev <= r.revision).map(([k]) => k).sort();
          assert.deepEqual(r.kvs.map((kv) => kv.key), expected, `range at revision ${r.revision}`);
          for (const kv of r.kvs) assert.ok(kv.modRevision <= r.revision);
        }
        assert.equal((await s.range({ prefix: 'r/' })).revision, await s.revision());
      }));
    });

    describe('commits', () => {
      it('each precondition kind passes and fails', withStore(async (s) => {
        const r1 = await ok(s.commit(put('k', 'v')));
        const cases: Array<[Batch['preconditions'], boolean]> = [
          [[{ key: 'missing', absent: true }], true],
          [[{ key: 'k', absent: true }], false],
          [[{ key: 'k', present: true }], true],
          [[{ key: 'missing', present: true }], false],
          [[{ key: 'k', modRevision: r1 }], true],
          [[{ key: 'k', modRevision: r1 + 100 }], false],
          [[{ key: 'missing', modRevision: 0 }], false],
          [[{ key: 'k', value: 'v' }], true],
          [[{ key: 'k', value: 'other' }], false],
          [[{ key: 'missing', value: '' }], false],
        ];
        let rev = r1;
        for (const [preconditions, holds] of cases) {
          const r = await s.commit({ preconditions, ops: [{ type: 'put', key: 'log', value: JSON.stringify(preconditions) }] });
          if (holds) {
            assert.deepEqual(r, { ok: true, revision: rev + 1 }, JSON.stringify(preconditions));
            rev++;
          } else {
            assert.deepEqual(r, { ok: false, failed: [0], revision: rev }, JSON.stringify(preconditions));
          }
          // modRevision preconditions above keep referring to k's unchanged revision.
          assert.equal((await s.get('k'))?.modRevision, r1);
        }
      }));

      it('reports every failed precondition index and applies nothing', withStore(async (s) => {
        await ok(s.commit({ ops: [{ type: 'put', key: 'a', value: '1' }, { type: 'put', key: 'b', value: '2' }] }));
        const r = await s.commit({
          preconditions: [
            { key: 'a', value: '1' }, // holds
            { key: 'b', absent: true }, // fails
            { key: 'c', present: true }, // fails
            { key: 'a', modRevision: 1 }, // holds
          ],
          ops: [
            { type: 'put', key: 'a', value: 'changed' },
            { type: 'del', key: 'b' },
            { type: 'put', key: 'c', value: 'new' },
          ],
        });
        assert.deepEqual(r, { ok: false, failed: [1, 2], revision: 1 });
        assert.equal((await s.get('a'))?.value, '1');
        assert.equal((await s.get('b'))?.value, '2');
        assert.equal(await s.get('c'), undefined);
        assert.equal(await s.revision(), 1);
      }));

      it('a range precondition holds until a key under its prefix is created or written after its revision', withStore(async (s) => {
        const base = await ok(s.commit({ ops: [{ type: 'put', key: 'r/a', value: '1' }, { type: 'put', key: 'r/b', value: '1' }, { type: 'put', key: 'rx', value: '' }] }));
        const guarded = (rev: number, extra: Batch['preconditions'] = []): Promise<CommitResult> =>
          s.commit({ preconditions: [...extra, { prefix: 'r/', noWritesAfter: rev }], ops: [{ type: 'put', key: 'log', value: String(rev) }] });
        // Unwritten since: holds (and for an empty range).
        assert.deepEqual(await guarded(base), { ok: true, revision: base + 1 });
        assert.equal((await s.commit({ preconditions: [{ prefix: 'empty/', noWritesAfter: 0 }], ops: [{ type: 'put', key: 'log', value: 'e' }] })).ok, true);
        // A key next to the prefix but outside it, and a delete inside it, go unnoticed.
        await ok(s.commit(put('rx', 'changed')));
        const del = await ok(s.commit({ ops: [{ type: 'del', key: 'r/b' }] }));
        assert.equal((await guarded(base)).ok, true);
        // A write to an existing key, then a created key, fail it; the revision after them holds.
        const written = await ok(s.commit(put('r/a', '2')));
        assert.deepEqual(await guarded(del, [{ key: 'rx', present: true }]), { ok: false, failed: [1], revision: written });
        const created = await ok(s.commit(put('r/c', '')));
        assert.deepEqual(await guarded(written, [{ key: 'nope', present: true }]), { ok: false, failed: [0, 1], revision: created });
        assert.equal((await guarded(created)).ok, true);
        assert.equal((await s.get('log'))?.value, String(created));
      }));

      it('a range precondition sees a write committed just before it, even concurrently', withStore(async (s) => {
        await ok(s.commit(put('g/a', '')));
        let failed = 0;
        for (let i = 0; i < 5; i++) {
          const base = await s.revision();
          // Sent together (one write group on LevelDB): whichever commits first, the guarded
          // one succeeds only if it came before the write under its prefix.
          const [w, g] = await Promise.all([
            s.commit(put(`g/${i}`, '')),
            s.commit({ preconditions: [{ prefix: 'g/', noWritesAfter: base }], ops: [{ type: 'put', key: `log/${i}`, value: '' }] }),
          ]);
          assert.equal(w.ok, true);
          if (g.ok) assert.ok(g.revision < w.revision, 'a guarded commit after the write succeeded');
          else {
            assert.deepEqual(g.failed, [0]);
            failed++;
          }
        }
        assert.equal((await s.range({ prefix: 'log/' })).kvs.length, 5 - failed);
      }));

      it('applies a whole batch at one revision', withStore(async (s) => {
        await ok(s.commit(put('old', 'x')));
        const rev = await ok(s.commit({
          preconditions: [{ key: 'obj/1', absent: true }],
          ops: [
            { type: 'put', key: 'obj/1', value: 'o' },
            { type: 'put', key: 'idx/1', value: 'i' },
            { type: 'del', key: 'old' },
          ],
        }));
        const m = await s.getMany(['obj/1', 'idx/1', 'old']);
        assert.equal(m.get('obj/1')?.modRevision, rev);
        assert.equal(m.get('idx/1')?.modRevision, rev);
        assert.equal(m.has('old'), false);
      }));

      it('rejects invalid batches without writing anything', withStore(async (s) => {
        await ok(s.commit(put('keep', 'me')));
        const invalid: unknown[] = [
          { ops: [{ type: 'put', key: 'd', value: '1' }, { type: 'put', key: 'd', value: '2' }] },
          { ops: [{ type: 'put', key: 'e', value: '1' }, { type: 'del', key: 'e' }] },
          { ops: [{ type: 'put', key: 'ok', value: '1' }, { type: 'put', key: '', value: '2' }] },
          { ops: [{ type: 'put', key: 'ok', value: 42 }] },
          { ops: [{ type: 'upsert', key: 'ok', value: '1' }] },
          { ops: 'nope' },
          { preconditions: [{ prefix: '', noWritesAfter: 1 }], ops: [{ type: 'put', key: 'ok', value: '1' }] },
          { preconditions: [{ prefix: 'r/', noWritesAfter: -1 }], ops: [{ type: 'put', key: 'ok', value: '1' }] },
          { preconditions: [{ prefix: 'r/', noWritesAfter: 1.5 }], ops: [{ type: 'put', key: 'ok', value: '1' }] },
        ];
        for (const b of invalid) {
          await assert.rejects(s.commit(b as Batch), (err: Error) => err.name === 'InvalidBatchError', JSON.stringify(b));
        }
        assert.equal(await s.revision(), 1);
        assert.deepEqual((await s.range({})).kvs.map((kv) => kv.key), ['keep']);
      }));

      it('gives every successful commit the next revision', withStore(async (s) => {
        const sequential: number[] = [];
        for (let i = 0; i < 20; i++) sequential.push(await ok(s.commit(put(`s/${i}`, ''))));
        assert.deepEqual(sequential, range(1, 20));
        // Concurrent commits (some failing) still get distinct consecutive revisions.
        const results = await Promise.all(
          range(0, 59).map((i) =>
            s.commit({ preconditions: i % 3 === 0 ? [{ key: 'never', present: true }] : [], ops: [{ type: 'put', key: `c/${i}`, value: '' }] }),
          ),
        );
        const revs = results.filter((r) => r.ok).map((r) => r.revision).sort((a, b) => a - b);
        assert.deepEqual(revs, range(21, 60));
        assert.equal(results.filter((r) => !r.ok).length, 20);
        for (const r of results) if (!r.ok) assert.ok(r.revision >= 20 && r.revision <= 60);
        assert.equal(await s.revision(), 60);
      }));

      it('lets exactly one of 50 racing create-if-absent commits win', withStore(async (s) => {
        const results = await Promise.all(
          range(0, 49).map((i) => s.commit({ preconditions: [{ key: 'lock', absent: true }], ops: [{ type: 'put', key: 'lock', value: `owner-${i}` }] })),
        );
        const winners = results.map((r, i) => (r.ok ? i : -1)).filter((i) => i >= 0);
        assert.equal(winners.length, 1);
        for (const r of results) if (!r.ok) assert.deepEqual(r.failed, [0]);
        const kv = await s.get('lock');
        assert.equal(kv?.value, `owner-${winners[0]}`);
        assert.equal(await s.revision(), 1);
      }));

      it('serialises racing compare-and-swap increments', withStore(async (s) => {
        await ok(s.commit(put('counter', '0')));
        async function increment(): Promise<void> {
          for (;;) {
            const kv = await s.get('counter');
            assert.ok(kv);
            const r = await s.commit({ preconditions: [{ key: 'counter', modRevision: kv.modRevision }], ops: [{ type: 'put', key: 'counter', value: String(Number(kv.value) + 1) }] });
            if (r.ok) return;
          }
        }
        await Promise.all(range(1, 25).map(() => increment()));
        assert.equal((await s.get('counter'))?.value, '25');
      }));
    });

    describe('watch', () => {
      it('replays from a revision, then follows live commits', withStore(async (s) => {
        for (let i = 1; i <= 5; i++) await ok(s.commit(put(`w/${i}`, String(i))));
        const c = new Collector(s, { fromRevision: 3 });
        await c.untilRevision(5);
        await ok(s.commit({ ops: [{ type: 'del', key: 'w/1' }, { type: 'put', key: 'w/6', value: '6' }] }));
        await c.untilRevision(6);
        c.watcher.close();
        assert.deepEqual(c.revisions(), [3, 4, 5, 6]);
        assert.deepEqual(c.sets[0], { revision: 3, changes: [{ type: 'put', key: 'w/3', value: '3' }] });
        assert.deepEqual(c.sets[3]?.changes, [{ type: 'del', key: 'w/1' }, { type: 'put', key: 'w/6', value: '6' }]);
        assert.equal(c.error, null);
      }));

      it('watching from the next revision delivers only new commits', withStore(async (s) => {
        await ok(s.commit(put('a', '1')));
        const { revision } = await s.range({});
        const c = new Collector(s, { fromRevision: revision + 1 });
        await ok(s.commit(put('a', '2')));
        await c.untilRevision(2);
        c.watcher.close();
        assert.deepEqual(c.revisions(), [2]);
      }));

      it('has no gap and no duplicate when commits race the catch-up', withStore(async (s) => {
        const total = 200;
        const writes: Promise<number>[] = [];
        let watcher: Collector | null = null;
        for (let i = 1; i <= total; i++) {
          writes.push(ok(s.commit({ ops: [{ type: 'put', key: `race/${i}`, value: String(i) }] })));
          if (i === 80) watcher = new Collector(s, { fromRevision: 1 });
        }
        await Promise.all(writes);
        const c = watcher as unknown as Collector;
        await c.untilRevision(total);
        c.watcher.close();
        assert.deepEqual(c.revisions(), range(1, total));
        // Each set carries exactly the change its commit made.
        const keyByRev = new Map((await s.range({ prefix: 'race/' })).kvs.map((kv) => [kv.modRevision, kv.key]));
        for (const set of c.sets) assert.deepEqual(set.changes.map((ch) => ch.key), [keyByRev.get(set.revision)]);
      }));

      it('waits for a slow handler and keeps order', withStore(async (s) => {
        const c = new Collector(s, { fromRevision: 1 }, () => new Promise((resolve) => setTimeout(resolve, 2)));
        await Promise.all(range(1, 30).map((i) => s.commit(put(`slow/${i}`, ''))));
        await c.untilRevision(30);
        c.watcher.close();
        assert.deepEqual(c.revisions(), range(1, 30));
      }));

      it('filters by prefix, keeping the original revisions', withStore(async (s) => {
        const c = new Collector(s, { prefix: 'ovl/', fromRevision: 1 });
        await ok(s.commit(put('nic/1', 'n')));
        await ok(s.commit({ ops: [{ type: 'put', key: 'nic/2', value: 'n' }, { type: 'put', key: 'ovl/mac/2', value: 'm' }] }));
        await ok(s.commit(put('other', 'x')));
        await ok(s.commit({ ops: [{ type: 'del', key: 'ovl/mac/2' }] }));
        await c.untilRevision(4);
        c.watcher.close();
        assert.deepEqual(c.sets, [
          { revision: 2, changes: [{ type: 'put', key: 'ovl/mac/2', value: 'm' }] },
          { revision: 4, changes: [{ type: 'del', key: 'ovl/mac/2' }] },
        ]);
      }));

      it('watches several prefixes as one feed in revision order, nothing between them', withStore(async (s) => {
        const c = new Collector(s, { prefixes: ['fw/', 'napi/nics/'], fromRevision: 1 });
        await ok(s.commit(put('napi/nics/1', 'n')));
        await ok(s.commit({ ops: [{ type: 'put', key: 'fw/r/1', value: 'r' }, { type: 'put', key: 'napi/ips/1', value: 'i' }] }));
        await ok(s.commit(put('napi/ips/2', 'between')));
        await ok(s.commit(put('ovl/x', 'outside')));
        await ok(s.commit({ ops: [{ type: 'del', key: 'napi/nics/1' }, { type: 'put', key: 'fw/r/2', value: 'r' }] }));
        await c.untilRevision(5);
        c.watcher.close();
        assert.deepEqual(c.sets, [
          { revision: 1, changes: [{ type: 'put', key: 'napi/nics/1', value: 'n' }] },
          { revision: 2, changes: [{ type: 'put', key: 'fw/r/1', value: 'r' }] },
          { revision: 5, changes: [{ type: 'del', key: 'napi/nics/1' }, { type: 'put', key: 'fw/r/2', value: 'r' }] },
        ]);
      }));

      it("reports progress on revisions that changed nothing watched, when the backend can", withStore(async (s) => {
        if (!s.reportsProgress) return;
        const c = new Collector(s, { prefix: 'ovl/', fromRevision: 1, progress: true });
        await ok(s.commit(put('napi/1', 'x')));
        await ok(s.commit(put('ovl/1', 'y')));
        const last = await ok(s.commit(put('napi/2', 'z')));
        await c.untilRevision(last);
        c.watcher.close();
        assert.deepEqual(c.sets, [
          { revision: 1, changes: [] },
          { revision: 2, changes: [{ type: 'put', key: 'ovl/1', value: 'y' }] },
          { revision: 3, changes: [] },
        ]);
      }));

      it('a closed watcher receives nothing more', withStore(async (s) => {
        const c = new Collector(s, { fromRevision: 1 });
        await ok(s.commit(put('a', '1')));
        await c.untilRevision(1);
        c.watcher.close();
        await ok(s.commit(put('a', '2')));
        // A second watcher proves revision 2 was delivered to anyone still listening.
        const d = new Collector(s, { fromRevision: 2 });
        await d.untilRevision(2);
        d.watcher.close();
        assert.deepEqual(c.revisions(), [1]);
      }));

      it('a throwing handler ends its watcher with that error', withStore(async (s) => {
        let calls = 0;
        const errors: Error[] = [];
        const w = s.watch({ fromRevision: 1 }, {
          onChange: () => {
            calls++;
            throw new Error('handler broke');
          },
          onError: (err) => void errors.push(err),
        });
        await ok(s.commit(put('a', '1')));
        await ok(s.commit(put('a', '2')));
        await eventually(() => errors.length > 0, 'the handler error');
        // Let revision 2 reach every live watcher, then check the broken one stayed closed.
        const c = new Collector(s, { fromRevision: 1 });
        await c.untilRevision(2);
        c.watcher.close();
        w.close();
        assert.equal(calls, 1);
        assert.equal(errors[0]?.message, 'handler broke');
      }));
    });

    describe('compaction', () => {
      it('compacted history fails with CompactedError; range + watch resumes', withStore(async (s) => {
        for (let i = 1; i <= 10; i++) await ok(s.commit(put(`h/${i % 4}`, String(i))));
        await s.compact(5);
        const old = new Collector(s, { fromRevision: 5 });
        const err = await old.untilError();
        assert.ok(err instanceof CompactedError, String(err));
        assert.equal(err.compactedRevision, 5);
        assert.equal(err.requested, 5);

        const fresh = new Collector(s, { fromRevision: 6 });
        await fresh.untilRevision(10);
        fresh.watcher.close();
        assert.deepEqual(fresh.revisions(), range(6, 10));

        // The documented recovery: reload with range, follow from its revision.
        const snap = await s.range({ prefix: 'h/' });
        assert.equal(snap.revision, 10);
        assert.deepEqual(snap.kvs.map((kv) => kv.value), ['8', '9', '10', '7']);
        const follow = new Collector(s, { fromRevision: snap.revision + 1 });
        await ok(s.commit(put('h/0', 'eleven')));
        await follow.untilRevision(11);
        follow.watcher.close();
        assert.deepEqual(follow.revisions(), [11]);
      }));

      it('compacting is monotonic and clamps to the current revision', withStore(async (s) => {
        for (let i = 1; i <= 4; i++) await ok(s.commit(put('k', String(i))));
        await s.compact(3);
        await s.compact(1); // going backwards is a no-op
        const a = new Collector(s, { fromRevision: 3 });
        assert.ok((await a.untilError()) instanceof CompactedError);
        await s.compact(1000); // beyond the head: compacts everything so far
        const b = new Collector(s, { fromRevision: 4 });
        assert.ok((await b.untilError()) instanceof CompactedError);
        const c = new Collector(s, { fromRevision: 5 });
        await ok(s.commit(put('k', '5')));
        await c.untilRevision(5);
        c.watcher.close();
        assert.deepEqual(c.revisions(), [5]);
        // Data is untouched by compaction.
        assert.deepEqual(await s.get('k'), { key: 'k', value: '5', createRevision: 1, modRevision: 5 });
      }));
    });

    describe('persistence', () => {
      it('keeps data, revisions and history across reopen', async (t) => {
        const h = await factory();
        try {
          if (!h.reopen) {
            t.skip('volatile backend');
            return;
          }
          await ok(h.store.commit(put('p/1', 'one')));
          await ok(h.store.commit(put('p/2', 'two')));
          await ok(h.store.commit(put('p/1', 'uno')));
          await ok(h.store.commit({ ops: [{ type: 'del', key: 'p/2' }] }));
          await h.store.compact(1);
          const s = await h.reopen();
          assert.equal(await s.revision(), 4);
          assert.deepEqual(await s.get('p/1'), { key: 'p/1', value: 'uno', createRevision: 1, modRevision: 3 });
          assert.equal(await s.get('p/2'), undefined);
          const c = new Collector(s, { fromRevision: 2 });
          await c.untilRevision(4);
          assert.deepEqual(c.revisions(), [2, 3, 4]);
          const gone = new Collector(s, { fromRevision: 1 });
          assert.ok((await gone.untilError()) instanceof CompactedError);
          assert.equal(await ok(s.commit(put('p/3', 'three'))), 5);
          await c.untilRevision(5);
          c.watcher.close();
        } finally {
          await h.cleanup();
        }
      });
    });

    describe('close', () => {
      it('fails operations with StoreClosedError and ends watchers', withStore(async (s) => {
        await ok(s.commit(put('a', '1')));
        const c = new Collector(s, { fromRevision: 1 });
        await c.untilRevision(1);
        await s.close();
        assert.ok((await c.untilError()) instanceof StoreClosedError);
        const isClosed = (err: Error): boolean => err instanceof StoreClosedError;
        await assert.rejects(s.get('a'), isClosed);
        await assert.rejects(s.getMany(['a']), isClosed);
        await assert.rejects(s.range({}), isClosed);
        await assert.rejects(s.count(''), isClosed);
        await assert.rejects(s.commit(put('b', '2')), isClosed);
        await assert.rejects(s.revision(), isClosed);
        await assert.rejects(s.compact(1), isClosed);
        assert.throws(() => s.watch({ fromRevision: 1 }, { onChange: () => undefined }), isClosed);
        assert.equal(await s.healthy(), false);
        await s.close(); // idempotent
      }));

      it('commits already accepted either land or fail cleanly on close', withStore(async (s) => {
        const pending = Promise.allSettled(range(1, 40).map((i) => s.commit(put(`z/${i}`, ''))));
        await s.close();
        const settled = await pending;
        for (const r of settled) {
          if (r.status === 'rejected') assert.ok(r.reason instanceof StoreClosedError, String(r.reason));
          else assert.equal(r.value.ok, true);
        }
      }));
    });
  });
}
