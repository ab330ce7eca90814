import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ADMIN_UUID, type TestNapi, startTestNapi } from '../helpers/napi.js';
import { OWNER_A, OWNER_B, assertUnchanged, makeNet, makeTag, netParams, seedNic } from '../helpers/napi-fixtures.js';

let n: TestNapi;
before(async () => {
  n = await startTestNapi();
  await makeTag(n, 'external');
});
after(async () => {
  await n.close();
});

test('ping', async () => {
  const r = await n.call('GET', '/ping');
  assert.equal(r.status, 200);
  assert.equal(r.body.healthy, true);
  assert.equal(r.body.status, 'OK');
  assert.equal(r.body.config.fabrics_enabled, true);
  assert.equal((await n.call('HEAD', '/ping')).status, 200);
});

test('unknown route is 404 ResourceNotFound', async () => {
  const r = await n.call('GET', '/nope/at/all');
  assert.equal(r.status, 404);
  assert.equal(r.body.code, 'ResourceNotFound');
});

test('unparseable JSON is 400 on every create route and writes nothing', async () => {
  await assertUnchanged(n.store, async () => {
    for (const url of ['/nic_tags', '/networks', '/network_pools', '/aggregations', `/fabrics/${OWNER_A}/vlans`]) {
      const r = await n.call('POST', url, '{"name": ', { 'content-type': 'application/json' });
      assert.equal(r.status, 400, url);
      assert.equal(r.body.code, 'InvalidContent');
    }
  });
});

test('a JSON body that is not an object is 422 "Parameters must be objects"', async () => {
  await assertUnchanged(n.store, async () => {
    for (const body of ['[1,2]', '"str"', '42']) {
      const r = await n.call('POST', '/networks', body, { 'content-type': 'application/json' });
      assert.equal(r.status, 422, body);
      assert.equal(r.body.message, 'Parameters must be objects');
    }
  });
});

test('path parameters win over body parameters', async () => {
  await makeTag(n, 'pathwins');
  const r = await n.call('PUT', `/fabrics/${OWNER_A}/vlans/3`, { name: 'x' });
  assert.equal(r.status, 404);
  await n.call('POST', `/fabrics/${OWNER_A}/vlans`, { vlan_id: 3 });
  const u = await n.call('PUT', `/fabrics/${OWNER_A}/vlans/3`, { owner_uuid: OWNER_B, vlan_id: 4, name: 'x' });
  assert.equal(u.body.owner_uuid, OWNER_A);
  assert.equal(u.body.vlan_id, 3);
});

test('search/ips: every network holding the IP, filters, 404', async () => {
  const a = await makeNet(n, netParams(1, { gateway: '198.18.1.1' }));
  const p = { nic_tag: 'external', vlan_id: 0, subnet: '10.9.0.0/24', provision_start_ip: '10.9.0.5', provision_end_ip: '10.9.0.9' };
  const b1 = await makeNet(n, { ...p, name: 'privA' });
  const b2 = await makeNet(n, { ...p, name: 'privB' });
  const gw = await n.call('GET', '/search/ips?ip=198.18.1.1');
  assert.deepEqual(gw.body, [
    {
      ip: '198.18.1.1',
      network_uuid: a.uuid,
      reserved: true,
      free: false,
      owner_uuid: ADMIN_UUID,
      belongs_to_type: 'other',
      belongs_to_uuid: ADMIN_UUID,
    },
  ]);
  const both = await n.call('GET', '/search/ips?ip=10.9.0.7');
  assert.deepEqual(both.body, [
    { ip: '10.9.0.7', network_uuid: b1.uuid, reserved: false, free: true },
    { ip: '10.9.0.7', network_uuid: b2.uuid, reserved: false, free: true },
  ]);
  const filtered = await n.call('GET', `/search/ips?ip=198.18.1.1&belongs_to_type=other&owner_uuid=${ADMIN_UUID}`);
  assert.equal(filtered.body.length, 1);
  const none = await n.call('GET', `/search/ips?ip=198.18.1.1&owner_uuid=${OWNER_A}`);
  assert.deepEqual([none.status, none.body], [404, { code: 'ResourceNotFound', message: 'No networks found matching search criteria' }]);
  assert.equal((await n.call('GET', '/search/ips?ip=10.9.0.7&fabric=true')).status, 404);
  assert.equal((await n.call('GET', '/search/ips?ip=1.2.3.4')).status, 404);
  const bad = await n.call('GET', '/search/ips?ip=nope');
  assert.deepEqual(bad.body.errors, [{ field: 'ip', code: 'InvalidParameter', message: 'invalid IP address' }]);
  const missing = await n.call('GET', '/search/ips');
  assert.deepEqual(missing.body.errors, [{ field: 'ip', code: 'MissingParameter', message: 'Missing parameter' }]);
  const strict = await n.call('GET', '/search/ips?ip=10.9.0.7&x=1');
  assert.equal(strict.body.errors[0].code, 'UnknownParameters');
});

