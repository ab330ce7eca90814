import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { MappingIndex } from '../../src/mapping/index.js';
import { U32Table } from '../../src/mapping/table.js';
import { ipMappingKey, macMappingKey, underlayKey, vlogKey } from '../../src/overlay/keys.js';
import { uuidFromBytes, uuidToBytes } from '../../src/net/addr.js';
import { MemoryStore } from '../../src/store/memory.js';
import { CompactingStore } from '../helpers/compacting-store.js';
import { CN1, CN2, deleteNic, putEvents, putNic, putUnderlay } from '../helpers/svp-fixtures.js';

describe('U32Table', () => {
  it('agrees with a Map under random inserts, updates and deletes (with growth)', () => {
    const t = new U32Table(2, 1, 16);
    const ref = new Map<string, number>();
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    for (let i = 0; i < 20000; i++) {
      const k = [rnd(50), rnd(400)];
      const key = k.join('/');
      if (rnd(3) === 0) {
        assert.equal(t.delete(k), ref.delete(key));
      } else {
        const v = rnd(1e9);
        t.set(k, [v]);
        ref.set(key, v);
      }
    }
    assert.equal(t.size, ref.size);
    for (const [key, v] of ref) {
      const slot = t.find(key.split('/').map(Number));
      assert.ok(slot >= 0, key);
      assert.equal(t.value(slot, 0), v);
    }
    for (let a = 0; a < 50; a++)
      for (let b = 0; b < 400; b++) assert.equal(t.find([a, b]) >= 0, ref.has(`${a}/${b}`));
  });
});

