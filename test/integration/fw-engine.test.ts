/**
 * FwEngine over a store (no HTTP): a ruleset the checker rejects is never published (the
 * previous one stays, the rejection is recorded and counted); per-node deltas.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRegistry } from '../../src/metrics/index.js';
import { FwEngine } from '../../src/fw/push.js';
import { instanceKey, ruleKey } from '../../src/fw/registry.js';
import { MemoryStore } from '../../src/store/memory.js';
import { NODE_1, OWNER_A, putNic, ruid, vm } from '../helpers/fw-fixtures.js';

async function put(store: MemoryStore, key: string, value: unknown): Promise<void> {
  const res = await store.commit({ ops: [{ type: 'put', key, value: JSON.stringify(value) }] });
  assert.ok(res.ok);
}

const rule = (n: number, text: string) => ({ uuid: ruid(n), rule: text, enabled: true, log: false, owner_uuid: OWNER_A, version: '1.000001' });

describe('FwEngine', () => {
  it('keeps the previous ruleset when the check rejects the new one', async () => {
    const store = new MemoryStore();
    const registry = createRegistry('test');
    const engine = new FwEngine(store, registry, {
      verify: async (text) => (text.includes('dport 6666') ? { ok: false, error: 'Error: simulated rejection' } : { ok: true }),
    });
    await put(store, instanceKey(vm(1)), { uuid: vm(1), owner_uuid: OWNER_A, tags: { role: 'db' }, firewall_enabled: true });
    await putNic(store, 1, { instance: vm(1), ip: '10.0.0.1', cn: NODE_1 });
    await put(store, ruleKey(ruid(1)), rule(1, 'FROM any TO tag "role" = "db" ALLOW tcp PORT 5432'));
    await engine.start();
    try {
      const first = await engine.feed(NODE_1, 0, 0);
      assert.equal(first.full, true);
      assert.match(first.rulesets[0]!.text, /dport 5432 accept/);
      await put(store, ruleKey(ruid(1)), rule(1, 'FROM any TO tag "role" = "db" ALLOW tcp PORT 6666'));
      await engine.sync();
      assert.equal(engine.rejections.get(vm(1)), 'Error: simulated rejection');
      assert.match(engine.rulesetText(vm(1))!, /dport 5432 accept/);
      const delta = await engine.feed(NODE_1, first.revision, 0);
      assert.deepEqual(delta.rulesets, [], 'nothing new is pushed');
      assert.match(await registry.metrics(), /rhumb_fw_rulesets_rejected_total\{process="test"\} 1/);
      // A later acceptable change goes through and clears the rejection.
      await put(store, ruleKey(ruid(1)), rule(1, 'FROM any TO tag "role" = "db" ALLOW tcp PORT 7777'));
      await engine.sync();
      assert.equal(engine.rejections.has(vm(1)), false);
      const next = await engine.feed(NODE_1, first.revision, 0);
      assert.match(next.rulesets[0]!.text, /dport 7777 accept/);
    } finally {
      engine.stop();
      await store.close();
    }
  });

  it('long-polls until a change for the node, and answers an empty delta on timeout', async () => {
    const store = new MemoryStore();
    const engine = new FwEngine(store, createRegistry('test'));
    await put(store, 'napi/unrelated', {});
    await engine.start();
    try {
      const rev = (await engine.feed(NODE_1, 0, 0)).revision;
      const empty = await engine.feed(NODE_1, rev, 50);
      assert.deepEqual([empty.full, empty.rulesets.length], [false, 0]);
      const waiting = engine.feed(NODE_1, rev, 10_000);
      await put(store, instanceKey(vm(2)), { uuid: vm(2), owner_uuid: OWNER_A, tags: {}, firewall_enabled: true });
      await putNic(store, 2, { instance: vm(2), ip: '10.0.0.2', cn: NODE_1 });
      const got = await waiting;
      assert.deepEqual(got.rulesets.map((r) => r.uuid), [vm(2)]);
      // Node-side: on the NIC's port (named from its MAC), default inbound drop.
      assert.match(got.rulesets[0]!.text, /oifname "rv90b8d0000002" jump inbound/);
      assert.match(got.rulesets[0]!.text, /\n\t\tdrop\n\t\}/);
    } finally {
      engine.stop();
      await store.close();
    }
  });
});
