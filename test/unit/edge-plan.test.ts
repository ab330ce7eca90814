/**
 * The distributed gateway's pure parts: the shared gateway MAC, marks and tables, the
 * per-node plan from the local networks (and routers), and the kernel backend's rendering
 * (nftables text, addresses/routes/rules and the ip commands between two states).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type EdgeKernelState, edgeChanges, edgeIp6RuleCommands, edgeIpCommands, edgeKernelState, renderEdgeNft } from '../../src/agent/kernel/edge-rules.js';
import type { EdgeOp } from '../../src/dataplane/links.js';
import { bridgePort } from '../../src/agent/kernel/edge.js';
import { gatewayTapName, parseDeviceName } from '../../src/agent/plumbing/names.js';
import { routerProblems } from '../../src/napi/models/router.js';
import type { NetworkRecord } from '../../src/napi/models/records.js';
import { edgeMark, edgeNetworkOf, edgeZones, edgeTable, gatewayMac, hairpinSubnets, planEdge, publishedProblem, subnetOf, vnetOfMark, vnetOfTable } from '../../src/edge/plan.js';
import { FW_ESTABLISHED, FW_INVALID } from '../../src/net/marks.js';
import { PublishedPorts, externalProblem, parseMappings, publishedAddress } from '../../src/agent/published.js';
import { StateFile } from '../../src/agent/state-file.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const EXT = { iface: 'ext0', address: '198.19.0.1' };

describe('gateway MAC, marks and tables', () => {
  test('one locally administered unicast MAC per vnet, the same everywhere', () => {
    assert.equal(gatewayMac(0), '02:72:67:00:00:00');
    assert.equal(gatewayMac(0x123456), '02:72:67:12:34:56');
    assert.equal(gatewayMac(4242), gatewayMac(4242));
    assert.notEqual(gatewayMac(1), gatewayMac(2));
    const first = parseInt(gatewayMac(77).slice(0, 2), 16);
    assert.equal(first & 0x02, 0x02, 'locally administered');
    assert.equal(first & 0x01, 0, 'unicast');
    assert.throws(() => gatewayMac(0x1000000), RangeError);
    assert.throws(() => gatewayMac(-1), RangeError);
  });

  test('per-VLAN gateway MACs (the userspace backend\'s ports) differ from each other and from the vnet\'s', () => {
    assert.equal(gatewayMac(5, 0), gatewayMac(5));
    assert.equal(gatewayMac(5, 20), '06:14:67:00:00:05');
    assert.equal(gatewayMac(5, 4095), 'f6:ff:67:00:00:05');
    const first = parseInt(gatewayMac(5, 4095).slice(0, 2), 16);
    assert.equal(first & 0x03, 0x02, 'locally administered unicast');
    assert.notEqual(gatewayMac(5, 20), gatewayMac(5, 21));
    assert.throws(() => gatewayMac(5, 4096), RangeError);
    assert.equal(gatewayTapName(16777215, 4095), 'rg16777215v4095');
    assert.ok(gatewayTapName(16777215, 4095).length <= 15);
    assert.deepEqual(parseDeviceName('rg42v7'), { kind: 'gateway', vnet: 42, vlan: 7 });
    assert.equal(parseDeviceName('rg42v07'), undefined);
  });

  test('conntrack zones: one per vnet of the node, stable, collisions take the next free one', () => {
    assert.deepEqual([...edgeZones([7, 65542, 3]).entries()], [[3, 4], [7, 8], [65542, 9]]);
    // 65535 is never one of them: it is the userspace backend's NIC bridges' zone.
    assert.deepEqual([...edgeZones([65533, 131067]).entries()], [[65533, 65534], [131067, 1]]);
    assert.deepEqual([...edgeZones([65534]).entries()], [[65534, 1]]);
    assert.equal(new Set(edgeZones([1, 65536, 131071, 196606]).values()).size, 4);
  });

  test('marks and tables carry the vnet under 0x72', () => {
    assert.equal(edgeMark(5), 0x72000005);
    assert.equal(edgeTable(0xffffff), 0x72ffffff);
    assert.equal(vnetOfMark(0x72000005), 5);
    assert.equal(vnetOfMark(0x71000005), undefined);
    assert.equal(vnetOfMark(254), undefined);
    // The firewall's state bits beside an edge mark (../../src/net/marks.ts): still vnet 5's; never in a table id.
    assert.equal(vnetOfMark(0x72000005 | FW_ESTABLISHED | FW_INVALID), 5);
    assert.equal(vnetOfTable(0x72000005), 5);
    assert.equal(vnetOfTable(0x73000005), undefined);
  });
});

describe('planEdge', () => {
  const a = { vnet: 7, subnet: '10.0.0.0/24', gateway: '10.0.0.1', internetNat: true };
  const b = { vnet: 7, subnet: '10.0.1.0/24', gateway: '10.0.1.1', internetNat: false };
  const c = { vnet: 7, subnet: '10.0.2.0/24', gateway: '10.0.2.1', internetNat: true };

  test('a NIC\'s network from its address, prefix and flags', () => {
    assert.equal(subnetOf('10.0.0.77', 24), '10.0.0.0/24');
    assert.equal(subnetOf('172.16.5.9', 20), '172.16.0.0/20');
    assert.deepEqual(edgeNetworkOf({ vnet: 7, ip: '10.0.0.5', prefix: 24, gateway: '10.0.0.1' }), { ...a, vlan: 0 });
    assert.equal(edgeNetworkOf({ vnet: 7, ip: '10.0.1.5', prefix: 24, gateway: '10.0.1.1', internetNat: false }).internetNat, false);
  });

  test('gateways and routes of the local networks, NAT only with an external side', () => {
    const plan = planEdge([a, b, a], { external: EXT });
    assert.equal(plan.vnets.length, 1);
    const v = plan.vnets[0]!;
    assert.deepEqual(v.gateways, [
      { address: '10.0.0.1', prefix: 24, subnet: '10.0.0.0/24', vlan: 0 },
      { address: '10.0.1.1', prefix: 24, subnet: '10.0.1.0/24', vlan: 0 },
    ]);
    assert.deepEqual(v.routes, [{ subnet: '10.0.0.0/24', src: '10.0.0.1', vlan: 0 }, { subnet: '10.0.1.0/24', src: '10.0.1.1', vlan: 0 }]);
    assert.deepEqual(v.nat, ['10.0.0.0/24']);
    assert.deepEqual(v.routed, []);
    assert.equal(v.mac, gatewayMac(7));
    assert.deepEqual(planEdge([a]).vnets[0]!.nat, [], 'no external side: nothing is NATed');
  });

  test('a network without a gateway gets no edge', () => {
    assert.deepEqual(planEdge([{ vnet: 7, subnet: '10.0.0.0/24', internetNat: true }]).vnets, []);
  });

  test('a router connects its networks both ways; routes towards members not here', () => {
    const plan = planEdge([a], { routers: [{ networks: [a, { ...c, vlan: 30 }] }, { networks: [b, c] }] });
    const v = plan.vnets[0]!;
    assert.deepEqual(v.routes, [{ subnet: '10.0.0.0/24', src: '10.0.0.1', vlan: 0 }, { subnet: '10.0.2.0/24', src: '10.0.0.1', vlan: 30 }]);
    // The userspace backend's ports: one per VLAN, each with its own MAC; the routed rule names no device.
    const text = renderEdgeNft(plan, (vnet, vlan) => ({ dev: gatewayTapName(vnet, vlan), mac: gatewayMac(vnet, vlan) }));
    assert.match(text, /iifname "rg7v0" ether daddr 02:72:67:00:00:07 meta mark set/);
    assert.match(text, /iifname "rg7v30" ether daddr 06:1e:67:00:00:07 meta mark set/);
    assert.match(text, /meta mark & 0xfaffffff == 0x72000007 ip saddr 10\.0\.0\.0\/24 ip daddr 10\.0\.2\.0\/24 accept/);
    assert.deepEqual(v.routed, [['10.0.0.0/24', '10.0.2.0/24'], ['10.0.2.0/24', '10.0.0.0/24']]);
  });
});

describe('kernel rendering', () => {
  test('the nftables table: marks, input guard, forward allow-list, SNAT', () => {
    const plan = planEdge([{ vnet: 7, subnet: '10.0.0.0/24', gateway: '10.0.0.1', internetNat: true }, { vnet: 9, subnet: '10.0.0.0/24', gateway: '10.0.0.1', internetNat: false }], { external: EXT });
    const text = renderEdgeNft(plan, bridgePort);
    assert.match(text, /^table ip rhumb_edge\ndelete table ip rhumb_edge\n/);
    // A connection is its opener's: the replies do not re-mark it.
    assert.match(text, /iifname "rbr7" ether daddr 02:72:67:00:00:07 meta mark set 0x72000007 ct direction original ct mark set 0x72000007\n/);
    assert.match(text, /chain output \{\n\s+type filter hook output priority filter; policy accept;\n\s+oifname \{ "rbr7", "rbr9" \} icmp type redirect drop\n/);
    assert.match(text, /iifname "ext0" ct mark & 0xfa000000 == 0x72000000 meta mark set ct mark/);
    assert.match(text, /chain raw \{\n\s+type filter hook prerouting priority raw; policy accept;\n\s+iifname "rbr7" ether daddr 02:72:67:00:00:07 ct original zone set 8\n/);
    // The firewall's state bits beside the vnet's mark change nothing (../../src/net/marks.ts).
    assert.match(text, /meta mark & 0xfaffffff == 0x72000007 oifname "ext0" ip saddr 10\.0\.0\.0\/24 accept/);
    assert.doesNotMatch(text, /== 0x72000009 oifname "ext0"/, 'vnet 9 has no NAT network');
    assert.match(text, /meta mark & 0xfaffffff == 0x72000009 ip daddr 10\.0\.0\.1 icmp type echo-request accept/);
    assert.doesNotMatch(text, /meta mark 0x72/, 'no exact mark match');
    assert.match(text, /meta mark & 0xfa000000 == 0x72000000 oifname "ext0" snat to 198\.19\.0\.1/);
    // The allow rules come before the drop.
    const fwd = text.slice(text.indexOf('chain forward'));
    assert.ok(fwd.indexOf('saddr 10.0.0.0/24 accept') < fwd.indexOf('== 0x72000000 drop'));
  });

  test('an empty plan removes the table; no external side, no SNAT', () => {
    assert.equal(renderEdgeNft({ vnets: [] }, bridgePort), 'table ip rhumb_edge\ndelete table ip rhumb_edge\ntable ip6 rhumb_edge\ndelete table ip6 rhumb_edge\n');
    assert.doesNotMatch(renderEdgeNft(planEdge([{ vnet: 7, subnet: '10.0.0.0/24', gateway: '10.0.0.1', internetNat: true }]), bridgePort), /snat/);
  });

  test('values that could smuggle text into nft are refused', () => {
    const bad = { vnets: [], external: { iface: 'ext0"; flush ruleset', address: '1.2.3.4' } };
    assert.throws(() => renderEdgeNft(bad, bridgePort), /edge: interface names/);
    const plan = planEdge([{ vnet: 7, subnet: '10.0.0.0/24', gateway: '10.0.0.1', internetNat: true }]);
    plan.vnets[0]!.gateways[0]!.address = '10.0.0.1 accept';
    assert.throws(() => renderEdgeNft(plan, bridgePort), /gateway is not an IP address/);
  });

  test('IPv6: an ip6 table beside the ip one, neighbour discovery to the gateway, no redirects, -6 rules', () => {
    const plan = planEdge(
      [
        { vnet: 7, subnet: 'fd00:61::/64', gateway: 'fd00:61::1', internetNat: true },
        { vnet: 7, subnet: 'fd00:62::/64', gateway: 'fd00:62::1', internetNat: true },
        { vnet: 7, subnet: '10.0.0.0/24', gateway: '10.0.0.1', internetNat: true },
      ],
      { external: { iface: 'ext0', address: '198.19.0.1' }, routers: [{ networks: [
        { vnet: 7, subnet: 'fd00:61::/64', gateway: 'fd00:61::1', internetNat: true },
        { vnet: 7, subnet: 'fd00:62::/64', gateway: 'fd00:62::1', internetNat: true },
      ] }] },
    );
    const text = renderEdgeNft(plan, bridgePort);
    const [v4, v6] = text.split('table ip6 rhumb_edge\ndelete table ip6 rhumb_edge\n');
    assert.doesNotMatch(v4!, /fd00/);
    assert.match(v4!, /ip saddr 10\.0\.0\.0\/24 accept/);
    assert.match(v6!, /ip6 daddr \{ fd00:61::1, fd00:62::1 \} icmpv6 type echo-request accept/);
    assert.match(v6!, /icmpv6 type \{ nd-neighbor-solicit, nd-neighbor-advert \} accept/);
    assert.match(v6!, /ip6 saddr fd00:61::\/64 ip6 daddr fd00:62::\/64 accept/);
    assert.match(v6!, /oifname "rbr7" icmpv6 type nd-redirect drop/);
    // No external IPv6 address: nothing of IPv6 leaves through the external side (no NAT66).
    assert.doesNotMatch(v6!, /ext0|snat/);
    const withV6 = renderEdgeNft({ ...plan, external: { iface: 'ext0', address: '198.19.0.1', address6: 'fd99::1' } }, bridgePort);
    assert.match(withV6, /oifname "ext0" ip6 saddr \{ fd00:61::\/64, fd00:62::\/64 \} accept/);
    assert.match(withV6, /oifname "ext0" snat ip6 to fd99::1/);
    const state = edgeKernelState(plan, bridgePort);
    assert.ok(state.addresses.some((a) => a.address === 'fd00:61::1' && a.prefix === 64));
    const empty = { addresses: [], routes: [], rules: [] };
    const lines = edgeIpCommands(state, empty);
    assert.ok(lines.includes('addr add fd00:61::1/64 dev rbr7 noprefixroute nodad'), lines.join('\n'));
    assert.ok(lines.includes('route replace fd00:62::/64 dev rbr7 src fd00:62::1 table 1912602631'), lines.join('\n'));
    assert.deepEqual(lines.filter((l) => l.startsWith('rule')), ['rule add pref 1100 fwmark 0x72000007/0xfaffffff lookup 1912602631']);
    assert.deepEqual(edgeIp6RuleCommands(state, empty), ['rule add pref 1100 fwmark 0x72000007/0xfaffffff lookup 1912602631']);
    assert.deepEqual(edgeIp6RuleCommands(state, state), []);
    // An IPv4-only plan has no ip6 rule and an empty ip6 table.
    const v4only = planEdge([{ vnet: 7, subnet: '10.0.0.0/24', gateway: '10.0.0.1', internetNat: true }]);
    assert.deepEqual(edgeIp6RuleCommands(edgeKernelState(v4only, bridgePort), empty), []);
    assert.match(renderEdgeNft(v4only, bridgePort), /table ip6 rhumb_edge\ndelete table ip6 rhumb_edge\n$/);
  });

  test('ip commands add what is missing, remove what is not wanted, keep the rest', () => {
    const before = edgeKernelState(planEdge([{ vnet: 7, subnet: '10.0.0.0/24', gateway: '10.0.0.1', internetNat: true }, { vnet: 8, subnet: '10.5.0.0/16', gateway: '10.5.0.1', internetNat: true }]), bridgePort);
    const after = edgeKernelState(planEdge([{ vnet: 7, subnet: '10.0.0.0/24', gateway: '10.0.0.1', internetNat: true }, { vnet: 7, subnet: '10.0.1.0/24', gateway: '10.0.1.1', internetNat: true }]), bridgePort);
    assert.deepEqual(edgeIpCommands(after, before), [
      'addr add 10.0.1.1/24 dev rbr7 noprefixroute',
      'route replace 10.0.1.0/24 dev rbr7 src 10.0.1.1 table 1912602631',
      'route del 10.5.0.0/16 table 1912602632',
      'addr del 10.5.0.1/16 dev rbr8',
      'rule del pref 1100 fwmark 0x72000008/0xfaffffff lookup 1912602632',
    ]);
    assert.deepEqual(edgeIpCommands(after, after), []);
    // A network with a smaller MTU: its route carries it (the kernel answers "fragmentation needed" when forwarding).
    const small = edgeKernelState(planEdge([{ vnet: 7, subnet: '10.0.0.0/24', gateway: '10.0.0.1', internetNat: true, mtu: 1300 }]), bridgePort);
    assert.deepEqual(edgeIpCommands(small, after).filter((l) => l.startsWith('route replace')), ['route replace 10.0.0.0/24 dev rbr7 src 10.0.0.1 table 1912602631 mtu 1300']);
    assert.deepEqual(edgeIpCommands(before, { addresses: [], routes: [], rules: [] }).filter((l) => l.startsWith('rule')), [
      'rule add pref 1100 fwmark 0x72000007/0xfaffffff lookup 1912602631',
      'rule add pref 1100 fwmark 0x72000008/0xfaffffff lookup 1912602632',
    ]);
    // An exact rule a previous agent left (before the firewall shared the mark) is replaced by a masked one.
    const exact = { ...after, rules: after.rules.map((r) => ({ ...r, mask: 0xffffffff })) };
    assert.deepEqual(edgeIpCommands(after, exact).filter((l) => l.startsWith('rule')), [
      'rule add pref 1100 fwmark 0x72000007/0xfaffffff lookup 1912602631',
      'rule del pref 1100 fwmark 0x72000007 lookup 1912602631',
    ]);
  });
});

describe('edgeChanges: the native requests of the same difference', () => {
  /** An edgeChanges op as the iproute2 line of the same change (IPv6 rules apart, as iproute2 needs them). */
  const line = (o: EdgeOp): string => {
    const hexMark = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;
    if (o.op === 'addr') return `addr ${o.add ? 'add' : 'del'} ${o.address}/${o.prefix} dev ${o.dev}${o.add ? ` noprefixroute${o.address.includes(':') ? ' nodad' : ''}` : ''}`;
    if (o.op === 'route') return o.add ? `route replace ${o.dst}/${o.prefix} dev ${o.dev} src ${o.src} table ${o.table}${o.mtu ? ` mtu ${o.mtu}` : ''}` : `route del ${o.dst}/${o.prefix} table ${o.table}`;
    const mark = o.mask === 0xffffffff ? hexMark(o.mark) : `${hexMark(o.mark)}/${hexMark(o.mask)}`;
    return `${o.family === 6 ? '-6 ' : ''}rule ${o.add ? 'add' : 'del'} pref ${o.pref} fwmark ${mark} lookup ${o.table}`;
  };
  const same = (want: EdgeKernelState, current: EdgeKernelState) => {
    const ops = edgeChanges(want, current);
    assert.deepEqual(ops.filter((o) => !(o.op === 'rule' && o.family === 6)).map(line), edgeIpCommands(want, current));
    assert.deepEqual(ops.filter((o) => o.op === 'rule' && o.family === 6).map((o) => line(o).slice(3)), edgeIp6RuleCommands(want, current));
  };
  const empty: EdgeKernelState = { addresses: [], routes: [], rules: [] };
  const v4 = (mtu?: number) =>
    edgeKernelState(planEdge([{ vnet: 7, subnet: '10.0.0.0/24', gateway: '10.0.0.1', internetNat: true, ...(mtu ? { mtu } : {}) }, { vnet: 8, subnet: '10.5.0.0/16', gateway: '10.5.0.1', internetNat: true }]), bridgePort);
  const v6 = edgeKernelState(planEdge([{ vnet: 7, subnet: 'fd00:61::/64', gateway: 'fd00:61::1', internetNat: false }, { vnet: 9, subnet: '10.9.0.0/24', gateway: '10.9.0.1', internetNat: true }]), bridgePort);

  test('every change edgeIpCommands and edgeIp6RuleCommands make, in their order, with the same fields', () => {
    for (const [want, current] of [[v4(), empty], [empty, v4()], [v4(1300), v4()], [v6, v4()], [v4(), v6], [v6, empty], [v6, v6]] as const) same(want, current);
    const exact = { ...v4(), rules: v4().rules.map((r) => ({ ...r, mask: 0xffffffff })) };
    same(v4(), exact);
  });

  test('nothing to do: no request; a host route and a route without a source are sent as such', () => {
    assert.deepEqual(edgeChanges(v6, v6), []);
    const host: EdgeKernelState = { addresses: [], routes: [{ table: 5, dst: '10.1.2.3', dev: 'rbr5', src: '' }], rules: [] };
    assert.deepEqual(edgeChanges(host, empty), [{ op: 'route', add: true, dst: '10.1.2.3', prefix: 32, table: 5, dev: 'rbr5' }]);
    assert.deepEqual(edgeChanges(empty, host), [{ op: 'route', add: false, dst: '10.1.2.3', prefix: 32, table: 5 }]);
  });
});

