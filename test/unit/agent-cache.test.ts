import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ResolvingCache } from '../../src/agent/cache.js';

function fakeClock(start = 1000) {
  const c = { t: start, now: () => c.t };
  return c;
}

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

test('concurrent resolves of one key share a single lookup', async () => {
  const cache = new ResolvingCache<string>();
  const d = deferred<string | null>();
  let calls = 0;
  const lookup = () => (calls++, d.promise);
  const all = Promise.all([cache.resolve('k', lookup), cache.resolve('k', lookup), cache.resolve('k', lookup)]);
  d.resolve('mac');
  const rs = await all;
  assert.equal(calls, 1);
  assert.deepEqual(rs.map((r) => r.source), ['lookup', 'coalesced', 'coalesced']);
  assert.ok(rs.every((r) => r.value === 'mac'));
  assert.deepEqual(await cache.resolve('k', lookup), { value: 'mac', source: 'hit' });
  assert.equal(calls, 1);
});

test('NOTFOUND is cached for the negative TTL only; positive answers do not expire', async () => {
  const clock = fakeClock();
  const cache = new ResolvingCache<string>({ negativeTtlMs: 2000, clock });
  let calls = 0;
  const miss = async () => (calls++, null);
  assert.deepEqual(await cache.resolve('gone', miss), { value: null, source: 'lookup' });
  clock.t += 1999;
  assert.deepEqual(await cache.resolve('gone', miss), { value: null, source: 'negative' });
  assert.equal(calls, 1);
  assert.equal(cache.sizes().negative, 1);
  clock.t += 1;
  assert.deepEqual(await cache.resolve('gone', miss), { value: null, source: 'lookup' });
  assert.equal(calls, 2);

  await cache.resolve('here', async () => 'm1');
  clock.t += 10 * 24 * 3600 * 1000;
  assert.deepEqual(await cache.resolve('here', async () => 'other'), { value: 'm1', source: 'hit' });
  assert.equal(cache.sizes().positive, 1);
});

test('an answer that raced an invalidation is returned but not cached', async () => {
  const cache = new ResolvingCache<string>();
  const d = deferred<string | null>();
  const first = cache.resolve('k', () => d.promise);
  cache.invalidate('k'); // a shootdown arrives while the lookup is in flight
  d.resolve('stale');
  assert.deepEqual(await first, { value: 'stale', source: 'lookup', stale: true });
  assert.equal(cache.peek('k'), undefined);
  assert.deepEqual(await cache.resolve('k', async () => 'fresh'), { value: 'fresh', source: 'lookup' });
});

test('a failed lookup caches nothing and the next resolve asks again', async () => {
  const cache = new ResolvingCache<string>();
  await assert.rejects(cache.resolve('k', async () => Promise.reject(new Error('timeout'))), /timeout/);
  assert.equal(cache.sizes().inflight, 0);
  assert.deepEqual(await cache.resolve('k', async () => 'ok'), { value: 'ok', source: 'lookup' });
});

test('refresh bypasses the cache; invalidateWhere drops matching positive entries', async () => {
  const cache = new ResolvingCache<{ mac: string }>();
  cache.set('1/10.0.0.1', { mac: 'a' });
  cache.set('1/10.0.0.2', { mac: 'b' });
  cache.set('2/10.0.0.1', { mac: 'a' });
  cache.set('1/10.0.0.3', null);
  assert.deepEqual(await cache.refresh('1/10.0.0.2', async () => ({ mac: 'c' })), { value: { mac: 'c' }, stale: false });
  assert.deepEqual(cache.peek('1/10.0.0.2'), { mac: 'c' });
  const gone = cache.invalidateWhere((k, v) => k.startsWith('1/') && v.mac === 'a');
  assert.deepEqual(gone, ['1/10.0.0.1']);
  assert.deepEqual(cache.peek('2/10.0.0.1'), { mac: 'a' });
  assert.equal(cache.peek('1/10.0.0.3'), null);
});
