import assert from 'node:assert/strict';
import { test } from 'node:test';
import { announceFrame, garpFrame, unsolicitedNaFrame } from '../../src/agent/plumbing/garp.js';
import { renderPortFilter } from '../../src/agent/plumbing/portfilter.js';
import { bridgeName, hostVethName, parseDeviceName, vxlanName } from '../../src/agent/plumbing/names.js';
import { canonicalMac } from '../../src/net/addr.js';
import {
  type NicPlumbing, PlumbingError, hostSideCommands, hostVeth, instanceCommands, instanceConfig, plumbingFor, stagedHostSideCommands, stagedHostVeth,
  stagedPlumbingFor, nicBridge, tapAddress,
} from '../../src/agent/plumbing/nic.js';
import { vnetCommands, vnetLinks } from '../../src/agent/kernel/vnet.js';
import type { ApiNic } from '../../src/agent/napi-client.js';
import { vnetFromNicTag } from '../../src/agent/napi-client.js';

const NIC: ApiNic = {
  mac: '90:B8:D0:12:34:56',
  owner_uuid: 'aaaaaaaa-0000-4000-8000-00000000000a',
  belongs_to_uuid: 'bbbbbbbb-0000-4000-8000-00000000000b',
  belongs_to_type: 'zone',
  cn_uuid: 'cccccccc-0000-4000-8000-00000000000c',
  ip: '10.77.0.20',
  netmask: '255.255.255.0',
  gateway: '10.77.0.1',
  mtu: 1400,
  nic_tag: 'sdc_overlay/6568847',
  vlan_id: 5,
  fabric: true,
  routes: { '10.88.0.0/16': '10.77.0.254', '192.0.2.7': 'macs[90:b8:d0:12:34:56]' },
};

test('device names fit in 15 characters and parse back; foreign names are not ours', () => {
  assert.equal(vxlanName(16777215), 'rvx16777215');
  assert.equal(bridgeName(0), 'rbr0');
  assert.equal(hostVethName('90:B8:D0:12:34:56'), 'rv90b8d0123456');
  for (const n of [vxlanName(16777215), bridgeName(16777215), hostVethName(NIC.mac)]) assert.ok(n.length <= 15);
  assert.deepEqual(parseDeviceName('rvx42'), { kind: 'vxlan', vnet: 42 });
  assert.deepEqual(parseDeviceName('rbr42'), { kind: 'bridge', vnet: 42 });
  assert.deepEqual(parseDeviceName('rv90b8d0123456'), { kind: 'veth', mac: '90:b8:d0:12:34:56' });
  for (const foreign of ['eth0', 'rvx042', 'rvx99999999', 'rv90b8d012345', 'rbrx', 'vxlan0']) assert.equal(parseDeviceName(foreign), undefined, foreign);
  assert.throws(() => vxlanName(1 << 24), RangeError);
  assert.throws(() => canonicalMac('90:b8:d0:12:34'), TypeError);
  assert.equal(vnetFromNicTag('sdc_overlay/6568847'), 6568847);
  assert.equal(vnetFromNicTag('external'), undefined);
});

