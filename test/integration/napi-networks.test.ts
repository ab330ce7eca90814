import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ADMIN_UUID, type TestNapi, startTestNapi } from '../helpers/napi.js';
import { OWNER_A, OWNER_B, assertUnchanged, keysUnder, makeNet, makeTag, netParams, seedNic } from '../helpers/napi-fixtures.js';

let n: TestNapi;
before(async () => {
  n = await startTestNapi();
  await makeTag(n, 'external');
  await makeTag(n, 'jumbo', 9000);
});
after(async () => {
  await n.close();
});

async function ipRecord(net: string, hex: string): Promise<Record<string, unknown> | undefined> {
  const kv = await n.store.get(`napi/ips/${net}/${hex}`);
  return kv ? JSON.parse(kv.value) : undefined;
}

test('create IPv4: object, ETag and reserved IP records', async () => {
  const r = await n.call('POST', '/networks', {
    ...netParams(1, { name: 'v4net' }),
    gateway: '198.18.1.1',
    resolvers: '198.18.1.2, 8.8.8.8',
    routes: { '10.10.0.0/16': '198.18.1.1' },
    owner_uuids: [OWNER_B, OWNER_A],
    description: 'a network',
    mtu: 1500,
  });
  assert.equal(r.status, 200);
  const net = r.body;
  assert.match(String(r.headers.etag), /^".+"$/);
  assert.deepEqual(net, {
    uuid: net.uuid,
    name: 'v4net',
    family: 'ipv4',
    subnet: '198.18.1.0/24',
    netmask: '255.255.255.0',
    provision_start_ip: '198.18.1.10',
    provision_end_ip: '198.18.1.250',
    vlan_id: 0,
    nic_tag: 'external',
    mtu: 1500,
    gateway: '198.18.1.1',
    resolvers: ['198.18.1.2', '8.8.8.8'],
    routes: { '10.10.0.0/16': '198.18.1.1' },
    owner_uuids: [OWNER_A, OWNER_B],
    description: 'a network',
  });
  const reserved = { reserved: true, belongs_to_type: 'other', belongs_to_uuid: ADMIN_UUID, owner_uuid: ADMIN_UUID };
  for (const hex of ['c6120101', 'c6120102', 'c61201ff']) {
    const rec = await ipRecord(net.uuid, hex);
    assert.ok(rec, hex);
    for (const [k, v] of Object.entries(reserved)) assert.equal(rec[k], v, `${hex}.${k}`);
  }
  // The resolver outside the subnet gets no record; nothing else is pre-created.
  assert.equal((await keysUnder(n.store, `napi/ips/${net.uuid}/`)).length, 3);
  const got = await n.call('GET', `/networks/${net.uuid}`);
  assert.deepEqual(got.body, net);
  assert.equal(got.headers.etag, r.headers.etag);
});

test('create IPv6: no netmask, no broadcast reservation', async () => {
  const net = await makeNet(n, {
    name: 'v6net',
    nic_tag: 'external',
    vlan_id: 5,
    subnet: '2001:db8:1::/64',
    provision_start_ip: '2001:db8:1::10',
    provision_end_ip: '2001:db8:1::ffff',
    gateway: '2001:db8:1::1',
  });
  assert.equal(net.family, 'ipv6');
  assert.equal(net.netmask, undefined);
  assert.deepEqual(net.resolvers, []);
  assert.deepEqual(await keysUnder(n.store, `napi/ips/${net.uuid}/`), [`napi/ips/${net.uuid}/20010db8000100000000000000000001`]);
});

