/**
 * Races between writes that a range scan alone cannot serialise: a network deleted while
 * NICs are being created on it, and two NICs of one instance both asking to be primary.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LevelStore } from '../../src/store/leveldb.js';
import { NETWORK_PREFIX, NIC_PREFIX } from '../../src/napi/keys.js';
import { ADMIN_UUID, startTestNapi } from '../helpers/napi.js';

test('a network delete racing NIC creates never leaves a NIC on a deleted network', async () => {
  // LevelDB's asynchronous reads open the window between the delete's scan and its commit.
  const dir = await mkdtemp(join(tmpdir(), 'rhumb-races-'));
  const napi = await startTestNapi({ store: await LevelStore.open(dir, { sync: false }) });
  try {
    for (let round = 0; round < 25; round++) {
      const net = await napi.call('POST', '/networks', {
        name: `race${round}`,
        nic_tag: 'sdc_underlay',
        vlan_id: 0,
        subnet: '10.9.0.0/24',
        provision_start_ip: '10.9.0.10',
        provision_end_ip: '10.9.0.250',
      });
      assert.equal(net.status, 200, JSON.stringify(net.body));
      const uuid = net.body.uuid as string;
      const creates = Array.from({ length: 4 }, (_, i) =>
        napi.call('POST', `/networks/${uuid}/nics`, {
          belongs_to_uuid: `00000000-0000-4000-8000-${String(round * 10 + i).padStart(12, '0')}`,
          belongs_to_type: 'zone',
          owner_uuid: ADMIN_UUID,
        }),
      );
      const del = napi.call('DELETE', `/networks/${uuid}`);
      const [d, ...made] = await Promise.all([del, ...creates]);
      const nics = (await napi.store.range({ prefix: NIC_PREFIX })).kvs.map((kv) => JSON.parse(kv.value));
      const onNet = nics.filter((n) => n.network_uuid === uuid);
      const netExists = (await napi.store.get(NETWORK_PREFIX + uuid)) !== undefined;
      if (d.status === 204) {
        assert.equal(netExists, false);
        assert.equal(onNet.length, 0, 'a NIC survived the delete of its network');
        for (const m of made) assert.notEqual(m.status, 200, 'a create reported success on a deleted network');
      } else {
        assert.equal(d.status, 422);
        assert.equal(d.body.code, 'InUse');
        assert.equal(netExists, true);
        // The mark is cleared again when the delete is refused: provisioning still works.
        const again = await napi.call('POST', `/networks/${uuid}/nics`, {
          belongs_to_uuid: '00000000-0000-4000-8000-fffffffffff0',
          belongs_to_type: 'zone',
          owner_uuid: ADMIN_UUID,
        });
        assert.equal(again.status, 200, JSON.stringify(again.body));
        for (const n of [...onNet, again.body]) assert.equal((await napi.call('DELETE', `/nics/${n.mac}`)).status, 204);
        assert.equal((await napi.call('DELETE', `/networks/${uuid}`)).status, 204);
      }
    }
  } finally {
    await napi.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('two concurrent primary NICs for one instance leave exactly one primary', async () => {
  const napi = await startTestNapi();
  try {
    const net = await napi.call('POST', '/networks', {
      name: 'prim',
      nic_tag: 'sdc_underlay',
      vlan_id: 0,
      subnet: '10.8.0.0/24',
      provision_start_ip: '10.8.0.10',
      provision_end_ip: '10.8.0.250',
    });
    for (let round = 0; round < 10; round++) {
      const vm = `00000000-0000-4000-9000-${String(round).padStart(12, '0')}`;
      await Promise.all(
        Array.from({ length: 3 }, () =>
          napi.call('POST', `/networks/${net.body.uuid}/nics`, { belongs_to_uuid: vm, belongs_to_type: 'zone', owner_uuid: ADMIN_UUID, primary: true }),
        ),
      );
      const list = await napi.call('GET', `/nics?belongs_to_uuid=${vm}`);
      assert.equal(list.body.length, 3);
      assert.equal(list.body.filter((n: { primary: boolean }) => n.primary).length, 1);
    }
  } finally {
    await napi.close();
  }
});
