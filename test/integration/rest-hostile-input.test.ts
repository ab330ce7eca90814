/**
 * The hostile-input suite (issue #13): every REST route the app has — enumerated from the
 * app itself, so a new route is covered without touching this file — gets random and
 * mutated JSON (wrong types, huge strings and numbers, unicode, __proto__/constructor
 * keys, deep nesting, truncated and oversized bodies) and hostile query strings and path
 * parameters. Every answer must be a NAPI error body with a 4xx status (never a 500, never
 * a crash), and a refused request must leave the store exactly as it was. A request that
 * happens to be valid may succeed; the store is then re-read.
 *
 * Seeded: RHUMB_FUZZ_SEED replays a run; RHUMB_FUZZ_ROUNDS sets requests per route.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { registeredRoutes } from '../../src/rest/auth.js';
import { type Json, hostileBody, hostileQuery, prng } from '../helpers/hostile.js';
import { type TestNapi, startTestNapi } from '../helpers/napi.js';
import { dump } from '../helpers/napi-fixtures.js';

const SEED = Number(process.env.RHUMB_FUZZ_SEED ?? Date.now() % 1_000_000);
const ROUNDS = Number(process.env.RHUMB_FUZZ_ROUNDS ?? 24);

const A = 'aaaaaaaa-1111-4111-8111-111111111111';
const N1 = 'c1111111-0000-4000-8000-000000000001';
const VM = 'a0000000-0000-4000-8000-00000000000a';

let napi: TestNapi;
const ids: Record<string, string> = {};

async function ok(method: string, url: string, body?: unknown) {
  const r = await napi.call(method, url, body);
  assert.ok(r.status < 300, `${method} ${url}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as Record<string, string>;
}

before(async () => {
  // No nft -c here (the fw-hostile-text suite runs it): a fuzzed valid rule would spawn nft.
  napi = await startTestNapi({ console: true, wireguard: { maxWaitMs: 20 }, fw: { verify: false, maxWaitMs: 20 }, auth: { limits: { maxInFlight: 64, rate: null } } });
  await ok('POST', '/nic_tags', { name: 'external' });
  ids.net = (await ok('POST', '/networks', { name: 'ext', nic_tag: 'external', vlan_id: 0, subnet: '198.18.7.0/24', provision_start_ip: '198.18.7.10', provision_end_ip: '198.18.7.250', gateway: '198.18.7.1' })).uuid!;
  ids.underlay = (await ok('POST', '/networks', { name: 'underlay', nic_tag: 'sdc_underlay', vlan_id: 0, subnet: '198.18.0.0/24', provision_start_ip: '198.18.0.10', provision_end_ip: '198.18.0.250' })).uuid!;
  await ok('POST', `/fabrics/${A}/vlans`, { vlan_id: 5, name: 'blue' });
  ids.fabricNet = (await ok('POST', `/fabrics/${A}/vlans/5/networks`, { name: 'blue', subnet: '10.0.0.0/24', provision_start_ip: '10.0.0.10', provision_end_ip: '10.0.0.250', gateway: '10.0.0.1' })).uuid!;
  ids.mac = (await ok('POST', '/nics', { owner_uuid: A, belongs_to_uuid: VM, belongs_to_type: 'zone', network_uuid: ids.fabricNet, cn_uuid: N1 })).mac!;
  ids.mac2 = (await ok('POST', '/nics', { owner_uuid: A, belongs_to_uuid: N1, belongs_to_type: 'server', network_uuid: ids.net, cn_uuid: N1 })).mac!;
  ids.pool = (await ok('POST', '/network_pools', { name: 'pool', networks: [ids.net] })).uuid!;
  ids.aggr = (await ok('POST', '/aggregations', { name: 'aggr0', macs: [ids.mac2] })).id!;
  ids.rule = (await ok('POST', '/rules', { rule: 'FROM any TO all vms ALLOW tcp PORT 22', owner_uuid: A, enabled: true })).uuid!;
  await ok('PUT', `/fw/instances/${VM}`, { owner_uuid: A, tags: { role: 'web' }, firewall_enabled: true });
  await ok('POST', `/fw/docker/containers/${VM}`, { owner_uuid: A, name: 'web' });
});

after(async () => {
  await napi?.close();
});

/** A valid path parameter for each name the routes use (sometimes hostile instead). */
function paramValue(route: string, name: string, r: () => number): string {
  if (r() < 0.25) {
    const hostile = ['..', '%00', 'x'.repeat(190), '__proto__', 'constructor', '-1', '😀', '%2e%2e%2f', "'; drop", '99999999999999999999'];
    return encodeURIComponent(hostile[Math.floor(r() * hostile.length)]!).slice(0, 199);
  }
  switch (name) {
    case 'uuid':
      return route.startsWith('/rules') ? ids.rule! : route.startsWith('/fw') || route.startsWith('/firewalls') ? VM : route.startsWith('/network_pools') ? ids.pool! : route.includes('/vlans/') ? ids.fabricNet! : ids.net!;
    case 'owner_uuid':
      return A;
    case 'vlan_id':
      return '5';
    case 'network_uuid':
      return ids.net!;
    case 'mac':
      return ids.mac!;
    case 'name':
      return 'external';
    case 'id':
      return ids.aggr!;
    case 'ip_addr':
      return '198.18.7.20';
    case 'cn_uuid':
      return N1;
    case 'file':
      return 'index.html';
    default:
      return 'x';
  }
}

