/**
 * deriveOverlay: the spec's table (napi.md, "What a NIC write does to the overlay") as a
 * pure function. Events are recorded once per vnet (a log entry); who receives them is
 * the log's business (test/unit/overlay-log.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  type NicOverlayView,
  type VnetNodes,
  deriveOverlay,
  deriveUnderlayMove,
  derivationOps,
  fabricPlacement,
  rowsTouched,
  underlayMoved,
  underlayOf,
} from '../../src/overlay/derive.js';

const CN_A = 'aaaaaaaa-0000-4000-8000-000000000001';
const CN_B = 'bbbbbbbb-0000-4000-8000-000000000002';
const CN_C = 'cccccccc-0000-4000-8000-000000000003';
const NET = { uuid: '11111111-1111-4111-8111-111111111111', nic_tag: 'sdc_overlay', vlan_id: 5, fabric: true, vnet_id: 4242 };
const CFG = { underlayNicTag: 'sdc_underlay' };
const NOW = '2024-01-01T00:00:00.000Z';

function ids(): () => string {
  let n = 0;
  return () => `id-${String(++n).padStart(3, '0')}`;
}

function nic(over: Partial<NicOverlayView> = {}): NicOverlayView {
  return { mac: '90:b8:d0:00:00:01', belongs_to_type: 'zone', belongs_to_uuid: 'vm', ip: '10.0.0.5', cn_uuid: CN_A, network: NET, ...over };
}

/** Rows as a write reads them: count and the revision the node joined. */
function nodes(entries: Record<string, number>, vnet = 4242): VnetNodes {
  return new Map([[vnet, new Map(Object.entries(entries).map(([cn, count], i) => [cn, { count, joined: 10 + i }]))]]);
}

const opts = () => ({ now: NOW, newId: ids() });

/** The log's events as [vnet, type, ip-or-mac]. */
function events(d: ReturnType<typeof deriveOverlay>): Array<[number, string, string]> {
  return d.log.flatMap((l) => l.entry.events.map((e): [number, string, string] => [l.entry.vnet_id, e.type, e.type === 'vl3' ? e.ip : e.mac]));
}

test('create: puts ip and mac rows, counts the node, one VL3 recorded for the vnet', () => {
  const d = deriveOverlay(null, nic(), nodes({}), CFG, opts());
  assert.deepEqual(d.mappings, [
    {
      type: 'put',
      key: 'ovl/ip/00004242/10.0.0.5',
      value: JSON.stringify({ ip: '10.0.0.5', mac: '90:b8:d0:00:00:01', vnet_id: 4242, cn_uuid: CN_A, vlan_id: 5 }),
    },
    {
      type: 'put',
      key: 'ovl/mac/00004242/90b8d0000001',
      value: JSON.stringify({ mac: '90:b8:d0:00:00:01', vnet_id: 4242, cn_uuid: CN_A, vlan_id: 5, ip: '10.0.0.5' }),
    },
  ]);
  assert.deepEqual(d.vnodes, [{ vnet_id: 4242, cn_uuid: CN_A, count: 1, membership: true }]);
  assert.deepEqual(d.log, [{ id: 'id-001', entry: { vnet_id: 4242, created: NOW, events: [{ type: 'vl3', ip: '10.0.0.5', vlan_id: 5 }] } }]);
  assert.deepEqual(d.underlay, []);
});

test('create on a node already on the vnet: its count grows, no membership change', () => {
  const d = deriveOverlay(null, nic(), nodes({ [CN_A]: 3 }), CFG, opts());
  assert.deepEqual(d.vnodes, [{ vnet_id: 4242, cn_uuid: CN_A, count: 4, membership: false }]);
  assert.deepEqual(events(d), [[4242, 'vl3', '10.0.0.5']]);
});

test('update that changes nothing overlay-relevant: no ops, no events, no node reads', () => {
  const before = nic();
  const after = nic({ belongs_to_uuid: 'other-vm' });
  const d = deriveOverlay(before, after, nodes({ [CN_A]: 1, [CN_B]: 1 }), CFG, opts());
  assert.deepEqual(d, { mappings: [], underlay: [], vnodes: [], log: [] });
  assert.deepEqual(rowsTouched(before, after), []);
});