test('plumbingFor turns a NAPI NIC into address, prefix, MTU, gateway and routes', () => {
  const p = plumbingFor(NIC, '/run/netns/inst1');
  assert.deepEqual(p, {
    mac: '90:b8:d0:12:34:56',
    ip: '10.77.0.20',
    prefix: 24,
    mtu: 1400,
    gateway: '10.77.0.1',
    routes: [{ dst: '10.88.0.0/16', via: '10.77.0.254' }, { dst: '192.0.2.7/32' }],
    vnet: 6568847,
    vlan: 5,
    allowMacSpoofing: false,
    allowIpSpoofing: false,
    internetNat: true,
    netns: '/run/netns/inst1',
    ifname: 'eth0',
  });
  assert.deepEqual(vnetCommands({ vnet: 6568847, underlayIp: '198.18.0.1', underlayDev: 'ul0', mtu: 1450 }), [
    'link add rvx6568847 mtu 1450 type vxlan id 6568847 dstport 4789 local 198.18.0.1 dev ul0 nolearning proxy l2miss l3miss',
    'link add name rbr6568847 mtu 1450 address 02:72:67:64:3b:8f group 0x72643b8f type bridge',
    'link set rvx6568847 master rbr6568847',
    'link set rvx6568847 up',
    'link set rbr6568847 up',
  ]);
  assert.deepEqual(hostSideCommands(p), [
    'link add rv90b8d0123456 mtu 1400 type veth peer name eth0 mtu 1400 address 90:b8:d0:12:34:56 netns /run/netns/inst1',
    'link set rv90b8d0123456 master rbr6568847',
    'link set rv90b8d0123456 up',
  ]);
  assert.deepEqual(instanceCommands(p), [
    'link set lo up',
    'addr add 10.77.0.20/24 dev eth0',
    'link set eth0 up',
    'route replace 10.88.0.0/16 via 10.77.0.254 dev eth0',
    'route replace 192.0.2.7/32 dev eth0 scope link',
    'route replace default via 10.77.0.1 dev eth0',
  ]);
  // The same layout as native requests (src/dataplane/links.ts).
  assert.deepEqual(vnetLinks({ vnet: 6568847, underlayIp: '198.18.0.1', underlayDev: 'ul0', mtu: 1450 }), [
    { kind: 'bridge', name: 'rbr6568847', mtu: 1450, mac: '02:72:67:64:3b:8f', up: true, group: 0x72643b8f },
    {
      kind: 'vxlan', name: 'rvx6568847', mtu: 1450, master: 'rbr6568847', up: true, group: 0x72643b8f,
      vxlan: { vni: 6568847, port: 4789, local: '198.18.0.1', dev: 'ul0', learning: false, proxy: true, l2miss: true, l3miss: true },
    },
  ]);
  assert.deepEqual(hostVeth(p), {
    kind: 'veth', name: 'rv90b8d0123456', mtu: 1400, group: 0x72643b8f, peer: { name: 'eth0', mtu: 1400, mac: '90:b8:d0:12:34:56', netns: '/run/netns/inst1' },
  });
  assert.deepEqual(instanceConfig(p), {
    ifname: 'eth0',
    address: { ip: '10.77.0.20', prefix: 24 },
    routes: [{ dst: '10.88.0.0/16', via: '10.77.0.254' }, { dst: '192.0.2.7/32' }],
    gateway: '10.77.0.1',
  });
});

test('plumbingFor refuses what it cannot plumb, with the reason', () => {
  assert.throws(() => plumbingFor({ ...NIC, fabric: undefined }, '/run/netns/x'), /not on a fabric network/);
  assert.throws(() => plumbingFor({ ...NIC, nic_tag: 'sdc_overlay' }, '/run/netns/x'), /no vnet/);
  assert.throws(() => plumbingFor({ ...NIC, ip: undefined }, '/run/netns/x'), /no IP address/);
  assert.throws(() => plumbingFor({ ...NIC, netmask: '255.0.255.0' }, '/run/netns/x'), /not contiguous/);
  assert.throws(() => plumbingFor(NIC, 'inst1'), /netns must be \/run\/netns\/NAME/);
  assert.throws(() => plumbingFor(NIC, '/run/netns/x', 'eth0; rm -rf /'), PlumbingError);
  assert.throws(() => plumbingFor({ ...NIC, routes: { '10.0.0.0/8': 'somewhere' } }, '/run/netns/x'), /unusable next hop/);
  // A NIC that is its own gateway gets no default route.
  assert.equal(plumbingFor({ ...NIC, gateway: NIC.ip }, '/run/netns/x').gateway, undefined);
});

