/**
 * /nics, /nics/:mac and /networks/:uuid/nics through the real app: create and provision
 * (networks, pools, admin), validation with NAPI's exact bodies, list filters and
 * pagination, update (IP moves, ownership propagation, primary), delete, ETags.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_UUID, type TestNapi, startTestNapi } from '../helpers/napi.js';
import type { KeyValue } from '../../src/store/types.js';

const OWNER = 'aaaaaaaa-1111-4000-8000-000000000001';
const OTHER = 'bbbbbbbb-2222-4000-8000-000000000002';
const CN = 'cccccccc-3333-4000-8000-000000000003';
const vm = (n: number): string => `d0000000-0000-4000-8000-${String(n).padStart(12, '0')}`;

let napi: TestNapi;
let net: string; // 10.1.0.0/24, owned by OWNER
let open: string; // 10.2.0.0/29, no owners
let pool: string;

async function snapshot(): Promise<KeyValue[]> {
  return (await napi.store.range({ prefix: '' })).kvs;
}

async function mkNet(body: Record<string, unknown>): Promise<string> {
  const r = await napi.call('POST', '/networks', { nic_tag: 'sdc_underlay', vlan_id: 0, ...body });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.uuid;
}

before(async () => {
  napi = await startTestNapi();
  net = await mkNet({
    name: 'n1',
    subnet: '10.1.0.0/24',
    provision_start_ip: '10.1.0.10',
    provision_end_ip: '10.1.0.250',
    gateway: '10.1.0.1',
    resolvers: ['10.1.0.2'],
    routes: { '10.9.0.0/16': '10.1.0.1', '169.254.0.0/16': 'linklocal' },
    owner_uuids: [OWNER],
  });
  open = await mkNet({ name: 'n2', subnet: '10.2.0.0/29', provision_start_ip: '10.2.0.1', provision_end_ip: '10.2.0.2' });
  const r = await napi.call('POST', '/network_pools', { name: 'p', networks: [open, net] });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  pool = r.body.uuid;
});
after(() => napi.close());

test('create on a network: allocated IP and MAC, network fields copied, flags only when true, ETag', async () => {
  const r = await napi.call('POST', '/nics', {
    belongs_to_uuid: vm(1),
    belongs_to_type: 'zone',
    owner_uuid: OWNER,
    network_uuid: net,
    allow_ip_spoofing: true,
    allow_mac_spoofing: false,
    model: 'virtio',
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const b = r.body;
  assert.match(b.mac, /^90:b8:d0(:[0-9a-f]{2}){3}$/);
  assert.equal(b.ip, '10.1.0.10');
  assert.equal(b.network_uuid, net);
  assert.equal(b.netmask, '255.255.255.0');
  assert.equal(b.gateway, '10.1.0.1');
  assert.deepEqual(b.resolvers, ['10.1.0.2']);
  assert.deepEqual(b.routes, { '10.9.0.0/16': '10.1.0.1', '169.254.0.0/16': `macs[${b.mac}]` });
  assert.equal(b.nic_tag, 'sdc_underlay');
  assert.equal(b.vlan_id, 0);
  assert.equal(b.mtu, 1500);
  assert.equal(b.primary, false);
  assert.equal(b.state, 'provisioning');
  assert.equal(b.model, 'virtio');
  assert.equal(b.allow_ip_spoofing, true);
  assert.equal('allow_mac_spoofing' in b, false);
  assert.equal('underlay' in b, false);
  assert.ok(typeof r.headers.etag === 'string');
  const got = await napi.call('GET', `/nics/${b.mac.replace(/:/g, '')}`);
  assert.equal(got.status, 200);
  assert.deepEqual(got.body, b);
  assert.equal(got.headers.etag, r.headers.etag);
  // The IP record follows the NIC.
  const ip = await napi.call('GET', `/networks/${net}/ips/10.1.0.10`);
  assert.deepEqual(ip.body, { ip: '10.1.0.10', network_uuid: net, reserved: false, free: false, owner_uuid: OWNER, belongs_to_type: 'zone', belongs_to_uuid: vm(1) });
});

test('create validation: missing and invalid parameters, in NAPI words, nothing written', async () => {
  const before = await snapshot();
  let r = await napi.call('POST', '/nics', {});
  assert.equal(r.status, 422);
  assert.deepEqual(r.body, {
    code: 'InvalidParameters',
    message: 'Missing parameters',
    errors: [
      { field: 'belongs_to_type', code: 'MissingParameter', message: 'Missing parameter' },
      { field: 'belongs_to_uuid', code: 'MissingParameter', message: 'Missing parameter' },
      { field: 'owner_uuid', code: 'MissingParameter', message: 'Missing parameter' },
    ],
  });
  r = await napi.call('POST', '/nics', { belongs_to_uuid: 'x', belongs_to_type: 'vm', owner_uuid: OWNER, mac: 'nope', state: 'on', primary: 'yes' });
  assert.deepEqual(r.body, {
    code: 'InvalidParameters',
    message: 'Invalid parameters',
    errors: [
      { field: 'belongs_to_type', code: 'InvalidParameter', message: 'must be one of: "other", "server", "zone"' },
      { field: 'belongs_to_uuid', code: 'InvalidParameter', message: 'invalid UUID' },
      { field: 'mac', code: 'InvalidParameter', message: 'invalid MAC address' },
      { field: 'primary', code: 'InvalidParameter', message: 'must be a boolean value' },
      { field: 'state', code: 'InvalidParameter', message: 'must be one of: "provisioning", "stopped", "running"' },
    ],
  });
  const base = { belongs_to_uuid: vm(2), belongs_to_type: 'zone', owner_uuid: OWNER };
  const cases: Array<[Record<string, unknown>, unknown[]]> = [
    [{ network_uuid: 'ffffffff-ffff-4fff-8fff-ffffffffffff' }, [{ field: 'network_uuid', code: 'InvalidParameter', message: 'network does not exist' }]],
    [{ network_uuid: net, ip: 'fd00::1' }, [{ field: 'ip', code: 'InvalidParameter', message: 'Specified address must be IPv4' }]],
    [{ network_uuid: net, ip: '10.7.0.1' }, [{ field: 'ip', code: 'InvalidParameter', message: `IP address 10.7.0.1 is outside the subnet for given network ${net}` }]],
    [{ network_uuid: net, ip: '10.1.0.10' }, [{ field: 'ip', code: 'UsedBy', type: 'zone', id: vm(1), message: `IP in use by zone "${vm(1)}"` }]],
    [{ network_uuid: net, owner_uuid: OTHER }, [{ field: 'owner_uuid', code: 'InvalidParameter', message: 'network owner_uuids do not match' }]],
    [{ network_uuid: pool, ip: '10.1.0.20' }, [{ field: 'ip', code: 'InvalidParameter', message: 'IP cannot be specified with a network pool' }]],
    [{ network_uuid: net, nic_tag: 'admin_nope' }, [{ field: 'nic_tag', code: 'InvalidParameter', message: 'nic tag does not exist' }]],
    [{ network_uuid: net, vlan_id: 7 }, [{ field: 'vlan_id', code: 'InvalidParameter', message: 'The vlan_id of all specified IPv4 and IPv6 networks must match (have "0" and "7")' }]],
    [{ ip: '10.1.0.20' }, [
      { field: 'nic_tag', code: 'MissingParameter', message: 'required if IP specified but not network_uuid' },
      { field: 'vlan_id', code: 'MissingParameter', message: 'required if IP specified but not network_uuid' },
    ]],
    [{ ip: '10.8.0.20', nic_tag: 'sdc_underlay', vlan_id: 0 }, [
      { field: 'ip', code: 'InvalidParameter', message: 'No networks matching this nic_tag ("sdc_underlay") and vlan_id (0) contained the IP address 10.8.0.20' },
    ]],
    [{ underlay: true, belongs_to_type: 'zone' }, [{ field: 'underlay', code: 'InvalidParameter', message: 'Only server NICs can be underlay NICs' }]],
  ];
  for (const [extra, errors] of cases) {
    r = await napi.call('POST', '/nics', { ...base, ...extra });
    assert.equal(r.status, 422, JSON.stringify(extra));
    assert.deepEqual(r.body.errors, errors, JSON.stringify(extra));
  }
  r = await napi.call('POST', '/nics', '{"bad json', { 'content-type': 'application/json' });
  assert.equal(r.status, 400);
  assert.deepEqual(await snapshot(), before);
});

test('explicit IP without network_uuid finds the network by nic_tag and vlan_id; admin reservations are claimable', async () => {
  let r = await napi.call('POST', '/nics', { belongs_to_uuid: vm(3), belongs_to_type: 'zone', owner_uuid: OWNER, ip: '10.1.0.77', nic_tag: 'sdc_underlay', vlan_id: 0 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.network_uuid, net);
  // The gateway is an admin `other` reservation: an explicit request may take it, and it stays reserved.
  r = await napi.call('POST', '/nics', { belongs_to_uuid: vm(4), belongs_to_type: 'zone', owner_uuid: ADMIN_UUID, network_uuid: net, ip: '10.1.0.1' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const ip = await napi.call('GET', `/networks/${net}/ips/10.1.0.1`);
  assert.equal(ip.body.belongs_to_uuid, vm(4));
  assert.equal(ip.body.reserved, true);
  // Deleting it keeps the reservation and the owner, drops belongs_to.
  assert.equal((await napi.call('DELETE', `/nics/${r.body.mac}`)).status, 204);
  const after = await napi.call('GET', `/networks/${net}/ips/10.1.0.1`);
  assert.deepEqual(after.body, { ip: '10.1.0.1', network_uuid: net, reserved: true, free: false, owner_uuid: ADMIN_UUID });
});

test('explicit MAC: any accepted form, duplicates rejected', async () => {
  let r = await napi.call('POST', '/nics', { belongs_to_uuid: vm(5), belongs_to_type: 'server', owner_uuid: ADMIN_UUID, mac: '2-0-0-0-0-A', nic_tags_provided: ['sdc_underlay'] });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.mac, '02:00:00:00:00:0a');
  assert.deepEqual(r.body.nic_tags_provided, ['sdc_underlay']);
  assert.equal('ip' in r.body, false);
  r = await napi.call('POST', '/nics', { belongs_to_uuid: vm(6), belongs_to_type: 'server', owner_uuid: ADMIN_UUID, mac: '02000000000a' });
  assert.equal(r.status, 422);
  assert.deepEqual(r.body.errors, [{ field: 'mac', code: 'Duplicate', message: 'Already exists' }]);
  r = await napi.call('POST', '/nics', { belongs_to_uuid: vm(6), belongs_to_type: 'server', owner_uuid: ADMIN_UUID, nic_tags_provided: ['nope'] });
  assert.deepEqual(r.body.errors, [{ field: 'nic_tags_provided', code: 'InvalidParameter', message: 'nic tag does not exist', invalid: ['nope'] }]);
});

test('provisioning on a pool fills members in order, then "All networks in pool … are full"; SubnetFull on a network', async () => {
  const made: string[] = [];
  for (let i = 0; i < 2; i++) {
    const r = await napi.call('POST', `/networks/${pool}/nics`, { belongs_to_uuid: vm(10 + i), belongs_to_type: 'zone', owner_uuid: OWNER });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    made.push(r.body.ip);
  }
  // The pool lists networks sorted; whichever is first fills first.
  const p = await napi.call('GET', `/network_pools/${pool}`);
  const first = p.body.networks[0];
  if (first === open) assert.deepEqual(made, ['10.2.0.1', '10.2.0.2']);
  const r = await napi.call('POST', `/networks/${open}/nics`, { belongs_to_uuid: vm(12), belongs_to_type: 'zone', owner_uuid: OWNER });
  if (first === open) {
    assert.equal(r.status, 507);
    assert.deepEqual(r.body, { code: 'SubnetFull', message: 'no more free IPs', network_uuid: open });
    const next = await napi.call('POST', `/networks/${pool}/nics`, { belongs_to_uuid: vm(13), belongs_to_type: 'zone', owner_uuid: OWNER });
    assert.equal(next.status, 200);
    assert.equal(next.body.network_uuid, net);
  }
  const small = await mkNet({ name: 'tiny', subnet: '10.3.0.0/29', provision_start_ip: '10.3.0.1', provision_end_ip: '10.3.0.2' });
  const p2 = await napi.call('POST', '/network_pools', { name: 'tinyp', networks: [small] });
  for (const n of [14, 17]) {
    assert.equal((await napi.call('POST', `/networks/${p2.body.uuid}/nics`, { belongs_to_uuid: vm(n), belongs_to_type: 'zone', owner_uuid: OWNER })).status, 200);
  }
  const full = await napi.call('POST', `/networks/${p2.body.uuid}/nics`, { belongs_to_uuid: vm(15), belongs_to_type: 'zone', owner_uuid: OWNER });
  assert.equal(full.status, 422);
  assert.deepEqual(full.body.errors, [{ field: 'network_uuid', code: 'InvalidParameter', message: `All networks in pool ${p2.body.uuid} are full` }]);
});

test('the path network_uuid wins over the body', async () => {
  const r = await napi.call('POST', `/networks/${net}/nics`, { belongs_to_uuid: vm(16), belongs_to_type: 'zone', owner_uuid: OWNER, network_uuid: open });
  assert.equal(r.status, 200);
  assert.equal(r.body.network_uuid, net);
});

test('primary: setting it clears primary on the other NICs of the same owner object', async () => {
  const a = await napi.call('POST', '/nics', { belongs_to_uuid: vm(20), belongs_to_type: 'zone', owner_uuid: OWNER, primary: true });
  const b = await napi.call('POST', '/nics', { belongs_to_uuid: vm(20), belongs_to_type: 'zone', owner_uuid: OWNER, primary: true });
  assert.equal((await napi.call('GET', `/nics/${a.body.mac}`)).body.primary, false);
  assert.equal((await napi.call('GET', `/nics/${b.body.mac}`)).body.primary, true);
  const u = await napi.call('PUT', `/nics/${a.body.mac}`, { primary: true });
  assert.equal(u.body.primary, true);
  assert.equal((await napi.call('GET', `/nics/${b.body.mac}`)).body.primary, false);
});

test('update: IP move frees the old address, network_uuid alone does not move, body mac ignored, ownership propagates', async () => {
  const c = await napi.call('POST', '/nics', { belongs_to_uuid: vm(30), belongs_to_type: 'zone', owner_uuid: OWNER, network_uuid: net });
  const mac = c.body.mac;
  const oldIp = c.body.ip;
  let r = await napi.call('PUT', `/nics/${mac}`, { network_uuid: open });
  assert.equal(r.status, 200);
  assert.equal(r.body.ip, oldIp);
  assert.equal(r.body.network_uuid, net);
  r = await napi.call('PUT', `/nics/${mac}`, { ip: '10.1.0.200', mac: '02:00:00:00:00:99' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.mac, mac);
  assert.equal(r.body.ip, '10.1.0.200');
  assert.ok(r.body.modified_timestamp >= c.body.modified_timestamp);
  const freed = await napi.call('GET', `/networks/${net}/ips/${oldIp}`);
  assert.deepEqual(freed.body, { ip: oldIp, network_uuid: net, reserved: false, free: true });
  // Taking an address someone else holds fails with NAPI's UsedBy.
  r = await napi.call('PUT', `/nics/${mac}`, { ip: '10.1.0.10' });
  assert.equal(r.status, 422);
  assert.deepEqual(r.body.errors, [{ field: 'ip', code: 'UsedBy', type: 'zone', id: vm(1), message: `IP in use by zone "${vm(1)}"` }]);
  // belongs_to/owner/reserved changes reach the IP record.
  r = await napi.call('PUT', `/nics/${mac}`, { belongs_to_uuid: vm(31), reserved: true });
  assert.equal(r.status, 200);
  const ip = await napi.call('GET', `/networks/${net}/ips/10.1.0.200`);
  assert.deepEqual(ip.body, { ip: '10.1.0.200', network_uuid: net, reserved: true, free: false, owner_uuid: OWNER, belongs_to_type: 'zone', belongs_to_uuid: vm(31) });
  // Delete: the reserved IP keeps owner and reservation.
  assert.equal((await napi.call('DELETE', `/nics/${mac}`)).status, 204);
  const after = await napi.call('GET', `/networks/${net}/ips/10.1.0.200`);
  assert.deepEqual(after.body, { ip: '10.1.0.200', network_uuid: net, reserved: true, free: false, owner_uuid: OWNER });
});

test('update: the old IP is only released if it is still ours', async () => {
  const c = await napi.call('POST', '/nics', { belongs_to_uuid: vm(32), belongs_to_type: 'zone', owner_uuid: OWNER, network_uuid: net });
  // Someone reassigns the IP record behind the NIC's back.
  const put = await napi.call('PUT', `/networks/${net}/ips/${c.body.ip}`, { belongs_to_uuid: vm(33), belongs_to_type: 'other', owner_uuid: OWNER });
  assert.equal(put.status, 200, JSON.stringify(put.body));
  const r = await napi.call('PUT', `/nics/${c.body.mac}`, { ip: '10.1.0.201' });
  assert.equal(r.status, 200);
  assert.equal((await napi.call('GET', `/networks/${net}/ips/${c.body.ip}`)).body.belongs_to_uuid, vm(33));
});

test('ETags: If-Match mismatch is 412 on update and delete; a match succeeds', async () => {
  const c = await napi.call('POST', '/nics', { belongs_to_uuid: vm(40), belongs_to_type: 'zone', owner_uuid: OWNER });
  const etag = c.headers.etag as string;
  let r = await napi.call('PUT', `/nics/${c.body.mac}`, { state: 'running' }, { 'if-match': '"bogus"' });
  assert.equal(r.status, 412);
  assert.equal(r.body.code, 'PreconditionFailed');
  assert.equal(r.body.message, `if-match '"bogus"' didn't match etag '${etag}'`);
  r = await napi.call('PUT', `/nics/${c.body.mac}`, { state: 'running' }, { 'if-match': etag });
  assert.equal(r.status, 200);
  assert.notEqual(r.headers.etag, etag);
  r = await napi.call('DELETE', `/nics/${c.body.mac}`, undefined, { 'if-match': etag });
  assert.equal(r.status, 412);
  r = await napi.call('DELETE', `/nics/${c.body.mac}`, undefined, { 'if-match': r.headers.etag as string ?? '' });
  const again = await napi.call('DELETE', `/nics/${c.body.mac}`);
  assert.ok(r.status === 204 || again.status === 204);
});

test('delete: 204, then 404 "nic not found"; racing deletes give one 204 and 404s', async () => {
  const c = await napi.call('POST', '/nics', { belongs_to_uuid: vm(41), belongs_to_type: 'zone', owner_uuid: OWNER, network_uuid: net });
  const results = await Promise.all([1, 2, 3].map(() => napi.call('DELETE', `/nics/${c.body.mac}`)));
  assert.deepEqual(results.map((r) => r.status).sort(), [204, 404, 404]);
  const gone = await napi.call('GET', `/nics/${c.body.mac}`);
  assert.equal(gone.status, 404);
  assert.deepEqual(gone.body, { code: 'ResourceNotFound', message: 'nic not found' });
  assert.equal((await napi.call('PUT', `/nics/${c.body.mac}`, { state: 'running' })).status, 404);
  const idx = await napi.store.range({ prefix: 'napi/idx/nic/' });
  assert.equal(idx.kvs.filter((kv) => kv.key.endsWith(c.body.mac.replace(/:/g, ''))).length, 0);
});

test('list: strict, filters ANDed across fields and ORed within, pagination', async () => {
  const mk = (n: number, extra: Record<string, unknown>) =>
    napi.call('POST', '/nics', { belongs_to_uuid: vm(n), belongs_to_type: 'zone', owner_uuid: OTHER, ...extra });
  const a = (await mk(50, { cn_uuid: CN, state: 'running', allow_dhcp_spoofing: true })).body;
  const b = (await mk(51, { cn_uuid: CN, state: 'stopped', network_uuid: net, check_owner: false })).body;
  assert.ok(b.mac, JSON.stringify(b));
  const c = (await mk(52, { state: 'running', belongs_to_type: 'other' })).body;
  const macs = (r: { body: Array<{ mac: string }> }) => r.body.map((n) => n.mac);
  let r = await napi.call('GET', `/nics?owner_uuid=${OTHER}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(macs(r), [a.mac, b.mac, c.mac].sort());
  r = await napi.call('GET', `/nics?cn_uuid=${CN}&state=running`);
  assert.deepEqual(macs(r), [a.mac]);
  r = await napi.call('GET', `/nics?owner_uuid=${OTHER}&state=running,stopped`);
  assert.deepEqual(macs(r), [a.mac, b.mac, c.mac].sort());
  r = await napi.call('GET', `/nics?belongs_to_uuid=${vm(50)},${vm(52)}`);
  assert.deepEqual(macs(r), [a.mac, c.mac].sort());
  r = await napi.call('GET', `/nics?owner_uuid=${OTHER}&belongs_to_type=other`);
  assert.deepEqual(macs(r), [c.mac]);
  r = await napi.call('GET', `/nics?owner_uuid=${OTHER}&allow_dhcp_spoofing=true`);
  assert.deepEqual(macs(r), [a.mac]);
  r = await napi.call('GET', `/nics?network_uuid=${net}&owner_uuid=${OTHER}`);
  assert.deepEqual(macs(r), [b.mac]);
  r = await napi.call('GET', `/nics?nic_tags_provided=sdc_underlay`);
  assert.deepEqual(macs(r), ['02:00:00:00:00:0a']);
  r = await napi.call('GET', `/nics?owner_uuid=${OTHER}&limit=2`);
  assert.equal(r.body.length, 2);
  const rest = await napi.call('GET', `/nics?owner_uuid=${OTHER}&limit=2&offset=2`);
  assert.deepEqual([...macs(r), ...macs(rest)], [a.mac, b.mac, c.mac].sort());
  r = await napi.call('GET', '/nics?foo=1&bar=2');
  assert.equal(r.status, 422);
  assert.deepEqual(r.body, {
    code: 'InvalidParameters',
    message: 'Invalid parameters',
    errors: [{ field: ['bar', 'foo'], code: 'UnknownParameters', message: 'Unknown parameters: bar, foo' }],
  });
  r = await napi.call('GET', '/nics?limit=0');
  assert.deepEqual(r.body.errors, [{ field: 'limit', code: 'InvalidParameter', message: 'invalid limit, must be an integer greater than 0 or less than or equal to 1000' }]);
  r = await napi.call('GET', '/nics?cn_uuid=nope');
  assert.equal(r.status, 422);
  assert.equal(r.body.errors[0].field, 'cn_uuid');
  const head = await napi.call('HEAD', `/nics?owner_uuid=${OTHER}`);
  assert.equal(head.status, 200);
});

test('fabric nic_tag form <overlay tag>/<vnet_id> is accepted back on create', async () => {
  const owner = 'eeeeeeee-0000-4000-8000-00000000000e';
  await napi.call('POST', `/fabrics/${owner}/vlans`, { vlan_id: 3 });
  const f = await napi.call('POST', `/fabrics/${owner}/vlans/3/networks`, { name: 'f', subnet: '10.77.0.0/24', provision_start_ip: '10.77.0.5', provision_end_ip: '10.77.0.9' });
  assert.equal(f.status, 200, JSON.stringify(f.body));
  const tag = `sdc_overlay/${f.body.vnet_id}`;
  let r = await napi.call('POST', '/nics', { belongs_to_uuid: vm(60), belongs_to_type: 'zone', owner_uuid: owner, cn_uuid: CN, ip: '10.77.0.7', nic_tag: tag, vlan_id: 3 });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.nic_tag, tag);
  assert.equal(r.body.fabric, true);
  assert.equal(r.body.internet_nat, true);
  assert.equal(r.body.network_uuid, f.body.uuid);
  r = await napi.call('POST', '/nics', { belongs_to_uuid: vm(61), belongs_to_type: 'zone', owner_uuid: owner, cn_uuid: CN, network_uuid: f.body.uuid, nic_tag: `sdc_overlay/${f.body.vnet_id + 1}` });
  assert.equal(r.status, 422);
  assert.equal(r.body.errors[0].field, 'nic_tag');
});

test('admin alias: network_uuid=admin provisions on the network named admin', async () => {
  const admin = await mkNet({ name: 'admin', subnet: '10.99.0.0/24', provision_start_ip: '10.99.0.10', provision_end_ip: '10.99.0.20' });
  const r = await napi.call('POST', '/nics', { belongs_to_uuid: vm(70), belongs_to_type: 'server', owner_uuid: ADMIN_UUID, network_uuid: 'admin' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.network_uuid, admin);
  assert.equal(r.body.ip, '10.99.0.10');
});