describe('routerProblems', () => {
  const OWNER = 'aaaaaaaa-1111-4111-8111-111111111111';
  const rec = (uuid: string, subnet: string, extra: Partial<NetworkRecord> = {}): NetworkRecord => ({
    uuid, name: uuid, name_str: `${OWNER}:${uuid}`, family: 'ipv4', subnet, provision_start_ip: '', provision_end_ip: '', vlan_id: 2, nic_tag: 'sdc_overlay',
    mtu: 1400, resolvers: [], gateway: subnet.replace(/0\/\d+$/, '1'), fabric: true, owner_uuids: [OWNER], vnet_id: 7, created_timestamp: '', modified_timestamp: '', ...extra,
  });
  const found = (...recs: NetworkRecord[]) => new Map(recs.map((r) => [r.uuid, r]));

  test('overlapping subnets name every network involved', () => {
    const p = routerProblems(OWNER, ['n1', 'n2', 'n3'], found(rec('n1', '10.0.0.0/24'), rec('n2', '10.0.0.0/16'), rec('n3', '10.1.0.0/24')));
    assert.deepEqual(p, [{ field: 'networks', code: 'InvalidParameter', message: 'subnets of networks on one router must not overlap', invalid: ['n1', 'n2'] }]);
    assert.deepEqual(routerProblems(OWNER, ['n1', 'n3'], found(rec('n1', '10.0.0.0/24'), rec('n3', '10.1.0.0/24'))), []);
  });

  test('unknown, foreign, gatewayless and mixed-family networks', () => {
    assert.match(routerProblems(OWNER, ['n1', 'zz'], found(rec('n1', '10.0.0.0/24')))[0]!.message, /^unknown network$/);
    assert.deepEqual(routerProblems(OWNER, ['n1', 'b'], found(rec('n1', '10.0.0.0/24'), rec('b', '10.2.0.0/24', { owner_uuids: ['bbbbbbbb-2222-4222-8222-222222222222'] })))[0]!.invalid, ['b']);
    assert.deepEqual(routerProblems(OWNER, ['p'], found(rec('p', '10.2.0.0/24', { fabric: undefined })))[0]!.invalid, ['p']);
    assert.match(routerProblems(OWNER, ['g'], found(rec('g', '10.2.0.0/24', { gateway: undefined })))[0]!.message, /gateway/);
    assert.match(routerProblems(OWNER, ['n1', 'v6'], found(rec('n1', '10.0.0.0/24'), rec('v6', 'fd00::/64', { family: 'ipv6', gateway: 'fd00::1' })))[0]!.message, /family/);
  });
});

