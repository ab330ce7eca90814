import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { ensureFabric } from '../../src/napi/models/fabric.js';
import { Tx, transact } from '../../src/store/txn.js';
import { MemoryStore } from '../../src/store/memory.js';
import { ADMIN_UUID, type TestNapi, startTestNapi } from '../helpers/napi.js';
import { OWNER_A, OWNER_B, assertUnchanged, keysUnder, makeTag, seedNic } from '../helpers/napi-fixtures.js';

let n: TestNapi;
before(async () => {
  n = await startTestNapi({ overlayMtu: 1400 });
  await makeTag(n, 'external');
});
after(async () => {
  await n.close();
});

const vlans = (o: string) => `/fabrics/${o}/vlans`;
const nets = (o: string, v: number) => `/fabrics/${o}/vlans/${v}/networks`;
const fabricNet = (name: string, third: number, extra: Record<string, unknown> = {}) => ({
  name,
  subnet: `192.168.${third}.0/24`,
  provision_start_ip: `192.168.${third}.10`,
  provision_end_ip: `192.168.${third}.250`,
  ...extra,
});

test('428 on every fabric route while the overlay is disabled', async () => {
  n.config.overlay.enabled = false;
  try {
    for (const [m, u] of [
      ['GET', vlans(OWNER_A)],
      ['POST', vlans(OWNER_A)],
      ['GET', `${vlans(OWNER_A)}/2`],
      ['DELETE', `${vlans(OWNER_A)}/2`],
      ['GET', nets(OWNER_A, 2)],
      ['POST', nets(OWNER_A, 2)],
    ]) {
      const r = await n.call(m, u, m === 'POST' ? { vlan_id: 2 } : undefined);
      assert.equal(r.status, 428, `${m} ${u}`);
      assert.deepEqual(r.body, { code: 'PreconditionRequired', message: 'overlay networking is not enabled' });
    }
    assert.equal((await n.call('GET', '/ping')).body.config.fabrics_enabled, false);
  } finally {
    n.config.overlay.enabled = true;
  }
});

test('VLANs: one vnet_id per owner, duplicates refused, get/list/update/fields', async () => {
  const a2 = await n.call('POST', vlans(OWNER_A), { vlan_id: 2, name: 'two', description: 'second' });
  assert.equal(a2.status, 200);
  assert.ok(a2.headers.etag);
  const vnet = a2.body.vnet_id;
  assert.ok(Number.isInteger(vnet) && vnet >= 0 && vnet < 16777215);
  assert.deepEqual(a2.body, { name: 'two', owner_uuid: OWNER_A, vlan_id: 2, vnet_id: vnet, description: 'second' });
  const a5 = await n.call('POST', vlans(OWNER_A), { vlan_id: '5' });
  assert.deepEqual(a5.body, { owner_uuid: OWNER_A, vlan_id: 5, vnet_id: vnet });
  const b2 = await n.call('POST', vlans(OWNER_B), { vlan_id: 2, name: 'two' });
  assert.notEqual(b2.body.vnet_id, vnet);
  assert.equal((await n.store.get(`napi/vnets/${String(vnet).padStart(8, '0')}`))?.value, OWNER_A);

  await assertUnchanged(n.store, async () => {
    const dup = await n.call('POST', vlans(OWNER_A), { vlan_id: 2, name: 'again' });
    assert.deepEqual([dup.status, dup.body], [
      422,
      { code: 'InUse', message: 'VLAN ID is already in use', errors: [{ field: 'vlan_id', code: 'Duplicate', message: 'VLAN ID is already in use' }] },
    ]);
    const bad = await n.call('POST', vlans(OWNER_A), { vlan_id: 5000 });
    assert.deepEqual(bad.body.errors, [
      { field: 'vlan_id', code: 'InvalidParameter', message: 'VLAN ID must be a number between 0 and 4094, and not 1' },
    ]);
    const missing = await n.call('POST', vlans(OWNER_A), { name: 'x' });
    assert.deepEqual(missing.body.errors, [{ field: 'vlan_id', code: 'MissingParameter', message: 'Missing parameter' }]);
    const badOwner = await n.call('POST', vlans('not-a-uuid'), { vlan_id: 3 });
    assert.deepEqual(badOwner.body.errors, [{ field: 'owner_uuid', code: 'InvalidParameter', message: 'invalid UUID' }]);
  });

  const g = await n.call('GET', `${vlans(OWNER_A)}/2?fields=vlan_id,name`);
  assert.deepEqual(g.body, { vlan_id: 2, name: 'two' });
  const tooMany = await n.call('GET', `${vlans(OWNER_A)}/2?fields=name,vlan_id,vnet_id,owner_uuid,description,name`);
  assert.equal(tooMany.body.errors[0].message, 'can only specify a maximum of 5 fields');
  const nf = await n.call('GET', `${vlans(OWNER_A)}/99`);
  assert.deepEqual([nf.status, nf.body], [404, { code: 'ResourceNotFound', message: 'vlan not found' }]);
  const list = await n.call('GET', vlans(OWNER_A));
  assert.deepEqual(list.body.map((v: { vlan_id: number }) => v.vlan_id), [2, 5]);
  assert.deepEqual((await n.call('GET', `${vlans(OWNER_A)}?limit=1&offset=1`)).body.map((v: { vlan_id: number }) => v.vlan_id), [5]);
  // ListFabricVLANs is not strict.
  assert.equal((await n.call('GET', `${vlans(OWNER_A)}?whatever=1`)).status, 200);

  const u = await n.call('PUT', `${vlans(OWNER_A)}/5`, { name: 'five', vlan_id: 9, owner_uuid: OWNER_B });
  assert.deepEqual(u.body, { owner_uuid: OWNER_A, vlan_id: 5, vnet_id: vnet, name: 'five' });
  const cur = await n.call('GET', `${vlans(OWNER_A)}/5`);
  assert.equal(cur.headers.etag, u.headers.etag);
  const stale = await n.call('PUT', `${vlans(OWNER_A)}/5`, { name: 'x' }, { 'if-match': '"old"' });
  assert.equal(stale.status, 412);
});

