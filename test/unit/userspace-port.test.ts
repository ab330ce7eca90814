/**
 * The userspace backend's NIC bridges: their names (from the MAC alone, within Linux's 15
 * characters, none of them another device of ours) and their node-wide tables (a
 * conntrack zone of their own, nothing to the node through them).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hostVethName, nicBridgeName, nicTapName, parseDeviceName } from '../../src/agent/plumbing/names.js';
import { NIC_BRIDGE_TABLE, renderNicBridgeTables } from '../../src/agent/userspace/port.js';
import { edgeZones } from '../../src/edge/plan.js';
import { PORT_BRIDGE_ZONE } from '../../src/net/ports.js';

test('a NIC\'s TAP, bridge and host veth are named from its MAC, 14 characters, distinct', () => {
  const mac = '90:B8:D0:12:34:56';
  assert.deepEqual([nicTapName(mac), nicBridgeName(mac), hostVethName(mac)], ['rt90b8d0123456', 'rn90b8d0123456', 'rv90b8d0123456']);
  // The kernel backend adopts and sweeps devices by name: it must not take these for its own.
  assert.equal(parseDeviceName(nicTapName(mac)), undefined);
  assert.equal(parseDeviceName(nicBridgeName(mac)), undefined);
});

test('NIC bridge tables: their traffic in zone 65535 before conntrack, no ARP or IP into the node through them', () => {
  const text = renderNicBridgeTables();
  assert.equal(PORT_BRIDGE_ZONE, 65535);
  assert.match(text, /chain prerouting \{\n\t\ttype filter hook prerouting priority raw; policy accept;\n\t\tiifname "rn\*" ct zone set 65535\n/);
  const input = '\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tiifname "rn*" drop\n\t}\n';
  assert.ok(text.includes(`table inet ${NIC_BRIDGE_TABLE} {\n\tchain prerouting {`) && text.split(input).length === 3, text);
  assert.ok(text.includes(`table arp ${NIC_BRIDGE_TABLE} {\n${input}}`), text);
  // One atomic replacement of each table (re-applied at every start).
  for (const family of ['inet', 'arp']) assert.ok(text.includes(`table ${family} ${NIC_BRIDGE_TABLE}\ndelete table ${family} ${NIC_BRIDGE_TABLE}\n`));
  // The edge never hands out that zone, whatever the vnets.
  const vnets = Array.from({ length: 70_000 }, (_, i) => i);
  assert.ok(![...edgeZones(vnets.slice(0, 65534)).values()].includes(PORT_BRIDGE_ZONE));
});