test('create validation: phase 1 errors sorted, then missing range, nothing written', async () => {
  await assertUnchanged(n.store, async () => {
    const r1 = await n.call('POST', '/networks', {});
    assert.deepEqual(r1.body, {
      code: 'InvalidParameters',
      message: 'Missing parameters',
      errors: ['name', 'nic_tag', 'vlan_id'].map((field) => ({ field, code: 'MissingParameter', message: 'Missing parameter' })),
    });
    const r2 = await n.call('POST', '/networks', { name: 'x', nic_tag: 'nope', vlan_id: 4095, mtu: '1500', subnet: '10.0.0.0/33' });
    assert.deepEqual(r2.body, {
      code: 'InvalidParameters',
      message: 'Invalid parameters',
      errors: [
        { field: 'mtu', code: 'InvalidParameter', message: 'mtu must be a number between 576 and 9000' },
        { field: 'nic_tag', code: 'InvalidParameter', message: 'nic tag does not exist' },
        { field: 'subnet', code: 'InvalidParameter', message: 'Subnet bits invalid' },
        { field: 'vlan_id', code: 'InvalidParameter', message: 'VLAN ID must be a number between 0 and 4094, and not 1' },
      ],
    });
    const r3 = await n.call('POST', '/networks', { name: 'x', nic_tag: 'external', vlan_id: 1 });
    assert.equal(r3.body.message, 'Missing parameters');
    assert.deepEqual(
      r3.body.errors.map((e: { field: string }) => e.field),
      ['provision_end_ip', 'provision_start_ip', 'subnet'],
    );
    const bad = async (extra: Record<string, unknown>) => (await n.call('POST', '/networks', netParams(2, extra))).body;
    assert.deepEqual((await bad({ gateway: 'fd00::1' })).errors, [
      { field: 'gateway', code: 'InvalidParameter', message: 'gateway should match subnet type (ipv4)' },
    ]);
    assert.deepEqual((await bad({ resolvers: ['fd00::53', '8.8.8.8'] })).errors, [
      { field: 'resolvers', code: 'InvalidParameter', message: 'resolvers should match subnet type (ipv4)', invalid: ['fd00::53'] },
    ]);
    assert.deepEqual((await bad({ provision_start_ip: '198.18.3.10', gateway: '198.18.9.1' })).errors, [
      { field: 'gateway', code: 'InvalidParameter', message: 'gateway cannot be outside subnet' },
      { field: 'provision_start_ip', code: 'InvalidParameter', message: 'provision_start_ip cannot be outside subnet' },
    ]);
    assert.deepEqual((await bad({ provision_end_ip: '198.18.2.255' })).errors, [
      { field: 'provision_end_ip', code: 'InvalidParameter', message: 'provision_end_ip cannot be the broadcast address' },
    ]);
    assert.deepEqual((await bad({ provision_start_ip: '198.18.2.200', provision_end_ip: '198.18.2.100' })).errors, [
      { field: 'provision_end_ip', code: 'InvalidParameter', message: 'provision_start_ip must be before provision_end_ip' },
      { field: 'provision_start_ip', code: 'InvalidParameter', message: 'provision_start_ip must be before provision_end_ip' },
    ]);
    assert.deepEqual((await bad({ mtu: 9000 })).errors, [
      { field: 'mtu', code: 'InvalidParameter', message: 'network mtu must be under nic_tag mtu' },
    ]);
    assert.deepEqual((await bad({ routes: { '10.0.0.0/8': 'fd00::1' } })).errors, [
      {
        field: 'routes',
        code: 'InvalidParameter',
        message: 'address family of route and next-hop address should match',
        invalid: ['10.0.0.0/8'],
      },
    ]);
    assert.deepEqual((await bad({ subnet: '198.18.2.5/24' })).errors, [
      { field: 'subnet', code: 'InvalidParameter', message: 'invalid CIDR format' },
    ]);
    assert.deepEqual((await bad({ owner_uuids: ['nope'] })).errors, [
      { field: 'owner_uuids', code: 'InvalidParameter', message: 'invalid UUID', invalid: ['nope'] },
    ]);
    assert.deepEqual((await bad({ subnet_alloc: true, subnet: undefined })).errors, [
      { field: 'subnet_auto_alloc', code: 'InvalidParameter', message: 'Subnet allocation is not enabled on this instance' },
    ]);
  });
});

test('jumbo tag allows a larger network mtu', async () => {
  const net = await makeNet(n, netParams(3, { nic_tag: 'jumbo', mtu: 9000 }));
  assert.equal(net.mtu, 9000);
});

test('overlap: public subnets may not overlap, RFC1918 ones may', async () => {
  const a = await makeNet(n, netParams(4, { subnet: '198.18.4.0/24' }));
  const b = await makeNet(n, netParams(5, { subnet: '198.18.5.0/24' }));
  await assertUnchanged(n.store, async () => {
    const r = await n.call('POST', '/networks', {
      ...netParams(4),
      subnet: '198.18.4.0/23',
      provision_start_ip: '198.18.4.10',
      provision_end_ip: '198.18.5.200',
    });
    assert.equal(r.status, 422);
    const ids = [a.uuid, b.uuid].sort();
    assert.deepEqual(r.body, {
      code: 'InvalidParameters',
      message: 'Invalid parameters',
      errors: ids.map((id) => ({ field: 'subnet', code: 'UsedBy', type: 'network', id, message: 'subnet overlaps with another network' })),
    });
  });
  const p = { nic_tag: 'external', vlan_id: 0, subnet: '10.77.0.0/24', provision_start_ip: '10.77.0.5', provision_end_ip: '10.77.0.9' };
  await makeNet(n, { ...p, name: 'priv1' });
  await makeNet(n, { ...p, name: 'priv2' });
});

