/**
 * A REST write is answered only after the hook that makes it visible to other readers
 * (the controller's SVP index) has seen the write's own commit revision.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_ADMIN_UUID, napiConfigFrom } from '../../src/controller/index.js';
import { createRegistry } from '../../src/metrics/index.js';
import { buildNapiApp } from '../../src/napi/app.js';
import { ensureInitialData } from '../../src/napi/bootstrap.js';
import { MemoryStore } from '../../src/store/memory.js';

test('writes wait for their own commit revision; reads and failed writes do not wait', async () => {
  const store = new MemoryStore();
  const config = napiConfigFrom({
    store: { kind: 'memory' },
    listen: { host: '127.0.0.1', port: 0 },
    svpListen: { host: '127.0.0.1', port: 0 },
    adminUuid: DEFAULT_ADMIN_UUID,
    overlayMtu: 1450,
  });
  await ensureInitialData({ store, config });
  const seen: number[] = [];
  const app = buildNapiApp(
    { store, config, registry: createRegistry('test') },
    {
      beforeWriteReply: async (rev) => {
        seen.push(rev);
      },
    },
  );
  try {
    // Concurrent writes each report their own revision, not a neighbour's.
    const before = await store.revision();
    const replies = await Promise.all(
      ['t1', 't2', 't3'].map((name) => app.inject({ method: 'POST', url: '/nic_tags', payload: { name } })),
    );
    for (const r of replies) assert.equal(r.statusCode, 200);
    const after = await store.revision();
    assert.equal(seen.length, 3);
    assert.deepEqual([...seen].sort((a, b) => a - b), [before + 1, before + 2, before + 3]);
    assert.equal(after, before + 3);

    seen.length = 0;
    assert.equal((await app.inject({ method: 'GET', url: '/nic_tags' })).statusCode, 200);
    assert.equal((await app.inject({ method: 'POST', url: '/nic_tags', payload: { name: 't1' } })).statusCode, 422);
    assert.deepEqual(seen, []);
  } finally {
    await app.close();
    await store.close();
  }
});