test('IP change: old ip row removed, new rows put, VL3 for the old and the new IP; no row read', () => {
  const d = deriveOverlay(nic(), nic({ ip: '10.0.0.9' }), nodes({}), CFG, opts());
  assert.deepEqual(
    d.mappings.map((o) => [o.type, o.key]),
    [
      ['del', 'ovl/ip/00004242/10.0.0.5'],
      ['put', 'ovl/ip/00004242/10.0.0.9'],
      ['put', 'ovl/mac/00004242/90b8d0000001'],
    ],
  );
  assert.deepEqual(d.vnodes, []);
  assert.deepEqual(events(d), [
    [4242, 'vl3', '10.0.0.5'],
    [4242, 'vl3', '10.0.0.9'],
  ]);
  assert.deepEqual(rowsTouched(nic(), nic({ ip: '10.0.0.9' })), []);
});

test('cn_uuid change (migration): rows put with the new node, VL2 for the MAC then VL3 for the IP, in one entry', () => {
  const d = deriveOverlay(nic(), nic({ cn_uuid: CN_B }), nodes({ [CN_A]: 1 }), CFG, opts());
  assert.deepEqual(d.mappings.map((o) => [o.type, o.key]), [
    ['put', 'ovl/ip/00004242/10.0.0.5'],
    ['put', 'ovl/mac/00004242/90b8d0000001'],
  ]);
  assert.match((d.mappings[0] as { value: string }).value, new RegExp(CN_B));
  assert.deepEqual(
    d.vnodes.sort((a, b) => a.cn_uuid.localeCompare(b.cn_uuid)),
    [
      { vnet_id: 4242, cn_uuid: CN_A, count: 0, membership: true, joined: 10 },
      { vnet_id: 4242, cn_uuid: CN_B, count: 1, membership: true },
    ],
  );
  assert.equal(d.log.length, 1);
  assert.deepEqual(d.log[0].entry.events, [
    { type: 'vl2', mac: '90:b8:d0:00:00:01' },
    { type: 'vl3', ip: '10.0.0.5', vlan_id: 5 },
  ]);
  assert.deepEqual(rowsTouched(nic(), nic({ cn_uuid: CN_B })), [
    { vnet: 4242, cn: CN_A },
    { vnet: 4242, cn: CN_B },
  ]);
});

test('delete: both rows removed, node count drops, one VL2', () => {
  const d = deriveOverlay(nic(), null, nodes({ [CN_A]: 2, [CN_B]: 1 }), CFG, opts());
  assert.deepEqual(d.mappings, [
    { type: 'del', key: 'ovl/ip/00004242/10.0.0.5' },
    { type: 'del', key: 'ovl/mac/00004242/90b8d0000001' },
  ]);
  assert.deepEqual(d.vnodes, [{ vnet_id: 4242, cn_uuid: CN_A, count: 1, membership: false }]);
  assert.deepEqual(events(d), [[4242, 'vl2', '90:b8:d0:00:00:01']]);
});

test('IP and node change together: VL2, VL3 old, VL3 new', () => {
  const d = deriveOverlay(nic(), nic({ ip: '10.0.0.7', cn_uuid: CN_B }), nodes({ [CN_A]: 1 }), CFG, opts());
  assert.deepEqual(events(d), [
    [4242, 'vl2', '90:b8:d0:00:00:01'],
    [4242, 'vl3', '10.0.0.5'],
    [4242, 'vl3', '10.0.0.7'],
  ]);
});

test('moving to another vnet is a delete on the old one and a create on the new one: one entry each', () => {
  const other = { ...NET, uuid: '22222222-2222-4222-8222-222222222222', vnet_id: 77 };
  const rows: VnetNodes = new Map([
    [4242, new Map([[CN_A, { count: 1, joined: 5 }]])],
    [77, new Map()],
  ]);
  const before = nic();
  const after = nic({ network: other, ip: '192.168.0.2' });
  assert.deepEqual(rowsTouched(before, after), [
    { vnet: 4242, cn: CN_A },
    { vnet: 77, cn: CN_A },
  ]);
  const d = deriveOverlay(before, after, rows, CFG, opts());
  assert.deepEqual(d.mappings.map((o) => [o.type, o.key]), [
    ['del', 'ovl/ip/00004242/10.0.0.5'],
    ['del', 'ovl/mac/00004242/90b8d0000001'],
    ['put', 'ovl/ip/00000077/192.168.0.2'],
    ['put', 'ovl/mac/00000077/90b8d0000001'],
  ]);
  assert.deepEqual(events(d), [
    [4242, 'vl2', '90:b8:d0:00:00:01'],
    [77, 'vl3', '192.168.0.2'],
  ]);
  assert.deepEqual(
    d.log.map((l) => l.id),
    ['id-001', 'id-002'],
  );
});

