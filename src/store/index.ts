/**
 * Opens the configured Store backend. Callers depend on the Store interface only; this is
 * the one place that knows which implementations exist.
 */
import type { Store } from './types.js';
import { MemoryStore } from './memory.js';
import { LevelStore, type LevelStoreOptions } from './leveldb.js';
import { EtcdStore, type EtcdStoreOptions } from './etcd.js';

export type StoreConfig =
  | ({ kind: 'leveldb'; dir: string } & LevelStoreOptions)
  | { kind: 'memory' }
  | ({ kind: 'etcd' } & EtcdStoreOptions);

export async function openStore(config: StoreConfig): Promise<Store> {
  switch (config.kind) {
    case 'leveldb': {
      const { dir, ...opts } = config;
      if (typeof dir !== 'string' || dir === '') throw new Error('leveldb store needs a directory (dir)');
      return LevelStore.open(dir, opts);
    }
    case 'memory':
      return new MemoryStore();
    case 'etcd': {
      const { kind: _kind, ...opts } = config;
      return EtcdStore.open(opts);
    }
    default:
      throw new Error(`unknown store kind ${(config as { kind: unknown }).kind}`);
  }
}

export { MemoryStore } from './memory.js';
export { LevelStore, StoreLockedError, type LevelStoreOptions } from './leveldb.js';
export { EtcdStore, StoreUnavailableError, DEFAULT_ETCD_PREFIX, type EtcdStoreOptions } from './etcd.js';
export * from './types.js';
