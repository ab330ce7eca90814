import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ADMIN_UUID, type TestNapi, startTestNapi } from '../helpers/napi.js';
import { OWNER_A, OWNER_B, assertUnchanged, makeNet, makeTag, netParams } from '../helpers/napi-fixtures.js';

let n: TestNapi;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
let v4: any[] = [];
// eslint-disable-next-line @typescript-eslint/no-explicit-any
let v6: any;
before(async () => {
  n = await startTestNapi();
  await makeTag(n, 'external');
  await makeTag(n, 'other_tag');
  v4 = [
    await makeNet(n, netParams(1)),
    await makeNet(n, netParams(2, { nic_tag: 'other_tag' })),
    await makeNet(n, netParams(3, { owner_uuids: [OWNER_A] })),
  ];
  v6 = await makeNet(n, {
    name: 'six', nic_tag: 'external', vlan_id: 0, subnet: '2001:db8::/64', provision_start_ip: '2001:db8::5', provision_end_ip: '2001:db8::ff',
  });
});
after(async () => {
  await n.close();
});

test('create: sorted networks, family, mixed nic tags, ETag', async () => {
  const ids = [v4[1].uuid, v4[0].uuid];
  const r = await n.call('POST', '/network_pools', { name: 'pool1', networks: ids.join(','), description: 'mixed' });
  assert.equal(r.status, 200);
  assert.ok(r.headers.etag);
  const sorted = [...ids].sort();
  const byUuid = new Map(v4.map((x) => [x.uuid, x.nic_tag]));
  const tags = [...new Set(sorted.map((u) => byUuid.get(u)))];
  assert.deepEqual(r.body, {
    uuid: r.body.uuid,
    name: 'pool1',
    description: 'mixed',
    family: 'ipv4',
    networks: sorted,
    nic_tag: tags[0],
    nic_tags_present: tags,
  });
  const g = await n.call('GET', `/network_pools/${r.body.uuid}`);
  assert.deepEqual(g.body, r.body);
  assert.equal(g.headers.etag, r.headers.etag);
  const six = await n.call('POST', '/network_pools', { name: 'pool6', networks: [v6.uuid] });
  assert.equal(six.body.family, 'ipv6');
});

test('create validation, nothing written', async () => {
  await assertUnchanged(n.store, async () => {
    const missing = await n.call('POST', '/network_pools', {});
    assert.deepEqual(missing.body, {
      code: 'InvalidParameters',
      message: 'Missing parameters',
      errors: [
        { field: 'name', code: 'MissingParameter', message: 'Missing parameter' },
        { field: 'networks', code: 'MissingParameter', message: 'Missing parameter' },
      ],
    });
    const empty = await n.call('POST', '/network_pools', { name: 'p', networks: [] });
    assert.deepEqual(empty.body.errors, [
      { field: 'networks', code: 'InvalidParameter', message: 'network pool must contain at least one network' },
    ]);
    const many = Array.from({ length: 65 }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
    const tooMany = await n.call('POST', '/network_pools', { name: 'p', networks: many });
    assert.deepEqual(tooMany.body.errors, [
      { field: 'networks', code: 'InvalidParameter', message: 'maximum 64 networks per network pool' },
    ]);
    const unknown = '7d0d1f0e-0000-4000-8000-000000000000';
    const unk = await n.call('POST', '/network_pools', { name: 'p', networks: [v4[0].uuid, unknown] });
    assert.deepEqual(unk.body.errors, [{ field: 'networks', code: 'InvalidParameter', message: 'unknown network', invalid: [unknown] }]);
    const mixed = await n.call('POST', '/network_pools', { name: 'p', networks: [v4[0].uuid, v6.uuid] });
    assert.deepEqual(mixed.body.errors, [
      { field: 'networks', code: 'InvalidParameter', message: 'address family of all networks in a network pool must match' },
    ]);
    const owners = await n.call('POST', '/network_pools', { name: 'p', networks: [v4[0].uuid, v4[2].uuid], owner_uuids: [OWNER_B] });
    assert.deepEqual(owners.body.errors, [
      {
        field: 'networks',
        code: 'InvalidParameter',
        message: 'network owner_uuids do not match the owner_uuids of the pool',
        invalid: [v4[2].uuid],
      },
    ]);
    const badUuid = await n.call('POST', '/network_pools', { name: 'p', networks: ['nope'] });
    assert.deepEqual(badUuid.body.errors, [{ field: 'networks', code: 'InvalidParameter', message: 'invalid UUID', invalid: ['nope'] }]);
  });
  const ok = await n.call('POST', '/network_pools', { name: 'owned', networks: [v4[0].uuid, v4[2].uuid], owner_uuids: [OWNER_A] });
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.body.owner_uuids, [OWNER_A]);
  // The admin UUID counts as an owner of every pool: an admin-owned network fits anywhere.
  const adminNet = await makeNet(n, netParams(4, { owner_uuids: [ADMIN_UUID] }));
  const adminPool = await n.call('POST', '/network_pools', { name: 'adm', networks: [adminNet.uuid], owner_uuids: [OWNER_B] });
  assert.equal(adminPool.status, 200);
});

