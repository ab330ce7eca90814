/**
 * The shared Store conformance suite on etcd (one real single-member cluster for the file,
 * a fresh namespace prefix per test), plus what only etcd has: watches that survive the
 * member restarting, compaction done by etcd itself, transaction size limits.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runStoreConformance } from '../helpers/store-conformance.js';
import { EtcdCluster, etcdSkipReason } from '../helpers/etcd-cluster.js';
import { EtcdStore, StoreUnavailableError } from '../../src/store/etcd.js';
import { openStore } from '../../src/store/index.js';
import { type ChangeSet, CompactedError, type Store } from '../../src/store/types.js';

let cluster: EtcdCluster | null = null;
let prefixes = 0;
const freshPrefix = (): string => `t${process.pid}-${++prefixes}/`;

before(async () => {
  if (!etcdSkipReason) cluster = await EtcdCluster.start({ members: 1 });
});
after(async () => {
  await cluster?.stop();
});

function endpoints(): string[] {
  if (!cluster) throw new Error('etcd cluster is not running');
  return cluster.endpoints;
}

if (etcdSkipReason) {
  it('etcd store tests', { skip: etcdSkipReason }, () => undefined);
} else {
  runStoreConformance('etcd', async () => {
    const prefix = freshPrefix();
    let current: Store = await EtcdStore.open({ endpoints: endpoints(), prefix });
    return {
      store: current,
      reopen: async () => {
        await current.close();
        current = await EtcdStore.open({ endpoints: endpoints(), prefix });
        return current;
      },
      cleanup: () => current.close(),
    };
  });

  describe('EtcdStore on a real etcd', () => {
    /** Collects a watcher's sets; waits for a revision. */
    function follow(s: Store, fromRevision: number, prefix?: string) {
      const sets: ChangeSet[] = [];
      let error: Error | null = null;
      const w = s.watch({ fromRevision, ...(prefix !== undefined ? { prefix } : {}) }, {
        onChange: (set) => void sets.push(set),
        onError: (e) => void (error = e),
      });
      const until = async (cond: () => boolean, what: string): Promise<void> => {
        const deadline = Date.now() + 15_000;
        while (!cond()) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      };
      return {
        sets,
        watcher: w,
        error: () => error,
        upTo: (rev: number) => until(() => (sets.at(-1)?.revision ?? 0) >= rev, `revision ${rev}`),
        failed: () => until(() => error !== null, 'an error').then(() => error as Error),
      };
    }

    it('keeps namespaces apart and starts each at revision 0', async () => {
      const a = await EtcdStore.open({ endpoints: endpoints(), prefix: freshPrefix() });
      let b: EtcdStore | null = null;
      try {
        assert.equal(await a.revision(), 0);
        assert.equal((await a.commit({ ops: [{ type: 'put', key: 'k', value: 'a' }] })).revision, 1);
        b = await EtcdStore.open({ endpoints: endpoints(), prefix: freshPrefix() });
        assert.equal(await b.revision(), 0);
        assert.equal(await b.get('k'), undefined);
        assert.equal(await b.count(''), 0);
        assert.equal((await b.commit({ ops: [{ type: 'put', key: 'k', value: 'b' }] })).revision, 1);
        // Writes to another namespace on the cluster make revisions jump (b's marker and commit).
        assert.equal(await a.revision(), 3);
        assert.deepEqual(await a.get('k'), { key: 'k', value: 'a', createRevision: 1, modRevision: 1 });
        assert.deepEqual((await a.range({})).kvs.map((kv) => kv.value), ['a']);
      } finally {
        await a.close();
        await b?.close();
      }
    });

    it('gives a change-less batch its own revision and an empty change set', async () => {
      const s = await EtcdStore.open({ endpoints: endpoints(), prefix: freshPrefix() });
      try {
        const all = follow(s, 1);
        const sub = follow(s, 1, 'x/');
        assert.deepEqual(await s.commit({ ops: [{ type: 'del', key: 'missing' }] }), { ok: true, revision: 1 });
        assert.deepEqual(await s.commit({ ops: [] }), { ok: true, revision: 2 });
        assert.deepEqual(await s.commit({ ops: [{ type: 'put', key: 'x/1', value: '' }] }), { ok: true, revision: 3 });
        await all.upTo(3);
        await sub.upTo(3);
        assert.deepEqual(all.sets, [
          { revision: 1, changes: [] },
          { revision: 2, changes: [] },
          { revision: 3, changes: [{ type: 'put', key: 'x/1', value: '' }] },
        ]);
        assert.deepEqual(sub.sets.map((x) => x.revision), [3]);
        // The namespace marker is never visible as a key.
        assert.deepEqual((await s.range({})).kvs.map((kv) => kv.key), ['x/1']);
        assert.equal(await s.count(''), 1);
      } finally {
        await s.close();
      }
    });

    it('rejects a batch beyond the transaction op limit without writing', async () => {
      const s = await EtcdStore.open({ endpoints: endpoints(), prefix: freshPrefix() });
      try {
        const ops = Array.from({ length: 129 }, (_, i) => ({ type: 'put' as const, key: `big/${i}`, value: '' }));
        await assert.rejects(s.commit({ ops }), (err: Error) => err.name === 'InvalidBatchError' && /at most 128/.test(err.message) && /--max-txn-ops/.test(err.message));
        assert.equal(await s.count('big/'), 0);
        assert.equal((await s.commit({ ops: ops.slice(0, 128) })).ok, true);
        assert.equal(await s.count('big/'), 128);
        // getMany beyond the limit still reads one revision.
        const m = await s.getMany(ops.map((o) => o.key).concat(['big/none']));
        assert.equal(m.size, 128);
        assert.ok([...m.values()].every((kv) => kv.modRevision === 1));
      } finally {
        await s.close();
      }
    });

    it('a watcher survives the member restarting: no gap, no duplicate', async () => {
      const c = cluster as EtcdCluster;
      const s = await EtcdStore.open({ endpoints: endpoints(), prefix: freshPrefix() });
      try {
        const w = follow(s, 1);
        const acked: number[] = [];
        for (let i = 1; i <= 20; i++) acked.push((await s.commit({ ops: [{ type: 'put', key: `r/${i}`, value: String(i) }] })).revision);
        await w.upTo(20);
        await c.kill(c.members[0]!);
        // A commit issued while the only member is down either lands once it is back or
        // fails as an error — never a success that was not written.
        const during = s.commit({ ops: [{ type: 'put', key: 'r/down', value: 'x' }] }).then(
          (r) => ({ result: r }),
          (err: Error) => ({ err }),
        );
        await c.restart(c.members[0]!);
        const outcome = await during;
        if ('result' in outcome) {
          assert.equal(outcome.result.ok, true);
          acked.push(outcome.result.revision);
          assert.equal((await s.get('r/down'))?.modRevision, outcome.result.revision);
        } else {
          assert.ok(outcome.err instanceof StoreUnavailableError, String(outcome.err));
          if (outcome.err.outcome === 'not-applied') assert.equal(await s.get('r/down'), undefined);
        }
        for (let i = 21; i <= 40; i++) acked.push((await s.commit({ ops: [{ type: 'put', key: `r/${i}`, value: String(i) }] })).revision);
        const last = acked.at(-1) as number;
        await w.upTo(last);
        const revs = w.sets.map((x) => x.revision);
        assert.deepEqual(revs, [...new Set(revs)].sort((a, b) => a - b), 'in order, no duplicates');
        for (const r of acked) assert.ok(revs.includes(r), `acknowledged revision ${r} delivered`);
        // Compared with a fresh replay of history: identical.
        const replay = follow(s, 1);
        await replay.upTo(last);
        replay.watcher.close();
        assert.deepEqual(w.sets, replay.sets);
        assert.equal(w.error(), null);
        w.watcher.close();
      } finally {
        await s.close();
      }
    });

    it('a watcher falling behind etcd compaction gets CompactedError; another store sees the compaction', async () => {
      const prefix = freshPrefix();
      const s = await EtcdStore.open({ endpoints: endpoints(), prefix });
      const other = await EtcdStore.open({ endpoints: endpoints(), prefix });
      try {
        for (let i = 1; i <= 8; i++) await s.commit({ ops: [{ type: 'put', key: 'c', value: String(i) }] });
        await s.compact(6);
        const old = follow(other, 6);
        const err = await old.failed();
        assert.ok(err instanceof CompactedError, String(err));
        assert.equal(err.compactedRevision, 6);
        const ok = follow(other, 7);
        await ok.upTo(8);
        ok.watcher.close();
        assert.deepEqual(ok.sets.map((x) => x.revision), [7, 8]);
      } finally {
        await s.close();
        await other.close();
      }
    });

    it('openStore wires kind etcd, and fails clearly when etcd is unreachable', async () => {
      const s = await openStore({ kind: 'etcd', endpoints: endpoints(), prefix: freshPrefix() });
      assert.equal(s.kind, 'etcd');
      assert.equal((await s.commit({ ops: [{ type: 'put', key: 'a', value: '1' }] })).revision, 1);
      await s.close();
      await assert.rejects(openStore({ kind: 'etcd', endpoints: ['http://127.0.0.1:1'], retryTimeoutMs: 300 }), /cannot open etcd store at http:\/\/127\.0\.0\.1:1/);
      await assert.rejects(openStore({ kind: 'etcd', endpoints: [] }), /at least one endpoint/);
    });
  });
}
