/**
 * The encrypted underlay's REST face and the controller's peer directory, in process: the
 * real fastify app and WireguardDirectory over a memory store. Node records are checked
 * (a malformed key or endpoint is refused naming the field, nothing written); the peers
 * feed answers everything once, then only what changed, and holds a long-poll until
 * something does; asking for wireguard with nodes not ready goes through prepare and
 * switches once they are.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { DEFAULT_ADMIN_UUID, napiConfigFrom } from '../../src/controller/index.js';
import { createRegistry } from '../../src/metrics/index.js';
import { buildNapiApp } from '../../src/napi/app.js';
import { ensureInitialData } from '../../src/napi/bootstrap.js';
import { registerWireguardRoutes } from '../../src/napi/routes/wireguard.js';
import { underlayKey } from '../../src/overlay/keys.js';
import { WireguardDirectory } from '../../src/overlay/wireguard-directory.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { WatchHandlers, WatchOptions } from '../../src/store/types.js';

const A = '0000000a-0000-4000-8000-000000000001';
const B = '0000000b-0000-4000-8000-000000000002';
const C = '0000000c-0000-4000-8000-000000000003';
const KA = Buffer.alloc(32, 0xa).toString('base64');
const KB = Buffer.alloc(32, 0xb).toString('base64');
const KC = Buffer.alloc(32, 0xc).toString('base64');

let store: MemoryStore;
let dir: WireguardDirectory;
let app: FastifyInstance;

async function call(method: string, url: string, body?: unknown): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await app.inject({
    method: method as 'GET',
    url,
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) }),
  });
  return { status: res.statusCode, body: res.body ? JSON.parse(res.body) : undefined };
}

/** A node's underlay record, as an underlay NIC write makes it. */
async function underlay(cn: string, ip: string | null): Promise<void> {
  const op = ip === null ? { type: 'del' as const, key: underlayKey(cn) } : { type: 'put' as const, key: underlayKey(cn), value: JSON.stringify({ cn_uuid: cn, ip, port: 4789 }) };
  const r = await store.commit({ ops: [op] });
  assert.ok(r.ok);
  await dir.waitForRevision(r.revision);
}

const publish = (cn: string, public_key: string, ip: string, extra: Record<string, unknown> = {}) =>
  call('PUT', `/wireguard/nodes/${cn}`, { public_key, endpoint: `${ip}:51820`, ...extra });

before(async () => {
  store = new MemoryStore();
  const config = napiConfigFrom({ store: { kind: 'memory' }, listen: { host: '127.0.0.1', port: 0 }, svpListen: { host: '127.0.0.1', port: 0 }, adminUuid: DEFAULT_ADMIN_UUID, overlayMtu: 1450 });
  await ensureInitialData({ store, config });
  dir = new WireguardDirectory(store, { settleMs: 50, maxTombstones: 2 });
  await dir.start();
  app = buildNapiApp({ store, config, registry: createRegistry('test') }, { extraRoutes: [(a, ctx) => registerWireguardRoutes(a, ctx, dir, { maxWaitMs: 5000 })] });
  await app.ready();
});

after(async () => {
  await app.close();
  dir.stop();
  await store.close();
});