test('an IPv6 NIC: prefix from its subnet, nodad, routes of its own family only', () => {
  const v6: ApiNic = {
    ...NIC, ip: 'fd00:61::10', netmask: undefined, subnet: 'fd00:61::/64', gateway: 'fd00:61::1', routes: { 'fd00:99::/48': 'fd00:61::fe', 'fd00:98::7': 'linklocal' },
  };
  const p = plumbingFor(v6, '/run/netns/inst6');
  assert.equal(p.prefix, 64);
  assert.deepEqual(p.routes, [{ dst: 'fd00:99::/48', via: 'fd00:61::fe' }, { dst: 'fd00:98::7/128' }]);
  assert.deepEqual(instanceCommands(p), [
    'link set lo up',
    'addr add fd00:61::10/64 dev eth0 nodad',
    'link set eth0 up',
    'route replace fd00:99::/48 via fd00:61::fe dev eth0',
    'route replace fd00:98::7/128 dev eth0 scope link',
    'route replace default via fd00:61::1 dev eth0',
  ]);
  assert.throws(() => plumbingFor({ ...v6, subnet: undefined }, '/run/netns/x'), /no IPv6 subnet/);
  assert.throws(() => plumbingFor({ ...v6, gateway: '10.0.0.1' }, '/run/netns/x'), /gateway is not an IPv6 address/);
  assert.throws(() => plumbingFor({ ...v6, routes: { 'fd00:99::/48': '10.0.0.9' } }, '/run/netns/x'), /unusable next hop/);
  assert.throws(() => plumbingFor({ ...v6, routes: { '10.0.0.0/8': 'fd00:61::fe' } }, '/run/netns/x'), /route destination is not an IPv6 prefix/);
  assert.throws(() => plumbingFor({ ...v6, ip: 'fd00:61::10%eth0' }, '/run/netns/x'), /no IP address|not an IPv6 address/);
});

test('port filter: an IPv6 NIC sends IPv6 from its address, link-local or :: only, and no IPv4', () => {
  const text = renderPortFilter([{ mac: '90:b8:d0:00:00:06', ip: 'fd00:61::10', vnet: 7, vlan: 0 }]);
  assert.match(text, /iifname "rv90b8d0000006" ether type ip6 ip6 saddr != \{ fd00:61::10, fe80::\/10, :: \} drop/);
  assert.match(text, /iifname "rv90b8d0000006" ether type ip ip saddr != 0\.0\.0\.0 drop/);
  assert.match(text, /iifname "rv90b8d0000006" arp saddr ip != 0\.0\.0\.0 drop/);
  assert.throws(() => renderPortFilter([{ mac: '90:b8:d0:00:00:06', ip: 'fd00:61::10 }, ::/0', vnet: 7, vlan: 0 }]), /not an IP address/);
});

test('gratuitous ARP frame: broadcast ARP reply, sender = target = the IP, at the MAC', () => {
  const f = garpFrame('10.77.0.20', '90:b8:d0:12:34:56');
  assert.equal(
    f.toString('hex'),
    'ffffffffffff' + '90b8d0123456' + '0806' + '0001' + '0800' + '06' + '04' + '0002' + '90b8d0123456' + '0a4d0014' + 'ffffffffffff' + '0a4d0014',
  );
  assert.throws(() => garpFrame('fe80::1', '90:b8:d0:12:34:56'), /IPv4/);
});

