/**
 * StoreView: the shared load / follow / reload loop behind the mapping index and the
 * firewall engine.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStore } from '../../src/store/memory.js';
import type { ChangeSet, KeyValue, WatchHandlers, WatchOptions, Watcher } from '../../src/store/types.js';
import { StoreView, type ViewReducer } from '../../src/store/view.js';

/** A reducer that mirrors the watched keys into a Map, loading beside the current one. */
class Mirror implements ViewReducer {
  current = new Map<string, string>();
  private next: Map<string, string> | null = null;
  loads: Array<{ revision: number; reload: boolean }> = [];
  lost: Error[] = [];
  beginLoad(): void {
    this.next = new Map();
  }
  loadPage(kvs: readonly KeyValue[]): void {
    for (const kv of kvs) this.next!.set(kv.key, kv.value);
  }
  endLoad(revision: number, reload: boolean): void {
    this.current = this.next!;
    this.next = null;
    this.loads.push({ revision, reload });
  }
  apply(set: ChangeSet): void {
    for (const c of set.changes) {
      if (!c.key.startsWith('a/')) continue;
      if (c.type === 'put') this.current.set(c.key, c.value!);
      else this.current.delete(c.key);
    }
  }
  feedLost(err: Error): void {
    this.lost.push(err);
  }
}

const put = async (s: MemoryStore, key: string, value = 'v'): Promise<number> =>
  (await s.commit({ ops: [{ type: 'put', key, value }] })).revision;

describe('StoreView', () => {
  it('loads in pages, follows, and waits for revisions', async () => {
    const store = new MemoryStore();
    for (let i = 0; i < 7; i++) await put(store, `a/${i}`);
    await put(store, 'b/x');
    const m = new Mirror();
    const view = new StoreView({ store, prefixes: ['a/'], pageSize: 3 }, m);
    await view.start();
    assert.equal(m.current.size, 7);
    assert.deepEqual(m.loads, [{ revision: 8, reload: false }]);
    const rev = await put(store, 'a/new');
    assert.ok(await view.waitForRevision(rev, 1000));
    assert.equal(m.current.get('a/new'), 'v');
    assert.equal(await view.waitForRevision(rev + 10, 20), false, 'times out');
    view.close();
    assert.equal(await view.waitForRevision(rev + 10), false, 'closed');
    await store.close();
  });

  it('reloads with backoff after a feed failure, ignoring the abandoned feed', async () => {
    const inner = new MemoryStore();
    await put(inner, 'a/1');
    const handlers: WatchHandlers[] = [];
    const store = Object.create(inner) as MemoryStore;
    store.range = (opts) => inner.range(opts);
    store.watch = (opts: WatchOptions, h: WatchHandlers): Watcher => {
      handlers.push(h);
      return inner.watch(opts, h);
    };
    const m = new Mirror();
    const view = new StoreView({ store, prefixes: ['a/'], retryBaseMs: 30 }, m);
    await view.start();
    assert.equal(view.following, true);
    const t0 = Date.now();
    handlers[0].onError!(new Error('backend hiccup'));
    assert.equal(view.following, false);
    assert.equal(m.lost.length, 1);
    await put(inner, 'a/2');
    // The old feed's late deliveries are ignored (its generation is gone).
    await handlers[0].onChange({ revision: 99, changes: [{ type: 'put', key: 'a/ghost', value: 'x' }] });
    assert.equal(m.current.has('a/ghost'), false);
    for (let i = 0; i < 100 && m.loads.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(Date.now() - t0 >= 25, 'waited for the backoff');
    assert.deepEqual(m.loads.at(-1), { revision: 2, reload: true });
    assert.equal(view.reloads, 1);
    assert.equal(m.current.get('a/2'), 'v');
    assert.equal(view.following, true);
    view.close();
    await inner.close();
  });

  it('reloads at once when the feed it asks for has been compacted', async () => {
    const inner = new MemoryStore();
    await put(inner, 'a/1');
    let first = true;
    const store = Object.create(inner) as MemoryStore;
    store.range = async (opts) => {
      const r = await inner.range(opts);
      if (first) {
        first = false;
        await put(inner, 'a/2');
        await inner.compact(await inner.revision());
      }
      return r;
    };
    const m = new Mirror();
    const view = new StoreView({ store, prefixes: ['a/'] }, m);
    await view.start();
    for (let i = 0; i < 100 && m.loads.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
    assert.equal(view.reloads, 1);
    assert.equal(m.current.get('a/2'), 'v');
    view.close();
    await inner.close();
  });
});
