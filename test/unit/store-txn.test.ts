/** The Tx's reads: which become preconditions of its commit and which do not. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/memory.js';
import { Tx, transact } from '../../src/store/txn.js';

test('getManyUnguarded reads without preconditions, seeing the transaction\'s own writes', async () => {
  const store = new MemoryStore();
  try {
    await store.commit({ ops: [{ type: 'put', key: 'a', value: '1' }, { type: 'put', key: 'b', value: '2' }, { type: 'put', key: 'c', value: '3' }] });
    const tx = new Tx(store);
    tx.put('b', 'mine');
    tx.del('c');
    const got = await tx.getManyUnguarded(['a', 'b', 'c', 'missing']);
    assert.deepEqual([...got].map(([k, kv]) => [k, kv.value]), [['b', 'mine'], ['a', '1']]);
    assert.deepEqual(tx.batch().preconditions, [], 'nothing unguarded is checked at commit');
    // A key read guarded first stays guarded, and is served from that read.
    const tx2 = new Tx(store);
    await tx2.get('a');
    assert.equal((await tx2.getManyUnguarded(['a'])).get('a')?.value, '1');
    assert.deepEqual(tx2.batch().preconditions.map((p) => ('key' in p ? p.key : p.prefix)), ['a']);
  } finally {
    await store.close();
  }
});

test('a concurrent change to an unguarded key does not make the commit retry; to a guarded one it does', async () => {
  const store = new MemoryStore();
  try {
    await store.commit({ ops: [{ type: 'put', key: 'seen', value: '0' }, { type: 'put', key: 'checked', value: '0' }] });
    let attempts = 0;
    await transact(store, async (tx) => {
      attempts++;
      await tx.getManyUnguarded(['seen']);
      if (attempts === 1) await store.commit({ ops: [{ type: 'put', key: 'seen', value: 'changed' }] });
      tx.put('out', 'x');
    });
    assert.equal(attempts, 1);
    attempts = 0;
    await transact(store, async (tx) => {
      attempts++;
      await tx.get('checked');
      if (attempts === 1) await store.commit({ ops: [{ type: 'put', key: 'checked', value: 'changed' }] });
      tx.put('out', 'y');
    });
    assert.equal(attempts, 2);
  } finally {
    await store.close();
  }
});

test('rangeGuarded: one precondition for a whole range; a key created or written under it before the commit makes the body run again', async () => {
  const store = new MemoryStore();
  try {
    await store.commit({ ops: [{ type: 'put', key: 'idx/a', value: '' }, { type: 'put', key: 'idx/b', value: '' }, { type: 'put', key: 'other', value: '' }] });
    const tx = new Tx(store);
    assert.deepEqual((await tx.rangeGuarded('idx/')).map((kv) => kv.key), ['idx/a', 'idx/b']);
    assert.deepEqual(tx.batch().preconditions, [{ prefix: 'idx/', noWritesAfter: 1 }]);

    // Each attempt sees what the range holds; a write beside it or a delete in it changes nothing.
    const seen: string[][] = [];
    const sideWrites = [
      { type: 'put' as const, key: 'other', value: 'x' }, // outside the range: the commit stands
      { type: 'del' as const, key: 'idx/b' }, // a delete is not seen either
      { type: 'put' as const, key: 'idx/c', value: '' }, // a created key: the body runs again
      { type: 'put' as const, key: 'idx/a', value: 'changed' }, // a rewritten key: again
    ];
    for (const [i, op] of sideWrites.entries()) {
      let raced = false;
      const before = seen.length;
      const res = await transact(store, async (t) => {
        const keys = (await t.rangeGuarded('idx/')).map((kv) => kv.key);
        seen.push(keys);
        if (!raced) {
          raced = true;
          await store.commit({ ops: [op] });
        }
        t.put(`log/${i}`, keys.join(','));
      });
      assert.equal(seen.length - before, i < 2 ? 1 : 2, `attempts after ${op.type} ${op.key}`);
      assert.equal((await store.get(`log/${i}`))?.modRevision, res.revision);
    }
    assert.equal((await store.get('log/2'))?.value, 'idx/a,idx/c');
  } finally {
    await store.close();
  }
});