describe('encrypted underlay API', () => {
  test('the directory follows only node and WireGuard records, not the whole keyspace', async () => {
    const watched: string[] = [];
    const spy = new Proxy(store, {
      get(target, prop, receiver) {
        if (prop === 'watch') return (opts: WatchOptions, h: WatchHandlers) => (watched.push(...(opts.prefixes ?? [opts.prefix ?? ""])), target.watch(opts, h));
        const v = Reflect.get(target, prop, receiver);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const d = new WireguardDirectory(spy);
    await d.start();
    d.stop();
    assert.ok(watched.length > 0);
    assert.deepEqual([...new Set(watched)].sort(), ['ovl/ul/', 'ovl/ulwg/']);
    // etcd watches the range from the first prefix to the end of the last: nothing else is in it.
    assert.ok(!'ovl/vlog/'.startsWith('ovl/ul') && 'ovl/ulwg/' > 'ovl/ul/' && 'ovl/ulwg0' < 'ovl/vgone/' && 'ovl/ulwg0' < 'ovl/vlog/');
  });

  test('a new deployment does not encrypt; its setting is visible', async () => {
    const r = await call('GET', '/encryption');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { mode: 'none', tunnel_subnet: '100.64.0.0/10', nodes: 0, ready: 0, not_ready: [] });
  });

  test('node records: malformed keys and endpoints are refused naming the field, nothing written', async () => {
    const revision = await store.revision();
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ public_key: 'AAAA', endpoint: '198.18.0.1:51820' }, 'public_key'],
      [{ public_key: Buffer.alloc(32).toString('base64'), endpoint: '198.18.0.1:51820' }, 'public_key'],
      [{ public_key: KA }, 'endpoint'],
      [{ public_key: KA, endpoint: 'node1:51820' }, 'endpoint'],
      [{ public_key: KA, endpoint: '198.18.0.1:51820', next_public_key: 'x' }, 'next_public_key'],
      [{ public_key: KA, endpoint: '198.18.0.1:51820', next_public_key: KA }, 'next_public_key'],
    ];
    for (const [body, field] of cases) {
      const r = await call('PUT', `/wireguard/nodes/${A}`, body);
      assert.equal(r.status, 422, JSON.stringify(body));
      assert.deepEqual(r.body.errors.map((e: { field: string }) => e.field), [field]);
      assert.match(r.body.message, new RegExp(`${field}: `));
    }
    assert.equal((await call('PUT', '/wireguard/nodes/not-a-uuid', { public_key: KA, endpoint: '198.18.0.1:51820' })).status, 422);
    assert.equal(await store.revision(), revision, 'nothing written');
    assert.equal((await call('GET', `/wireguard/nodes/${A}`)).status, 404);
  });

  test('the peers feed: everything once, then what changed, removals, and a long-poll that waits', async () => {
    await underlay(A, '198.18.0.1');
    await underlay(B, '198.18.0.2');
    const full = await call('GET', '/wireguard/peers');
    assert.equal(full.body.full, true);
    assert.deepEqual(
      full.body.peers.map((p: { cn_uuid: string; tunnel_ip: string; problem: string }) => [p.cn_uuid, p.tunnel_ip, p.problem]),
      [
        [A, '100.82.0.1', 'no WireGuard key published'],
        [B, '100.82.0.2', 'no WireGuard key published'],
      ],
    );
    // Nothing changed: a long-poll is held until A publishes.
    const since = full.body.revision;
    const held = call('GET', `/wireguard/peers?since=${since}&wait=5000`);
    const late = await Promise.race([held.then(() => 'answered'), new Promise((r) => setTimeout(() => r('held'), 200))]);
    assert.equal(late, 'held');
    assert.equal((await publish(A, KA, '198.18.0.1')).status, 200);
    const inc = (await held).body;
    assert.equal(inc.full, false);
    assert.deepEqual(inc.peers, [{ cn_uuid: A, underlay_ip: '198.18.0.1', tunnel_ip: '100.82.0.1', public_key: KA, endpoint: '198.18.0.1:51820' }]);
    assert.deepEqual(inc.removed, []);
    // B leaves (its underlay NIC is deleted): the next answer says so.
    await underlay(B, null);
    const gone = (await call('GET', `/wireguard/peers?since=${inc.revision}`)).body;
    assert.deepEqual(gone.peers, []);
    assert.deepEqual(gone.removed, [B]);
    // Nothing since: an immediate answer with nothing in it, at the current revision.
    const empty = (await call('GET', `/wireguard/peers?since=${gone.revision}&wait=0`)).body;
    assert.deepEqual([empty.full, empty.peers, empty.removed, empty.revision], [false, [], [], gone.revision]);
    assert.equal((await call('GET', '/wireguard/peers?since=-1')).status, 422);
  });

  test('removals older than the tombstones kept get a full answer', async () => {
    const from = (await call('GET', '/wireguard/peers')).body.revision;
    for (const cn of [B, C, '0000000d-0000-4000-8000-000000000004']) {
      await underlay(cn, '198.18.0.9');
      await underlay(cn, null);
    }
    const r = (await call('GET', `/wireguard/peers?since=${from}`)).body;
    assert.equal(r.full, true);
    assert.deepEqual(r.peers.map((p: { cn_uuid: string }) => p.cn_uuid), [A]);
  });

  test('wireguard with a node not ready goes through prepare, then switches once every node is ready', async () => {
    await underlay(B, '198.18.0.2');
    const r = await call('PUT', '/encryption', { mode: 'wireguard' });
    assert.equal(r.status, 200);
    assert.equal(r.body.mode, 'prepare');
    assert.equal(r.body.target, 'wireguard');
    assert.deepEqual(r.body.not_ready, [{ cn_uuid: B, problem: 'no WireGuard key published' }]);
    const feed = (await call('GET', '/wireguard/peers')).body;
    assert.equal(feed.encryption.mode, 'prepare');
    assert.equal((await publish(B, KB, '198.18.0.2')).status, 200);
    const deadline = Date.now() + 5000;
    while ((await call('GET', '/encryption')).body.mode !== 'wireguard') {
      assert.ok(Date.now() < deadline, 'switched to wireguard');
      await new Promise((res) => setTimeout(res, 20));
    }
    // An agent that saw prepare gets a full answer (the setting changed).
    const next = (await call('GET', `/wireguard/peers?since=${feed.revision}`)).body;
    assert.equal(next.full, true);
    assert.equal(next.encryption.mode, 'wireguard');
  });

  test('a tunnel subnet change re-addresses every node; bad settings are refused', async () => {
    const r = await call('PUT', '/encryption', { mode: 'wireguard', tunnel_subnet: '172.31.0.0/16' });
    assert.equal(r.body.tunnel_subnet, '172.31.0.0/16');
    const feed = (await call('GET', '/wireguard/peers')).body;
    assert.deepEqual(feed.peers.map((p: { tunnel_ip: string }) => p.tunnel_ip), ['172.31.0.1', '172.31.0.2']);
    for (const body of [{ mode: 'ipsec' }, { mode: 'none', tunnel_subnet: '10.0.0.1/8' }, { mode: 'none', force: 'maybe' }]) {
      assert.equal((await call('PUT', '/encryption', body)).status, 422, JSON.stringify(body));
    }
    // A node collides with another's tunnel address: both are not ready, with why.
    await underlay(C, '198.19.0.2');
    assert.equal((await publish(C, KC, '198.19.0.2')).status, 200);
    const enc = (await call('GET', '/encryption')).body;
    assert.deepEqual(enc.not_ready.map((n: { cn_uuid: string }) => n.cn_uuid).sort(), [B, C].sort());
    assert.match(enc.not_ready[0].problem, /tunnel address 172\.31\.0\.2 is also that of/);
  });

  test('force switches at once; none turns it off; a record can be withdrawn', async () => {
    assert.equal((await call('PUT', '/encryption', { mode: 'none' })).body.mode, 'none');
    const forced = await call('PUT', '/encryption', { mode: 'wireguard', force: true });
    assert.equal(forced.body.mode, 'wireguard');
    assert.equal(forced.body.target, undefined);
    assert.equal((await call('DELETE', `/wireguard/nodes/${C}`)).status, 204);
    assert.equal((await call('DELETE', `/wireguard/nodes/${C}`)).status, 404);
    assert.equal((await call('GET', `/wireguard/nodes/${A}`)).body.public_key, KA);
  });
});
