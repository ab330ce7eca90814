/**
 * IPv6 fabric networks (issue #12): a fabric network with a unique local (fd00::/8)
 * subnet, NICs allocated from it (one IPv4 and one IPv6 NIC make a dual-stack instance),
 * and bad input refused NAPI-style with nothing written: public IPv6, a gateway outside
 * the subnet or at the subnet-router anycast address, family mismatches, mixed families
 * on a router, IPv6 NICs on non-fabric networks and pools.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { type TestNapi, startTestNapi } from '../helpers/napi.js';
import { OWNER_A, OWNER_B, assertUnchanged, makeNet, makeTag } from '../helpers/napi-fixtures.js';

let n: TestNapi;
const CN = 'cccccccc-0000-4000-8000-00000000000c';
const nets = (o: string, v: number) => `/fabrics/${o}/vlans/${v}/networks`;
const v6Net = (name: string, hextet: string, extra: Record<string, unknown> = {}) => ({
  name,
  subnet: `fd00:${hextet}::/64`,
  provision_start_ip: `fd00:${hextet}::10`,
  provision_end_ip: `fd00:${hextet}::ffff`,
  gateway: `fd00:${hextet}::1`,
  ...extra,
});
const nic = (owner: string, network: string, extra: Record<string, unknown> = {}) => ({
  owner_uuid: owner, belongs_to_uuid: randomUUID(), belongs_to_type: 'zone', network_uuid: network, cn_uuid: CN, ...extra,
});

before(async () => {
  n = await startTestNapi({ overlayMtu: 1400 });
  await makeTag(n, 'external');
  for (const o of [OWNER_A, OWNER_B]) {
    for (const vlan of [2, 3, 4]) assert.equal((await n.call('POST', `/fabrics/${o}/vlans`, { vlan_id: vlan })).status, 200);
  }
});
after(async () => {
  await n.close();
});

let web6 = '';
let web4 = '';

test('an IPv6 fabric network: family, no netmask, gateway reserved, canonical addresses', async () => {
  const r = await n.call('POST', nets(OWNER_A, 2), v6Net('web6', 'a', { gateway: 'FD00:A:0::1', resolvers: ['fd00:a::53'] }));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  web6 = r.body.uuid;
  assert.equal(r.body.family, 'ipv6');
  assert.equal(r.body.subnet, 'fd00:a::/64');
  assert.equal(r.body.gateway, 'fd00:a::1');
  assert.equal(r.body.netmask, undefined);
  assert.equal(r.body.fabric, true);
  assert.equal(r.body.internet_nat, true);
  const gw = await n.call('GET', `/networks/${web6}/ips/fd00:a::1`);
  assert.equal(gw.body.reserved, true);
  assert.equal((await n.call('GET', `/networks?family=ipv6&fabric=true&owner_uuid=${OWNER_A}`)).body.length, 1);
  // No gateway given, internet_nat on: the first provisionable address, as for IPv4.
  const auto = await n.call('POST', nets(OWNER_A, 3), v6Net('auto6', 'b', { gateway: undefined }));
  assert.equal(auto.body.gateway, 'fd00:b::10');
  const v4 = await n.call('POST', nets(OWNER_A, 2), {
    name: 'web4', subnet: '10.40.0.0/24', provision_start_ip: '10.40.0.10', provision_end_ip: '10.40.0.200', gateway: '10.40.0.1',
  });
  assert.equal(v4.status, 200);
  web4 = v4.body.uuid;
});

test('NICs on an IPv6 fabric network: allocated in order, explicit addresses, subnet instead of netmask', async () => {
  const a = await n.call('POST', '/nics', nic(OWNER_A, web6));
  assert.equal(a.status, 200, JSON.stringify(a.body));
  assert.equal(a.body.ip, 'fd00:a::10');
  assert.equal(a.body.subnet, 'fd00:a::/64');
  assert.equal(a.body.netmask, undefined);
  assert.equal(a.body.gateway, 'fd00:a::1');
  assert.match(a.body.nic_tag, /^sdc_overlay\/\d+$/);
  const b = await n.call('POST', `/networks/${web6}/nics`, nic(OWNER_A, web6, { ip: 'fd00:a:0:0::77' }));
  assert.equal(b.status, 200, JSON.stringify(b.body));
  assert.equal(b.body.ip, 'fd00:a::77');
  const c = await n.call('POST', '/nics', nic(OWNER_A, web6));
  assert.equal(c.body.ip, 'fd00:a::11');
  // By nic_tag with its vnet and vlan, as NAPI finds a network for an IP.
  const d = await n.call('POST', '/nics', { ...nic(OWNER_A, web6, { ip: 'fd00:a::99', nic_tag: a.body.nic_tag, vlan_id: 2 }), network_uuid: undefined });
  assert.equal(d.status, 200, JSON.stringify(d.body));
  assert.equal(d.body.network_uuid, web6);
  // The VL3 mapping is keyed by the address the NIC got.
  const got = await n.call('GET', `/nics/${a.body.mac}`);
  assert.equal(got.body.ip, 'fd00:a::10');
});

test('a dual-stack instance: one NIC on an IPv4 and one on an IPv6 fabric network', async () => {
  const vm = randomUUID();
  const v4 = await n.call('POST', '/nics', { ...nic(OWNER_A, web4), belongs_to_uuid: vm, primary: true });
  const v6 = await n.call('POST', '/nics', { ...nic(OWNER_A, web6), belongs_to_uuid: vm });
  assert.equal(v4.status, 200);
  assert.equal(v6.status, 200);
  const list = await n.call('GET', `/nics?belongs_to_uuid=${vm}`);
  const ips = list.body.map((x: { ip: string }) => x.ip).sort();
  assert.equal(ips.length, 2);
  assert.ok(ips.some((ip: string) => ip.startsWith('10.40.0.')) && ips.some((ip: string) => ip.startsWith('fd00:a::')), JSON.stringify(ips));
});

test('bad IPv6 networks: NAPI errors, nothing written', async () => {
  await assertUnchanged(n.store, async () => {
    const pub = await n.call('POST', nets(OWNER_A, 3), v6Net('pub6', 'c', { subnet: '2001:db8::/64', provision_start_ip: '2001:db8::10', provision_end_ip: '2001:db8::ff', gateway: '2001:db8::1' }));
    assert.deepEqual(pub.body.errors, [{ field: 'subnet', code: 'InvalidParameter', message: 'subnet must be within private ranges' }]);
    const outside = await n.call('POST', nets(OWNER_A, 3), v6Net('out6', 'c', { gateway: 'fd00:d::1' }));
    assert.equal(outside.status, 422);
    assert.deepEqual(outside.body.errors, [{ field: 'gateway', code: 'InvalidParameter', message: 'gateway cannot be outside subnet' }]);
    const anycast = await n.call('POST', nets(OWNER_A, 3), v6Net('any6', 'c', { gateway: 'fd00:c::' }));
    assert.deepEqual(anycast.body.errors, [{ field: 'gateway', code: 'InvalidParameter', message: 'gateway cannot be the subnet-router anycast address' }]);
    const anyStart = await n.call('POST', nets(OWNER_A, 3), v6Net('any6', 'c', { provision_start_ip: 'fd00:c::' }));
    assert.deepEqual(anyStart.body.errors, [
      { field: 'provision_start_ip', code: 'InvalidParameter', message: 'provision_start_ip cannot be the subnet-router anycast address' },
    ]);
    const mixedGw = await n.call('POST', nets(OWNER_A, 3), v6Net('mix6', 'c', { gateway: '10.0.0.1' }));
    assert.deepEqual(mixedGw.body.errors, [{ field: 'gateway', code: 'InvalidParameter', message: 'gateway should match subnet type (ipv6)' }]);
    const mixedRange = await n.call('POST', nets(OWNER_A, 3), v6Net('mix6', 'c', { provision_end_ip: '10.0.0.9' }));
    assert.equal(mixedRange.status, 422);
    assert.ok(mixedRange.body.errors.some((e: { field: string }) => e.field === 'provision_end_ip'), JSON.stringify(mixedRange.body));
    const family = await n.call('POST', nets(OWNER_A, 3), v6Net('fam6', 'c', { family: 'ipv4' }));
    assert.deepEqual(family.body.errors, [{ field: 'family', code: 'InvalidParameter', message: 'family must match subnet type (ipv6)' }]);
    // Same owner (vnet), another VLAN: overlapping IPv6 subnets refused as IPv4 ones are.
    const overlap = await n.call('POST', nets(OWNER_A, 3), v6Net('ovl6', 'a', { subnet: 'fd00:a::/48', provision_start_ip: 'fd00:a::10', provision_end_ip: 'fd00:a::ff', gateway: 'fd00:a::1' }));
    assert.deepEqual(overlap.body.errors, [{ field: 'subnet', code: 'UsedBy', type: 'network', id: web6, message: 'subnet overlaps with another network' }]);
  });
  // Another owner may use the same IPv6 subnet.
  const other = await n.call('POST', nets(OWNER_B, 2), v6Net('web6', 'a'));
  assert.equal(other.status, 200, JSON.stringify(other.body));
});

test('bad IPv6 NICs: NAPI errors, nothing written', async () => {
  const plain6 = await makeNet(n, {
    name: 'plain6', nic_tag: 'external', vlan_id: 0, subnet: 'fd99::/64', provision_start_ip: 'fd99::10', provision_end_ip: 'fd99::ff',
  });
  await assertUnchanged(n.store, async () => {
    const cases: Array<[Record<string, unknown>, unknown[]]> = [
      [nic(OWNER_A, web4, { ip: 'fd00:a::50' }), [{ field: 'ip', code: 'InvalidParameter', message: 'Specified address must be IPv4' }]],
      [nic(OWNER_A, plain6.uuid), [{ field: 'network_uuid', code: 'InvalidParameter', message: 'The network UUID is valid, but its address family must be IPv4' }]],
      [nic(OWNER_A, web6, { ip: '10.40.0.77' }), [{ field: 'ip', code: 'InvalidParameter', message: `IP address 10.40.0.77 is outside the subnet for given network ${web6}` }]],
      [nic(OWNER_A, web6, { ip: 'fd00:b::77' }), [{ field: 'ip', code: 'InvalidParameter', message: `IP address fd00:b::77 is outside the subnet for given network ${web6}` }]],
      [nic(OWNER_A, web6, { ip: 'fd00:a::' }), [{ field: 'ip', code: 'InvalidParameter', message: `IP address fd00:a:: is the subnet-router anycast address of network ${web6}` }]],
      [nic(OWNER_A, web6, { ip: 'fd00:a::77' }), [{ field: 'ip', code: 'UsedBy', type: 'zone', id: '', message: '' }]],
      [nic(OWNER_B, web6), [{ field: 'owner_uuid', code: 'InvalidParameter', message: 'network owner_uuids do not match' }]],
      [{ ...nic(OWNER_A, web6, { ip: 'fd99::50', nic_tag: 'external', vlan_id: 0 }), network_uuid: undefined }, [{ field: 'ip', code: 'InvalidParameter', message: 'Specified address must be IPv4' }]],
    ];
    for (const [body, errors] of cases) {
      const r = await n.call('POST', '/nics', body);
      assert.equal(r.status, 422, JSON.stringify(body));
      if ((errors[0] as { code: string }).code === 'UsedBy') assert.equal(r.body.errors[0].code, 'UsedBy', JSON.stringify(r.body));
      else assert.deepEqual(r.body.errors, errors, JSON.stringify(body));
    }
  });
});

test('a router may not mix IPv4 and IPv6 networks; two IPv6 networks of one owner may be connected', async () => {
  const other6 = await n.call('POST', nets(OWNER_A, 4), v6Net('db6', 'e'));
  assert.equal(other6.status, 200);
  await assertUnchanged(n.store, async () => {
    const mixed = await n.call('POST', `/fabrics/${OWNER_A}/routers`, { name: 'mixed', networks: [web6, web4] });
    assert.equal(mixed.status, 422);
    assert.deepEqual(mixed.body.errors, [{ field: 'networks', code: 'InvalidParameter', message: 'address family of all networks on a router must match' }]);
  });
  const ok = await n.call('POST', `/fabrics/${OWNER_A}/routers`, { name: 'six', networks: [web6, other6.body.uuid] });
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
});