test('aggregations: create, get, list, update, delete and validation', async () => {
  const server = 'cccccccc-3333-4333-8333-333333333333';
  await seedNic(n.store, { mac: '00:0c:29:00:00:01', belongs_to_uuid: server, belongs_to_type: 'server' });
  await seedNic(n.store, { mac: '00:0c:29:00:00:02', belongs_to_uuid: server, belongs_to_type: 'server' });
  await seedNic(n.store, { mac: '00:0c:29:00:00:03', belongs_to_uuid: OWNER_B, belongs_to_type: 'server' });
  await seedNic(n.store, { mac: '00:0c:29:00:00:04', belongs_to_uuid: server, belongs_to_type: 'zone' });

  const r = await n.call('POST', '/aggregations', { name: 'aggr0', macs: ['000c29000001', '0:c:29:0:0:2'], nic_tags_provided: ['external'] });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.ok(r.headers.etag);
  const id = `${server}-aggr0`;
  assert.deepEqual(r.body, {
    belongs_to_uuid: server,
    id,
    lacp_mode: 'off',
    name: 'aggr0',
    macs: ['00:0c:29:00:00:01', '00:0c:29:00:00:02'],
    nic_tags_provided: ['external'],
  });
  const g = await n.call('GET', `/aggregations/${id}`);
  assert.deepEqual(g.body, r.body);
  assert.equal((await n.call('GET', `/aggregations/${id}`, undefined, { 'if-match': '"x"' })).status, 412);

  await assertUnchanged(n.store, async () => {
    const dup = await n.call('POST', '/aggregations', { name: 'aggr0', macs: ['00:0c:29:00:00:01'] });
    assert.deepEqual(dup.body, {
      code: 'InvalidParameters',
      message: 'Invalid parameters',
      errors: [{ field: 'name', code: 'Duplicate', message: 'aggregation with same belongs_to_uuid and name already exists' }],
    });
    const bad = await n.call('POST', '/aggregations', { name: 'aggr', macs: ['zz'], lacp_mode: 'fast' });
    assert.deepEqual(bad.body.errors, [
      { field: 'lacp_mode', code: 'InvalidParameter', message: 'Invalid LACP mode. Supported modes: off, active, passive' },
      { field: 'macs', code: 'InvalidParameter', message: 'invalid MAC addresses', invalid: ['zz'] },
      { field: 'name', code: 'InvalidParameter', message: 'must end in a number' },
    ]);
    const unknown = await n.call('POST', '/aggregations', { name: 'aggr1', macs: ['00:0c:29:00:00:09'] });
    assert.deepEqual(unknown.body.errors, [
      { field: 'macs', code: 'InvalidParameter', message: 'unknown MAC addresses', invalid: ['00:0c:29:00:00:09'] },
    ]);
    const mixed = await n.call('POST', '/aggregations', { name: 'aggr1', macs: ['00:0c:29:00:00:01', '00:0c:29:00:00:03'] });
    assert.equal(mixed.body.errors[0].message, 'belongs_to_uuid must match for all nics in the aggregation');
    const zone = await n.call('POST', '/aggregations', { name: 'aggr1', macs: ['00:0c:29:00:00:01', '00:0c:29:00:00:04'] });
    assert.deepEqual(zone.body.errors, [
      { field: 'macs', code: 'InvalidParameter', message: 'all nics must have belongs_to_uuid of type server', invalid: ['00:0c:29:00:00:04'] },
    ]);
    const tag = await n.call('POST', '/aggregations', { name: 'aggr1', macs: ['00:0c:29:00:00:01'], nic_tags_provided: ['ghost'] });
    assert.equal(tag.body.errors[0].field, 'nic_tags_provided');
    const tooMany = await n.call('POST', '/aggregations', {
      name: 'aggr1',
      macs: Array.from({ length: 17 }, (_, i) => `00:0c:29:00:01:${i.toString(16).padStart(2, '0')}`),
    });
    assert.equal(tooMany.body.errors[0].message, 'maximum of 16 MAC addresses supported');
  });

  const list = await n.call('GET', `/aggregations?belongs_to_uuid=${server}`);
  assert.deepEqual(list.body.map((x: { id: string }) => x.id), [id]);
  assert.equal((await n.call('GET', `/aggregations?belongs_to_uuid=${OWNER_A}`)).body.length, 0);
  assert.equal((await n.call('GET', '/aggregations?macs=00:0c:29:00:00:02')).body.length, 1);
  assert.equal((await n.call('GET', '/aggregations?nic_tags_provided=external')).body.length, 1);
  assert.equal((await n.call('GET', '/aggregations?x=1')).body.errors[0].code, 'UnknownParameters');

  const u = await n.call('PUT', `/aggregations/${id}`, { lacp_mode: 'active', macs: ['00:0c:29:00:00:01'], name: 'ignored0' });
  assert.equal(u.status, 200);
  assert.equal(u.body.lacp_mode, 'active');
  assert.equal(u.body.name, 'aggr0');
  assert.deepEqual(u.body.macs, ['00:0c:29:00:00:01']);
  assert.equal((await n.call('PUT', `/aggregations/${id}`, { lacp_mode: 'off' }, { 'if-match': '"x"' })).status, 412);
  assert.equal((await n.call('DELETE', `/aggregations/${id}`)).status, 204);
  const nf = await n.call('GET', `/aggregations/${id}`);
  assert.deepEqual([nf.status, nf.body], [404, { code: 'ResourceNotFound', message: 'aggregation not found' }]);
  assert.equal((await n.call('DELETE', `/aggregations/${id}`)).status, 404);
});
