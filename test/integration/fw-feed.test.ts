/**
 * The agent's feed client against a real controller app on loopback (applies recorded by
 * a fake applier, so no root needed): incremental rounds, retry of a failed apply, full
 * resync after the controller restarts, removal of instances that left the node.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { type ApplyResult, FwFeedClient, NftApplier } from '../../src/fw/applier.js';
import { MemoryStore } from '../../src/store/memory.js';
import { NODE_1, NODE_2, OWNER_A, putNic, vm } from '../helpers/fw-fixtures.js';
import { startTestNapi, type TestNapi } from '../helpers/napi.js';

class FakeApplier extends NftApplier {
  readonly tables = new Map<string, string>();
  failNext = new Set<string>();
  calls = 0;
  stateLoads = 0;
  override async loadStateTable(): Promise<string | undefined> {
    this.stateLoads++;
    return undefined;
  }
  override async apply(instance: string, _ns: string | undefined, text: string): Promise<ApplyResult> {
    this.calls++;
    if (this.failNext.delete(instance)) return { ok: false, changed: false, error: 'Error: simulated nft failure' };
    if (text.includes(' {\n')) this.tables.set(instance, text);
    else this.tables.delete(instance);
    return { ok: true, changed: true };
  }
}

async function listen(napi: TestNapi, port = 0): Promise<string> {
  await napi.app.listen({ host: '127.0.0.1', port });
  return `http://127.0.0.1:${(napi.app.server.address() as AddressInfo).port}`;
}

const store = new MemoryStore();
let napi: TestNapi | undefined;
let client: FwFeedClient | undefined;

after(async () => {
  await client?.stop();
  await napi?.app.close();
  await store.close();
});

async function settle(n: TestNapi, c: FwFeedClient): Promise<void> {
  const engine = n.fwEngine;
  await engine.sync();
  await c.waitForRevision(engine.revision);
}

describe('fw feed client', () => {
  const applier = new FakeApplier();

  it('applies the full set, then only what changed, and retries a failed apply', async () => {
    napi = await startTestNapi({ store });
    for (const n of [1, 2]) {
      const r = await napi.call('PUT', `/fw/instances/${vm(n)}`, { owner_uuid: OWNER_A, tags: { role: 'db' }, firewall_enabled: true });
      assert.equal(r.status, 200);
      await putNic(store, n, { instance: vm(n), ip: `10.0.0.${n}`, cn: NODE_1 });
    }
    await putNic(store, 3, { instance: vm(3), ip: '10.0.0.3', cn: NODE_2 });
    const url = await listen(napi);
    client = new FwFeedClient({ controllerUrl: url, nodeUuid: NODE_1, applier, waitMs: 500, retryMs: 50 });
    client.start();
    await settle(napi, client);
    assert.deepEqual([...applier.tables.keys()].sort(), [vm(1), vm(2)]);
    assert.equal(applier.stateLoads, 1, 'the node-wide state table goes in before the instances\' tables');

    applier.failNext.add(vm(1));
    const r = await napi.call('POST', '/rules', { rule: `FROM any TO vm ${vm(1)} ALLOW tcp PORT 22`, owner_uuid: OWNER_A, enabled: true });
    assert.equal(r.status, 202);
    await settle(napi, client);
    assert.match(applier.tables.get(vm(1))!, /tcp dport 22 accept/);
    assert.ok(!applier.tables.get(vm(2))!.includes('dport 22'));
    assert.equal(applier.failNext.size, 0, 'the failing apply happened and was retried');
    assert.equal(client.failures.size, 0);
  });

  it('resyncs fully after the controller restarts and removes instances that left the node', async () => {
    const port = (napi!.app.server.address() as AddressInfo).port;
    await napi!.app.close();
    // While the controller is down, vm(2) moves to node 2; the agent keeps polling.
    await putNic(store, 2, { instance: vm(2), ip: '10.0.0.2', cn: NODE_2 });
    napi = await startTestNapi({ store });
    await listen(napi, port);
    const before = client!.revision;
    await settle(napi, client!);
    assert.ok(client!.revision > before);
    assert.deepEqual([...applier.tables.keys()], [vm(1)]);
  });

  it('a restarted agent removes tables it finds that are no longer on its node', async () => {
    await client!.stop();
    const fresh = new FakeApplier();
    fresh.tables.set(vm(9), 'table bridge x {\n}');
    const removedTables: string[] = [];
    const orig = fresh.apply.bind(fresh);
    fresh.apply = async (instance, ns, text) => {
      if (!text.includes(' {\n')) removedTables.push(instance);
      return orig(instance, ns, text);
    };
    const url = `http://127.0.0.1:${(napi!.app.server.address() as AddressInfo).port}`;
    client = new FwFeedClient({
      controllerUrl: url, nodeUuid: NODE_1, applier: fresh, waitMs: 500, retryMs: 50,
      listInstalled: async () => [...fresh.tables.keys()],
    });
    client.start();
    await settle(napi!, client);
    assert.deepEqual(removedTables, [vm(9)]);
    assert.deepEqual([...fresh.tables.keys()], [vm(1)]);
  });
});