test('50 owners creating their first VLAN at once get 50 distinct vnet_ids', async () => {
  const owners = Array.from({ length: 50 }, () => randomUUID());
  const rs = await Promise.all(owners.map((o) => n.call('POST', vlans(o), { vlan_id: 10 })));
  assert.ok(rs.every((r) => r.status === 200));
  assert.equal(new Set(rs.map((r) => r.body.vnet_id)).size, 50);
  const second = await Promise.all(owners.map((o) => n.call('POST', vlans(o), { vlan_id: 11 })));
  second.forEach((r, i) => assert.equal(r.body.vnet_id, rs[i].body.vnet_id));
});

test('a drawn vnet_id that is taken is skipped (CAS on napi/vnets)', async () => {
  const store = new MemoryStore();
  const draws = [7, 7, 8];
  const first = await transact(store, (tx) => ensureFabric(tx, OWNER_A, () => 7));
  assert.equal(first.value.vnet_id, 7);
  const second = await transact(store, (tx) => ensureFabric(tx, OWNER_B, () => draws.shift()!));
  assert.equal(second.value.vnet_id, 8);
  // Two owners racing for the same vnet: the loser's commit fails its precondition.
  const t1 = new Tx(store);
  const t2 = new Tx(store);
  await ensureFabric(t1, 'c0000000-0000-4000-8000-000000000000', () => 9);
  await ensureFabric(t2, 'd0000000-0000-4000-8000-000000000000', () => 9);
  assert.equal((await store.commit(t1.batch())).ok, true);
  assert.equal((await store.commit(t2.batch())).ok, false);
  await store.close();
});

test('fabric networks: forced values, NAT gateway, serialization', async () => {
  const vnet = (await n.call('GET', `${vlans(OWNER_A)}/2`)).body.vnet_id;
  const r = await n.call('POST', nets(OWNER_A, 2), fabricNet('web', 1, { mtu: 9000, nic_tag: 'external', vlan_id: 44, owner_uuids: [OWNER_B] }));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const net = r.body;
  assert.deepEqual(net, {
    uuid: net.uuid,
    name: 'web',
    family: 'ipv4',
    subnet: '192.168.1.0/24',
    netmask: '255.255.255.0',
    provision_start_ip: '192.168.1.10',
    provision_end_ip: '192.168.1.250',
    vlan_id: 2,
    nic_tag: 'sdc_overlay',
    mtu: 1400,
    resolvers: [],
    gateway: '192.168.1.10',
    owner_uuid: OWNER_A,
    fabric: true,
    vnet_id: vnet,
    internet_nat: true,
    gateway_provisioned: false,
  });
  const gw = JSON.parse((await n.store.get(`napi/ips/${net.uuid}/c0a8010a`))!.value);
  assert.equal(gw.belongs_to_uuid, ADMIN_UUID);
  assert.equal(gw.owner_uuid, ADMIN_UUID);
  assert.equal(gw.belongs_to_type, 'other');
  assert.equal(gw.reserved, true);

  const plain = await n.call('GET', `/networks/${net.uuid}`);
  assert.deepEqual(plain.body.owner_uuids, [OWNER_A]);
  assert.equal(plain.body.owner_uuid, undefined);

  const noNat = await n.call('POST', nets(OWNER_A, 2), fabricNet('nonat', 2, { internet_nat: false, gateway: '192.168.2.1' }));
  assert.equal(noNat.body.internet_nat, false);
  const rec = JSON.parse((await n.store.get(`napi/ips/${noNat.body.uuid}/c0a80201`))!.value);
  assert.equal(rec.owner_uuid, OWNER_A);
  assert.equal(rec.belongs_to_uuid, '00000000-0000-0000-0000-000000000000');
  const noGw = await n.call('POST', nets(OWNER_A, 2), fabricNet('nogw', 3, { internet_nat: false }));
  assert.equal(noGw.body.gateway, undefined);
  assert.equal(noGw.body.gateway_provisioned, undefined);
  const f = await n.call('POST', nets(OWNER_A, 2), fabricNet('fieldy', 4, { fields: ['uuid', 'owner_uuid'] }));
  assert.deepEqual(Object.keys(f.body).sort(), ['owner_uuid', 'uuid']);
});