test('non-fabric NICs never touch the overlay', () => {
  const plain = { ...NET, fabric: false, vnet_id: undefined, nic_tag: 'external' };
  assert.equal(fabricPlacement(nic({ network: plain })), undefined);
  assert.equal(fabricPlacement(nic({ belongs_to_type: 'server' })), undefined);
  assert.equal(fabricPlacement(nic({ cn_uuid: undefined })), undefined);
  assert.equal(fabricPlacement(nic({ ip: undefined })), undefined);
  const d = deriveOverlay(null, nic({ network: plain }), nodes({ [CN_B]: 1 }), CFG, opts());
  assert.deepEqual(d, { mappings: [], underlay: [], vnodes: [], log: [] });
});

test('a NIC that stops being fabric (cn_uuid dropped) is removed with a VL2', () => {
  const d = deriveOverlay(nic(), nic({ belongs_to_type: 'other' }), nodes({ [CN_B]: 1, [CN_A]: 1 }), CFG, opts());
  assert.equal(d.mappings.filter((o) => o.type === 'del').length, 2);
  assert.deepEqual(events(d).map((e) => e[1]), ['vl2']);
});

const UL_NET = { uuid: '33333333-3333-4333-8333-333333333333', nic_tag: 'sdc_underlay', vlan_id: 0 };
function serverNic(over: Partial<NicOverlayView> = {}): NicOverlayView {
  return { mac: '90:b8:d0:00:00:99', belongs_to_type: 'server', belongs_to_uuid: CN_A, ip: '172.16.0.10', underlay: true, network: UL_NET, ...over };
}

test('underlay NIC create puts ovl/ul/<cn> with port 4789; delete removes it; no events', () => {
  const d = deriveOverlay(null, serverNic(), nodes({ [CN_B]: 1 }), CFG, opts());
  assert.deepEqual(d.underlay, [
    { type: 'put', key: `ovl/ul/${CN_A}`, value: JSON.stringify({ cn_uuid: CN_A, ip: '172.16.0.10', port: 4789 }) },
  ]);
  assert.deepEqual(d.log, []);
  assert.deepEqual(deriveOverlay(serverNic(), null, new Map(), CFG, opts()).underlay, [{ type: 'del', key: `ovl/ul/${CN_A}` }]);
});

test('underlay rules: only server NICs on the underlay tag with underlay=true; IP change rewrites; turning it off deletes', () => {
  assert.equal(underlayOf(serverNic({ underlay: false }), CFG), undefined);
  assert.equal(underlayOf(serverNic({ network: { ...UL_NET, nic_tag: 'admin' } }), CFG), undefined);
  assert.equal(underlayOf(serverNic({ belongs_to_type: 'zone' }), CFG), undefined);
  assert.deepEqual(deriveOverlay(serverNic(), serverNic({ state: 'x' } as Partial<NicOverlayView>), new Map(), CFG, opts()).underlay, []);
  const moved = deriveOverlay(serverNic(), serverNic({ ip: '172.16.0.11' }), new Map(), CFG, opts());
  assert.deepEqual(moved.underlay.map((o) => o.type), ['put']);
  assert.deepEqual(deriveOverlay(serverNic(), serverNic({ underlay: false }), new Map(), CFG, opts()).underlay, [
    { type: 'del', key: `ovl/ul/${CN_A}` },
  ]);
});