describe('published ports', () => {
  const net = { vnet: 7, subnet: '10.0.0.0/24', gateway: '10.0.0.1', internetNat: false };
  const web = { vnet: 7, ip: '10.0.0.5', protocol: 'tcp' as const, port: 80, hostPort: 8080 };

  test('DNAT on the external address with the vnet\'s mark; only with an external side and a local network', () => {
    const plan = planEdge([net], { external: EXT, published: [web, { ...web, ip: '10.9.9.9', hostPort: 9000 }, { ...web, vnet: 8 }] });
    assert.deepEqual(plan.vnets[0]!.published, [{ ip: '10.0.0.5', protocol: 'tcp', port: 80, hostPort: 8080 }]);
    const text = renderEdgeNft(plan, bridgePort);
    assert.match(text, /chain dstnat \{\n\s+type nat hook prerouting priority dstnat; policy accept;\n\s+iifname "ext0" ip daddr 198\.19\.0\.1 tcp dport 8080 meta mark set 0x72000007 ct mark set 0x72000007 dnat to 10\.0\.0\.5:80\n/);
    assert.match(text, /ct status dnat accept/);
    assert.deepEqual(planEdge([net], { published: [web] }).vnets[0]!.published, [], 'no external side');
    assert.doesNotMatch(renderEdgeNft(planEdge([net], { external: EXT }), bridgePort), /dstnat/);
  });

  test('hairpin: the NAT subnets of every vnet, on the families ports are published on', () => {
    const natA = { vnet: 7, subnet: '10.0.0.0/24', gateway: '10.0.0.1', internetNat: true };
    const twin = { vnet: 9, subnet: '10.0.0.0/24', gateway: '10.0.0.1', internetNat: true };
    const priv = { vnet: 7, subnet: '10.0.1.0/24', gateway: '10.0.1.1', internetNat: false };
    const six = { vnet: 9, subnet: 'fd00:61::/64', gateway: 'fd00:61::1', internetNat: true };
    const plan = planEdge([natA, priv, twin, six], { external: { ...EXT, address6: 'fd99:1::1' }, published: [{ ...web, vnet: 7, ip: '10.0.1.5' }] });
    assert.deepEqual(plan.vnets.map((v) => [v.vnet, v.hairpin]), [[7, ['10.0.0.0/24']], [9, ['10.0.0.0/24']]], 'not the private network, not IPv6 (nothing published on it)');
    assert.deepEqual(planEdge([natA, twin], { external: EXT }).vnets.map((v) => v.hairpin), [[], []], 'nothing published: no hairpin');
    assert.deepEqual(planEdge([natA], { published: [{ ...web, vnet: 7 }] }).vnets[0]!.hairpin, [], 'no external side: no hairpin');
    assert.deepEqual(hairpinSubnets(['10.0.0.0/24', 'fd00::/64'], ['fd00:9::5']), ['fd00::/64']);
    assert.deepEqual(hairpinSubnets(['10.0.0.0/24'], []), []);
  });

  test('hairpin rendered: marks by direction, DNAT from the hairpin subnets only, SNAT to the external address, no redirects', () => {
    const natA = { vnet: 7, subnet: '10.0.0.0/24', gateway: '10.0.0.1', internetNat: true };
    const twin = { vnet: 9, subnet: '10.0.0.0/24', gateway: '10.0.0.1', internetNat: true };
    const priv = { vnet: 7, subnet: '10.0.1.0/24', gateway: '10.0.1.1', internetNat: false };
    const dns = { vnet: 9, ip: '10.0.0.5', protocol: 'udp' as const, port: 53, hostPort: 5353 };
    const text = renderEdgeNft(planEdge([natA, priv, twin], { external: EXT, published: [web, dns] }), bridgePort);
    const v4 = text.slice(0, text.indexOf('table ip6 rhumb_edge\n'));
    const ours = 'meta mark & 0xfa000000 == 0x72000000';
    // Replies take their connection's mark (the client's vnet); the original direction the target's vnet's.
    assert.ok(v4.includes(`    ${ours} ct direction reply ct mark & 0xfa000000 == 0x72000000 meta mark set ct mark\n`), v4);
    assert.ok(v4.includes(`    ${ours} ct direction original ct original ip daddr 198.19.0.1 meta l4proto tcp ct original proto-dst 8080 meta mark set 0x72000007\n`));
    assert.ok(v4.includes(`    ${ours} ct direction original ct original ip daddr 198.19.0.1 meta l4proto udp ct original proto-dst 5353 meta mark set 0x72000009\n`));
    const pre = v4.slice(v4.indexOf('chain prerouting'), v4.indexOf('chain input'));
    assert.ok(pre.indexOf('rbr9') < pre.indexOf('ct direction reply'), 'after the ports mark');
    // DNAT: from each vnet's NAT subnet, by the connection's mark (set only from a port), to every published port.
    assert.match(v4, /chain hairpin \{\n\s+tcp dport 8080 dnat to 10\.0\.0\.5:80\n\s+udp dport 5353 dnat to 10\.0\.0\.5:53\n\s+\}/);
    assert.ok(v4.includes('    ct mark & 0xfaffffff == 0x72000007 ip saddr 10.0.0.0/24 ip daddr 198.19.0.1 jump hairpin\n'));
    assert.ok(v4.includes('    ct mark & 0xfaffffff == 0x72000009 ip saddr 10.0.0.0/24 ip daddr 198.19.0.1 jump hairpin\n'));
    assert.doesNotMatch(v4, /10\.0\.1\.0\/24 ip daddr 198\.19\.0\.1/, 'the private network does not hairpin');
    // SNAT: a DNAT'ed connection that came from a port (a conntrack zone of its own), before the egress SNAT.
    const post = v4.slice(v4.indexOf('chain postrouting'));
    assert.match(post, new RegExp(`\\n\\s+${ours} ct direction original ct status dnat ct original zone != 0 ct original ip daddr 198\\.19\\.0\\.1 snat to 198\\.19\\.0\\.1\\n\\s+${ours} oifname "ext0" snat to 198\\.19\\.0\\.1\\n`));
    assert.match(v4, /oifname \{ "rbr7", "rbr9" \} icmp type redirect drop/);
    // The input guard is unchanged: the external address itself stays out of reach.
    const input = v4.slice(v4.indexOf('chain input'), v4.indexOf('chain forward'));
    assert.match(input, /== 0x72000000 drop\n\s+\}\n\s*$/);
    assert.doesNotMatch(input, /198\.19\.0\.1/);
    // Nothing of it without a NAT network, or without a published port.
    for (const t of [renderEdgeNft(planEdge([net], { external: EXT, published: [web] }), bridgePort), renderEdgeNft(planEdge([natA], { external: EXT }), bridgePort)]) {
      assert.doesNotMatch(t, /hairpin|ct direction reply|ct original zone !=/, t);
    }
  });

  test('a host port twice for one protocol, bad protocols and ports are refused', () => {
    assert.equal(publishedProblem([{ protocol: 'tcp', port: 80, hostPort: 8080 }, { protocol: 'udp', port: 80, hostPort: 8080 }]), undefined);
    assert.match(publishedProblem([{ protocol: 'tcp', port: 80, hostPort: 8080 }, { protocol: 'tcp', port: 81, hostPort: 8080 }])!, /tcp host port 8080 is published twice/);
    assert.match(publishedProblem([{ protocol: 'tcp', port: 0, hostPort: 1 }])!, /port must be/);
    assert.match(parseMappings([{ protocol: 'sctp', port: 1 }]) as string, /protocol must be tcp or udp/);
    assert.deepEqual(parseMappings([{ port: 80 }]), [{ protocol: 'tcp', port: 80, host_port: 80 }]);
    assert.match(parseMappings({}) as string, /must be a list/);
    const plan = planEdge([net], { external: EXT, published: [web, { ...web, port: 81 }] });
    assert.throws(() => renderEdgeNft(plan, bridgePort), /published twice/);
  });

  test("an IPv6 NIC's port: DNAT in the ip6 table on the external IPv6 address; none without one", () => {
    const net6 = { vnet: 7, subnet: 'fd00:61::/64', gateway: 'fd00:61::1', internetNat: true };
    const web6 = { vnet: 7, ip: 'fd00:61::10', protocol: 'tcp' as const, port: 80, hostPort: 8080 };
    const ext6 = { ...EXT, address6: 'fd99:1::1' };
    const plan = planEdge([net, net6], { external: ext6, published: [web, web6] });
    assert.deepEqual(plan.vnets[0]!.published.map((p) => p.ip), ['10.0.0.5', 'fd00:61::10'], 'the same host port on both families');
    const text = renderEdgeNft(plan, bridgePort);
    const ip6At = (t: string) => t.indexOf('table ip6 rhumb_edge\n');
    const [v4, v6] = [text.slice(0, ip6At(text)), text.slice(ip6At(text))];
    assert.match(v4!, /iifname "ext0" ip daddr 198\.19\.0\.1 tcp dport 8080 meta mark set 0x72000007 ct mark set 0x72000007 dnat to 10\.0\.0\.5:80\n/);
    assert.doesNotMatch(v4!, /fd00:61::10/);
    assert.match(v6!, /chain dstnat \{\n\s+type nat hook prerouting priority dstnat; policy accept;\n\s+iifname "ext0" ip6 daddr fd99:1::1 tcp dport 8080 meta mark set 0x72000007 ct mark set 0x72000007 dnat to \[fd00:61::10\]:80\n/);
    // The IPv6 NAT network hairpins to it (the IPv4 one does not: the private network).
    assert.match(v6!, /\n\s+ct mark & 0xfaffffff == 0x72000007 ip6 saddr fd00:61::\/64 ip6 daddr fd99:1::1 jump hairpin\n\s+\}/);
    assert.doesNotMatch(v4!, /hairpin/);
    assert.match(v6!, /ct status dnat accept/);
    assert.doesNotMatch(v6!, /10\.0\.0\.5/);
    // Without an external IPv6 address the IPv6 NIC's port is not planned (the agent refuses to publish it).
    const without = planEdge([net, net6], { external: EXT, published: [web, web6] });
    assert.deepEqual(without.vnets[0]!.published.map((p) => p.ip), ['10.0.0.5']);
    const withoutText = renderEdgeNft(without, bridgePort);
    assert.doesNotMatch(withoutText.slice(ip6At(withoutText)), /dstnat/);
    assert.throws(() => renderEdgeNft({ ...plan, external: EXT }, bridgePort), /an IPv6 port is published, but the external side has no IPv6 address/);
    assert.match(externalProblem('fd00:61::10', EXT)!, /external interface ext0 has no global IPv6 address/);
    assert.equal(externalProblem('fd00:61::10', ext6), undefined);
    assert.equal(externalProblem('10.0.0.5', EXT), undefined);
    assert.match(externalProblem('10.0.0.5', undefined)!, /no external side/);
    assert.deepEqual([publishedAddress('10.0.0.5', ext6), publishedAddress('fd00:61::10', ext6), publishedAddress('fd00:61::10', EXT)], ['198.19.0.1', 'fd99:1::1', undefined]);
  });

  test('host ports are per family: the same one on IPv4 and IPv6, not twice on one', () => {
    const p = { protocol: 'tcp' as const, port: 80, hostPort: 8080 };
    assert.equal(publishedProblem([{ ...p, ip: '10.0.0.5' }, { ...p, ip: 'fd00::5' }]), undefined);
    assert.match(publishedProblem([{ ...p, ip: 'fd00::5' }, { ...p, ip: 'fd00::6' }])!, /tcp host port 8080 is published twice \(IPv6\)/);
    const ports = new PublishedPorts();
    const ips: Record<string, string> = { '02:00:00:00:00:01': '10.0.0.5', '02:00:00:00:00:02': 'fd00::5', '02:00:00:00:00:03': 'fd00::6' };
    return ports.set('02:00:00:00:00:01', [{ protocol: 'tcp', port: 80, host_port: 8080 }]).then(async () => {
      assert.equal(ports.conflict('02:00:00:00:00:02', [{ protocol: 'tcp', port: 80, host_port: 8080 }], (m) => ips[m]), undefined);
      await ports.set('02:00:00:00:00:02', [{ protocol: 'tcp', port: 80, host_port: 8080 }]);
      assert.match(ports.conflict('02:00:00:00:00:03', [{ protocol: 'tcp', port: 80, host_port: 8080 }], (m) => ips[m])!, /published twice \(IPv6\)/);
      assert.match(ports.conflict('02:00:00:00:00:03', [{ protocol: 'tcp', port: 80, host_port: 8080 }])!, /published twice/, 'addresses unknown: one family');
    });
  });

  test('the state file round-trips; a tampered entry is left out; a file that is not JSON is an error naming it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rhumb-published-'));
    try {
      const file = new StateFile(join(dir, 'published-ports.json'));
      const a = new PublishedPorts(file);
      await a.load();
      await a.set('02:00:00:00:00:01', [{ protocol: 'tcp', port: 80, host_port: 8080 }]);
      const b = new PublishedPorts(file);
      await b.load();
      assert.deepEqual(b.all(), { '02:00:00:00:00:01': [{ protocol: 'tcp', port: 80, host_port: 8080 }] });
      await writeFile(file.path, JSON.stringify({ ports: { '02:00:00:00:00:01': [{ protocol: 'tcp', port: 80, host_port: 8080 }], '02:00:00:00:00:02': [{ protocol: 'tcp; flush ruleset', port: 1 }] } }));
      const c = new PublishedPorts(file);
      await c.load();
      assert.deepEqual(Object.keys(c.all()), ['02:00:00:00:00:01']);
      await writeFile(file.path, '{"ports":');
      await assert.rejects(new PublishedPorts(file).load(), (err: Error) => err.message.startsWith(`${file.path}: not JSON`));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
