/**
 * The router feed agents follow (GET /routers/feed) over the controller's router
 * directory, in process: the routers of the owners asked for, with their networks; a
 * request naming the version it has is held until those owners' answer changes (another
 * owner's router, or a change the answer does not show, does not release it); bad
 * parameters are refused naming the field; closing the app answers held requests.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RouterDirectory } from '../../src/napi/router-directory.js';
import { NETWORK_PREFIX, NIC_PREFIX, ROUTER_PREFIX } from '../../src/napi/keys.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { WatchHandlers, WatchOptions } from '../../src/store/types.js';
import { type TestNapi, startTestNapi } from '../helpers/napi.js';
import { OWNER_A, OWNER_B } from '../helpers/napi-fixtures.js';

let n: TestNapi;
const net: Record<string, string> = {};

async function fabricNet(owner: string, vlan: number, name: string, subnet24: string): Promise<string> {
  const r = await n.call('POST', `/fabrics/${owner}/vlans/${vlan}/networks`, {
    name, subnet: `${subnet24}.0/24`, provision_start_ip: `${subnet24}.10`, provision_end_ip: `${subnet24}.250`, gateway: `${subnet24}.1`,
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.uuid;
}

const feed = (q: string) => n.call('GET', `/routers/feed?${q}`);

/** Whether p settles within ms. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
}

before(async () => {
  n = await startTestNapi({ overlayMtu: 1400, routerFeed: { maxWaitMs: 10_000 } });
  for (const o of [OWNER_A, OWNER_B]) for (const v of [2, 3]) assert.equal((await n.call('POST', `/fabrics/${o}/vlans`, { vlan_id: v })).status, 200);
  net.a1 = await fabricNet(OWNER_A, 2, 'a1', '10.60.1');
  net.a2 = await fabricNet(OWNER_A, 3, 'a2', '10.60.2');
  net.b1 = await fabricNet(OWNER_B, 2, 'b1', '10.60.1');
  net.b2 = await fabricNet(OWNER_B, 3, 'b2', '10.60.2');
});
after(async () => {
  await n.close();
});

test('the routers of the owners asked for, with their networks; a held request answers when theirs change, not for another owner', async () => {
  const empty = await feed(`owner_uuids=${OWNER_A}`);
  assert.equal(empty.status, 200);
  assert.deepEqual(empty.body.routers, []);
  const held = feed(`owner_uuids=${OWNER_A}&since=${empty.body.version}&wait=8000`);
  // Another owner's router: A's answer is the same, the request stays held.
  assert.equal((await n.call('POST', `/fabrics/${OWNER_B}/routers`, { name: 'rb', networks: [net.b1, net.b2] })).status, 200);
  assert.equal(await settlesWithin(held, 300), false, 'held while only B changed');
  const t0 = Date.now();
  const r = await n.call('POST', `/fabrics/${OWNER_A}/routers`, { name: 'ra', networks: [net.a1, net.a2] });
  assert.equal(r.status, 200);
  const got = await held;
  assert.ok(Date.now() - t0 < 5000, 'answered as the router was written, not at the end of the wait');
  assert.notEqual(got.body.version, empty.body.version);
  assert.deepEqual(got.body.routers.map((x: { uuid: string }) => x.uuid), [r.body.uuid]);
  assert.deepEqual(got.body.routers[0].networks.map((x: { uuid: string; gateway: string; fabric: boolean; vnet_id: number }) => [x.uuid, x.gateway, x.fabric, typeof x.vnet_id]), [
    [net.a1, '10.60.1.1', true, 'number'],
    [net.a2, '10.60.2.1', true, 'number'],
  ].sort((a, b) => (a[0]! < b[0]! ? -1 : 1)));
  // Both owners in one request, in owner order.
  const both = await feed(`owner_uuids=${OWNER_B},${OWNER_A}`);
  assert.deepEqual(both.body.routers.map((x: { owner_uuid: string }) => x.owner_uuid), [OWNER_A, OWNER_B].sort());
});

test('a network change the answer shows releases a held request; a change it does not show (a router\'s name) does not', async () => {
  const now = await feed(`owner_uuids=${OWNER_A}`);
  const [router] = now.body.routers;
  const held = feed(`owner_uuids=${OWNER_A}&since=${now.body.version}&wait=8000`);
  assert.equal((await n.call('PUT', `/fabrics/${OWNER_A}/routers/${router.uuid}`, { name: 'renamed' })).status, 200);
  assert.equal(await settlesWithin(held, 300), false, 'the name is not in the answer');
  assert.equal((await n.call('PUT', `/networks/${net.a2}`, { mtu: 1300 })).status, 200);
  const got = await held;
  assert.notEqual(got.body.version, now.body.version);
  assert.equal(got.body.routers[0].networks.find((x: { uuid: string }) => x.uuid === net.a2).mtu, 1300);
});

test('a held request ends with its wait and the same version; wait=0 and no since answer at once', async () => {
  const now = await feed(`owner_uuids=${OWNER_B}`);
  const t0 = Date.now();
  const same = await feed(`owner_uuids=${OWNER_B}&since=${now.body.version}&wait=200`);
  assert.ok(Date.now() - t0 >= 150);
  assert.equal(same.body.version, now.body.version);
  assert.equal((await feed(`owner_uuids=${OWNER_B}&since=${now.body.version}&wait=0`)).body.version, now.body.version);
  // An older version than the current one answers at once.
  assert.equal(await settlesWithin(feed(`owner_uuids=${OWNER_B}&since=0123&wait=8000`), 1000), true);
});

test('bad parameters are refused naming the field', async () => {
  const cases: Array<[string, string]> = [
    ['', 'owner_uuids'],
    ['owner_uuids=not-a-uuid', 'owner_uuids'],
    [`owner_uuids=${OWNER_A},`, 'owner_uuids'],
    [`owner_uuids=${OWNER_A}&wait=-1`, 'wait'],
    [`owner_uuids=${OWNER_A}&wait=soon`, 'wait'],
    [`owner_uuids=${OWNER_A}&since=${'x'.repeat(10)}&wait=10`, 'since'],
    [`owner_uuids=${Array.from({ length: 1001 }, () => OWNER_A).join(',')}`, 'owner_uuids'],
  ];
  for (const [q, field] of cases) {
    const r = await feed(q);
    assert.equal(r.status, 422, q);
    assert.deepEqual(r.body.errors.map((e: { field: string }) => e.field), [field], q);
  }
});

test('the directory follows router and network records only, each prefix on its own watch (one etcd range over both would carry every NIC write)', async () => {
  const watched: string[][] = [];
  const store = new MemoryStore();
  const spy = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'watch') return (opts: WatchOptions, h: WatchHandlers) => (watched.push([...(opts.prefixes ?? [opts.prefix ?? ''])]), target.watch(opts, h));
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  const d = new RouterDirectory(spy);
  await d.start();
  d.stop();
  await store.close();
  assert.deepEqual(watched.map((w) => w.join(' ')).sort(), [NETWORK_PREFIX, ROUTER_PREFIX].sort());
  assert.ok(NETWORK_PREFIX < NIC_PREFIX && NIC_PREFIX < ROUTER_PREFIX, 'NIC records sort between the two');
});

test('closing the app answers held requests at once', async () => {
  const m = await startTestNapi({ routerFeed: {} });
  const now = await m.call('GET', `/routers/feed?owner_uuids=${OWNER_A}`);
  const held = m.call('GET', `/routers/feed?owner_uuids=${OWNER_A}&since=${now.body.version}&wait=30000`);
  await new Promise((r) => setTimeout(r, 50));
  const t0 = Date.now();
  await m.close();
  assert.equal((await held).status, 200);
  assert.ok(Date.now() - t0 < 5000);
});