describe('MappingIndex over a MemoryStore', () => {
  const stores: MemoryStore[] = [];
  const indexes: MappingIndex[] = [];
  after(async () => {
    for (const i of indexes) i.close();
    for (const s of stores) await s.close();
  });
  const setup = async (): Promise<{ store: MemoryStore; index: MappingIndex }> => {
    const store = new MemoryStore();
    stores.push(store);
    const index = new MappingIndex({ store, pageSize: 3 });
    indexes.push(index);
    return { store, index };
  };

  it('loads existing keys (paged) and answers VL2/VL3', async () => {
    const { store, index } = await setup();
    await putUnderlay(store, CN1, '192.168.1.1', 123);
    await putNic(store, { mac: '00:0a:95:9d:68:16', ip: '10.0.0.1', vnet: 12340, cn: CN1 });
    await putNic(store, { mac: '00:0a:95:11:11:11', ip: '10.0.0.2', vnet: 12340, cn: CN2 }); // CN2 has no underlay
    await putNic(store, { mac: '02:00:00:00:00:06', ip: 'fd00::6', vnet: 12340, cn: CN1 });
    await index.start();
    assert.ok(index.ready);
    assert.equal(index.revision, await store.revision());

    const vl2 = index.lookupVl2(12340, '00:0a:95:9d:68:16');
    assert.equal(vl2?.cnUuid, CN1);
    assert.equal(vl2?.underlay.ipText, '192.168.1.1');
    assert.equal(vl2?.underlay.port, 123);
    assert.equal(index.lookupVl2(12341, '00:0a:95:9d:68:16'), null, 'unknown vnet');
    assert.equal(index.lookupVl2(12340, '00:0a:95:9d:68:17'), null, 'unknown mac');
    assert.equal(index.lookupVl2(12340, '00:0a:95:11:11:11'), null, 'node without underlay');

    const vl3 = index.lookupVl3(12340, '10.0.0.1');
    assert.equal(vl3?.mac, '00:0a:95:9d:68:16');
    assert.equal(vl3?.underlay.port, 123);
    assert.equal(index.lookupVl3(12340, '::ffff:10.0.0.1')?.mac, '00:0a:95:9d:68:16', 'v4-mapped form');
    assert.equal(index.lookupVl3(12340, 'fd00:0::6')?.mac, '02:00:00:00:00:06', 'IPv6');
    assert.equal(index.lookupVl3(12340, '10.0.0.2'), null);
    assert.equal(index.lookupVl3(1, '10.0.0.1'), null);
    assert.equal(index.stats().macMappings, 3);
    assert.equal(index.stats().ipMappings, 3);
  });

  it('follows the feed: puts, moves, deletes, underlay changes; waitForRevision', async () => {
    const { store, index } = await setup();
    await index.start();
    const nic = { mac: '02:00:00:00:00:01', ip: '10.0.0.9', vnet: 5, cn: CN1 };
    let rev = await putNic(store, nic);
    await putUnderlay(store, CN1, '192.168.1.1');
    rev = await putUnderlay(store, CN2, '192.168.1.2', 4790);
    assert.ok(await index.waitForRevision(rev, 1000));
    assert.equal(index.lookupVl3(5, '10.0.0.9')?.underlay.ipText, '192.168.1.1');

    rev = await putNic(store, { ...nic, cn: CN2 }); // the NIC moves
    assert.ok(await index.waitForRevision(rev, 1000));
    assert.equal(index.lookupVl2(5, nic.mac)?.underlay.ipText, '192.168.1.2');
    assert.equal(index.lookupVl3(5, '10.0.0.9')?.underlay.port, 4790);

    rev = (await store.commit({ ops: [{ type: 'del', key: underlayKey(CN2) }] })).revision;
    assert.ok(await index.waitForRevision(rev, 1000));
    assert.equal(index.lookupVl2(5, nic.mac), null, 'underlay record gone -> not found');

    await putUnderlay(store, CN2, '192.168.1.3');
    rev = await deleteNic(store, nic);
    assert.ok(await index.waitForRevision(rev, 1000));
    assert.equal(index.lookupVl2(5, nic.mac), null);
    assert.equal(index.lookupVl3(5, '10.0.0.9'), null);
    assert.equal(index.stats().macMappings, 0);

    // A commit touching no overlay key still advances the revision.
    rev = (await store.commit({ ops: [{ type: 'put', key: 'napi/x', value: '{}' }] })).revision;
    assert.ok(await index.waitForRevision(rev, 1000));
    assert.equal(await index.waitForRevision(rev + 5, 20), false, 'times out for a revision that never comes');
  });

  it('maps underlay addresses to nodes; duplicates are ambiguous', async () => {
    const { store, index } = await setup();
    await putUnderlay(store, CN1, '192.168.1.1');
    await index.start();
    assert.equal(index.nodeByUnderlay(Buffer.from('00000000000000000000ffffc0a80101', 'hex')), CN1);
    const rev = await putUnderlay(store, CN2, '192.168.1.1');
    await index.waitForRevision(rev);
    assert.equal(index.nodeByUnderlay(Buffer.from('00000000000000000000ffffc0a80101', 'hex')), 'ambiguous');
    const rev2 = await putUnderlay(store, CN2, '192.168.1.2');
    await index.waitForRevision(rev2);
    assert.equal(index.nodeByUnderlay(Buffer.from('00000000000000000000ffffc0a80101', 'hex')), CN1);
  });

  it("derives each node's events from the vnets' logs, notifies on arrival, forgets removed ones", async () => {
    const { store, index } = await setup();
    await index.start();
    let notified = 0;
    const off = index.onNodeEvents(CN1, () => notified++);
    const { ids, revision } = await putEvents(store, [
      { type: 'vl2', cn: CN1, vnet: 5, mac: '02:00:00:00:00:01' },
      { type: 'vl3', cn: CN1, vnet: 5, ip: '10.0.0.1', vlan: 7 },
      { type: 'vl3', cn: CN2, vnet: 6, ip: '10.0.0.1' },
    ]);
    await index.waitForRevision(revision);
    assert.equal(notified, 1, 'one notification per commit');
    const q = index.pendingEvents(CN1);
    assert.deepEqual(
      q.map((e) => uuidFromBytes(e.id)),
      ids.slice(0, 2),
    );
    assert.equal(q[0].type, 'vl2');
    assert.ok(q[1].type === 'vl3' && q[1].vlan === 7 && q[1].vnetId === 5, 'vlan and vnet of the VL3');
    assert.deepEqual(
      index.pendingEvents(CN2).map((e) => uuidFromBytes(e.id)),
      [ids[2]],
      'CN2 is only on vnet 6',
    );
    assert.equal(index.stats().events, 3);

    assert.equal(await index.removeEvents([uuidToBytes(ids[0])]), 1);
    assert.deepEqual(
      index.pendingEvents(CN1).map((e) => uuidFromBytes(e.id)),
      [ids[1]],
    );
    assert.equal(await index.removeEvents([uuidToBytes(ids[0])]), 0, 'removing again is a no-op');
    assert.equal(await index.removeEvents([uuidToBytes(ids[2])]), 1, 'each id names its node');
    assert.equal(index.pendingEvents(CN2).length, 0);
    off();
    await putEvents(store, [{ type: 'vl2', cn: CN1, vnet: 5, mac: '02:00:00:00:00:02' }]);
    assert.equal(notified, 1, 'unsubscribed');
  });

  it('ignores malformed records without serving stale data', async () => {
    const { store, index } = await setup();
    await putUnderlay(store, CN1, '192.168.1.1');
    await putNic(store, { mac: '02:00:00:00:00:01', ip: '10.0.0.1', vnet: 5, cn: CN1 });
    await index.start();
    const r = await store.commit({
      ops: [
        { type: 'put', key: macMappingKey(5, '02:00:00:00:00:01'), value: 'not json' },
        { type: 'put', key: ipMappingKey(5, '10.0.0.1'), value: '{"mac":"zz"}' },
        { type: 'put', key: 'ovl/ip/garbage', value: '{}' },
        { type: 'put', key: vlogKey(5, 'x'), value: '{"events":[{"type":"vl2"}]}' },
      ],
    });
    await index.waitForRevision(r.revision);
    assert.equal(index.lookupVl2(5, '02:00:00:00:00:01'), null);
    assert.equal(index.lookupVl3(5, '10.0.0.1'), null);
    assert.equal(index.stats().invalidRecords, 4);
    assert.equal(index.pendingEvents(CN1).length, 0);
  });

  it('reloads when the feed it asks for has been compacted', async () => {
    // After the first range read, more commits land and history is compacted, so the
    // watch from R+1 fails with CompactedError.
    const store = new CompactingStore((s) => putNic(s, { mac: '02:00:00:00:00:01', ip: '10.0.0.1', vnet: 5, cn: CN1 }));
    stores.push(store);
    await putUnderlay(store, CN1, '192.168.1.1');
    const index = new MappingIndex({ store });
    indexes.push(index);
    await index.start();
    const rev = await store.revision();
    assert.ok(await index.waitForRevision(rev, 2000));
    for (let i = 0; i < 100 && !index.lookupVl2(5, '02:00:00:00:00:01'); i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(index.lookupVl2(5, '02:00:00:00:00:01')?.cnUuid, CN1);
    assert.equal(index.stats().reloads, 1);
    // And it keeps following after the reload.
    const r2 = await putNic(store, { mac: '02:00:00:00:00:02', vnet: 5, cn: CN1 });
    assert.ok(await index.waitForRevision(r2, 1000));
    assert.equal(index.lookupVl2(5, '02:00:00:00:00:02')?.cnUuid, CN1);
  });
});

describe('LOG_RM through two replicas at once', () => {
  it('keeps both removals: the later commit conflicts, catches up and writes the union', async () => {
    const inner = new MemoryStore();
    // Commits take a while, so each replica computes its write before seeing the other's.
    const store = Object.create(inner) as MemoryStore;
    store.commit = async (batch) => {
      await new Promise((r) => setTimeout(r, 5));
      return inner.commit(batch);
    };
    store.range = (opts) => inner.range(opts);
    const a = new MappingIndex({ store });
    const b = new MappingIndex({ store });
    try {
      await Promise.all([a.start(), b.start()]);
      const { ids, revision } = await putEvents(store, [
        { type: 'vl2', cn: CN1, vnet: 5, mac: '02:00:00:00:00:01' },
        { type: 'vl3', cn: CN1, vnet: 5, ip: '10.0.0.1' },
        { type: 'vl3', cn: CN1, vnet: 5, ip: '10.0.0.2' },
      ]);
      await Promise.all([a.waitForRevision(revision), b.waitForRevision(revision)]);
      // The node's first and third events through replica A, the second through B, at once.
      const [ra, rb] = await Promise.all([a.removeEvents([uuidToBytes(ids[0]), uuidToBytes(ids[2])]), b.removeEvents([uuidToBytes(ids[1])])]);
      assert.equal(ra, 2);
      assert.equal(rb, 1);
      await Promise.all([a.waitForRevision(await store.revision()), b.waitForRevision(await store.revision())]);
      assert.equal(a.pendingEvents(CN1).length, 0, 'replica A serves none of them');
      assert.equal(b.pendingEvents(CN1).length, 0, 'replica B serves none of them');
    } finally {
      a.close();
      b.close();
      await inner.close();
    }
  });
});

describe('LOG_RM at a replica that has not seen the event yet', () => {
  it('catches up with the store and removes it', async () => {
    const inner = new MemoryStore();
    // Replica B's feed runs 200 ms behind.
    const slow = Object.create(inner) as MemoryStore;
    slow.range = (opts) => inner.range(opts);
    slow.watch = (opts, handlers) =>
      inner.watch(opts, {
        onChange: (set) => new Promise<void>((resolve) => setTimeout(() => resolve(handlers.onChange(set)), 200)),
        onError: (err) => handlers.onError?.(err),
      });
    const a = new MappingIndex({ store: inner });
    const b = new MappingIndex({ store: slow });
    try {
      await Promise.all([a.start(), b.start()]);
      const { ids, revision } = await putEvents(inner, [{ type: 'vl3', cn: CN1, vnet: 5, ip: '10.0.0.1' }]);
      await a.waitForRevision(revision);
      assert.equal(b.pendingEvents(CN1).length, 0, 'B has not seen it');
      assert.equal(await b.removeEvents([uuidToBytes(ids[0])]), 1, 'B waited for it and removed it');
      await a.waitForRevision(await inner.revision());
      assert.equal(a.pendingEvents(CN1).length, 0);
      assert.equal(await b.removeEvents([uuidToBytes('01234567-89ab-7def-8123-456789abcdef')]), 0, 'an id nobody has is ignored');
    } finally {
      a.close();
      b.close();
      await inner.close();
    }
  });
});
