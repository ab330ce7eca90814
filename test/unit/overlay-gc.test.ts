import { test } from 'node:test';
import assert from 'node:assert/strict';
import { v7 as uuidv7 } from 'uuid';
import { MemoryStore } from '../../src/store/memory.js';
import { eventKey, EVENT_PREFIX } from '../../src/overlay/keys.js';
import { startEventGc, sweepEvents, uuidv7Time } from '../../src/overlay/gc.js';

const CN_A = 'aaaaaaaa-0000-4000-8000-000000000001';
const CN_B = 'bbbbbbbb-0000-4000-8000-000000000002';
const DAY = 24 * 3600 * 1000;
const NOW = Date.UTC(2024, 5, 1);

async function putEvents(store: MemoryStore, cn: string, times: number[]): Promise<string[]> {
  const keys = times.map((t) => eventKey(cn, uuidv7({ msecs: t })));
  await store.commit({ ops: keys.map((key) => ({ type: 'put' as const, key, value: '{}' })) });
  return keys;
}

test('uuidv7Time reads the embedded timestamp', () => {
  assert.equal(uuidv7Time(uuidv7({ msecs: NOW })), NOW);
  assert.equal(uuidv7Time('not-a-uuid'), undefined);
  assert.equal(uuidv7Time('6ba7b810-9dad-41d1-80b4-00c04fd430c8'), undefined);
});

test('sweep deletes events older than the max age, per node, and keeps the rest', async () => {
  const store = new MemoryStore();
  const oldA = await putEvents(store, CN_A, [NOW - 3 * DAY, NOW - 2 * DAY]);
  const newA = await putEvents(store, CN_A, [NOW - 1000]);
  const newB = await putEvents(store, CN_B, [NOW - DAY + 5000, NOW]);
  const res = await sweepEvents(store, { now: () => NOW, pageSize: 2 });
  assert.deepEqual(res, { deleted: 2, nodes: 2 });
  const left = (await store.range({ prefix: EVENT_PREFIX })).kvs.map((kv) => kv.key);
  assert.deepEqual(left, [...newA, ...newB].sort());
  for (const k of oldA) assert.equal(await store.get(k), undefined);
});

test('sweep caps each node at maxPerNode, dropping the oldest', async () => {
  const store = new MemoryStore();
  const a = await putEvents(store, CN_A, Array.from({ length: 25 }, (_, i) => NOW - 25 + i));
  const b = await putEvents(store, CN_B, [NOW]);
  const res = await sweepEvents(store, { now: () => NOW, maxPerNode: 10, pageSize: 7 });
  assert.equal(res.deleted, 15);
  const left = (await store.range({ prefix: EVENT_PREFIX })).kvs.map((kv) => kv.key);
  assert.deepEqual(left, [...a.slice(15), ...b].sort());
});

test('startEventGc sweeps on demand and stops cleanly', async () => {
  const store = new MemoryStore();
  await putEvents(store, CN_A, [NOW - 2 * DAY]);
  const gc = startEventGc(store, { now: () => NOW, intervalMs: 3_600_000 });
  assert.deepEqual(await gc.sweepNow(), { deleted: 1, nodes: 1 });
  await gc.stop();
  assert.equal(await store.count(EVENT_PREFIX), 0);
});
