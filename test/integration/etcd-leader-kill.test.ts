/**
 * The etcd leader SIGKILLed during a burst of concurrent multi-key commits through one
 * EtcdStore on a three-member cluster. Commits caught by the election may fail, but only as
 * errors; the same store keeps working once a new leader is elected (no restart); afterwards
 * every acknowledged commit is there, every batch is all-or-nothing, and a watcher that was
 * following all along saw exactly the committed history.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdCluster, etcdSkipReason } from '../helpers/etcd-cluster.js';
import { EtcdStore, StoreUnavailableError } from '../../src/store/etcd.js';
import type { ChangeSet, Op } from '../../src/store/types.js';

const WORKERS = 8;
const BEFORE_KILL = 150;
const AFTER_KILL = 150;

it('etcd leader killed mid-burst: acknowledged commits survive, batches are atomic, writes resume', { skip: etcdSkipReason, timeout: 60_000 }, async (t) => {
  const cluster = await EtcdCluster.start({ members: 3 });
  let store: EtcdStore | null = null;
  try {
    store = await EtcdStore.open({ endpoints: cluster.endpoints, prefix: 'burst/' });
    const s = store;

    const watched: ChangeSet[] = [];
    let watchError: Error | null = null;
    const watcher = s.watch({ fromRevision: 1 }, { onChange: (set) => void watched.push(set), onError: (e) => void (watchError = e) });

    // Batch n writes obj/n + idx/n; every 5th also deletes the pair of n-3.
    const acked = new Map<number, number>();
    const errors = new Map<number, StoreUnavailableError>();
    const attempted = new Set<number>();
    let ackedAfterKill = 0;
    let killed = false;
    let stop = false;
    let next = 1;
    const batchOps = (n: number): Op[] => {
      const ops: Op[] = [
        { type: 'put', key: `obj/${n}`, value: JSON.stringify({ n }) },
        { type: 'put', key: `idx/${n}`, value: `obj/${n}` },
      ];
      if (n % 5 === 0) ops.push({ type: 'del', key: `obj/${n - 3}` }, { type: 'del', key: `idx/${n - 3}` });
      return ops;
    };
    async function worker(): Promise<void> {
      while (!stop) {
        const n = next++;
        attempted.add(n);
        try {
          const r = await s.commit({ preconditions: [{ key: `obj/${n}`, absent: true }], ops: batchOps(n) });
          assert.equal(r.ok, true, `batch ${n} failed its precondition: ${JSON.stringify(r)}`);
          acked.set(n, r.revision);
          if (killed) ackedAfterKill++;
        } catch (err) {
          assert.ok(err instanceof StoreUnavailableError, `batch ${n}: unexpected error ${String(err)}`);
          errors.set(n, err);
        }
      }
    }
    async function until(cond: () => boolean, what: string, ms: number): Promise<void> {
      const deadline = Date.now() + ms;
      while (!cond()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (acked ${acked.size}, errors ${errors.size})`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }

    const workers = Promise.all(Array.from({ length: WORKERS }, () => worker()));
    try {
      await until(() => acked.size >= BEFORE_KILL, `${BEFORE_KILL} acknowledged commits`, 20_000);
      const leader = await cluster.leader();
      killed = true;
      await cluster.kill(leader, 'SIGKILL');
      t.diagnostic(`killed leader ${leader.name} after ${acked.size} acknowledged commits`);
      // The same store instance must carry on through the election.
      await until(() => ackedAfterKill >= AFTER_KILL, `${AFTER_KILL} commits acknowledged after the kill`, 30_000);
    } finally {
      stop = true;
      await workers;
    }
    t.diagnostic(`acknowledged ${acked.size}, failed as errors ${errors.size} (${[...errors.values()].filter((e) => e.outcome === 'unknown').length} with unknown outcome)`);
    const kinds = new Map<string, number>();
    for (const e of errors.values()) {
      const k = `${e.outcome}: ${e.message.replace(/\d+\.\d+\.\d+\.\d+:\d+/g, 'HOST').slice(0, 120)}`;
      kinds.set(k, (kinds.get(k) ?? 0) + 1);
    }
    for (const [k, c] of kinds) t.diagnostic(`${c} x ${k}`);
    assert.equal(await s.healthy(), true);

    // What is in etcd now, read through a fresh client on the surviving members.
    const check = await EtcdStore.open({ endpoints: cluster.endpoints, prefix: 'burst/' });
    try {
      const snap = await check.range({});
      const kv = new Map(snap.kvs.map((x) => [x.key, x]));
      for (const n of attempted) {
        // All-or-nothing: an object never exists without its index, or the other way round.
        assert.equal(kv.has(`obj/${n}`), kv.has(`idx/${n}`), `batch ${n} half applied`);
        const deletedBy = (n + 3) % 5 === 0 && attempted.has(n + 3) ? n + 3 : null;
        const rev = acked.get(n);
        if (rev !== undefined) {
          // Workers race, so batch n+3 may land before batch n: only a later delete counts.
          const delRev = deletedBy !== null ? acked.get(deletedBy) : undefined;
          const mayBeGone = deletedBy !== null && delRev === undefined; // its deleter failed: outcome unknown
          if (delRev !== undefined && delRev > rev) {
            assert.equal(kv.has(`obj/${n}`), false, `batch ${deletedBy} (revision ${delRev}) was acknowledged but obj/${n} is still there`);
          } else if (!mayBeGone || kv.has(`obj/${n}`)) {
            assert.equal(kv.get(`obj/${n}`)?.modRevision, rev, `acknowledged batch ${n} (revision ${rev}) is missing`);
            assert.equal(kv.get(`idx/${n}`)?.modRevision, rev);
          }
        }
        const err = errors.get(n);
        if (err?.outcome === 'not-applied') assert.equal(kv.has(`obj/${n}`), false, `batch ${n} reported not applied but is there`);
      }
      for (const [n, rev] of acked) {
        // Every acknowledged commit's revision holds exactly its own writes.
        const own = snap.kvs.filter((x) => x.modRevision === rev).map((x) => x.key).sort();
        if (own.length > 0) assert.deepEqual(own, [`idx/${n}`, `obj/${n}`]);
      }

      // The watcher followed through the election: in order, no duplicates, every
      // acknowledged revision, and the same as a fresh replay of history.
      const last = snap.revision;
      await until(() => (watched.at(-1)?.revision ?? 0) >= last, `the watcher to reach revision ${last}`, 15_000);
      watcher.close();
      assert.equal(watchError, null);
      const revs = watched.map((x) => x.revision);
      for (let i = 1; i < revs.length; i++) assert.ok((revs[i] as number) > (revs[i - 1] as number), `watch order at ${revs[i]}`);
      const seen = new Set(revs);
      for (const rev of acked.values()) assert.ok(seen.has(rev), `acknowledged revision ${rev} not delivered to the watcher`);
      const replay: ChangeSet[] = [];
      const rw = check.watch({ fromRevision: 1 }, { onChange: (set) => void replay.push(set) });
      await until(() => (replay.at(-1)?.revision ?? 0) >= last, 'the replay', 15_000);
      rw.close();
      assert.deepEqual(watched.filter((x) => x.revision <= last), replay.filter((x) => x.revision <= last));
    } finally {
      await check.close();
    }
  } finally {
    await store?.close();
    await cluster.stop();
  }
});
