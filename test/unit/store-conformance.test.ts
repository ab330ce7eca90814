/** Runs the shared Store conformance suite against the in-process backends. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runStoreConformance } from '../helpers/store-conformance.js';
import { MemoryStore } from '../../src/store/memory.js';
import { LevelStore } from '../../src/store/leveldb.js';
import type { Store } from '../../src/store/types.js';

runStoreConformance('memory', async () => {
  const store = new MemoryStore();
  return { store, cleanup: () => store.close() };
});

runStoreConformance('leveldb', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rhumb-store-'));
  let current: Store = await LevelStore.open(dir);
  return {
    store: current,
    reopen: async () => {
      await current.close();
      current = await LevelStore.open(dir);
      return current;
    },
    cleanup: async () => {
      await current.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});