test('unsolicited neighbour advertisement: to all nodes, hop limit 255, Override, target = the IP at the MAC', () => {
  // This frame, sent into a namespace, moved a kernel's neighbour entry for fd00:61::5 to the new MAC.
  const f = unsolicitedNaFrame('fd00:61::5', '02:00:00:00:00:99');
  assert.equal(
    f.toString('hex'),
    '333300000001' + '020000000099' + '86dd' + '60000000' + '0020' + '3a' + 'ff' + 'fd000061000000000000000000000005' + 'ff020000000000000000000000000001' +
      '88' + '00' + '5939' + '20000000' + 'fd000061000000000000000000000005' + '0201' + '020000000099',
  );
  assert.deepEqual(announceFrame('fd00:61::5', '02:00:00:00:00:99'), f);
  assert.deepEqual(announceFrame('10.77.0.20', '90:b8:d0:12:34:56'), garpFrame('10.77.0.20', '90:b8:d0:12:34:56'));
  assert.throws(() => unsolicitedNaFrame('10.0.0.1', '02:00:00:00:00:99'), /IPv6/);
});

test('port filter: anti-spoofing per port unless allowed, local ports of other VLANs of the vnet cut off', () => {
  const text = renderPortFilter([
    { mac: '90:b8:d0:00:00:02', ip: '10.0.0.2', vnet: 7, vlan: 6 },
    { mac: '90:b8:d0:00:00:01', ip: '10.0.0.1', vnet: 7, vlan: 5 },
    { mac: '90:b8:d0:00:00:03', ip: '10.0.0.3', vnet: 7, vlan: 5, allowIpSpoofing: true },
    { mac: '90:b8:d0:00:00:04', ip: '10.9.0.4', vnet: 8, vlan: 6, allowMacSpoofing: true, allowIpSpoofing: true },
  ]);
  assert.equal(
    text,
    [
      'table bridge rhumb_ports',
      'delete table bridge rhumb_ports',
      'table bridge rhumb_ports {',
      '  chain forward {',
      '    type filter hook forward priority 0; policy accept;',
      '    iifname "rv90b8d0000001" ether saddr != 90:b8:d0:00:00:01 drop',
      '    iifname "rv90b8d0000001" arp saddr ether != 90:b8:d0:00:00:01 drop',
      '    iifname "rv90b8d0000001" arp saddr ip != { 10.0.0.1, 0.0.0.0 } drop',
      '    iifname "rv90b8d0000001" ether type ip ip saddr != { 10.0.0.1, 0.0.0.0 } drop',
      '    iifname "rv90b8d0000001" ether type ip6 ip6 saddr != { fe80::/10, :: } drop',
      '    iifname "rv90b8d0000001" oifname { "rv90b8d0000002" } drop',
      '    iifname "rv90b8d0000003" ether saddr != 90:b8:d0:00:00:03 drop',
      '    iifname "rv90b8d0000003" arp saddr ether != 90:b8:d0:00:00:03 drop',
      '    iifname "rv90b8d0000003" oifname { "rv90b8d0000002" } drop',
      '    iifname "rv90b8d0000002" ether saddr != 90:b8:d0:00:00:02 drop',
      '    iifname "rv90b8d0000002" arp saddr ether != 90:b8:d0:00:00:02 drop',
      '    iifname "rv90b8d0000002" arp saddr ip != { 10.0.0.2, 0.0.0.0 } drop',
      '    iifname "rv90b8d0000002" ether type ip ip saddr != { 10.0.0.2, 0.0.0.0 } drop',
      '    iifname "rv90b8d0000002" ether type ip6 ip6 saddr != { fe80::/10, :: } drop',
      '    iifname "rv90b8d0000002" oifname { "rv90b8d0000001", "rv90b8d0000003" } drop',
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  // No NICs: an empty table (replacing whatever was there).
  assert.match(renderPortFilter([]), /policy accept;\n  \}\n\}/);
});

// ---- issue 17 item 1: nothing but plain values reaches root's `ip -batch` / `nft -f` text ----

/** The exploit from the issue: a newline in netns adds an `ip -batch` line that runs a shell. */
const EXPLOIT_NETNS = '/run/netns/x\nnetns exec y /bin/sh -c "id > /tmp/f"';