test('derivationOps: a leaving node leaves a gone record naming when it joined; one log key per vnet', () => {
  const d = deriveOverlay(nic(), null, nodes({ [CN_A]: 1, [CN_B]: 1 }), CFG, opts());
  const ops = derivationOps(d);
  assert.deepEqual(
    ops.filter((o) => !o.key.startsWith('ovl/ip/') && !o.key.startsWith('ovl/mac/')),
    [
      { type: 'del', key: `ovl/vnode/00004242/${CN_A}` },
      { type: 'put', key: `ovl/vgone/00004242/${CN_A}/000000000010`, value: JSON.stringify({ vnet_id: 4242, cn_uuid: CN_A, joined: 10 }) },
      { type: 'put', key: 'ovl/vlog/00004242/id-001', value: JSON.stringify({ vnet_id: 4242, created: NOW, events: [{ type: 'vl2', mac: '90:b8:d0:00:00:01' }] }) },
    ],
  );
  const c = derivationOps(deriveOverlay(null, nic(), new Map(), CFG, opts()));
  assert.deepEqual(c.find((o) => o.key.startsWith('ovl/vnode/')), {
    type: 'put',
    key: `ovl/vnode/00004242/${CN_A}`,
    value: JSON.stringify({ vnet_id: 4242, cn_uuid: CN_A, count: 1 }),
  });
});

test('the ops of a write do not depend on how many nodes are on the vnet; default ids are UUIDv7', () => {
  const few = derivationOps(deriveOverlay(nic(), nic({ cn_uuid: CN_B }), nodes({ [CN_A]: 1 }), CFG, opts()));
  const d = deriveOverlay(nic(), nic({ cn_uuid: CN_B }), nodes({ [CN_A]: 1, [CN_C]: 7 }), CFG);
  assert.equal(derivationOps(d).length, few.length);
  assert.match(d.log[0].id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

test('a node whose underlay address changes or goes is moved; a new record or the same address is not', () => {
  const rec = { cn_uuid: CN_B, ip: '198.18.0.2', port: 4789 };
  assert.equal(underlayMoved(rec, { ...rec, ip: '198.18.0.12' }), true);
  assert.equal(underlayMoved(rec, { ...rec, port: 4790 }), true);
  assert.equal(underlayMoved(rec, undefined), true);
  assert.equal(underlayMoved(rec, { ...rec }), false);
  assert.equal(underlayMoved(undefined, rec), false);
});

test('an underlay move: one multi-vnet log entry, a part per vnet of the node with a VL2 for each of its fabric NICs there', () => {
  const NET2 = { ...NET, uuid: '22222222-2222-4222-8222-222222222222', vnet_id: 7 };
  const nics = [
    nic({ mac: '90:b8:d0:00:00:02', cn_uuid: CN_B }),
    nic({ mac: '90:B8:D0:00:00:01', cn_uuid: CN_B }),
    nic({ mac: '90:b8:d0:00:00:03', cn_uuid: CN_B, network: NET2 }),
    // Not on the node, not a fabric NIC, no IP: nothing.
    nic({ mac: '90:b8:d0:00:00:04', cn_uuid: CN_A }),
    nic({ mac: '90:b8:d0:00:00:05', cn_uuid: CN_B, belongs_to_type: 'server' }),
    nic({ mac: '90:b8:d0:00:00:06', cn_uuid: CN_B, ip: undefined }),
  ];
  assert.deepEqual(deriveUnderlayMove(CN_B, nics, 256, opts()), {
    id: 'id-001',
    entry: {
      created: NOW,
      vnets: [
        { vnet_id: 7, events: [{ type: 'vl2', mac: '90:b8:d0:00:00:03' }] },
        { vnet_id: 4242, events: [{ type: 'vl2', mac: '90:b8:d0:00:00:01' }, { type: 'vl2', mac: '90:b8:d0:00:00:02' }] },
      ],
    },
  });
  // The revision's event budget bounds it; a node without fabric NICs (or no budget) writes nothing.
  assert.deepEqual(deriveUnderlayMove(CN_B, nics, 2, opts())?.entry.vnets.map((p) => p.events.length), [1, 1]);
  assert.equal(deriveUnderlayMove(CN_C, nics, 256, opts()), undefined);
  assert.equal(deriveUnderlayMove(CN_B, nics, 0, opts()), undefined);
});
