/**
 * StoreMirror (a replica's watch-fed copy for Store.getStale) and transact()'s stale first
 * attempt: exact revisions, and what a stale copy can get wrong — a read that changed
 * before the commit, an error or a write-less answer decided from a stale read, a feed that
 * lags, one lost to compaction, a mirror closed and started again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/memory.js';
import { MISS, StoreMirror } from '../../src/store/mirror.js';
import { transact } from '../../src/store/txn.js';
import { CompactedError, type KeyValue, type WatchHandlers, type WatchOptions, type Watcher } from '../../src/store/types.js';

/** A MemoryStore whose change feed can be held back or failed, with getStale from a mirror of 'm/'. */
class LaggingStore extends MemoryStore {
  mirror = new StoreMirror({ store: this, prefixes: ['m/'], retryBaseMs: 10 });
  private gate: Promise<void> | null = null;
  private open: (() => void) | null = null;
  private live: Array<{ w: Watcher; h: WatchHandlers }> = [];
  staleReads = 0;

  pause(): void {
    this.gate ??= new Promise((r) => (this.open = r));
  }

  resume(): void {
    this.open?.();
    this.gate = null;
  }

  /** Ends every feed with err, as a compaction past it would. */
  failFeeds(err: Error): void {
    const live = this.live;
    this.live = [];
    for (const { w, h } of live) {
      w.close();
      h.onError?.(err);
    }
  }

  override watch(opts: WatchOptions, handlers: WatchHandlers): Watcher {
    const w = super.watch(opts, {
      onChange: async (set) => {
        while (this.gate) await this.gate;
        return handlers.onChange(set);
      },
      ...(handlers.onError ? { onError: handlers.onError } : {}),
    });
    this.live.push({ w, h: handlers });
    return w;
  }

  async getStale(key: string): Promise<KeyValue | undefined> {
    const kv = this.mirror.read(key);
    if (kv === MISS) return this.get(key);
    this.staleReads++;
    return kv;
  }

  async getManyStale(keys: string[]): Promise<Map<string, KeyValue>> {
    const out = new Map<string, KeyValue>();
    for (const k of keys) {
      const kv = await this.getStale(k);
      if (kv) out.set(k, kv);
    }
    return out;
  }
}

async function caughtUp(store: LaggingStore): Promise<void> {
  const target = await store.revision();
  for (let i = 0; i < 500 && store.mirror.revision < target; i++) await new Promise((r) => setTimeout(r, 2));
  assert.ok(store.mirror.revision >= target, `mirror at ${store.mirror.revision}, store at ${target}`);
}

const put = (key: string, value: string) => ({ type: 'put' as const, key, value });

async function assertExact(store: LaggingStore, keys: string[]): Promise<void> {
  for (const k of keys) assert.deepEqual(store.mirror.read(k), await store.get(k), k);
}

test('the mirror answers with the store\'s exact revisions, only for its prefixes and once loaded', async () => {
  const store = new LaggingStore();
  try {
    await store.commit({ ops: [put('m/a', '1'), put('m/b', '2'), put('other', 'x')] });
    await store.commit({ ops: [put('m/a', '1b')] });
    assert.equal(store.mirror.read('m/a'), MISS, 'not started: unknown');
    store.mirror.start();
    await caughtUp(store);
    await assertExact(store, ['m/a', 'm/b', 'm/none']);
    assert.equal(store.mirror.read('other'), MISS, 'outside its prefixes');
    // Followed: updates, deletes, a key deleted and created again (a new createRevision).
    await store.commit({ ops: [put('m/b', '3'), put('m/c', 'new')] });
    await store.commit({ ops: [{ type: 'del', key: 'm/a' }] });
    await store.commit({ ops: [put('m/a', 'again')] });
    await caughtUp(store);
    await assertExact(store, ['m/a', 'm/b', 'm/c']);
    const a = store.mirror.read('m/a') as KeyValue;
    assert.equal(a.createRevision, a.modRevision, 'created again at its last write');
    // Closed: unknown again; a new mirror (a restarted replica) loads what is there now.
    store.mirror.close();
    assert.equal(store.mirror.read('m/a'), MISS);
    store.mirror = new StoreMirror({ store, prefixes: ['m/'] });
    store.mirror.start();
    await caughtUp(store);
    await assertExact(store, ['m/a', 'm/b', 'm/c']);
  } finally {
    store.mirror.close();
    await store.close();
  }
});

