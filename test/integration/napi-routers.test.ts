/**
 * /fabrics/:owner_uuid/routers (issue #12): create, get, list, update, delete in the NAPI
 * style (errors, ETags, If-Match), bad input refused with nothing written, networks on a
 * router not deletable, and the `rhumb router` CLI with --json.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { Command } from 'commander';
import { type ClientIo, registerClientCommands } from '../../src/cli/client.js';
import { ROUTER_PREFIX } from '../../src/napi/keys.js';
import { type TestNapi, startTestNapi } from '../helpers/napi.js';
import { OWNER_A, OWNER_B, assertUnchanged, keysUnder } from '../helpers/napi-fixtures.js';

let n: TestNapi;
let api: string;
const net: Record<string, string> = {};
const routers = (o: string) => `/fabrics/${o}/routers`;

async function fabricNet(owner: string, vlan: number, name: string, subnet24: string, extra: Record<string, unknown> = {}): Promise<string> {
  const r = await n.call('POST', `/fabrics/${owner}/vlans/${vlan}/networks`, {
    name, subnet: `${subnet24}.0/24`, provision_start_ip: `${subnet24}.10`, provision_end_ip: `${subnet24}.250`, gateway: `${subnet24}.1`, ...extra,
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.uuid;
}

before(async () => {
  n = await startTestNapi({ overlayMtu: 1400 });
  await n.app.listen({ host: '127.0.0.1', port: 0 });
  api = `http://127.0.0.1:${(n.app.server.address() as { port: number }).port}`;
  for (const o of [OWNER_A, OWNER_B]) for (const v of [2, 3, 4]) assert.equal((await n.call('POST', `/fabrics/${o}/vlans`, { vlan_id: v })).status, 200);
  net.a1 = await fabricNet(OWNER_A, 2, 'a1', '10.50.1');
  net.a2 = await fabricNet(OWNER_A, 3, 'a2', '10.50.2');
  net.a3 = await fabricNet(OWNER_A, 4, 'a3', '10.50.3');
  // The same subnet as a1, another owner.
  net.b1 = await fabricNet(OWNER_B, 2, 'b1', '10.50.1');
  net.noGw = await fabricNet(OWNER_A, 3, 'nogw', '10.50.9', { gateway: undefined, internet_nat: false });
});
after(async () => {
  await n.close();
});

test('create, get with ETag, list, update with If-Match, delete', async () => {
  const c = await n.call('POST', routers(OWNER_A), { name: 'r1', networks: [net.a2, net.a1], description: 'front and back' });
  assert.equal(c.status, 200, JSON.stringify(c.body));
  assert.ok(c.headers.etag);
  const r = c.body;
  assert.deepEqual({ ...r, created_timestamp: undefined, modified_timestamp: undefined }, {
    uuid: r.uuid, name: 'r1', owner_uuid: OWNER_A, networks: [net.a1, net.a2].sort(), description: 'front and back', created_timestamp: undefined, modified_timestamp: undefined,
  });
  const g = await n.call('GET', `${routers(OWNER_A)}/${r.uuid}`);
  assert.equal(g.status, 200);
  assert.equal(g.headers.etag, c.headers.etag);
  assert.deepEqual(g.body, r);
  // Another owner's path does not see it.
  assert.equal((await n.call('GET', `${routers(OWNER_B)}/${r.uuid}`)).status, 404);
  assert.deepEqual((await n.call('GET', routers(OWNER_A))).body.map((x: { uuid: string }) => x.uuid), [r.uuid]);
  assert.deepEqual((await n.call('GET', `${routers(OWNER_A)}?network=${net.a3}`)).body, []);
  const strict = await n.call('GET', `${routers(OWNER_A)}?bogus=1`);
  assert.equal(strict.status, 422);
  assert.equal(strict.body.errors[0].code, 'UnknownParameters');

  const stale = await n.call('PUT', `${routers(OWNER_A)}/${r.uuid}`, { networks: [net.a1, net.a2, net.a3] }, { 'if-match': '"nope"' });
  assert.equal(stale.status, 412);
  const u = await n.call('PUT', `${routers(OWNER_A)}/${r.uuid}`, { networks: [net.a1, net.a2, net.a3] }, { 'if-match': c.headers.etag as string });
  assert.equal(u.status, 200, JSON.stringify(u.body));
  assert.deepEqual(u.body.networks, [net.a1, net.a2, net.a3].sort());
  assert.notEqual(u.headers.etag, c.headers.etag);

  // A network on a router cannot be deleted.
  const del = await n.call('DELETE', `/fabrics/${OWNER_A}/vlans/4/networks/${net.a3}`);
  assert.equal(del.status, 422);
  assert.equal(del.body.code, 'InUse');
  assert.deepEqual(del.body.errors, [{ code: 'UsedBy', type: 'router', id: r.uuid, message: `In use by router "${r.uuid}"` }]);

  assert.equal((await n.call('DELETE', `${routers(OWNER_A)}/${r.uuid}`)).status, 204);
  assert.equal((await n.call('GET', `${routers(OWNER_A)}/${r.uuid}`)).status, 404);
  assert.deepEqual(await keysUnder(n.store, ROUTER_PREFIX), []);
});

test('bad input: a NAPI error and nothing written', async () => {
  const cases: Array<[Record<string, unknown>, string, RegExp]> = [
    [{ name: 'x', networks: [net.a1, net.b1] }, 'networks', /fabric networks of owner/],
    [{ name: 'x', networks: [net.a1, randomUUID()] }, 'networks', /unknown network/],
    [{ name: 'x', networks: [net.a1, net.noGw] }, 'networks', /must have a gateway/],
    [{ name: 'x', networks: [] }, 'networks', /at least one network/],
    [{ name: 'x', networks: ['not-a-uuid'] }, 'networks', /invalid UUID/],
    [{ networks: [net.a1] }, 'name', /Missing parameter/],
  ];
  for (const [body, field, message] of cases) {
    await assertUnchanged(n.store, async () => {
      const r = await n.call('POST', routers(OWNER_A), body);
      assert.equal(r.status, 422, JSON.stringify(body));
      assert.equal(r.body.errors[0].field, field, JSON.stringify(r.body));
      assert.match(r.body.errors[0].message, message);
    });
  }
  // (Overlapping subnets cannot both be one owner's fabric networks — NAPI refuses them in
  // the vnet — so the router's overlap check is unit-tested: test/unit/edge-plan.test.ts.)
  // A duplicate name of the owner.
  const first = await n.call('POST', routers(OWNER_A), { name: 'same', networks: [net.a1] });
  await assertUnchanged(n.store, async () => {
    const dup = await n.call('POST', routers(OWNER_A), { name: 'same', networks: [net.a2] });
    assert.equal(dup.status, 422);
    assert.equal(dup.body.errors[0].code, 'Duplicate');
    // An update to a bad set changes nothing either.
    const bad = await n.call('PUT', `${routers(OWNER_A)}/${first.body.uuid}`, { networks: [net.a1, net.b1] });
    assert.equal(bad.status, 422);
  });
  await n.call('DELETE', `${routers(OWNER_A)}/${first.body.uuid}`);
  const disabled = n.config.overlay.enabled;
  n.config.overlay.enabled = false;
  try {
    assert.equal((await n.call('GET', routers(OWNER_A))).status, 428);
  } finally {
    n.config.overlay.enabled = disabled;
  }
});

async function rhumb(...args: string[]): Promise<{ out: string; err: string; code: number }> {
  const res = { out: '', err: '', code: 0 };
  const io: ClientIo = { out: (t) => (res.out += `${t}\n`), err: (t) => (res.err += `${t}\n`), fail: (c) => (res.code = c), fetch: (...a) => fetch(...a) };
  const program = new Command().exitOverride().enablePositionalOptions();
  registerClientCommands(program, io);
  await program.parseAsync(['node', 'rhumb', ...args, '--api', api]);
  return res;
}

test('rhumb router: create, list, get, update, delete; errors exit non-zero', async () => {
  const c = await rhumb('router', 'create', '--owner', OWNER_A, 'name=cli', `networks=${net.a1},${net.a2}`, '--json');
  assert.equal(c.code, 0, c.err);
  const r = JSON.parse(c.out);
  assert.deepEqual(r.networks, [net.a1, net.a2].sort());
  const l = await rhumb('router', 'list', '--owner', OWNER_A);
  assert.match(l.out, /cli/);
  const g = await rhumb('router', 'get', r.uuid, '--owner', OWNER_A, '--json');
  assert.equal(JSON.parse(g.out).uuid, r.uuid);
  const u = await rhumb('router', 'update', r.uuid, '--owner', OWNER_A, 'description=edge', '--json');
  assert.equal(JSON.parse(u.out).description, 'edge');
  const bad = await rhumb('router', 'create', '--owner', OWNER_A, 'name=bad', `networks=${net.a1},${net.b1}`);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /networks: networks must be fabric networks of owner/);
  const noOwner = await rhumb('router', 'list');
  assert.match(noOwner.err, /needs --owner/);
  const d = await rhumb('router', 'delete', r.uuid, '--owner', OWNER_A);
  assert.match(d.out, /deleted router/);
});