/** A valid-looking body or query for the route, for the mutations to start from. */
function template(method: string, url: string): Record<string, Json> {
  const t: Array<[RegExp, Record<string, Json>]> = [
    [/^\/nic_tags/, { name: 'tag9', mtu: 1500 }],
    [/^\/networks\/:network_uuid\/ips/, { reserved: true, owner_uuid: A, belongs_to_uuid: VM, belongs_to_type: 'zone' }],
    [/^\/networks\/:network_uuid\/nics/, { owner_uuid: A, belongs_to_uuid: VM, belongs_to_type: 'zone' }],
    [/^\/networks/, { name: 'n9', nic_tag: 'external', vlan_id: 0, subnet: '198.18.9.0/24', provision_start_ip: '198.18.9.10', provision_end_ip: '198.18.9.20', owner_uuids: [A], routes: { '10.1.0.0/16': '198.18.9.1' } }],
    [/^\/network_pools/, { name: 'p9', networks: [ids.net ?? ''], owner_uuids: [A] }],
    [/^\/aggregations/, { name: 'aggr9', macs: [ids.mac2 ?? ''], lacp_mode: 'active' }],
    [/^\/search/, { ip: '198.18.7.20' }],
    [/^\/fabrics\/.*networks/, { name: 'f9', subnet: '10.9.0.0/24', provision_start_ip: '10.9.0.10', provision_end_ip: '10.9.0.20', gateway: '10.9.0.1' }],
    [/^\/fabrics/, { vlan_id: 9, name: 'green', description: 'd' }],
    [/^\/nics/, { owner_uuid: A, belongs_to_uuid: VM, belongs_to_type: 'zone', network_uuid: ids.fabricNet ?? '', cn_uuid: N1, allow_ip_spoofing: false }],
    [/^\/rules/, { rule: 'FROM tag "a" TO all vms ALLOW udp PORT 53', owner_uuid: A, enabled: true, description: 'x' }],
    [/^\/firewalls/, { limit: 10, offset: 0 }],
    [/^\/fw\/instances/, { owner_uuid: A, tags: { role: 'db', n: 3, b: true }, firewall_enabled: true }],
    [/^\/fw\/nodes/, { since: 0, wait: 0 }],
    [/^\/fw\/explain/, { from: '10.0.0.9', to: VM, proto: 'tcp', port: 22 }],
    [/^\/fw\/docker/, { owner_uuid: A, name: 'web2', links: [], exposed_ports: ['80/tcp'], published_ports: [{ host_port: 8080, container_port: 80 }], icc: false }],
    [/^\/encryption/, { mode: 'none', tunnel_subnet: '100.64.0.0/10', force: false }],
    [/^\/wireguard\/peers/, { since: 0, wait: 0 }],
    [/^\/wireguard\/nodes/, { public_key: Buffer.alloc(32, 7).toString('base64'), next_public_key: Buffer.alloc(32, 8).toString('base64'), endpoint: '198.18.0.11:51820' }],
    [/^\/nodes/, { node: N1, underlay_ip: '198.18.0.11', backend: 'kernel', vnets: [1], nics: 1, probes: [], sent_at: 1, shootdowns: [] }],
  ];
  const found = t.find(([re]) => re.test(url));
  const base = found ? found[1] : {};
  return method === 'GET' || method === 'DELETE' ? { limit: 10, offset: 0, ...base } : base;
}

