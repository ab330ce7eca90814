/**
 * The console's server side without a server: report validation, the health book (loss
 * over a window, counters that restart, shootdown latency), and the snapshot the page
 * renders (nodes in address order, vnets and where their NICs live, network instances
 * with their firewall tags, agents that went silent).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NodeReport } from '../../src/agent/report.js';
import { HealthBook, parseNodeReport } from '../../src/console/health.js';
import { SILENT_AFTER_MS, buildSnapshot, type ConsoleInputs } from '../../src/console/view.js';
import type { NetworkRecord, NicRecord } from '../../src/napi/models/records.js';

const N1 = '00000000-0000-4000-8000-000000000001';
const N2 = '00000000-0000-4000-8000-000000000002';
const N3 = '00000000-0000-4000-8000-000000000003';
const OWNER = 'aaaaaaaa-0000-4000-8000-00000000000a';

function report(node: string, over: Partial<NodeReport> = {}): NodeReport {
  return { node, underlay_ip: '198.18.0.1', backend: 'kernel', sent_at: 1, vnets: [], nics: 0, probes: [], shootdowns: [], ...over };
}

describe('parseNodeReport', () => {
  it('accepts a well-formed report and lower-cases the node', () => {
    const r = parseNodeReport(N1.toUpperCase(), {
      ...report(N1),
      probes: [{ address: '198.18.0.2', state: 'up', sent: 5, received: 4, lost: 1, last_rtt_ms: 0.3 }],
      shootdowns: [{ id: 'x', type: 'vl3', vnet: 7, target: '10.0.0.1', committed_at: 10, applied_at: 12 }],
    });
    assert.equal(r.node, N1);
    assert.equal(r.probes[0]!.lost, 1);
    assert.equal(r.shootdowns[0]!.applied_at, 12);
  });

  for (const [what, node, body, field] of [
    ['a node that is not a UUID', 'n1', report(N1), /cn_uuid/],
    ['a body that is not an object', N1, [1, 2], /body/],
    ['a node in the body that differs from the URL', N1, report(N2), /node/],
    ['an unknown probe state', N1, { ...report(N1), probes: [{ address: 'x', state: 'sideways', sent: 1, received: 1, lost: 0 }] }, /probes\[0\]\.state/],
    ['a negative counter', N1, { ...report(N1), probes: [{ address: 'x', state: 'up', sent: -1, received: 1, lost: 0 }] }, /probes\[0\]\.sent/],
    ['an unknown shootdown type', N1, { ...report(N1), shootdowns: [{ id: 'x', type: 'vl9', vnet: 1, target: 't', applied_at: 1 }] }, /shootdowns\[0\]\.type/],
    ['a vnet id out of range', N1, { ...report(N1), vnets: [1 << 24] }, /vnets\[0\]/],
    ['a missing backend', N1, { ...report(N1), backend: undefined }, /backend/],
  ] as const) {
    it(`refuses ${what}`, () => {
      assert.throws(() => parseNodeReport(node, body), field);
    });
  }
});

describe('HealthBook', () => {
  it('loss is over the window, not since the agent started; a restarted agent starts over', () => {
    const book = new HealthBook({ lossWindowMs: 10_000 });
    const at = (t: number, sent: number, lost: number) =>
      book.accept(report(N1, { probes: [{ address: '198.18.0.2', state: 'up', sent, received: sent - lost, lost }] }), t);
    at(0, 100, 50); // a bad start long ago
    at(20_000, 110, 50);
    at(30_000, 120, 50);
    assert.equal(book.loss(N1, '198.18.0.2'), 0, 'no loss in the last 10 s');
    at(35_000, 130, 55);
    assert.equal(book.loss(N1, '198.18.0.2'), 5 / 20);
    at(36_000, 4, 2); // counters went back: a restart
    assert.equal(book.loss(N1, '198.18.0.2'), 0.5);
    assert.equal(book.node(N1)!.peers[0]!.loss, 0.5);
  });

  it('keeps recent shootdowns once each, newest first, with commit-to-applied latency', () => {
    const book = new HealthBook({ shootdownCapacity: 3 });
    const sd = (id: string, applied: number, committed?: number) => ({ id, type: 'vl3' as const, vnet: 1, target: '10.0.0.1', applied_at: applied, ...(committed !== undefined ? { committed_at: committed } : {}) });
    book.accept(report(N1, { shootdowns: [sd('a', 100, 90), sd('b', 110)] }), 1);
    book.accept(report(N1, { shootdowns: [sd('a', 100, 90)] }), 2); // re-sent: not twice
    book.accept(report(N2, { shootdowns: [sd('a', 105, 90)] }), 3); // same event id on another node
    book.accept(report(N2, { shootdowns: [sd('c', 120, 119)] }), 4);
    const got = book.shootdowns();
    assert.deepEqual(got.map((s) => `${s.id}@${s.node.slice(-1)}`), ['c@2', 'b@1', 'a@2']);
    assert.equal(got[0]!.latency_ms, 1);
    assert.equal(got[1]!.latency_ms, undefined);
    assert.equal(got[2]!.latency_ms, 15);
  });
});

function network(over: Partial<NetworkRecord>): NetworkRecord {
  return {
    uuid: 'net',
    name: 'net',
    name_str: 'x',
    family: 'ipv4',
    subnet: '10.0.0.0/24',
    provision_start_ip: '10.0.0.10',
    provision_end_ip: '10.0.0.200',
    vlan_id: 0,
    nic_tag: 'sdc_overlay',
    mtu: 1450,
    resolvers: [],
    created_timestamp: '',
    modified_timestamp: '',
    ...over,
  };
}

function nic(mac: string, ip: string, cn: string, net: string, belongs: string): NicRecord {
  return { mac, ip, cn_uuid: cn, network_uuid: net, belongs_to_uuid: belongs, belongs_to_type: 'zone', owner_uuid: OWNER, primary: true, state: 'running', created_timestamp: '', modified_timestamp: '' };
}

describe('buildSnapshot', () => {
  const now = 1_000_000;
  const inputs: ConsoleInputs = {
    revision: 9,
    now,
    // n2 has the lower address: it comes first.
    underlays: [
      { cn_uuid: N1, ip: '198.18.0.10', port: 4789 },
      { cn_uuid: N2, ip: '198.18.0.9', port: 4789 },
    ],
    networks: [
      network({ uuid: 'ul', name: 'underlay', nic_tag: 'sdc_underlay' }),
      network({ uuid: 'fab', name: '<b>web</b>', fabric: true, vnet_id: 77, vlan_id: 5, owner_uuids: [OWNER] }),
    ],
    vlans: [{ owner_uuid: OWNER, vlan_id: 5, vnet_id: 77, name: 'prod' }],
    nics: [
      nic('90:b8:d0:00:00:01', '10.0.0.10', N1, 'fab', 'i1'),
      nic('90:b8:d0:00:00:02', '10.0.0.11', N2, 'fab', 'i2'),
      nic('90:b8:d0:00:00:03', '10.0.0.12', N1, 'fab', 'i3'),
      { ...nic('90:b8:d0:00:00:09', '198.18.0.10', N1, 'ul', N1), belongs_to_type: 'server', underlay: true },
    ],
    rules: [{ uuid: 'r1', rule: 'FROM any TO all vms ALLOW icmp TYPE 8 CODE 0', enabled: true, log: false, owner_uuid: OWNER, version: '1' }],
    instances: [{ uuid: 'i1', owner_uuid: OWNER, tags: { role: 'web' }, firewall_enabled: true }],
    health: [
      { node: N1, underlay_ip: '198.18.0.10', backend: 'kernel', vnets: [77], nics: 2, reported_at: now - 500, peers: [{ address: '198.18.0.9', state: 'up', last_rtt_ms: 0.4, loss: 0 }] },
      { node: N3, underlay_ip: '198.18.0.11', backend: 'userspace', vnets: [], nics: 0, reported_at: now - SILENT_AFTER_MS - 1, peers: [] },
    ],
    shootdowns: [],
    truncated: false,
  };
  const snap = buildSnapshot(inputs);

  it('lists every node in address order, with its agent state and its peers named', () => {
    assert.deepEqual(snap.nodes.map((n) => [n.uuid, n.underlay_ip, n.agent, n.nics]), [
      [N2, '198.18.0.9', 'unknown', 1],
      [N1, '198.18.0.10', 'up', 2],
      [N3, '198.18.0.11', 'silent', 0],
    ]);
    assert.equal(snap.nodes[1]!.peers[0]!.node, N2);
    assert.deepEqual(snap.nodes[1]!.vnets, [77]);
  });

  it('says where each vnet has NICs', () => {
    assert.deepEqual(snap.vnets, [{ vnet_id: 77, owner_uuid: OWNER, networks: ['fab'], nodes: [{ uuid: N2, nics: 1 }, { uuid: N1, nics: 2 }] }]);
  });

  it('shows fabric networks only, with their instances and firewall tags; names untouched', () => {
    assert.equal(snap.networks.length, 1);
    const n = snap.networks[0]!;
    assert.equal(n.name, '<b>web</b>');
    assert.equal(n.vlan_name, 'prod');
    assert.deepEqual(n.instances.map((i) => [i.uuid, i.ip, i.cn_uuid, i.firewall_enabled]), [
      ['i1', '10.0.0.10', N1, true],
      ['i2', '10.0.0.11', N2, undefined],
      ['i3', '10.0.0.12', N1, undefined],
    ]);
    assert.deepEqual(n.instances[0]!.tags, { role: 'web' });
  });

  it('gives the explain form every registered instance with its addresses', () => {
    assert.deepEqual(snap.instances, [{ uuid: 'i1', owner_uuid: OWNER, tags: { role: 'web' }, firewall_enabled: true, addresses: ['10.0.0.10'] }]);
    assert.equal(snap.rules[0]!.uuid, 'r1');
  });
});
