/**
 * An underlay move lists the moved node's NICs and shoots each down on its vnet. A write
 * that places a NIC on that node (a create, a migration to it, an address for a NIC
 * there) and commits between the
 * move's listing and its commit used to be left out: a peer that looked the NIC up in
 * between cached the node's old address and was never told. The move now reads the
 * node's NIC index as one guarded range (Tx.rangeGuarded), so it is retried and the NIC
 * is in its shootdowns. On each backend: memory, LevelDB, and a stock etcd.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { MappingIndex } from '../../src/mapping/index.js';
import { macFromBytes } from '../../src/net/addr.js';
import { VLOG_MULTI_PREFIX } from '../../src/overlay/keys.js';
import { EtcdStore } from '../../src/store/etcd.js';
import { LevelStore } from '../../src/store/leveldb.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { Batch, CommitResult, Store } from '../../src/store/types.js';
import { CountingStore } from '../helpers/counting-store.js';
import { EtcdCluster, etcdSkipReason } from '../helpers/etcd-cluster.js';
import { ADMIN_UUID, type TestNapi, startTestNapi } from '../helpers/napi.js';

const OWNER = 'abcdef00-0000-4000-8000-00000000bbbb';
const PEER = '11111111-0000-4000-8000-0000000000a1';
const MOVING = '22222222-0000-4000-8000-0000000000a2';
const OTHER = '33333333-0000-4000-8000-0000000000a3';
const VM = (n: number): string => `0000000${n}-bbbb-4000-8000-000000000000`;

/** Runs `race` (once) just before the first commit that writes an underlay move's log entry. */
class RacingStore extends CountingStore {
  race: (() => Promise<void>) | undefined;
  moveCommits = 0;

  override async commit(batch: Batch): Promise<CommitResult> {
    if (batch.ops.some((op) => op.key.startsWith(VLOG_MULTI_PREFIX))) {
      this.moveCommits++;
      const race = this.race;
      this.race = undefined;
      await race?.();
    }
    return super.commit(batch);
  }
}

interface Backend {
  name: string;
  skip?: string;
  /** A fresh store (closed by the test's NAPI), and what removes its files afterwards. */
  open(): Promise<{ store: Store; cleanup(): Promise<void> }>;
}

let cluster: EtcdCluster | undefined;
const backends: Backend[] = [
  { name: 'memory', open: async () => ({ store: new MemoryStore(), cleanup: async () => undefined }) },
  {
    name: 'leveldb',
    open: async () => {
      const dir = await mkdtemp(join(tmpdir(), 'rhumb-ulrace-'));
      return { store: await LevelStore.open(dir, { sync: false }), cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'etcd (stock limits)',
    ...(etcdSkipReason ? { skip: etcdSkipReason } : {}),
    open: async () => {
      cluster ??= await EtcdCluster.start({ members: 1 });
      const store = await EtcdStore.open({ endpoints: cluster.endpoints, prefix: `ulrace${process.pid}-${Date.now()}/` });
      return { store, cleanup: async () => undefined };
    },
  },
];

/** What commits on the moving node while the move is being written; answers the NIC's MAC. */
type Race = 'a NIC is created there' | 'a NIC migrates there' | 'a NIC there gets an address on the vnet';
const RACES: Race[] = ['a NIC is created there', 'a NIC migrates there', 'a NIC there gets an address on the vnet'];

describe('an underlay move racing a NIC placed on the moving node', { timeout: 120_000 }, () => {
  for (const backend of backends) {
    for (const race of RACES) {
      it(`${race}: the peer is told about it too (${backend.name})`, { skip: backend.skip }, async () => {
        const opened = await backend.open();
        const store = new RacingStore(opened.store);
        const napi = await startTestNapi({ store });
        const index = new MappingIndex({ store });
        try {
          await index.start();
          await moveRacing(napi, store, index, race);
        } finally {
          index.close();
          await napi.close();
          await opened.cleanup();
        }
      });
    }
  }
});

async function moveRacing(napi: TestNapi, store: RacingStore, index: MappingIndex, race: Race): Promise<void> {
  assert.equal((await napi.call('POST', `/fabrics/${OWNER}/vlans`, { vlan_id: 14, name: 'v14' })).status, 200);
  const fab = await napi.call('POST', `/fabrics/${OWNER}/vlans/14/networks`, {
    name: 'fab', subnet: '192.168.60.0/24', provision_start_ip: '192.168.60.10', provision_end_ip: '192.168.60.200',
  });
  assert.equal(fab.status, 200, JSON.stringify(fab.body));
  const ul = await napi.call('POST', '/networks', {
    name: 'ul', nic_tag: 'sdc_underlay', vlan_id: 0, subnet: '198.18.60.0/24', provision_start_ip: '198.18.60.10', provision_end_ip: '198.18.60.100',
  });
  assert.equal(ul.status, 200, JSON.stringify(ul.body));
  const nic = async (vm: number, cn: string): Promise<string> => {
    const r = await napi.call('POST', `/networks/${fab.body.uuid}/nics`, { belongs_to_uuid: VM(vm), belongs_to_type: 'zone', owner_uuid: OWNER, cn_uuid: cn });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.mac as string;
  };
  await nic(1, PEER);
  const listed = await nic(2, MOVING);
  const elsewhere = await nic(3, OTHER);
  // A NIC on the moving node with no address yet (on no vnet).
  const bare = await napi.call('POST', '/nics', { belongs_to_uuid: VM(5), belongs_to_type: 'zone', owner_uuid: OWNER, cn_uuid: MOVING });
  assert.equal(bare.status, 200, JSON.stringify(bare.body));
  const ulNic = await napi.call('POST', `/networks/${ul.body.uuid}/nics`, { belongs_to_uuid: MOVING, belongs_to_type: 'server', owner_uuid: ADMIN_UUID, underlay: true });
  assert.equal(ulNic.status, 200, JSON.stringify(ulNic.body));
  const forgetPending = async (): Promise<void> => {
    await index.waitForRevision(await store.revision());
    await index.removeEvents(index.pendingEvents(PEER).map((e) => e.id));
  };
  await forgetPending();

  // Committed between the move's listing of the node's NICs and the move's commit.
  let raced = '';
  store.race = async () => {
    if (race === 'a NIC is created there') raced = await nic(4, MOVING);
    else if (race === 'a NIC migrates there') {
      const r = await napi.call('PUT', `/nics/${elsewhere}`, { cn_uuid: MOVING });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      raced = elsewhere;
    } else {
      const r = await napi.call('PUT', `/nics/${bare.body.mac}`, { network_uuid: fab.body.uuid, ip: '192.168.60.150' });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.cn_uuid, MOVING);
      raced = bare.body.mac as string;
    }
    // The peer had the write's own events (it may have looked the NIC up, at the old address).
    await forgetPending();
  };
  const moved = await napi.call('PUT', `/nics/${ulNic.body.mac}`, { ip: '198.18.60.77' });
  assert.equal(moved.status, 200, JSON.stringify(moved.body));
  assert.ok(raced !== '', 'the race ran');

  // The peer is told to forget every NIC on the moved node, once each.
  await index.waitForRevision(await store.revision());
  const told = index.pendingEvents(PEER).map((e) => `${e.type} ${e.type === 'vl2' ? macFromBytes(e.mac) : ''}`);
  assert.deepEqual(told.sort(), [listed, raced].sort().map((m) => `vl2 ${m}`));
  assert.equal((await store.range({ prefix: VLOG_MULTI_PREFIX })).kvs.length, 1);
  assert.equal(store.moveCommits, 2, 'the move was retried once');
}

after(async () => {
  await cluster?.stop();
});