test('fabric network rules: private ranges only, no overlap in the vnet, names per owner', async () => {
  await assertUnchanged(n.store, async () => {
    const pub = await n.call('POST', nets(OWNER_A, 2), fabricNet('pub', 1, { subnet: '8.8.8.0/24', provision_start_ip: '8.8.8.5', provision_end_ip: '8.8.8.9' }));
    assert.deepEqual(pub.body.errors, [{ field: 'subnet', code: 'InvalidParameter', message: 'subnet must be within private ranges' }]);
    // IPv6 fabrics are unique local (fd00::/8) only (test/integration/napi-ipv6.test.ts).
    const v6 = await n.call('POST', nets(OWNER_A, 2), fabricNet('v6', 1, { subnet: '2001:db8::/64', provision_start_ip: '2001:db8::5', provision_end_ip: '2001:db8::9' }));
    assert.equal(v6.body.errors[0].message, 'subnet must be within private ranges');
    // Same vnet (same owner), other VLAN: overlap refused.
    const web = (await n.call('GET', `${nets(OWNER_A, 2)}?name=web`)).body[0];
    const ovl = await n.call('POST', nets(OWNER_A, 5), fabricNet('ovl', 1));
    assert.deepEqual(ovl.body.errors, [
      { field: 'subnet', code: 'UsedBy', type: 'network', id: web.uuid, message: 'subnet overlaps with another network' },
    ]);
    const dupName = await n.call('POST', nets(OWNER_A, 5), fabricNet('web', 30));
    assert.equal(dupName.body.message, 'name is in use by another network');
    const oneOwner = await n.call('GET', `${nets(OWNER_A, 77)}`);
    assert.equal(oneOwner.status, 404);
    assert.equal(oneOwner.body.message, 'vlan not found');
  });
  // Another owner may reuse the subnet and the name; so may a global network.
  const other = await n.call('POST', nets(OWNER_B, 2), fabricNet('web', 1));
  assert.equal(other.status, 200);
  const global = await n.call('POST', '/networks', {
    name: 'web', nic_tag: 'external', vlan_id: 0, subnet: '192.168.1.0/24', provision_start_ip: '192.168.1.5', provision_end_ip: '192.168.1.9',
  });
  assert.equal(global.status, 200);
  const byName = await n.call('GET', '/networks?name=web&fabric=true');
  assert.equal(byName.body.length, 2);
  const globalOnly = await n.call('GET', '/networks?name=web');
  assert.deepEqual(globalOnly.body.map((x: { uuid: string }) => x.uuid), [global.body.uuid]);
  const prov = await n.call('GET', `/networks?name=web&provisionable_by=${OWNER_B}`);
  assert.deepEqual(prov.body.map((x: { uuid: string }) => x.uuid).sort(), [global.body.uuid, other.body.uuid].sort());
});

