/**
 * /networks/:uuid/ips and /networks/:uuid/ips/:ip: list (existing records only,
 * filters, pagination, strictness), get (synthesised when absent, 404s), update
 * (reserve, assign, free, unassign, If-Match "" semantics).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_UUID, type TestNapi, startTestNapi } from '../helpers/napi.js';

const OWNER = 'aaaaaaaa-1111-4000-8000-000000000001';
const STRANGER = 'ffffffff-1111-4000-8000-00000000000f';
const VM = 'd0000000-0000-4000-8000-000000000001';

let napi: TestNapi;
let net: string;
let net6: string;

before(async () => {
  napi = await startTestNapi();
  let r = await napi.call('POST', '/networks', {
    name: 'ipnet', nic_tag: 'sdc_underlay', vlan_id: 0, subnet: '10.5.0.0/24',
    provision_start_ip: '10.5.0.10', provision_end_ip: '10.5.0.20', gateway: '10.5.0.1', owner_uuids: [OWNER],
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  net = r.body.uuid;
  r = await napi.call('POST', '/networks', {
    name: 'ipnet6', nic_tag: 'sdc_underlay', vlan_id: 0, subnet: 'fd00:5::/64',
    provision_start_ip: 'fd00:5::10', provision_end_ip: 'fd00:5::ff',
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  net6 = r.body.uuid;
});
after(() => napi.close());

test('get: synthesised free record without an ETag; stored records with one', async () => {
  let r = await napi.call('GET', `/networks/${net}/ips/10.5.0.50`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { ip: '10.5.0.50', network_uuid: net, reserved: false, free: true });
  assert.equal(r.headers.etag, undefined);
  r = await napi.call('GET', `/networks/${net}/ips/10.5.0.1`);
  assert.deepEqual(r.body, { ip: '10.5.0.1', network_uuid: net, reserved: true, free: false, owner_uuid: ADMIN_UUID, belongs_to_type: 'other', belongs_to_uuid: ADMIN_UUID });
  assert.ok(r.headers.etag);
  // Numeric IPv4 form and IPv6 zero elision.
  r = await napi.call('GET', `/networks/${net}/ips/${(10 << 24 | 5 << 16 | 77) >>> 0}`);
  assert.equal(r.body.ip, '10.5.0.77');
  r = await napi.call('GET', `/networks/${net6}/ips/fd00:5:0:0:0:0:0:20`);
  assert.deepEqual(r.body, { ip: 'fd00:5::20', network_uuid: net6, reserved: false, free: true });
});

test('get: 404s for bad addresses, wrong family, outside the subnet, unknown network', async () => {
  const cases: Array<[string, string]> = [
    [`/networks/${net}/ips/10.5.0.999`, 'Invalid IP address'],
    [`/networks/${net}/ips/fd00:5::1`, 'IP and subnet are of different address families'],
    [`/networks/${net}/ips/10.6.0.1`, 'IP is not in subnet'],
    ['/networks/ffffffff-ffff-4fff-8fff-ffffffffffff/ips/10.5.0.1', 'network not found'],
    ['/networks/nope/ips/10.5.0.1', 'network not found'],
  ];
  for (const [url, message] of cases) {
    const r = await napi.call('GET', url);
    assert.equal(r.status, 404, url);
    assert.deepEqual(r.body, { code: 'ResourceNotFound', message }, url);
  }
});

test('update: reserve creates a record, assign requires all three owning fields, owner must own the network', async () => {
  let r = await napi.call('PUT', `/networks/${net}/ips/10.5.0.30`, { reserved: true });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(r.body, { ip: '10.5.0.30', network_uuid: net, reserved: true, free: false });
  assert.ok(r.headers.etag);
  r = await napi.call('PUT', `/networks/${net}/ips/10.5.0.31`, { belongs_to_uuid: VM });
  assert.equal(r.status, 422);
  assert.deepEqual(r.body, {
    code: 'InvalidParameters',
    message: 'Missing parameters',
    errors: [
      { field: 'belongs_to_type', code: 'MissingParameter', message: 'Missing parameter' },
      { field: 'owner_uuid', code: 'MissingParameter', message: 'Missing parameter' },
    ],
  });
  r = await napi.call('PUT', `/networks/${net}/ips/10.5.0.31`, { belongs_to_uuid: VM, belongs_to_type: 'zone', owner_uuid: STRANGER });
  assert.deepEqual(r.body.errors, [{ field: 'owner_uuid', code: 'InvalidParameter', message: 'network owner_uuids do not match' }]);
  r = await napi.call('PUT', `/networks/${net}/ips/10.5.0.31`, { belongs_to_uuid: VM, belongs_to_type: 'zone', owner_uuid: STRANGER, check_owner: false });
  assert.equal(r.status, 200);
  r = await napi.call('PUT', `/networks/${net}/ips/10.5.0.32`, { belongs_to_uuid: VM, belongs_to_type: 'zone', owner_uuid: OWNER });
  assert.deepEqual(r.body, { ip: '10.5.0.32', network_uuid: net, reserved: false, free: false, owner_uuid: OWNER, belongs_to_type: 'zone', belongs_to_uuid: VM });
  r = await napi.call('PUT', `/networks/${net}/ips/10.5.0.33`, { belongs_to_type: 'vm' });
  assert.deepEqual(r.body.errors, [{ field: 'belongs_to_type', code: 'InvalidParameter', message: 'must be one of: "other", "server", "zone"' }]);
  r = await napi.call('PUT', `/networks/${net}/ips/10.9.0.1`, { reserved: true });
  assert.equal(r.status, 404);
});

test('update: unassign keeps owner and reservation; free clears everything; both is an error', async () => {
  await napi.call('PUT', `/networks/${net}/ips/10.5.0.40`, { belongs_to_uuid: VM, belongs_to_type: 'zone', owner_uuid: OWNER, reserved: true });
  let r = await napi.call('PUT', `/networks/${net}/ips/10.5.0.40`, { free: true, unassign: true });
  assert.equal(r.status, 422);
  assert.deepEqual(r.body.errors, [{ field: 'unassign', code: 'InvalidParameter', message: 'free and unassign cannot both be set to "true"' }]);
  r = await napi.call('PUT', `/networks/${net}/ips/10.5.0.40`, { unassign: true });
  assert.deepEqual(r.body, { ip: '10.5.0.40', network_uuid: net, reserved: true, free: false, owner_uuid: OWNER });
  r = await napi.call('PUT', `/networks/${net}/ips/10.5.0.40`, { free: 'true' });
  assert.deepEqual(r.body, { ip: '10.5.0.40', network_uuid: net, reserved: false, free: true });
});

test('a reserved IP is skipped by allocation but can be claimed explicitly; a freed one is reused', async () => {
  const n = await napi.call('POST', '/networks', {
    name: 'tiny', nic_tag: 'sdc_underlay', vlan_id: 0, subnet: '10.6.0.0/29', provision_start_ip: '10.6.0.1', provision_end_ip: '10.6.0.3',
  });
  const u = n.body.uuid;
  await napi.call('PUT', `/networks/${u}/ips/10.6.0.1`, { reserved: true });
  const mk = (extra: Record<string, unknown> = {}) =>
    napi.call('POST', `/networks/${u}/nics`, { belongs_to_uuid: VM, belongs_to_type: 'zone', owner_uuid: OWNER, ...extra });
  assert.equal((await mk()).body.ip, '10.6.0.2');
  const third = await mk();
  assert.equal(third.body.ip, '10.6.0.3');
  assert.equal((await mk()).status, 507);
  assert.equal((await mk({ ip: '10.6.0.1' })).body.ip, '10.6.0.1');
  await napi.call('DELETE', `/nics/${third.body.mac}`);
  assert.equal((await mk()).body.ip, '10.6.0.3');
});

test('If-Match: "" creates only if absent; a stale ETag is 412', async () => {
  let r = await napi.call('PUT', `/networks/${net}/ips/10.5.0.60`, { reserved: true }, { 'if-match': '""' });
  assert.equal(r.status, 200);
  const etag = r.headers.etag as string;
  r = await napi.call('PUT', `/networks/${net}/ips/10.5.0.60`, { reserved: false }, { 'if-match': '""' });
  assert.equal(r.status, 412);
  assert.equal(r.body.code, 'PreconditionFailed');
  r = await napi.call('PUT', `/networks/${net}/ips/10.5.0.60`, { reserved: false }, { 'if-match': etag });
  assert.equal(r.status, 200);
  r = await napi.call('PUT', `/networks/${net}/ips/10.5.0.60`, { reserved: true }, { 'if-match': etag });
  assert.equal(r.status, 412);
});

test('list: existing records only, sorted by address, filters, pagination, strict', async () => {
  let r = await napi.call('GET', `/networks/${net}/ips`);
  assert.equal(r.status, 200);
  const ips: string[] = r.body.map((x: { ip: string }) => x.ip);
  assert.deepEqual(ips, ['10.5.0.1', '10.5.0.30', '10.5.0.31', '10.5.0.32', '10.5.0.40', '10.5.0.60', '10.5.0.255']);
  r = await napi.call('GET', `/networks/${net}/ips?belongs_to_uuid=${VM}&owner_uuid=${OWNER}`);
  assert.deepEqual(r.body.map((x: { ip: string }) => x.ip), ['10.5.0.32']);
  r = await napi.call('GET', `/networks/${net}/ips?belongs_to_type=other`);
  assert.deepEqual(r.body.map((x: { ip: string }) => x.ip), ['10.5.0.1', '10.5.0.255']);
  r = await napi.call('GET', `/networks/${net}/ips?limit=2&offset=1`);
  assert.deepEqual(r.body.map((x: { ip: string }) => x.ip), ['10.5.0.30', '10.5.0.31']);
  r = await napi.call('GET', `/networks/${net}/ips?free=true`);
  assert.equal(r.status, 422);
  assert.deepEqual(r.body.errors, [{ field: ['free'], code: 'UnknownParameters', message: 'Unknown parameters: free' }]);
  r = await napi.call('GET', `/networks/${net}/ips?offset=-1`);
  assert.deepEqual(r.body.errors, [{ field: 'offset', code: 'InvalidParameter', message: 'invalid value, offset must be an integer greater than or equal to 0' }]);
  r = await napi.call('GET', '/networks/ffffffff-ffff-4fff-8fff-ffffffffffff/ips');
  assert.equal(r.status, 404);
  r = await napi.call('GET', `/networks/${net6}/ips`);
  assert.deepEqual(r.body, []);
});
