import assert from 'node:assert/strict';
import { test } from 'node:test';
import ipaddr from 'ipaddr.js';
import { numberToQuad, quadToNumber } from '../../src/net/addr.js';
import { ipSortKey } from '../../src/napi/keys.js';
import {
  bigIntToIp,
  familyOf,
  broadcastAddress,
  compareIps,
  ipAdd,
  ipRange,
  ipToBigInt,
  isPrivateSubnet,
  isRfc1918,
  netmaskOf,
  parseCidr,
  rangeSize,
  subnetContains,
  subnetOf,
  subnetsOverlap,
  subnetText,
} from '../../src/napi/ipmath.js';
import { matchesUuid, vFields, vIps, vRoutes, vUuidPrefix, vUuids } from '../../src/napi/models/params.js';
import { Invalid } from '../../src/rest/validate.js';

test('parseCidr accepts network addresses and canonicalises', () => {
  const r = parseCidr('10.0.0.0/8');
  assert.ok(r.ok);
  assert.equal(subnetText(r.subnet), '10.0.0.0/8');
  const v6 = parseCidr('FD00:0:0::/64');
  assert.ok(v6.ok);
  assert.equal(subnetText(v6.subnet), 'fd00::/64');
  assert.equal(v6.subnet.family, 'ipv6');
});

test('parseCidr rejects with NAPI messages', () => {
  const msg = (t: unknown) => {
    const r = parseCidr(t);
    return r.ok ? 'ok' : r.message;
  };
  assert.equal(msg('10.0.0.0'), 'Subnet must be in CIDR form');
  assert.equal(msg('10.0.0.300/24'), 'Subnet IP invalid');
  assert.equal(msg('10.0.0.0/7'), 'Subnet bits invalid');
  assert.equal(msg('10.0.0.0/33'), 'Subnet bits invalid');
  assert.equal(msg('10.0.0.0/x'), 'Subnet bits invalid');
  assert.equal(msg('fd00::/129'), 'Subnet bits invalid');
  assert.equal(msg('10.0.0.1/24'), 'invalid CIDR format');
  assert.equal(msg(42), 'must be a string');
});

test('containment, broadcast and netmask', () => {
  const s = subnetOf('192.168.4.0/22');
  assert.equal(broadcastAddress(s), '192.168.7.255');
  assert.equal(netmaskOf(s), '255.255.252.0');
  assert.ok(subnetContains(s, '192.168.5.9'));
  assert.ok(!subnetContains(s, '192.168.8.0'));
  assert.ok(!subnetContains(s, 'fd00::1'));
  const v6 = subnetOf('2001:db8::/126');
  assert.equal(broadcastAddress(v6), undefined);
  assert.equal(netmaskOf(v6), undefined);
  assert.ok(subnetContains(v6, '2001:db8::3'));
  assert.ok(!subnetContains(v6, '2001:db8::4'));
});

test('overlap is symmetric and family-aware', () => {
  const a = subnetOf('198.18.0.0/15');
  const b = subnetOf('198.19.4.0/24');
  const c = subnetOf('198.20.0.0/24');
  assert.ok(subnetsOverlap(a, b));
  assert.ok(subnetsOverlap(b, a));
  assert.ok(!subnetsOverlap(a, c));
  assert.ok(!subnetsOverlap(a, subnetOf('fd00::/8')));
});

test('private ranges', () => {
  assert.ok(isRfc1918(subnetOf('10.1.0.0/16')));
  assert.ok(isRfc1918(subnetOf('172.31.255.0/24')));
  assert.ok(!isRfc1918(subnetOf('172.32.0.0/24')));
  assert.ok(!isRfc1918(subnetOf('8.0.0.0/8')));
  assert.ok(!isRfc1918(subnetOf('192.168.0.0/15')));
  assert.ok(isPrivateSubnet(subnetOf('fd12::/64')));
  assert.ok(!isPrivateSubnet(subnetOf('fc00::/64')));
  assert.ok(!isPrivateSubnet(subnetOf('8.8.8.0/24')));
});

test('arithmetic, ordering and ranges', () => {
  assert.equal(ipAdd('10.0.0.255', 1), '10.0.1.0');
  assert.equal(ipAdd('0.0.0.0', -1), undefined);
  assert.equal(ipAdd('255.255.255.255', 1), undefined);
  assert.equal(ipAdd('fd00::ffff', 1), 'fd00::1:0');
  assert.equal(compareIps('10.0.0.2', '10.0.0.10'), -1);
  assert.equal(compareIps('10.0.0.2', '10.0.0.2'), 0);
  assert.equal(compareIps('fd00::', '10.0.0.2'), 1);
  assert.deepEqual([...ipRange('10.0.0.254', '10.0.1.1')], ['10.0.0.254', '10.0.0.255', '10.0.1.0', '10.0.1.1']);
  assert.equal(rangeSize('fd00::', 'fd00::ffff'), 65536n);
  assert.equal(rangeSize('10.0.0.5', '10.0.0.1'), 0n);
  assert.equal(bigIntToIp(ipToBigInt('2001:db8::1'), 'ipv6'), '2001:db8::1');
});