test('names are unique: exact error, and 20 parallel creates leave one winner', async () => {
  await makeNet(n, netParams(6, { name: 'taken' }));
  await assertUnchanged(n.store, async () => {
    const r = await n.call('POST', '/networks', netParams(7, { name: 'taken' }));
    assert.deepEqual(r.body, {
      code: 'InvalidParameters',
      message: 'name is in use by another network',
      errors: [{ field: 'name', code: 'Duplicate', message: 'Already exists' }],
    });
  });
  const rs = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      n.call('POST', '/networks', {
        name: 'racy',
        nic_tag: 'external',
        vlan_id: 0,
        subnet: `10.200.${i}.0/24`,
        provision_start_ip: `10.200.${i}.5`,
        provision_end_ip: `10.200.${i}.9`,
      }),
    ),
  );
  const winners = rs.filter((r) => r.status === 200);
  assert.equal(winners.length, 1);
  for (const r of rs) if (r.status !== 200) assert.equal(r.body.message, 'name is in use by another network');
  const all = (await n.call('GET', '/networks?name=racy')).body;
  assert.equal(all.length, 1);
  // Only the winner's records exist.
  const nets = await keysUnder(n.store, 'napi/networks/');
  const racy = [];
  for (const k of nets) if (JSON.parse((await n.store.get(k))!.value).name === 'racy') racy.push(k);
  assert.deepEqual(racy, [`napi/networks/${winners[0].body.uuid}`]);
});

test('parallel creates of overlapping public subnets: exactly one wins', async () => {
  const rs = await Promise.all(
    Array.from({ length: 10 }, (_, i) => n.call('POST', '/networks', netParams(60, { name: `ovl${i}` }))),
  );
  assert.equal(rs.filter((r) => r.status === 200).length, 1);
  assert.ok(rs.filter((r) => r.status !== 200).every((r) => r.body.errors[0].message === 'subnet overlaps with another network'));
});

test('admin alias resolves by name', async () => {
  const admin = await makeNet(n, netParams(8, { name: 'admin' }));
  const g = await n.call('GET', '/networks/admin');
  assert.equal(g.status, 200);
  assert.equal(g.body.uuid, admin.uuid);
  const u = await n.call('PUT', '/networks/admin', { description: 'the admin net' });
  assert.equal(u.body.description, 'the admin net');
});

test('get: 404s, fields, provisionable_by 403, owner_uuid 404, If-Match', async () => {
  const net = await makeNet(n, netParams(9, { owner_uuids: [OWNER_A] }));
  for (const id of ['7d0d1f0e-0000-4000-8000-000000000000', 'not-a-uuid']) {
    const r = await n.call('GET', `/networks/${id}`);
    assert.equal(r.status, 404);
    assert.deepEqual(r.body, { code: 'ResourceNotFound', message: 'network not found' });
  }
  const f = await n.call('GET', `/networks/${net.uuid}?fields=uuid,subnet`);
  assert.deepEqual(f.body, { uuid: net.uuid, subnet: net.subnet });
  const bf = await n.call('GET', `/networks/${net.uuid}?fields=nope`);
  assert.equal(bf.body.errors[0].message, 'unknown field specified');
  assert.equal((await n.call('GET', `/networks/${net.uuid}?provisionable_by=${OWNER_A}`)).status, 200);
  assert.equal((await n.call('GET', `/networks/${net.uuid}?provisionable_by=${ADMIN_UUID}`)).status, 200);
  const p = await n.call('GET', `/networks/${net.uuid}?provisionable_by=${OWNER_B}`);
  assert.deepEqual([p.status, p.body], [403, { code: 'NotAuthorized', message: 'owner cannot provision on network' }]);
  const o = await n.call('GET', `/networks/${net.uuid}?owner_uuid=${OWNER_B}`);
  assert.deepEqual([o.status, o.body], [404, { code: 'ResourceNotFound', message: 'network not found' }]);
  const g = await n.call('GET', `/networks/${net.uuid}`);
  const ok = await n.call('GET', `/networks/${net.uuid}`, undefined, { 'if-match': String(g.headers.etag) });
  assert.equal(ok.status, 200);
  const stale = await n.call('GET', `/networks/${net.uuid}`, undefined, { 'if-match': '"nope"' });
  assert.equal(stale.status, 412);
  assert.equal(stale.body.code, 'PreconditionFailed');
  assert.equal(stale.body.message, `if-match '"nope"' didn't match etag '${g.headers.etag}'`);
});