test('fabric network get/list/update scoped to the owner', async () => {
  const web = (await n.call('GET', `${nets(OWNER_A, 2)}?name=web`)).body[0];
  const list = await n.call('GET', nets(OWNER_A, 2));
  assert.deepEqual(list.body.map((x: { name: string }) => x.name), ['fieldy', 'nogw', 'nonat', 'web']);
  assert.ok(list.body.every((x: { owner_uuid: string }) => x.owner_uuid === OWNER_A));
  assert.deepEqual((await n.call('GET', nets(OWNER_A, 5))).body, []);
  assert.equal((await n.call('GET', `${nets(OWNER_A, 2)}?fields=uuid`)).body.errors[0].code, 'UnknownParameters');

  const g = await n.call('GET', `${nets(OWNER_A, 2)}/${web.uuid}`);
  assert.equal(g.status, 200);
  assert.ok(g.headers.etag);
  assert.equal((await n.call('GET', `${nets(OWNER_B, 2)}/${web.uuid}`)).status, 404);
  const adm = await n.call('GET', `${nets(OWNER_A, 2)}/admin`);
  assert.deepEqual([adm.status, adm.body], [404, { code: 'ResourceNotFound', message: 'network not found' }]);

  await assertUnchanged(n.store, async () => {
    const r = await n.call('PUT', `${nets(OWNER_A, 2)}/${web.uuid}`, { gateway: '192.168.1.1', owner_uuids: [OWNER_B], internet_nat: false });
    assert.deepEqual(r.body.errors, [
      { field: 'gateway', code: 'InvalidParameter', message: 'Network updates for this field are not supported on fabrics' },
      { field: 'internet_nat', code: 'InvalidParameter', message: 'Network updates for this field are not supported' },
      { field: 'owner_uuids', code: 'InvalidParameter', message: 'Network updates for this field are not supported on fabrics' },
    ]);
    const viaNetworks = await n.call('PUT', `/networks/${web.uuid}`, { gateway: '192.168.1.1' });
    assert.equal(viaNetworks.body.errors[0].message, 'Network updates for this field are not supported on fabrics');
    const dupName = await n.call('PUT', `${nets(OWNER_A, 2)}/${web.uuid}`, { name: 'nonat' });
    assert.equal(dupName.body.message, 'name is in use by another network');
  });
  const u = await n.call('PUT', `${nets(OWNER_A, 2)}/${web.uuid}`, { name: 'web2', description: 'd', resolvers: ['192.168.1.53'], internet_nat: true });
  assert.equal(u.status, 200, JSON.stringify(u.body));
  assert.equal(u.body.name, 'web2');
  assert.equal(u.body.owner_uuid, OWNER_A);
  assert.ok(await n.store.get(`napi/network_names/${OWNER_A}:web2`));
  assert.equal(await n.store.get(`napi/network_names/${OWNER_A}:web`), undefined);
});

test('deletes: network in use by a NIC, VLAN in use by networks', async () => {
  const net = (await n.call('POST', nets(OWNER_B, 2), fabricNet('todel', 9))).body;
  await seedNic(n.store, { mac: '90:b8:d0:aa:00:01', belongs_to_uuid: OWNER_B, belongs_to_type: 'zone', network_uuid: net.uuid });
  const busy = await n.call('DELETE', `${nets(OWNER_B, 2)}/${net.uuid}`);
  assert.deepEqual(busy.body, {
    code: 'InUse',
    message: 'network must have no NICs provisioned',
    errors: [{ type: 'nic', id: '90:b8:d0:aa:00:01', code: 'UsedBy', message: 'In use by nic "90:b8:d0:aa:00:01"' }],
  });
  const v = await n.call('DELETE', `${vlans(OWNER_B)}/2`);
  assert.equal(v.status, 422);
  assert.equal(v.body.code, 'InUse');
  assert.equal(v.body.message, 'VLAN must have no networks');
  assert.deepEqual(v.body.errors.map((e: { id: string }) => e.id).sort(), [net.uuid, (await n.call('GET', `${nets(OWNER_B, 2)}?name=web`)).body[0].uuid].sort());

  await n.store.commit({ ops: [{ type: 'del', key: 'napi/nics/90b8d0aa0001' }, { type: 'del', key: `napi/idx/nic/network/${net.uuid}/90b8d0aa0001` }] });
  for (const x of (await n.call('GET', nets(OWNER_B, 2))).body) {
    assert.equal((await n.call('DELETE', `${nets(OWNER_B, 2)}/${x.uuid}`)).status, 204);
  }
  assert.deepEqual(await keysUnder(n.store, `napi/ips/${net.uuid}/`), []);
  assert.equal((await n.call('DELETE', `${vlans(OWNER_B)}/2`)).status, 204);
  assert.equal((await n.call('DELETE', `${vlans(OWNER_B)}/2`)).status, 404);
  assert.equal((await n.call('GET', `${vlans(OWNER_B)}/2`)).status, 404);
});