describe(`hostile input on every REST route (seed ${SEED}, ${ROUNDS} per route)`, () => {
  it('answers 4xx with a NAPI error body, never 5xx, and a refused request changes nothing', async () => {
    const routes = registeredRoutes(napi.app).filter((x) => !x.access?.longPoll || x.url.startsWith('/fw/nodes') || x.url === '/wireguard/peers');
    assert.ok(routes.length >= 60, `only ${routes.length} routes found`);
    // Deletions last, so the objects the other routes name exist while they are fuzzed.
    routes.sort((a, b) => Number(a.method === 'DELETE') - Number(b.method === 'DELETE'));
    const r = prng(SEED);
    let state = await dump(napi.store);
    const tally = { requests: 0, refused: 0, accepted: 0 };
    for (const route of routes) {
      for (let i = 0; i < ROUNDS; i++) {
        const url = route.url.replace(/:([a-z_]+)/g, (_m, name: string) => paramValue(route.url, name, r));
        const tpl = template(route.method, route.url);
        const bodyless = route.method === 'GET' || route.method === 'DELETE';
        const query = bodyless || r() < 0.2 ? `?${hostileQuery(r, tpl)}` : '';
        const payload = bodyless && r() < 0.7 ? undefined : hostileBody(r, tpl);
        const contentType = r() < 0.9 ? 'application/json' : r() < 0.5 ? 'application/x-www-form-urlencoded' : 'text/plain';
        const res = await napi.app.inject({
          method: route.method as 'GET',
          url: `${url}${query}`,
          ...(payload === undefined ? {} : { payload, headers: { 'content-type': contentType } }),
        });
        tally.requests++;
        const what = `${route.method} ${route.url} (seed ${SEED}, round ${i}): ${res.statusCode} ${res.body.slice(0, 300)}`;
        // 507 SubnetFull is NAPI's answer when a valid create finds no free address.
        assert.ok(res.statusCode < 500 || (res.statusCode === 507 && JSON.parse(res.body).code === 'SubnetFull'), what);
        if (res.statusCode >= 400) {
          tally.refused++;
          const body = JSON.parse(res.body) as { code?: unknown; message?: unknown };
          assert.equal(typeof body.code, 'string', what);
          assert.equal(typeof body.message, 'string', what);
          assert.deepEqual(await dump(napi.store), state, `a refused request changed the store: ${what}`);
        } else {
          tally.accepted++;
          state = await dump(napi.store);
        }
      }
    }
    // The suite is only worth something if it mostly probes refusals.
    assert.ok(tally.refused > tally.requests * 0.6, JSON.stringify(tally));
    process.stdout.write(`# hostile input: ${JSON.stringify({ routes: routes.length, ...tally })}\n`);
    await assertStillServing();
  });

  it('an object whose toString/valueOf are not functions, in every field of every route, is a 4xx', async () => {
    // String() of such an object throws: the first fuzz run found POST /network_pools's
    // networks answering 500 with it.
    const poison = { toString: 1, valueOf: 1 };
    let state = await dump(napi.store);
    for (const route of registeredRoutes(napi.app).filter((x) => !x.access?.longPoll && x.method !== 'DELETE')) {
      const url = route.url.replace(/:([a-z_]+)/g, (_m, name: string) => paramValue(route.url, name, () => 0.9));
      const tpl = template(route.method, route.url);
      for (const field of Object.keys(tpl)) {
        for (const value of [poison, [poison], { a: poison }]) {
          const bad = { ...tpl, [field]: value };
          const bodyless = route.method === 'GET';
          const res = await napi.app.inject({
            method: route.method as 'GET',
            url: bodyless ? `${url}?${field}=x` : url,
            ...(bodyless ? { payload: JSON.stringify(bad), headers: { 'content-type': 'application/json' } } : { payload: JSON.stringify(bad), headers: { 'content-type': 'application/json' } }),
          });
          const what = `${route.method} ${route.url} ${field}=${JSON.stringify(value)}: ${res.statusCode} ${res.body.slice(0, 200)}`;
          assert.ok(res.statusCode < 500, what);
          if (res.statusCode >= 400) assert.deepEqual(await dump(napi.store), state, what);
          else state = await dump(napi.store);
        }
      }
    }
    await assertStillServing();
  });
});

async function assertStillServing(): Promise<void> {
  {
    assert.equal((await napi.call('GET', '/ping')).status, 200);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(({} as Record<string, unknown>).isAdmin, undefined);
  }
}
