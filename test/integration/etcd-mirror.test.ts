/**
 * EtcdStore's mirror (mirrorPrefixes, read by getStale) on a real etcd: it answers with
 * etcd's own revisions once caught up, and a write through another client between a stale
 * read and the commit is caught by the commit (transact runs again on etcd's value).
 */
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdCluster, etcdSkipReason } from '../helpers/etcd-cluster.js';
import { EtcdStore } from '../../src/store/etcd.js';
import { transact } from '../../src/store/txn.js';

let cluster: EtcdCluster | null = null;
before(async () => {
  if (!etcdSkipReason) cluster = await EtcdCluster.start({ members: 1 });
});
after(async () => {
  await cluster?.stop();
});

/** Polls until the mirrored read of every key equals etcd's (deep, revisions included). */
async function mirrorMatches(a: EtcdStore, keys: string[]): Promise<void> {
  for (let i = 0; ; i++) {
    let same = true;
    for (const k of keys) if (JSON.stringify(await a.getStale(k)) !== JSON.stringify(await a.get(k))) same = false;
    if (same) return;
    if (i > 200) {
      for (const k of keys) assert.deepEqual(await a.getStale(k), await a.get(k), k);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}

it('a mirrored replica reads etcd\'s exact revisions, and a write through another replica fails its commit so it retries', { skip: etcdSkipReason }, async () => {
  const prefix = `mirror-${process.pid}/`;
  const b = await EtcdStore.open({ endpoints: cluster!.endpoints, prefix });
  await b.commit({ ops: [{ type: 'put', key: 'm/a', value: '1' }, { type: 'put', key: 'other', value: 'x' }] });
  const a = await EtcdStore.open({ endpoints: cluster!.endpoints, prefix, mirrorPrefixes: ['m/'] });
  try {
    await b.commit({ ops: [{ type: 'put', key: 'm/b', value: '1' }] });
    await mirrorMatches(a, ['m/a', 'm/b', 'm/none']);
    // Caught up, the copy answers for its keys, present or absent, without asking etcd.
    let etcdReads = 0;
    const get = a.get.bind(a);
    const getMany = a.getMany.bind(a);
    a.get = (k) => (etcdReads++, get(k));
    a.getMany = (ks) => (etcdReads++, getMany(ks));
    assert.equal((await a.getStale('m/a'))?.value, '1');
    assert.equal(await a.getStale('m/none'), undefined);
    assert.deepEqual([...(await a.getManyStale(['m/a', 'm/none'])).keys()], ['m/a']);
    assert.equal(etcdReads, 0, 'mirrored keys, present or absent, are read from the copy');
    assert.equal((await a.getStale('other'))?.value, 'x', 'a key outside the mirrored prefixes is read from etcd');
    assert.equal(etcdReads, 1);
    a.get = get;
    a.getMany = getMany;
    // Deleted and created again: a new createRevision, as etcd reports it.
    await b.commit({ ops: [{ type: 'del', key: 'm/b' }] });
    await b.commit({ ops: [{ type: 'put', key: 'm/b', value: '2' }] });
    await mirrorMatches(a, ['m/a', 'm/b']);
    // A write through b after a's (mirrored) read and before a's commit.
    const seen: string[] = [];
    const { value } = await transact(a, async (tx) => {
      const n = Number((await tx.get('m/a'))!.value);
      seen.push(String(n));
      if (seen.length === 1) await b.commit({ ops: [{ type: 'put', key: 'm/a', value: '10' }] });
      tx.put('m/a', String(n + 1));
      return n + 1;
    });
    assert.deepEqual(seen, ['1', '10']);
    assert.equal(value, 11);
    assert.equal((await b.get('m/a'))!.value, '11');
    await mirrorMatches(a, ['m/a', 'm/b']);
  } finally {
    await a.close();
    await b.close();
  }
});