test('get: provisionable_by, 404, If-Match', async () => {
  const pool = (await n.call('POST', '/network_pools', { name: 'gp', networks: [v4[2].uuid], owner_uuids: [OWNER_A] })).body;
  assert.equal((await n.call('GET', `/network_pools/${pool.uuid}?provisionable_by=${OWNER_A}`)).status, 200);
  assert.equal((await n.call('GET', `/network_pools/${pool.uuid}?provisionable_by=${ADMIN_UUID}`)).status, 200);
  const no = await n.call('GET', `/network_pools/${pool.uuid}?provisionable_by=${OWNER_B}`);
  assert.deepEqual([no.status, no.body], [403, { code: 'NotAuthorized', message: 'owner cannot provision on network pool' }]);
  const nf = await n.call('GET', '/network_pools/7d0d1f0e-0000-4000-8000-000000000000');
  assert.deepEqual([nf.status, nf.body], [404, { code: 'ResourceNotFound', message: 'network pool not found' }]);
  assert.equal((await n.call('GET', `/network_pools/${pool.uuid}`, undefined, { 'if-match': '"x"' })).status, 412);
});

test('list: sorted by uuid, filters, strict', async () => {
  const all = (await n.call('GET', '/network_pools')).body;
  const uuids = all.map((p: { uuid: string }) => p.uuid);
  assert.ok(uuids.length >= 4);
  assert.deepEqual(uuids, [...uuids].sort());
  const q = async (s: string) => (await n.call('GET', `/network_pools?${s}`)).body;
  assert.deepEqual((await q('family=ipv6')).map((p: { name: string }) => p.name), ['pool6']);
  assert.deepEqual((await q('name=owned')).map((p: { name: string }) => p.name), ['owned']);
  const prov = await q(`provisionable_by=${OWNER_B}`);
  assert.ok(prov.every((p: { owner_uuids?: string[] }) => !p.owner_uuids || p.owner_uuids.includes(OWNER_B)));
  assert.ok(prov.some((p: { name: string }) => p.name === 'pool1'));
  const withNet = await q(`networks=${v4[2].uuid}`);
  assert.ok(withNet.length >= 2 && withNet.every((p: { networks: string[] }) => p.networks.includes(v4[2].uuid)));
  const two = await q(`networks=${v4[0].uuid},${v4[1].uuid}`);
  assert.deepEqual(two.errors, [{ field: 'networks', code: 'InvalidParameter', message: 'Only one network UUID allowed' }]);
  assert.deepEqual((await q(`uuid=${uuids[0].slice(0, 8)}*`)).map((p: { uuid: string }) => p.uuid)[0], uuids[0]);
  assert.equal((await q('limit=1&offset=1'))[0].uuid, uuids[1]);
  assert.equal((await q('bogus=1')).errors[0].code, 'UnknownParameters');
});

test('update: name, networks, owners, family fixed, If-Match; delete', async () => {
  const pool = (await n.call('POST', '/network_pools', { name: 'up', networks: [v4[0].uuid] })).body;
  const r = await n.call('PUT', `/network_pools/${pool.uuid}`, { name: 'up2', networks: [v4[0].uuid, v4[1].uuid] });
  assert.equal(r.status, 200);
  assert.equal(r.body.name, 'up2');
  assert.deepEqual(r.body.networks, [v4[0].uuid, v4[1].uuid].sort());
  assert.equal(r.body.nic_tags_present.length, 2);
  await assertUnchanged(n.store, async () => {
    const fam = await n.call('PUT', `/network_pools/${pool.uuid}`, { networks: [v6.uuid] });
    assert.equal(fam.body.errors[0].message, 'address family of all networks in a network pool must match');
    const own = await n.call('PUT', `/network_pools/${pool.uuid}`, { networks: [v4[2].uuid], owner_uuids: [OWNER_B] });
    assert.equal(own.body.errors[0].message, 'network owner_uuids do not match the owner_uuids of the pool');
    const stale = await n.call('PUT', `/network_pools/${pool.uuid}`, { name: 'z' }, { 'if-match': '"x"' });
    assert.equal(stale.status, 412);
  });
  const owned = await n.call('PUT', `/network_pools/${pool.uuid}`, { owner_uuids: [OWNER_A] });
  assert.deepEqual(owned.body.owner_uuids, [OWNER_A]);
  const cleared = await n.call('PUT', `/network_pools/${pool.uuid}`, { owner_uuids: null });
  assert.equal(cleared.body.owner_uuids, undefined);
  const d = await n.call('DELETE', `/network_pools/${pool.uuid}`);
  assert.equal(d.status, 204);
  assert.equal(await n.store.get(`napi/network_pools/${pool.uuid}`), undefined);
  assert.equal((await n.call('DELETE', `/network_pools/${pool.uuid}`)).status, 404);
});

test('a pool being created and its member network being deleted at once never leaves a dangling pool', async () => {
  for (let i = 0; i < 5; i++) {
    const net = await makeNet(n, netParams(100 + i));
    const [pool, del] = await Promise.all([
      n.call('POST', '/network_pools', { name: `race${i}`, networks: [net.uuid] }),
      n.call('DELETE', `/networks/${net.uuid}`),
    ]);
    // Exactly one of them wins.
    assert.equal([pool.status === 200, del.status === 204].filter(Boolean).length, 1, `${pool.status} ${del.status}`);
    if (pool.status === 200) {
      assert.ok(await n.store.get(`napi/networks/${net.uuid}`));
    }
  }
});
