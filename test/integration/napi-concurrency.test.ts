/**
 * Allocation under concurrency: many NIC creates at once on one network get distinct
 * IPs and MACs, or SubnetFull for the excess; never a duplicate. Run against the memory
 * store and the embedded LevelDB store.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_UUID, type TestNapi, startTestNapi } from '../helpers/napi.js';
import { MemoryStore } from '../../src/store/memory.js';
import { LevelStore } from '../../src/store/leveldb.js';
import type { Store } from '../../src/store/types.js';
import { IP_PREFIX, NIC_PREFIX } from '../../src/napi/keys.js';

interface Backend {
  name: string;
  open(): Promise<{ store: Store; cleanup(): Promise<void> }>;
}

const backends: Backend[] = [
  { name: 'memory', open: async () => ({ store: new MemoryStore(), cleanup: async () => undefined }) },
  {
    name: 'leveldb',
    open: async () => {
      const dir = await mkdtemp(join(tmpdir(), 'rhumb-napi-conc-'));
      return { store: await LevelStore.open(dir, { sync: false }), cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  },
];

async function makeNetwork(napi: TestNapi, name: string, subnet: string, start: string, end: string): Promise<string> {
  const r = await napi.call('POST', '/networks', { name, nic_tag: 'sdc_underlay', vlan_id: 0, subnet, provision_start_ip: start, provision_end_ip: end });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.uuid;
}

function createMany(napi: TestNapi, network: string, n: number) {
  return Promise.all(
    Array.from({ length: n }, (_, i) =>
      napi.call('POST', `/networks/${network}/nics`, {
        belongs_to_uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
        belongs_to_type: 'zone',
        owner_uuid: ADMIN_UUID,
      }),
    ),
  );
}

async function assertNoDuplicates(store: Store, network: string, expectNics: number): Promise<void> {
  const nics = (await store.range({ prefix: NIC_PREFIX })).kvs.map((kv) => JSON.parse(kv.value));
  const onNet = nics.filter((n) => n.network_uuid === network);
  assert.equal(onNet.length, expectNics);
  assert.equal(new Set(onNet.map((n) => n.ip)).size, expectNics, 'duplicate IP among stored NICs');
  const ips = (await store.range({ prefix: `${IP_PREFIX}${network}/` })).kvs.map((kv) => JSON.parse(kv.value));
  const held = ips.filter((r) => r.belongs_to_type === 'zone');
  assert.equal(held.length, expectNics);
  // Every stored IP record points back at exactly the NIC that holds it.
  const byIp = new Map(onNet.map((n) => [n.ip, n]));
  for (const r of held) assert.equal(byIp.get(r.ip)?.belongs_to_uuid, r.belongs_to_uuid);
}

for (const backend of backends) {
  test(`${backend.name}: 200 parallel NIC creates on one /24 get 200 distinct IPs and MACs`, async () => {
    const { store, cleanup } = await backend.open();
    const napi = await startTestNapi({ store });
    try {
      const net = await makeNetwork(napi, 'conc24', '10.50.0.0/24', '10.50.0.1', '10.50.0.254');
      const replies = await createMany(napi, net, 200);
      for (const r of replies) assert.equal(r.status, 200, JSON.stringify(r.body));
      const ips = replies.map((r) => r.body.ip);
      const macs = replies.map((r) => r.body.mac);
      assert.equal(new Set(ips).size, 200);
      assert.equal(new Set(macs).size, 200);
      for (const ip of ips) assert.match(ip, /^10\.50\.0\.\d+$/);
      await assertNoDuplicates(store, net, 200);
    } finally {
      await napi.close();
      await cleanup();
    }
  });

  test(`${backend.name}: 200 parallel creates on a 100-address range: 100 succeed, the rest get SubnetFull`, async () => {
    const { store, cleanup } = await backend.open();
    const napi = await startTestNapi({ store });
    try {
      const net = await makeNetwork(napi, 'conc25', '10.60.0.0/25', '10.60.0.10', '10.60.0.109');
      const replies = await createMany(napi, net, 200);
      const ok = replies.filter((r) => r.status === 200);
      const full = replies.filter((r) => r.status !== 200);
      assert.equal(ok.length, 100);
      assert.equal(new Set(ok.map((r) => r.body.ip)).size, 100);
      assert.equal(new Set(ok.map((r) => r.body.mac)).size, 100);
      for (const r of full) {
        assert.equal(r.status, 507);
        assert.deepEqual(r.body, { code: 'SubnetFull', message: 'no more free IPs', network_uuid: net });
      }
      await assertNoDuplicates(store, net, 100);
    } finally {
      await napi.close();
      await cleanup();
    }
  });
}

test('leveldb: a NIC create has read every key it writes, so its commit reads nothing from disk', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'rhumb-napi-reads-'));
  const store = await LevelStore.open(dir, { sync: false });
  const napi = await startTestNapi({ store });
  try {
    const net = await makeNetwork(napi, 'reads', '10.51.0.0/24', '10.51.0.1', '10.51.0.254');
    assert.equal((await createMany(napi, net, 1))[0].status, 200);
    const before = store.stats();
    for (let i = 0; i < 5; i++) {
      const r = await napi.call('POST', `/networks/${net}/nics`, {
        belongs_to_uuid: `00000000-0000-4000-8000-${String(100 + i).padStart(12, '0')}`,
        belongs_to_type: 'zone',
        owner_uuid: ADMIN_UUID,
        cn_uuid: '00000000-0000-4000-8000-00000000c0de',
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }
    const after = store.stats();
    assert.equal(after.commits - before.commits, 5);
    assert.equal(after.groupReads - before.groupReads, 0, 'the commits had to read keys the transactions had not');
    // The index keys read alongside are real index entries of the stored NICs.
    const idx = await store.range({ prefix: 'napi/idx/nic/cn/00000000-0000-4000-8000-00000000c0de/' });
    assert.equal(idx.kvs.length, 5);
    await assertNoDuplicates(store, net, 6);
  } finally {
    await napi.close();
    await store.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
});