test('uuid prefix filter', () => {
  const ok = vUuidPrefix('uuid', 'ab12*', {});
  assert.deepEqual(ok, { prefix: 'ab12' });
  assert.ok(matchesUuid('ab12cdef-0000-4000-8000-000000000000', ok as { prefix: string }));
  const bad = (v: string) => (vUuidPrefix('uuid', v, {}) as Invalid).errors[0].message;
  assert.equal(bad('a*b*'), 'need only 1 wildcard');
  assert.equal(bad('a*b'), 'only UUID prefixes are allowed');
  assert.equal(bad('ab12'), 'invalid UUID');
});

test('field validators: uuids, ips, routes, fields', () => {
  const u1 = 'bbbbbbbb-0000-4000-8000-000000000000';
  const u0 = 'aaaaaaaa-0000-4000-8000-000000000000';
  assert.deepEqual(vUuids('o', `${u1},${u0},${u1}`, {}), [u0, u1]);
  assert.deepEqual((vUuids('o', ['zz', u0, 'yy'], {}) as Invalid).errors[0], {
    field: 'o',
    code: 'InvalidParameter',
    message: 'invalid UUID',
    invalid: ['yy', 'zz'],
  });
  assert.deepEqual(vIps('r', '8.8.8.8, 1.1.1.1', {}), ['8.8.8.8', '1.1.1.1']);
  assert.equal((vIps('r', ['8.8.8.8', 'nope'], {}) as Invalid).errors[0].message, 'invalid IP');
  assert.deepEqual(vRoutes(true)('routes', { '10.1.0.0/16': '10.0.0.1', '8.8.8.8': 'linklocal' }, {}), {
    '10.1.0.0/16': '10.0.0.1',
    '8.8.8.8': 'linklocal',
  });
  const bad = vRoutes(false)('routes', { '10.1.0.0/16': 'linklocal', x: '1.2.3.4' }, {}) as Invalid;
  assert.equal(bad.errors[0].message, 'invalid routes');
  assert.deepEqual(bad.errors[0].invalid, ['linklocal', 'x']);
  const fields = vFields(['a', 'b', 'c']);
  assert.deepEqual(fields('fields', 'a,b', {}), ['a', 'b']);
  assert.equal((fields('fields', ['d'], {}) as Invalid).errors[0].message, 'unknown field specified');
  assert.equal((fields('fields', [], {}) as Invalid).errors[0].message, 'must not be an empty array');
  assert.equal((fields('fields', ['a', 'b', 'c', 'a'], {}) as Invalid).errors[0].message, 'can only specify a maximum of 3 fields');
});

test('the dotted-quad shortcut agrees with ipaddr.js and leaves every other form to it', () => {
  const ipaddrToBigInt = (ip: string): bigint => ipaddr.parse(ip).toByteArray().reduce((n, b) => (n << 8n) | BigInt(b), 0n);
  const ipaddrSortKey = (ip: string): string => ipaddr.parse(ip).toByteArray().map((b) => b.toString(16).padStart(2, '0')).join('');
  const samples = ['0.0.0.0', '255.255.255.255', '10.0.0.1', '192.168.100.9', '1.2.3.4', '128.0.0.0', '9.99.199.249'];
  for (let i = 0; i < 500; i++) samples.push([0, 0, 0, 0].map(() => Math.floor(Math.random() * 256)).join('.'));
  for (const ip of samples) {
    assert.equal(quadToNumber(ip), Number(ipaddrToBigInt(ip)), ip);
    assert.equal(ipToBigInt(ip), ipaddrToBigInt(ip), ip);
    assert.equal(ipSortKey(ip), ipaddrSortKey(ip), ip);
    assert.equal(bigIntToIp(ipToBigInt(ip), 'ipv4'), ip);
    assert.equal(numberToQuad(quadToNumber(ip)!), ip);
    assert.equal(familyOf(ip), 'ipv4');
  }
  // Not canonical quads: ipaddr.js decides (a leading zero is octal to it, 10.1 is shorthand).
  const others = ['010.0.0.1', '1.2.3.04', '0.0.0.00', '10.1', '1.2.3.', '.1.2.3', '1..2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.256', '1.2.3.1000'];
  for (const other of [...others, '1.2.3.4 ', '0x0a.0.0.1', '::ffff:10.0.0.1', 'fd00::1', '']) {
    assert.equal(quadToNumber(other), undefined, other);
  }
  assert.equal(ipToBigInt('010.0.0.1'), ipaddrToBigInt('010.0.0.1'));
  assert.equal(ipSortKey('fd00::1'), ipaddrSortKey('fd00::1'));
  assert.equal(familyOf('fd00::1'), 'ipv6');
  // Outside IPv4's range the long path answers as before.
  assert.equal(bigIntToIp(0x1_0000_0001n, 'ipv4'), '0.0.0.1');
});
