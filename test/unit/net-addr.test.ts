import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  canonicalIp,
  canonicalMac,
  ipInSubnet,
  isUuid,
  macHex,
  macToBytes,
  tryCanonicalIp,
  tryCanonicalMac,
  uuidToBytes,
} from '../../src/net/addr.js';

describe('net/addr: one parser per address kind', () => {
  it('IPs: NAPI-accepted forms to canonical text, anything else undefined (try) or TypeError', () => {
    assert.equal(tryCanonicalIp('10.0.0.1'), '10.0.0.1');
    assert.equal(tryCanonicalIp('::ffff:10.0.0.1'), '10.0.0.1');
    assert.equal(tryCanonicalIp('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
    assert.equal(tryCanonicalIp(167772161), '10.0.0.1');
    assert.equal(tryCanonicalIp('167772161'), '10.0.0.1');
    for (const bad of ['10.1', '0x0a.0.0.1', '10.0.0.256', ' 10.0.0.1', '', null, {}, 2 ** 32]) {
      assert.equal(tryCanonicalIp(bad), undefined, JSON.stringify(bad));
    }
    assert.equal(canonicalIp('fd00:0::1'), 'fd00::1');
    assert.throws(() => canonicalIp('10.1'), { name: 'TypeError', message: 'not an IP address: "10.1"' });
  });

  it('MACs: twelve hex digits, six 1-2 digit groups, or a 48-bit number', () => {
    assert.equal(tryCanonicalMac('90B8D0123456'), '90:b8:d0:12:34:56');
    assert.equal(tryCanonicalMac('90-B8-D0-12-34-56'), '90:b8:d0:12:34:56');
    assert.equal(tryCanonicalMac('2:0:0:0:0:a'), '02:00:00:00:00:0a');
    assert.equal(tryCanonicalMac(0x0200000000aa), '02:00:00:00:00:aa');
    for (const bad of ['90:b8:d0:12:34', '90:b8:d0:12:34:567', 'zz:00:00:00:00:00', '', 2 ** 48, undefined]) {
      assert.equal(tryCanonicalMac(bad), undefined, JSON.stringify(bad));
    }
    assert.equal(canonicalMac('AA:BB:CC:DD:EE:FF'), 'aa:bb:cc:dd:ee:ff');
    assert.equal(macHex('aa:bb:cc:dd:ee:ff'), 'aabbccddeeff');
    assert.deepEqual([...macToBytes('02:00:5E:10:00:01')], [2, 0, 0x5e, 0x10, 0, 1]);
    assert.deepEqual([...macToBytes('02:00:5e:10:00:01')], [2, 0, 0x5e, 0x10, 0, 1]);
    assert.throws(() => canonicalMac('nope'), { name: 'TypeError', message: 'not a MAC address: "nope"' });
    assert.throws(() => macToBytes('02:00:5e:10:00'), TypeError);
  });

  it('UUIDs: isUuid wants canonical lower case; uuidToBytes takes any case', () => {
    const id = '0190a6f4-1c2b-7def-8abc-0123456789ab';
    assert.equal(isUuid(id), true);
    assert.equal(isUuid(id.toUpperCase()), false);
    assert.equal(isUuid(42), false);
    assert.deepEqual(uuidToBytes(id.toUpperCase()), uuidToBytes(id));
    assert.throws(() => uuidToBytes('0190a6f4-1c2b-7def-8abc-0123456789a'), TypeError);
  });

  it('ipInSubnet: inside a CIDR of its own family; anything unparseable is outside', () => {
    assert.equal(ipInSubnet('10.0.1.7', '10.0.0.0/16'), true);
    assert.equal(ipInSubnet('10.1.0.1', '10.0.0.0/16'), false);
    assert.equal(ipInSubnet('fd00::5', 'fd00::/64'), true);
    assert.equal(ipInSubnet('fd00:0:0:1::5', 'fd00::/64'), false);
    assert.equal(ipInSubnet('10.0.0.1', 'fd00::/64'), false, 'another family');
    assert.equal(ipInSubnet('::ffff:10.0.0.1', '10.0.0.0/8'), false, 'a mapped address is IPv6 here');
    assert.equal(ipInSubnet('nonsense', '10.0.0.0/8'), false);
    assert.equal(ipInSubnet('10.0.0.1', '10.0.0.0/99'), false);
  });
});