test('list: filters, name semantics, comma split, strictness, pagination', async () => {
  const l1 = await makeNet(n, netParams(10, { name: 'lst_a', vlan_id: 10, owner_uuids: [OWNER_A] }));
  const l2 = await makeNet(n, netParams(11, { name: 'lst_b', vlan_id: 11, nic_tag: 'jumbo' }));
  const l3 = await makeNet(n, netParams(12, { name: 'lst_c', vlan_id: 10, owner_uuids: [OWNER_B] }));
  const names = async (q: string) => (await n.call('GET', `/networks?${q}`)).body.map((x: { name: string }) => x.name);
  assert.deepEqual(await names('name=lst_a'), ['lst_a']);
  assert.deepEqual(await names('name=lst_c&name=lst_a'), ['lst_a', 'lst_c']);
  assert.deepEqual(await names('name=lst_a,lst_b'), ['lst_a', 'lst_b']);
  assert.deepEqual(await names('vlan_id=10&name=lst_a,lst_b,lst_c'), ['lst_a', 'lst_c']);
  assert.deepEqual(await names('vlan_id=10,11&name=lst_a,lst_b,lst_c'), ['lst_a', 'lst_b', 'lst_c']);
  assert.deepEqual(await names('nic_tag=jumbo&name=lst_a,lst_b,lst_c'), ['lst_b']);
  assert.deepEqual(await names(`owner_uuid=${OWNER_A}&name=lst_a,lst_b,lst_c`), ['lst_a']);
  assert.deepEqual(await names(`provisionable_by=${OWNER_A}&name=lst_a,lst_b,lst_c`), ['lst_a', 'lst_b']);
  assert.deepEqual(await names(`uuid=${l3.uuid}`), ['lst_c']);
  assert.deepEqual(await names(`uuid=${l2.uuid.slice(0, 6)}*`), [l2.name]);
  assert.ok((await names('family=ipv6')).includes('v6net'));
  assert.ok(!(await names('family=ipv4')).includes('v6net'));
  assert.equal((await names('fabric=true')).length, 0);
  const all = await names('');
  assert.deepEqual(all, [...all].sort());
  assert.deepEqual(await names('limit=2&offset=1'), all.slice(1, 3));
  const bad = async (q: string) => (await n.call('GET', `/networks?${q}`)).body;
  assert.deepEqual((await bad('uuid=ab*cd')).errors, [{ field: 'uuid', code: 'InvalidParameter', message: 'only UUID prefixes are allowed' }]);
  assert.deepEqual((await bad('uuid=a*b*')).errors, [{ field: 'uuid', code: 'InvalidParameter', message: 'need only 1 wildcard' }]);
  assert.equal((await bad('uuid=abcd')).code, 'InvalidParameters');
  assert.deepEqual((await bad('color=red')).errors, [{ field: ['color'], code: 'UnknownParameters', message: 'Unknown parameters: color' }]);
  assert.equal((await bad('family=ipv5')).code, 'InvalidParameters');
  assert.equal((await bad('limit=0')).code, 'InvalidParameters');
  void l1;
});

