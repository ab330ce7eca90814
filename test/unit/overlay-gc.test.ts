/**
 * The log sweep (src/overlay/gc.ts) against a mapping index on a MemoryStore: consumed
 * and expired log entries go, gone records and idle nodes' states with them, the cap
 * moves a stuck node's cursor, and replicas sweeping at once do not write twice.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { MappingIndex } from '../../src/mapping/index.js';
import { GONE_PREFIX, NODE_STATE_PREFIX, VLOG_PREFIX, goneKey, vlogKey, vnodeKey } from '../../src/overlay/keys.js';
import { startLogSweep, sweepLog } from '../../src/overlay/gc.js';
import { MemoryStore } from '../../src/store/memory.js';
import { uuidToBytes } from '../../src/net/addr.js';
import { CN1, CN2, putEvents } from '../helpers/svp-fixtures.js';

const DAY = 24 * 3600 * 1000;
const cleanup: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of cleanup) await c();
});

async function setup(): Promise<{ store: MemoryStore; index: MappingIndex }> {
  const store = new MemoryStore();
  const index = new MappingIndex({ store });
  await index.start();
  cleanup.push(() => index.close(), () => store.close());
  return { store, index };
}

async function keys(store: MemoryStore, prefix: string): Promise<string[]> {
  return (await store.range({ prefix })).kvs.map((kv) => kv.key);
}

test('entries every recipient removed go; the rest stay; a second sweep finds nothing', async () => {
  const { store, index } = await setup();
  const a = await putEvents(store, [{ type: 'vl3', cn: CN1, vnet: 5, ip: '10.0.0.1' }]);
  const b = await putEvents(store, [{ type: 'vl3', cn: CN2, vnet: 5, ip: '10.0.0.2' }]); // CN1 gets it too
  await index.waitForRevision(b.revision);
  assert.equal((await keys(store, VLOG_PREFIX)).length, 2);
  assert.equal(await index.removeEvents([uuidToBytes(a.ids[0])]), 1);
  let res = await sweepLog(store, index);
  assert.deepEqual(res, { deleted: 1, states: 0, legacy: 0 });
  await index.waitForRevision(await store.revision());
  assert.equal((await keys(store, VLOG_PREFIX)).length, 1, 'CN1 and CN2 still have the second');
  const pending1 = index.pendingEvents(CN1).map((e) => e.id);
  const pending2 = index.pendingEvents(CN2).map((e) => e.id);
  assert.equal(pending1.length, 1);
  assert.equal(pending2.length, 1);
  await index.removeEvents([...pending1, ...pending2]);
  res = await sweepLog(store, index);
  assert.equal(res.deleted, 1);
  await index.waitForRevision(await store.revision());
  assert.deepEqual(await keys(store, VLOG_PREFIX), []);
  const rev = await store.revision();
  assert.deepEqual(await sweepLog(store, index), { deleted: 0, states: 0, legacy: 0 });
  assert.equal(await store.revision(), rev, 'nothing written');
});

test('expired entries go whoever still needs them; a node leaving takes its gone record and state with its last entry', async () => {
  const { store, index } = await setup();
  const { revision } = await putEvents(store, [{ type: 'vl2', cn: CN1, vnet: 9, mac: '02:00:00:00:00:01' }]);
  // CN1 leaves vnet 9 (its row goes, a gone record stays while the entry exists).
  const row = (await store.get(vnodeKey(9, CN1)))!;
  const left = await store.commit({
    ops: [
      { type: 'del', key: vnodeKey(9, CN1) },
      { type: 'put', key: goneKey(9, CN1, row.createRevision), value: JSON.stringify({ vnet_id: 9, cn_uuid: CN1, joined: row.createRevision }) },
    ],
  });
  await index.waitForRevision(left.revision);
  assert.ok(revision < left.revision);
  assert.equal(index.pendingEvents(CN1).length, 1, 'still pending after leaving');
  // CN1 removes nothing; a day later the entry expires.
  let res = await sweepLog(store, index, { now: () => Date.now() + 2 * DAY });
  assert.equal(res.deleted, 2, 'the entry, and the gone record nothing falls into any more');
  await index.waitForRevision(await store.revision());
  res = await sweepLog(store, index);
  assert.equal(res.states, 0, 'CN1 never removed anything: it has no state');
  await index.waitForRevision(await store.revision());
  assert.deepEqual(await keys(store, GONE_PREFIX), []);
  assert.equal(index.pendingEvents(CN1).length, 0);
  assert.deepEqual(await keys(store, VLOG_PREFIX), []);
});

test('a node over the cap keeps only its newest events; its state records it', async () => {
  const { store, index } = await setup();
  for (let i = 0; i < 5; i++) await putEvents(store, [{ type: 'vl3', cn: CN1, vnet: 5, ip: `10.0.0.${i}` }]);
  await index.waitForRevision(await store.revision());
  const res = await sweepLog(store, index, { maxPerNode: 2 });
  assert.equal(res.states, 1);
  await index.waitForRevision(await store.revision());
  assert.deepEqual(
    index.pendingEvents(CN1).map((e) => (e.type === 'vl3' ? e.ip.subarray(12).join('.') : '')),
    ['10.0.0.3', '10.0.0.4'],
  );
  await sweepLog(store, index, { maxPerNode: 2 });
  await index.waitForRevision(await store.revision());
  assert.equal((await keys(store, VLOG_PREFIX)).length, 2, 'the dropped entries are trimmed');
  assert.deepEqual(await keys(store, NODE_STATE_PREFIX), [`${NODE_STATE_PREFIX}${CN1}`]);
});

test('two replicas sweeping at once: the second commit fails and writes nothing; legacy keys go', async () => {
  const { store, index } = await setup();
  const other = new MappingIndex({ store });
  await other.start();
  cleanup.push(() => other.close());
  const { ids } = await putEvents(store, [{ type: 'vl3', cn: CN1, vnet: 5, ip: '10.0.0.1' }]);
  await index.removeEvents(ids.map(uuidToBytes));
  await other.waitForRevision(await store.revision());
  await store.commit({ ops: [{ type: 'put', key: `ovl/ev/${CN1}/x`, value: '{}' }, { type: 'put', key: 'ovl/vgen/00000005', value: '1' }] });
  const [r1, r2] = await Promise.all([sweepLog(store, index), sweepLog(store, other)]);
  assert.equal(r1.deleted + r2.deleted, 1, 'one of them deleted the entry');
  assert.equal(r1.legacy + r2.legacy >= 2, true);
  assert.deepEqual(await keys(store, 'ovl/ev/'), []);
  assert.deepEqual(await keys(store, 'ovl/vgen/'), []);
  assert.deepEqual(await keys(store, vlogKey(5, '')), []);
});

test('startLogSweep sweeps on demand and stops cleanly', async () => {
  const { store, index } = await setup();
  const { ids } = await putEvents(store, [{ type: 'vl3', cn: CN1, vnet: 5, ip: '10.0.0.1' }]);
  await index.removeEvents(ids.map(uuidToBytes));
  const sweep = startLogSweep(store, index, { intervalMs: 3_600_000 });
  assert.equal((await sweep.sweepNow()).deleted, 1);
  await sweep.stop();
  assert.equal(await store.count(VLOG_PREFIX), 0);
});