test('netns: only /run/netns/NAME, /var/run/netns/NAME and /proc/PID/ns/net, with a plain NAME', () => {
  for (const ok of ['/run/netns/x', '/var/run/netns/cni-0f4c1b2e-9d3a-4b7e-8c21-5a6b7c8d9e0f', '/run/netns/ovk1a2b3c-a1', '/run/netns/A_b.c-1', '/proc/1/ns/net', '/proc/4194304/ns/net']) {
    assert.equal(plumbingFor(NIC, ok).netns, ok, ok);
  }
  const refused = [
    EXPLOIT_NETNS,
    '/run/netns/x\n',
    '/run/netns/x y',
    '/run/netns/x\tnetns',
    '/run/netns/"x"',
    '/run/netns/x#',
    '/etc/passwd',
    '/tmp/ns',
    '/',
    '/run/netns/',
    '/run/netns/.',
    '/run/netns/..',
    '/run/netns/../../etc/shadow',
    '/run/netns/a/b',
    '/run/netns/.hidden',
    '/run/netns/-x',
    `/run/netns/${'a'.repeat(129)}`,
    '/var/run/netns/x/',
    '//run/netns/x',
    '/proc/self/ns/net',
    '/proc/thread-self/ns/net',
    '/proc/0/ns/net',
    '/proc/01/ns/net',
    '/proc/1/ns/mnt',
    '/proc/1/ns/net/',
    '/proc/1/root/run/netns/x',
    '/proc/99999999999/ns/net',
    'run/netns/x',
    '',
  ];
  for (const bad of refused) {
    assert.throws(() => plumbingFor(NIC, bad), (e: Error) => e instanceof PlumbingError && /netns must be/.test(e.message), JSON.stringify(bad));
  }
});

test('interface names: what Linux accepts (1-15 bytes, no "/", ":" or whitespace), in plain characters', () => {
  for (const ok of ['eth0', 'net1', 'e.1', 'a_b-c', 'x'.repeat(15), '_x']) assert.equal(plumbingFor(NIC, '/run/netns/x', ok).ifname, ok, ok);
  for (const bad of ['', 'x'.repeat(16), 'a b', 'a/b', 'a:b', '.', '..', 'eth0\n', 'eth0\nnetns', 'a#b', 'a"b', "a'b", 'a\\b', '-x', 'é', 'eth0;id']) {
    assert.throws(() => plumbingFor(NIC, '/run/netns/x', bad), PlumbingError, JSON.stringify(bad));
  }
});

test('every NAPI field that reaches the batch text is checked: addresses, routes, MTU, MAC', () => {
  const inject = '\nnetns exec y /bin/sh -c id';
  const bad: Array<[string, Partial<typeof NIC>]> = [
    ['gateway', { gateway: `10.77.0.1${inject}` }],
    ['route destination', { routes: { [`10.9.0.0/16${inject}`]: '10.77.0.254' } }],
    ['route destination', { routes: { '10.9.0.0/33': '10.77.0.254' } }],
    ['route destination', { routes: { 'not-an-ip': 'linklocal' } }],
    ['ip', { ip: `10.77.0.20${inject}` }],
    ['mtu', { mtu: 70000 }],
    ['mtu', { mtu: 1400.5 }],
    ['mtu', { mtu: `1400${inject}` as unknown as number }],
    ['vlan', { vlan_id: `5${inject}` as unknown as number }],
    ['MAC', { mac: `90:b8:d0:12:34:56${inject}` }],
  ];
  for (const [what, patch] of bad) {
    assert.throws(() => plumbingFor({ ...NIC, ...patch }, '/run/netns/x'), PlumbingError, `${what}: ${JSON.stringify(patch)}`);
  }
});

