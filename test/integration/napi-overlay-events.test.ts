/**
 * The overlay side of NIC writes, end to end through the API: create, IP change, node
 * change and delete produce exactly the spec's mappings (asserted on the store's ovl/
 * keys) and per-node events (as a mapping index on the same store derives them from the
 * vnet's log), plus underlay records for underlay NICs.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_UUID, type TestNapi, startTestNapi } from '../helpers/napi.js';
import { MappingIndex } from '../../src/mapping/index.js';
import { sweepLog } from '../../src/overlay/gc.js';
import { GONE_PREFIX, NODE_STATE_PREFIX, OVERLAY_PREFIX, VLOG_MULTI_PREFIX, VLOG_PREFIX } from '../../src/overlay/keys.js';
import { ipFromBytes, macFromBytes } from '../../src/net/addr.js';

const OWNER = 'abcdef00-0000-4000-8000-00000000aaaa';
const CN1 = '11111111-0000-4000-8000-000000000001';
const CN2 = '22222222-0000-4000-8000-000000000002';
const CN3 = '33333333-0000-4000-8000-000000000003';
const VM = (n: number): string => `0000000${n}-aaaa-4000-8000-000000000000`;

let napi: TestNapi;
let index: MappingIndex;
let net: { uuid: string; vnet_id: number; vlan_id: number };
let vnet: string;

before(async () => {
  napi = await startTestNapi();
  index = new MappingIndex({ store: napi.store });
  await index.start();
  let r = await napi.call('POST', `/fabrics/${OWNER}/vlans`, { vlan_id: 12, name: 'v12' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  r = await napi.call('POST', `/fabrics/${OWNER}/vlans/12/networks`, {
    name: 'fab',
    subnet: '192.168.50.0/24',
    provision_start_ip: '192.168.50.10',
    provision_end_ip: '192.168.50.200',
    gateway: '192.168.50.1',
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  net = r.body;
  vnet = String(net.vnet_id).padStart(8, '0');
});
after(async () => {
  index.close();
  await napi.close();
});

/** The log's own keys (entries, gone records, node states) are left out unless asked for. */
async function overlayKeys(prefix = OVERLAY_PREFIX, withLog = false): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const kv of (await napi.store.range({ prefix })).kvs) {
    if (!withLog && [VLOG_PREFIX, GONE_PREFIX, NODE_STATE_PREFIX].some((p) => kv.key.startsWith(p))) continue;
    out[kv.key] = JSON.parse(kv.value);
  }
  return out;
}

/** Events per node as [type, ip-or-mac], oldest first; then removes them (LOG_RM). */
async function takeEvents(): Promise<Record<string, Array<[string, string]>>> {
  await index.waitForRevision(await napi.store.revision());
  const out: Record<string, Array<[string, string]>> = {};
  for (const cn of [CN1, CN2, CN3]) {
    const evs = index.pendingEvents(cn);
    for (const ev of evs) {
      assert.equal(ev.vnetId, net.vnet_id);
      (out[cn] ??= []).push([ev.type, ev.type === 'vl3' ? ipFromBytes(ev.ip) : macFromBytes(ev.mac)]);
      if (ev.type === 'vl3') assert.equal(ev.vlan, 12);
    }
    if (evs.length > 0) assert.equal(await index.removeEvents(evs.map((e) => e.id)), evs.length);
  }
  return out;
}