test('update: fields, rename, immutables, range, gateway, If-Match', async () => {
  const net = await makeNet(n, netParams(13, { name: 'upd1' }));
  const r = await n.call('PUT', `/networks/${net.uuid}`, {
    name: 'upd1_renamed',
    description: 'd',
    owner_uuids: OWNER_A,
    resolvers: ['198.18.13.53'],
    routes: { '10.0.0.0/8': '198.18.13.1' },
    provision_start_ip: '198.18.13.20',
    gateway: '198.18.13.1',
    subnet: '198.18.13.0/24',
    vlan_id: 0,
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.name, 'upd1_renamed');
  assert.deepEqual(r.body.owner_uuids, [OWNER_A]);
  assert.equal(r.body.provision_start_ip, '198.18.13.20');
  assert.equal(r.body.gateway, '198.18.13.1');
  assert.ok(await n.store.get('napi/network_names/global:upd1_renamed'));
  assert.equal(await n.store.get('napi/network_names/global:upd1'), undefined);
  assert.equal(((await ipRecord(net.uuid, 'c6120d01')) as { reserved: boolean }).reserved, true);
  assert.ok(await ipRecord(net.uuid, 'c6120d35'));
  const clear = await n.call('PUT', `/networks/${net.uuid}`, { owner_uuids: [] });
  assert.equal(clear.body.owner_uuids, undefined);

  await assertUnchanged(n.store, async () => {
    const imm = await n.call('PUT', `/networks/${net.uuid}`, { vlan_id: 7, nic_tag: 'jumbo', subnet: '198.18.13.0/25', fabric: true });
    assert.deepEqual(
      imm.body.errors,
      ['fabric', 'nic_tag', 'subnet', 'vlan_id'].map((field) => ({
        field,
        code: 'InvalidParameter',
        message: 'Network updates for this field are not supported',
      })),
    );
    const gw = await n.call('PUT', `/networks/${net.uuid}`, { gateway: '10.0.0.1' });
    assert.deepEqual(gw.body.errors, [{ field: 'gateway', code: 'InvalidParameter', message: 'gateway cannot be outside subnet' }]);
    const order = await n.call('PUT', `/networks/${net.uuid}`, { provision_end_ip: '198.18.13.5' });
    assert.equal(order.body.errors[0].message, 'provision_start_ip must be before provision_end_ip');
    const mtu = await n.call('PUT', `/networks/${net.uuid}`, { mtu: 9000 });
    assert.equal(mtu.body.errors[0].message, 'network mtu must be under nic_tag mtu');
    const dup = await n.call('PUT', `/networks/${net.uuid}`, { name: 'taken' });
    assert.equal(dup.body.message, 'name is in use by another network');
    const stale = await n.call('PUT', `/networks/${net.uuid}`, { description: 'x' }, { 'if-match': '"stale"' });
    assert.equal(stale.status, 412);
    const missing = await n.call('PUT', '/networks/7d0d1f0e-0000-4000-8000-000000000000', { description: 'x' });
    assert.equal(missing.status, 404);
  });
  const g = await n.call('GET', `/networks/${net.uuid}`);
  const ok = await n.call('PUT', `/networks/${net.uuid}`, { description: 'y' }, { 'if-match': String(g.headers.etag) });
  assert.equal(ok.status, 200);
  assert.notEqual(ok.headers.etag, g.headers.etag);
});

test('delete: in use by NICs, in use by a pool, then gone with its IPs and name', async () => {
  const net = await makeNet(n, netParams(14, { name: 'del1', gateway: '198.18.14.1' }));
  await seedNic(n.store, { mac: '90:b8:d0:00:00:02', belongs_to_uuid: OWNER_A, belongs_to_type: 'zone', network_uuid: net.uuid });
  await seedNic(n.store, { mac: '90:b8:d0:00:00:01', belongs_to_uuid: OWNER_A, belongs_to_type: 'zone', network_uuid: net.uuid });
  await assertUnchanged(n.store, async () => {
    const r = await n.call('DELETE', `/networks/${net.uuid}`);
    assert.equal(r.status, 422);
    assert.deepEqual(r.body, {
      code: 'InUse',
      message: 'network must have no NICs provisioned',
      errors: ['90:b8:d0:00:00:01', '90:b8:d0:00:00:02'].map((id) => ({ type: 'nic', id, code: 'UsedBy', message: `In use by nic "${id}"` })),
    });
  });
  await n.store.commit({
    ops: ['01', '02'].flatMap((x) => [
      { type: 'del' as const, key: `napi/nics/90b8d00000${x}` },
      { type: 'del' as const, key: `napi/idx/nic/network/${net.uuid}/90b8d00000${x}` },
    ]),
  });
  const pool = await n.call('POST', '/network_pools', { name: 'p', networks: [net.uuid] });
  const inPool = await n.call('DELETE', `/networks/${net.uuid}`);
  assert.deepEqual(inPool.body, {
    code: 'InUse',
    message: 'Network is in use',
    errors: [{ type: 'network pool', id: pool.body.uuid, code: 'UsedBy', message: `In use by network pool "${pool.body.uuid}"` }],
  });
  assert.equal((await n.call('DELETE', `/network_pools/${pool.body.uuid}`)).status, 204);
  const stale = await n.call('DELETE', `/networks/${net.uuid}`, undefined, { 'if-match': '"stale"' });
  assert.equal(stale.status, 412);
  const d = await n.call('DELETE', `/networks/${net.uuid}`);
  assert.equal(d.status, 204);
  assert.deepEqual(await keysUnder(n.store, `napi/ips/${net.uuid}/`), []);
  assert.equal(await n.store.get(`napi/networks/${net.uuid}`), undefined);
  assert.equal(await n.store.get('napi/network_names/global:del1'), undefined);
  assert.equal((await n.call('DELETE', `/networks/${net.uuid}`)).status, 404);
  // The name is free again.
  await makeNet(n, netParams(14, { name: 'del1' }));
});