test('a stale read fails the commit and the retry reads the store: the write is built on the current value', async () => {
  const store = new LaggingStore();
  try {
    await store.commit({ ops: [put('m/count', '1')] });
    store.mirror.start();
    await caughtUp(store);
    store.pause(); // the replica's feed lags
    await store.commit({ ops: [put('m/count', '5')] }); // another replica's write
    const seen: string[] = [];
    const { value } = await transact(store, async (tx) => {
      const n = Number((await tx.get('m/count'))!.value);
      seen.push(String(n));
      tx.put('m/count', String(n + 1));
      return n + 1;
    });
    assert.deepEqual(seen, ['1', '5'], 'first attempt read the stale copy, the retry the store');
    assert.equal(value, 6);
    assert.equal((await store.get('m/count'))!.value, '6');
    assert.ok(store.staleReads > 0);
  } finally {
    store.resume();
    store.mirror.close();
    await store.close();
  }
});

test('an error or a write-less answer decided from a stale read is checked against the store before it stands', async () => {
  const store = new LaggingStore();
  try {
    await store.commit({ ops: [put('m/seed', '')] });
    store.mirror.start();
    await caughtUp(store);
    store.pause();
    await store.commit({ ops: [put('m/nic', 'on-a'), put('m/flag', 'set')] }); // not in the copy yet
    let attempts = 0;
    // "Not found" from the copy: the key exists now, so the body runs again on the store.
    const { value } = await transact(store, async (tx) => {
      attempts++;
      const kv = await tx.get('m/nic');
      if (!kv) throw new Error('not found');
      tx.put('m/nic', 'on-b');
      return kv.value;
    });
    assert.equal(value, 'on-a');
    assert.equal(attempts, 2);
    // Nothing to write, decided from the copy: the answer is re-read before it is returned.
    const r = await transact(store, async (tx) => (await tx.get('m/flag'))?.value ?? 'unset');
    assert.equal(r.value, 'set');
    // A real error (the store agrees) stands, after one check.
    attempts = 0;
    await assert.rejects(
      transact(store, async (tx) => {
        attempts++;
        if (!(await tx.get('m/missing'))) throw new Error('really not found');
      }),
      /really not found/,
    );
    assert.equal(attempts, 1);
  } finally {
    store.resume();
    store.mirror.close();
    await store.close();
  }
});

test('a feed lost to compaction reloads the copy; until then the old copy (stale, exact) keeps answering', async () => {
  const store = new LaggingStore();
  try {
    await store.commit({ ops: [put('m/a', '1'), put('m/b', '1')] });
    store.mirror.start();
    await caughtUp(store);
    store.pause();
    await store.commit({ ops: [put('m/a', '2')] });
    await store.commit({ ops: [{ type: 'del', key: 'm/b' }, put('m/c', '1')] });
    assert.equal((store.mirror.read('m/a') as KeyValue).value, '1', 'lagging: the old value, with its own revision');
    assert.equal((store.mirror.read('m/a') as KeyValue).modRevision, 1);
    await store.compact(await store.revision());
    store.failFeeds(new CompactedError(2, await store.revision()));
    await caughtUp(store);
    await assertExact(store, ['m/a', 'm/b', 'm/c']);
    store.resume();
    await store.commit({ ops: [put('m/a', '3')] });
    await caughtUp(store);
    await assertExact(store, ['m/a', 'm/b', 'm/c']);
  } finally {
    store.resume();
    store.mirror.close();
    await store.close();
  }
});