async function createFabricNic(vm: string, cn: string, extra: Record<string, unknown> = {}) {
  const r = await napi.call('POST', `/networks/${net.uuid}/nics`, {
    belongs_to_uuid: vm,
    belongs_to_type: 'zone',
    owner_uuid: OWNER,
    cn_uuid: cn,
    ...extra,
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

test('create, IP change, node change, delete: mappings, node counts and per-node events', async () => {
  // First NIC on CN1: the vnet had no nodes, so no events.
  const a = await createFabricNic(VM(1), CN1);
  assert.equal(a.nic_tag, `sdc_overlay/${net.vnet_id}`);
  assert.deepEqual(await takeEvents(), {});
  const macA = a.mac.replace(/:/g, '');
  assert.deepEqual(await overlayKeys(), {
    [`ovl/ip/${vnet}/${a.ip}`]: { ip: a.ip, mac: a.mac, vnet_id: net.vnet_id, cn_uuid: CN1, vlan_id: 12 },
    [`ovl/mac/${vnet}/${macA}`]: { mac: a.mac, vnet_id: net.vnet_id, cn_uuid: CN1, vlan_id: 12, ip: a.ip },
    [`ovl/vnode/${vnet}/${CN1}`]: { vnet_id: net.vnet_id, cn_uuid: CN1, count: 1 },
  });
  // The VL3 is recorded once, for the vnet, whoever is on it.
  const logged = Object.values(await overlayKeys(VLOG_PREFIX, true));
  assert.deepEqual(logged.map((e) => (e as { events: unknown }).events), [[{ type: 'vl3', ip: a.ip, vlan_id: 12 }]]);

  // Second NIC, on CN2: only CN1 was on the vnet before the write.
  const b = await createFabricNic(VM(2), CN2);
  assert.deepEqual(await takeEvents(), { [CN1]: [['vl3', b.ip]] });

  // Third NIC, on CN1 again: both nodes get the VL3 (CN1 already had a NIC there).
  const c = await createFabricNic(VM(3), CN1);
  assert.deepEqual(await takeEvents(), { [CN1]: [['vl3', c.ip]], [CN2]: [['vl3', c.ip]] });
  assert.deepEqual((await overlayKeys(`ovl/vnode/${vnet}/`))[`ovl/vnode/${vnet}/${CN1}`], { vnet_id: net.vnet_id, cn_uuid: CN1, count: 2 });

  // An update that changes nothing overlay-relevant (net-agent's state PUT): nothing.
  const snapshot = await overlayKeys();
  let r = await napi.call('PUT', `/nics/${a.mac}`, { state: 'running' });
  assert.equal(r.status, 200);
  assert.deepEqual(await takeEvents(), {});
  assert.deepEqual(await overlayKeys(), snapshot);

  // IP change: old row removed, new row put, VL3 for the old and the new IP to every node.
  r = await napi.call('PUT', `/nics/${a.mac}`, { ip: '192.168.50.99' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.ip, '192.168.50.99');
  const ev = await takeEvents();
  assert.deepEqual(ev, {
    [CN1]: [['vl3', a.ip], ['vl3', '192.168.50.99']],
    [CN2]: [['vl3', a.ip], ['vl3', '192.168.50.99']],
  });
  let keys = await overlayKeys();
  assert.equal(keys[`ovl/ip/${vnet}/${a.ip}`], undefined);
  assert.deepEqual(keys[`ovl/ip/${vnet}/192.168.50.99`], { ip: '192.168.50.99', mac: a.mac, vnet_id: net.vnet_id, cn_uuid: CN1, vlan_id: 12 });
  assert.equal((keys[`ovl/mac/${vnet}/${macA}`] as { ip: string }).ip, '192.168.50.99');

  // Migration of NIC a from CN1 to CN3: VL2 for the MAC then VL3 for the IP, to CN1 and CN2.
  r = await napi.call('PUT', `/nics/${a.mac}`, { cn_uuid: CN3 });
  assert.equal(r.status, 200);
  assert.deepEqual(await takeEvents(), {
    [CN1]: [['vl2', a.mac], ['vl3', '192.168.50.99']],
    [CN2]: [['vl2', a.mac], ['vl3', '192.168.50.99']],
  });
  keys = await overlayKeys();
  assert.equal((keys[`ovl/ip/${vnet}/192.168.50.99`] as { cn_uuid: string }).cn_uuid, CN3);
  assert.equal((keys[`ovl/mac/${vnet}/${macA}`] as { cn_uuid: string }).cn_uuid, CN3);
  assert.equal((keys[`ovl/vnode/${vnet}/${CN1}`] as { count: number }).count, 1);
  assert.equal((keys[`ovl/vnode/${vnet}/${CN3}`] as { count: number }).count, 1);

  // Delete b (the only NIC on CN2): rows removed, VL2 to every node on the vnet (CN2 too).
  r = await napi.call('DELETE', `/nics/${b.mac}`);
  assert.equal(r.status, 204);
  assert.deepEqual(await takeEvents(), { [CN1]: [['vl2', b.mac]], [CN2]: [['vl2', b.mac]], [CN3]: [['vl2', b.mac]] });
  keys = await overlayKeys();
  assert.equal(keys[`ovl/ip/${vnet}/${b.ip}`], undefined);
  assert.equal(keys[`ovl/mac/${vnet}/${b.mac.replace(/:/g, '')}`], undefined);
  assert.equal(keys[`ovl/vnode/${vnet}/${CN2}`], undefined);

  // Clean up the rest: once every node removed its events, the sweep leaves nothing.
  for (const m of [a.mac, c.mac]) assert.equal((await napi.call('DELETE', `/nics/${m}`)).status, 204);
  await takeEvents();
  for (let i = 0; i < 3; i++) {
    await sweepLog(napi.store, index);
    await index.waitForRevision(await napi.store.revision());
  }
  assert.deepEqual(await overlayKeys(OVERLAY_PREFIX, true), {});
});

test('fabric NICs need cn_uuid; non-fabric and non-zone NICs write no overlay rows', async () => {
  const r = await napi.call('POST', `/networks/${net.uuid}/nics`, { belongs_to_uuid: VM(5), belongs_to_type: 'zone', owner_uuid: OWNER });
  assert.equal(r.status, 422);
  assert.deepEqual(r.body, {
    code: 'InvalidParameters',
    message: 'Missing parameters',
    errors: [{ field: 'cn_uuid', code: 'MissingParameter', message: 'Missing parameter' }],
  });
  const other = await napi.call('POST', `/networks/${net.uuid}/nics`, {
    belongs_to_uuid: VM(6),
    belongs_to_type: 'other',
    owner_uuid: OWNER,
    cn_uuid: CN1,
  });
  assert.equal(other.status, 200);
  assert.equal(Object.keys(await overlayKeys('ovl/ip/')).length, 0);
  assert.equal((await napi.call('DELETE', `/nics/${other.body.mac}`)).status, 204);
});

test('the fabric gateway: taking it sets gateway_provisioned, releasing it clears it', async () => {
  const gw = await createFabricNic(ADMIN_UUID, CN1, { ip: '192.168.50.1', owner_uuid: ADMIN_UUID, belongs_to_type: 'zone' });
  assert.equal(gw.gateway_provisioned, true);
  let n = await napi.call('GET', `/networks/${net.uuid}`);
  assert.equal(n.body.gateway_provisioned, true);
  assert.equal((await napi.call('DELETE', `/nics/${gw.mac}`)).status, 204);
  n = await napi.call('GET', `/networks/${net.uuid}`);
  assert.equal(n.body.gateway_provisioned, false);
  // The admin reservation survives the release.
  const ip = await napi.call('GET', `/networks/${net.uuid}/ips/192.168.50.1`);
  assert.equal(ip.body.reserved, true);
  assert.equal(ip.body.belongs_to_uuid, undefined);
  await takeEvents();
});

test('underlay NICs define the node underlay record; other server NICs do not', async () => {
  const cn = '44444444-0000-4000-8000-000000000004';
  const ul = await napi.call('POST', '/networks', {
    name: 'underlay',
    nic_tag: 'sdc_underlay',
    vlan_id: 0,
    subnet: '172.20.0.0/24',
    provision_start_ip: '172.20.0.10',
    provision_end_ip: '172.20.0.100',
  });
  assert.equal(ul.status, 200, JSON.stringify(ul.body));
  let r = await napi.call('POST', `/networks/${ul.body.uuid}/nics`, { belongs_to_uuid: cn, belongs_to_type: 'server', owner_uuid: ADMIN_UUID, underlay: true });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.underlay, true);
  assert.deepEqual(await overlayKeys('ovl/ul/'), { [`ovl/ul/${cn}`]: { cn_uuid: cn, ip: '172.20.0.10', port: 4789 } });
  // Moving the address rewrites the record.
  r = await napi.call('PUT', `/nics/${r.body.mac}`, { ip: '172.20.0.50' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(await overlayKeys('ovl/ul/'), { [`ovl/ul/${cn}`]: { cn_uuid: cn, ip: '172.20.0.50', port: 4789 } });
  const zone = await napi.call('POST', `/networks/${ul.body.uuid}/nics`, { belongs_to_uuid: VM(7), belongs_to_type: 'zone', owner_uuid: ADMIN_UUID, underlay: true });
  assert.equal(zone.status, 422);
  assert.deepEqual(zone.body.errors, [{ field: 'underlay', code: 'InvalidParameter', message: 'Only server NICs can be underlay NICs' }]);
  assert.equal((await napi.call('DELETE', `/nics/${r.body.mac}`)).status, 204);
  assert.deepEqual(await overlayKeys('ovl/ul/'), {});
  assert.deepEqual(await takeEvents(), {});
});

test('an underlay NIC whose address changes or goes shoots down its node\'s NICs on every vnet it shares (issue 21)', async () => {
  const ul = await napi.call('POST', '/networks', {
    name: 'underlay-move', nic_tag: 'sdc_underlay', vlan_id: 0, subnet: '172.21.0.0/24', provision_start_ip: '172.21.0.10', provision_end_ip: '172.21.0.100',
  });
  assert.equal(ul.status, 200, JSON.stringify(ul.body));
  const a = await createFabricNic(VM(1), CN1);
  const b1 = await createFabricNic(VM(2), CN2);
  const b2 = await createFabricNic(VM(3), CN2);
  let r = await napi.call('POST', `/networks/${ul.body.uuid}/nics`, { belongs_to_uuid: CN2, belongs_to_type: 'server', owner_uuid: ADMIN_UUID, underlay: true });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const ulMac = r.body.mac as string;
  await takeEvents();
  const vl2s = [b1.mac, b2.mac].sort().map((m): [string, string] => ['vl2', m]);

  // The address changes: every node on the vnet (CN1; CN2 itself) forgets CN2's MACs.
  r = await napi.call('PUT', `/nics/${ulMac}`, { ip: '172.21.0.50' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(await takeEvents(), { [CN1]: vl2s, [CN2]: vl2s });
  // One multi-vnet log entry, its part on this vnet with both VL2s, whatever the number of peers.
  const entries = (await napi.store.range({ prefix: VLOG_MULTI_PREFIX })).kvs.map((kv) => JSON.parse(kv.value) as { vnets: Array<{ vnet_id: number; events: unknown[] }> });
  assert.equal(entries.length, 1);
  assert.deepEqual(entries[0]!.vnets.map((p) => [p.vnet_id, p.events.length]), [[Number(vnet), 2]]);

  // A write that keeps the address: nothing.
  r = await napi.call('PUT', `/nics/${ulMac}`, { state: 'running' });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.deepEqual(await takeEvents(), {});

  // The underlay NIC goes: the node is unreachable, peers forget its NICs too.
  assert.equal((await napi.call('DELETE', `/nics/${ulMac}`)).status, 204);
  assert.deepEqual(await takeEvents(), { [CN1]: vl2s, [CN2]: vl2s });
  for (const n of [a, b1, b2]) assert.equal((await napi.call('DELETE', `/nics/${n.mac}`)).status, 204);
  await takeEvents();
});