test('the command builders refuse a hand-made plumbing with unsafe fields (defence in depth)', () => {
  const good = plumbingFor(NIC, '/run/netns/inst1');
  const unsafe: Array<Partial<NicPlumbing>> = [
    { netns: EXPLOIT_NETNS },
    { netns: '/etc/passwd' },
    { ifname: 'eth0\nnetns exec y id' },
    { ip: '10.77.0.20\nnetns exec y id' },
    { gateway: '10.77.0.1 dev lo\nnetns exec y id' },
    { routes: [{ dst: '10.0.0.0/8\nnetns exec y id' }] },
    { routes: [{ dst: '10.0.0.0/8', via: '10.77.0.254\nnetns exec y id' }] },
    { mtu: Number.NaN },
    { mac: '90:b8:d0:12:34:56 netns /run/netns/y' },
    { prefix: 33 },
  ];
  for (const patch of unsafe) {
    const p = { ...good, ...patch };
    assert.throws(() => hostSideCommands(p), PlumbingError, `host side: ${JSON.stringify(patch)}`);
    assert.throws(() => instanceCommands(p), PlumbingError, `instance: ${JSON.stringify(patch)}`);
    assert.throws(() => hostVeth(p), PlumbingError, `native host side: ${JSON.stringify(patch)}`);
    assert.throws(() => instanceConfig(p), PlumbingError, `native instance: ${JSON.stringify(patch)}`);
  }
  const spec = { vnet: 6568847, underlayIp: '198.18.0.1', underlayDev: 'ul0', mtu: 1450 };
  for (const patch of [{ underlayDev: 'ul0\nnetns exec y id' }, { underlayIp: '198.18.0.1 dev lo' }, { mtu: 1e6 }, { dstport: 0 }]) {
    assert.throws(() => vnetCommands({ ...spec, ...patch }), PlumbingError, JSON.stringify(patch));
    assert.throws(() => vnetLinks({ ...spec, ...patch }), PlumbingError, JSON.stringify(patch));
  }
  assert.throws(() => renderPortFilter([{ mac: '90:b8:d0:00:00:01', ip: '10.0.0.1 } accept; drop', vnet: 7, vlan: 5 }]), /port filter/);
  assert.throws(() => renderPortFilter([{ mac: '90:b8:d0:00:00:01 accept', ip: '10.0.0.1', vnet: 7, vlan: 5 }]), /port filter/);
});

test('a staged NIC (Docker): both veth ends on the node, the host end in the vnet\'s group and bridge but not up', () => {
  const p = stagedPlumbingFor(NIC, 'rs90b8d0123456');
  assert.deepEqual(stagedHostVeth(p), {
    kind: 'veth', name: 'rv90b8d0123456', mtu: 1400, group: 0x72000000 + 6568847, peer: { name: 'rs90b8d0123456', mtu: 1400, mac: '90:b8:d0:12:34:56' },
  });
  assert.deepEqual(stagedHostSideCommands(p), [
    'link add rv90b8d0123456 mtu 1400 type veth peer name rs90b8d0123456 mtu 1400 address 90:b8:d0:12:34:56',
    'link set rv90b8d0123456 master rbr6568847',
  ]);
  for (const ifname of ['', 'a b', 'x;reboot', '1234567890123456']) {
    assert.throws(() => stagedPlumbingFor(NIC, ifname), PlumbingError, ifname);
    assert.throws(() => stagedHostVeth({ ...p, ifname }), PlumbingError, ifname);
  }
});

test('userspace backend: a NIC\'s bridge (its MTU, in the vnet\'s group, up) and its TAP\'s MAC (not the NIC\'s, locally administered)', () => {
  const p = stagedPlumbingFor(NIC, 'rs90b8d0123456');
  assert.deepEqual(nicBridge(p), { kind: 'bridge', name: 'rn90b8d0123456', mtu: 1400, group: 0x72000000 + 6568847, up: true });
  assert.throws(() => nicBridge({ ...p, mtu: 10 }), PlumbingError);
  assert.equal(tapAddress('90:b8:d0:12:34:56'), 'fe:b8:d0:12:34:56');
  assert.equal(tapAddress('fe:b8:d0:12:34:56'), 'fa:b8:d0:12:34:56');
});
