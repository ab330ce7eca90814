/**
 * Bearer tokens and their scopes on the REST API (issue #13), in process: who may call
 * what, an owner sees and changes only its own fabrics, NICs, rules and instances (others'
 * are 404 and never listed), a node only what its agent needs for itself; refused writes
 * leave the store unchanged; the token file is re-read on reload; every route declares
 * its access or is admin-only. The console and the encryption setting are admins'; a node
 * writes only its own report and WireGuard record.
 */
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { registeredRoutes } from '../../src/rest/auth.js';
import { TokenBook } from '../../src/security/tokens.js';
import { type TestNapi, startTestNapi } from '../helpers/napi.js';
import { assertUnchanged, dump } from '../helpers/napi-fixtures.js';

const A = 'aaaaaaaa-1111-4111-8111-111111111111';
const B = 'bbbbbbbb-2222-4222-8222-222222222222';
const N1 = 'c1111111-0000-4000-8000-000000000001';
const N2 = 'c2222222-0000-4000-8000-000000000002';
const VM_A = 'a0000000-0000-4000-8000-00000000000a';
const VM_B = 'b0000000-0000-4000-8000-00000000000b';

const T = {
  admin: 'admin-0123456789abcdef',
  a: 'owner-a-0123456789abcdef',
  b: 'owner-b-0123456789abcdef',
  n1: 'node-1-0123456789abcdef',
  n2: 'node-2-0123456789abcdef',
};

let dir: string;
let authFile: string;
let tokens: TokenBook;
let napi: TestNapi;

function authDoc(extra: object[] = []): string {
  return JSON.stringify({
    tokens: [
      { token: T.admin, role: 'admin' },
      { token: T.a, role: 'owner', owner_uuid: A },
      { token: T.b, role: 'owner', owner_uuid: B },
      { token: T.n1, role: 'node', node_uuid: N1 },
      { token: T.n2, role: 'node', node_uuid: N2 },
      ...extra,
    ],
  });
}

/** A call as the holder of a token (none: anonymous). */
function as(token: string | undefined) {
  return (method: string, url: string, body?: unknown) => napi.call(method, url, body, token ? { authorization: `Bearer ${token}` } : {});
}
const admin = as(T.admin);
const ownerA = as(T.a);
const ownerB = as(T.b);
const node1 = as(T.n1);

// What admin makes for the tests.
const made: { netA?: string; netB?: string; underlay?: string; macA?: string; macB?: string; ruleA?: string; ruleB?: string } = {};

async function ok(p: Promise<{ status: number; body: unknown }>, status = 200) {
  const r = await p;
  assert.equal(r.status, status, JSON.stringify(r.body));
  return r.body as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rhumb-scopes-'));
  authFile = join(dir, 'auth.json');
  await writeFile(authFile, authDoc());
  await chmod(authFile, 0o600);
  tokens = new TokenBook(authFile);
  await tokens.load();
  napi = await startTestNapi({ auth: { tokens, limits: { maxInFlight: 512, rate: null } }, console: true, wireguard: { maxWaitMs: 1000 }, routerFeed: { maxWaitMs: 1000 } });
  made.underlay = (await ok(admin('POST', '/networks', { name: 'underlay', nic_tag: 'sdc_underlay', vlan_id: 0, subnet: '198.18.0.0/24', provision_start_ip: '198.18.0.10', provision_end_ip: '198.18.0.250' }))).uuid;
  for (const [owner, key] of [[A, 'netA'], [B, 'netB']] as const) {
    await ok(admin('POST', `/fabrics/${owner}/vlans`, { vlan_id: 5, name: 'blue' }));
    made[key] = (await ok(admin('POST', `/fabrics/${owner}/vlans/5/networks`, { name: 'blue', subnet: '10.0.0.0/24', provision_start_ip: '10.0.0.10', provision_end_ip: '10.0.0.250', gateway: '10.0.0.1' }))).uuid;
  }
  made.macA = (await ok(admin('POST', '/nics', { owner_uuid: A, belongs_to_uuid: VM_A, belongs_to_type: 'zone', network_uuid: made.netA, cn_uuid: N1 }))).mac;
  made.macB = (await ok(admin('POST', '/nics', { owner_uuid: B, belongs_to_uuid: VM_B, belongs_to_type: 'zone', network_uuid: made.netB, cn_uuid: N2 }))).mac;
  made.ruleA = (await ok(admin('POST', '/rules', { rule: 'FROM any TO all vms ALLOW tcp PORT 22', owner_uuid: A, enabled: true }), 202)).uuid;
  made.ruleB = (await ok(admin('POST', '/rules', { rule: 'FROM any TO all vms ALLOW tcp PORT 80', owner_uuid: B, enabled: true }), 202)).uuid;
  await ok(admin('PUT', `/fw/instances/${VM_A}`, { owner_uuid: A, tags: { role: 'web' }, firewall_enabled: true }));
  await ok(admin('PUT', `/fw/instances/${VM_B}`, { owner_uuid: B, tags: { role: 'web' }, firewall_enabled: true }));
});

after(async () => {
  await napi?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('authentication', () => {
  it('no token: 401 with NAPI error body; /ping stays open; an unknown token is 401', async () => {
    const anon = as(undefined);
    for (const url of ['/networks', '/nics', '/rules', `/fabrics/${A}/vlans`, '/metrics', '/ui/api/snapshot', '/ui/api/events', '/wireguard/peers', '/routers/feed', '/encryption']) {
      const r = await anon('GET', url);
      assert.equal(r.status, 401, url);
      assert.equal(r.body.code, 'Unauthorized');
    }
    assert.equal((await anon('GET', '/ping')).status, 200);
    // The console's pages hold no data (they ask for a token); its data is operators'.
    for (const url of ['/ui/', '/ui/app.js']) assert.equal((await anon('GET', url)).status, 200, url);
    assert.equal((await admin('GET', '/ui/api/snapshot')).status, 200, 'the console is operators\'');
    const bogus = await as('not-a-token-0123456789')('GET', '/nics');
    assert.equal(bogus.status, 401);
    assert.match(bogus.body.message, /unknown bearer token/);
    assert.equal((await admin('GET', '/metrics')).status, 200);
    assert.equal((await ownerA('GET', '/metrics')).status, 200, 'any identity may read /metrics');
  });

  it('an owner or a node calling an admin route: 403', async () => {
    for (const call of [ownerA, node1]) {
      for (const [m, url] of [['GET', '/nic_tags'], ['POST', '/nic_tags'], ['GET', '/network_pools'], ['GET', '/aggregations'], ['GET', '/search/ips?ip=10.0.0.1'], ['GET', `/networks/${made.underlay}/ips`], ['GET', '/ui/api/snapshot'], ['GET', '/ui/api/events'], ['GET', '/encryption'], ['PUT', '/encryption']]) {
        const r = await call(m!, url!, m === 'POST' ? { name: 'x' } : m === 'PUT' ? { mode: 'wireguard', force: true } : undefined);
        assert.equal(r.status, 403, `${m} ${url}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.code, 'Forbidden');
      }
    }
    assert.equal((await ownerA('GET', '/networks')).status, 403);
    assert.equal((await ownerA('POST', `/fabrics/${A}/vlans/5/networks`, {})).status !== 403, true);
    // The router feed is nodes' (owners read their routers under /fabrics/:owner_uuid/routers).
    assert.equal((await ownerA('GET', `/routers/feed?owner_uuids=${A}`)).status, 403);
    assert.equal((await node1('GET', `/routers/feed?owner_uuids=${A}`)).status, 200);
  });
});

describe('owner scope', () => {
  it("fabric VLANs and networks: its own; another owner's are 404 and unchanged", async () => {
    assert.deepEqual((await ok(ownerA('GET', `/fabrics/${A}/vlans`))).map((v: { owner_uuid: string }) => v.owner_uuid), [A]);
    assert.equal((await ok(ownerA('GET', `/fabrics/${A}/vlans/5/networks`))).length, 1);
    await assertUnchanged(napi.store, async () => {
      for (const [m, url, body] of [
        ['GET', `/fabrics/${B}/vlans`],
        ['GET', `/fabrics/${B}/vlans/5`],
        ['PUT', `/fabrics/${B}/vlans/5`, { name: 'mine' }],
        ['DELETE', `/fabrics/${B}/vlans/5`],
        ['POST', `/fabrics/${B}/vlans`, { vlan_id: 6 }],
        ['GET', `/fabrics/${B}/vlans/5/networks`],
        ['GET', `/fabrics/${B}/vlans/5/networks/${made.netB}`],
        ['PUT', `/fabrics/${B}/vlans/5/networks/${made.netB}`, { description: 'mine' }],
        ['DELETE', `/fabrics/${B}/vlans/5/networks/${made.netB}`],
        ['POST', `/fabrics/${B}/vlans/5/networks`, { name: 'x', subnet: '10.9.0.0/24', provision_start_ip: '10.9.0.10', provision_end_ip: '10.9.0.20' }],
      ] as const) {
        const r = await ownerA(m, url, body);
        assert.equal(r.status, 404, `${m} ${url}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.code, 'ResourceNotFound');
      }
    });
    // Its own: a write works.
    await ok(ownerA('PUT', `/fabrics/${A}/vlans/5`, { description: 'ours' }));
  });

  it("NICs: lists only its own; another's NIC is 404 to read, change or delete", async () => {
    const mine = await ok(ownerA('GET', '/nics'));
    assert.deepEqual(mine.map((n: { mac: string }) => n.mac), [made.macA]);
    // Asking for B's explicitly changes nothing: the filter is forced.
    assert.deepEqual((await ok(ownerA('GET', `/nics?owner_uuid=${B}`))).map((n: { mac: string }) => n.mac), [made.macA]);
    assert.equal((await ok(ownerA('GET', `/nics/${made.macA}`))).owner_uuid, A);
    await assertUnchanged(napi.store, async () => {
      for (const m of ['GET', 'PUT', 'DELETE']) {
        const r = await ownerA(m, `/nics/${made.macB}`, m === 'PUT' ? { owner_uuid: A } : undefined);
        assert.equal(r.status, 404, `${m}: ${JSON.stringify(r.body)}`);
      }
    });
  });

  it('NIC creation: for itself, on its own networks, never an underlay NIC', async () => {
    const base = { belongs_to_uuid: VM_A, belongs_to_type: 'zone', cn_uuid: N1 };
    await assertUnchanged(napi.store, async () => {
      assert.equal((await ownerA('POST', '/nics', { ...base, owner_uuid: B, network_uuid: made.netA })).status, 403, 'as another owner');
      assert.equal((await ownerA('POST', '/nics', { ...base, network_uuid: made.netB })).status, 404, "on another owner's network");
      assert.equal((await ownerA('POST', `/networks/${made.netB}/nics`, base)).status, 404, "on another owner's network (path)");
      assert.equal((await ownerA('POST', '/nics', { ...base, network_uuid: made.underlay })).status, 404, 'on a public (admin) network');
      assert.equal((await ownerA('POST', '/nics', { ...base, network_uuid: made.netA, underlay: true })).status, 403, 'an underlay NIC');
      assert.equal((await ownerA('POST', '/nics', { ...base, network_uuid: made.netA, check_owner: false })).status, 403, 'check_owner off');
      assert.equal((await ownerA('PUT', `/nics/${made.macA}`, { network_uuid: made.netB })).status, 404, "moving to another owner's network");
      assert.equal((await ownerA('PUT', `/nics/${made.macA}`, { owner_uuid: B })).status, 403, 'giving it away');
    });
    // owner_uuid is filled in when absent.
    const nic = await ok(ownerA('POST', '/nics', { ...base, network_uuid: made.netA }));
    assert.equal(nic.owner_uuid, A);
    await ok(ownerA('DELETE', `/nics/${nic.mac}`), 204);
  });

  it("rules: lists only its own (never global); another's is 404; it cannot make global or others' rules", async () => {
    await ok(admin('POST', '/rules', { rule: 'FROM any TO all vms ALLOW tcp PORT 443', global: true, enabled: true }), 202);
    assert.deepEqual((await ok(ownerA('GET', '/rules'))).map((r: { uuid: string }) => r.uuid), [made.ruleA]);
    assert.deepEqual((await ok(ownerA('GET', `/rules?owner_uuid=${B}&global=true`))).map((r: { uuid: string }) => r.uuid), [made.ruleA]);
    await assertUnchanged(napi.store, async () => {
      for (const [m, url, body] of [
        ['GET', `/rules/${made.ruleB}`],
        ['PUT', `/rules/${made.ruleB}`, { enabled: false }],
        ['DELETE', `/rules/${made.ruleB}`],
        ['GET', `/rules/${made.ruleB}/vms`],
      ] as const) {
        assert.equal((await ownerA(m, url, body)).status, 404, `${m} ${url}`);
      }
      assert.equal((await ownerA('POST', '/rules', { rule: 'FROM any TO all vms ALLOW tcp PORT 1', owner_uuid: B })).status, 403);
      assert.equal((await ownerA('POST', '/rules', { rule: 'FROM any TO all vms ALLOW tcp PORT 1', global: true })).status, 403);
      assert.equal((await ownerA('PUT', `/rules/${made.ruleA}`, { global: true })).status, 403, 'its own rule made global');
    });
    const own = await ok(ownerA('POST', '/rules', { rule: 'FROM any TO all vms ALLOW tcp PORT 2', enabled: true }), 202);
    assert.equal(own.owner_uuid, A, 'owner_uuid filled in');
    await ok(ownerA('DELETE', `/rules/${own.uuid}`), 204);
  });

  it("firewall instances, explain and Docker: another owner's instance is 404", async () => {
    assert.deepEqual((await ok(ownerA('GET', '/fw/instances'))).map((i: { uuid: string }) => i.uuid), [VM_A]);
    await assertUnchanged(napi.store, async () => {
      for (const [m, url, body] of [
        ['GET', `/fw/instances/${VM_B}`],
        ['PUT', `/fw/instances/${VM_B}`, { owner_uuid: A, tags: {}, firewall_enabled: false }],
        ['DELETE', `/fw/instances/${VM_B}`],
        ['GET', `/fw/instances/${VM_B}/ruleset`],
        ['GET', `/firewalls/vms/${VM_B}`],
        ['GET', `/fw/explain?from=10.0.0.9&to=${VM_B}&proto=tcp&port=80`],
        ['GET', `/fw/explain?from=${VM_B}&to=${VM_A}&proto=tcp&port=80`],
        ['POST', `/fw/docker/containers/${VM_B}`, { owner_uuid: A, name: 'x' }],
      ] as const) {
        assert.equal((await ownerA(m, url, body)).status, 404, `${m} ${url}`);
      }
    });
    await ok(ownerA('GET', `/fw/instances/${VM_A}`));
    await ok(ownerA('GET', `/fw/explain?from=10.0.0.9&to=${VM_A}&proto=tcp&port=22`));
  });

  it('the other owner sees the mirror image', async () => {
    assert.deepEqual((await ok(ownerB('GET', '/nics'))).map((n: { mac: string }) => n.mac), [made.macB]);
    assert.equal((await ownerB('GET', `/nics/${made.macA}`)).status, 404);
    assert.equal((await ownerB('GET', `/rules/${made.ruleA}`)).status, 404);
  });
});

describe('node scope', () => {
  it("its own ruleset feed and report; another node's are 404", async () => {
    await ok(node1('GET', `/fw/nodes/${N1}/rulesets?wait=0`));
    const other = await node1('GET', `/fw/nodes/${N2}/rulesets?wait=0`);
    assert.equal(other.status, 404);
    const report = { node: N1, underlay_ip: '198.18.0.11', backend: 'kernel', vnets: [], nics: 0, probes: [], sent_at: Date.now(), shootdowns: [] };
    assert.equal((await node1('POST', `/nodes/${N1}/report`, report)).status, 204);
    assert.equal((await node1('POST', `/nodes/${N2}/report`, { ...report, node: N2 })).status, 404);
  });

  it('reads NICs and networks (the agent resolves peers); writes only NICs placed on it', async () => {
    await ok(node1('GET', `/nics?cn_uuid=${N1}`));
    await ok(node1('GET', `/nics/${made.macB}`));
    await ok(node1('GET', '/networks?nic_tag=sdc_underlay'));
    await assertUnchanged(napi.store, async () => {
      assert.equal((await node1('POST', '/nics', { owner_uuid: A, belongs_to_uuid: VM_A, belongs_to_type: 'zone', network_uuid: made.netA, cn_uuid: N2 })).status, 403);
      assert.equal((await node1('DELETE', `/nics/${made.macB}`)).status, 404, "a NIC on another node");
      assert.equal((await node1('PUT', `/nics/${made.macA}`, { cn_uuid: N2 })).status, 403, 'moving its NIC away');
      assert.equal(
        (await node1('POST', '/nics', { owner_uuid: A, belongs_to_uuid: N2, belongs_to_type: 'server', network_uuid: made.underlay, underlay: true })).status,
        403,
        "another node's underlay NIC",
      );
      for (const [m, url] of [['GET', '/rules'], ['GET', `/fabrics/${A}/vlans`], ['GET', '/fw/instances'], ['POST', '/networks']] as const) {
        assert.equal((await node1(m, url, m === 'POST' ? {} : undefined)).status, 403, `${m} ${url}`);
      }
    });
    // The agent's own registration: its underlay NIC.
    const ul = await ok(node1('POST', '/nics', { owner_uuid: A, belongs_to_uuid: N1, belongs_to_type: 'server', network_uuid: made.underlay, underlay: true, ip: '198.18.0.11' }));
    assert.equal(ul.cn_uuid, N1, 'cn_uuid filled in');
  });
});

describe('encrypted underlay (WireGuard)', () => {
  const key = (b: number) => Buffer.alloc(32, b).toString('base64');
  it("a node publishes, reads and withdraws only its own record, follows the peers feed; another node's record is 404 and unchanged", async () => {
    const mine = await ok(node1('PUT', `/wireguard/nodes/${N1}`, { public_key: key(1), endpoint: '198.18.0.11:51820' }));
    assert.equal(mine.cn_uuid, N1);
    await ok(node1('GET', `/wireguard/nodes/${N1}`));
    await ok(as(T.n2)('PUT', `/wireguard/nodes/${N2}`, { public_key: key(2), endpoint: '198.18.0.12:51820' }));
    const feed = await ok(node1('GET', '/wireguard/peers?since=0&wait=0'));
    assert.ok(Array.isArray(feed.peers), 'the feed: every node\'s view');
    await assertUnchanged(napi.store, async () => {
      assert.equal((await node1('PUT', `/wireguard/nodes/${N2}`, { public_key: key(3), endpoint: '198.18.0.99:51820' })).status, 404, "overwriting another node's key");
      assert.equal((await node1('DELETE', `/wireguard/nodes/${N2}`)).status, 404, "withdrawing another node's key");
      assert.equal((await node1('GET', `/wireguard/nodes/${N2}`)).status, 404);
      assert.equal((await node1('PUT', '/encryption', { mode: 'none' })).status, 403, 'the setting is an admin\'s');
      for (const [m, url] of [['GET', '/wireguard/peers'], ['GET', `/wireguard/nodes/${N1}`], ['PUT', `/wireguard/nodes/${A}`], ['GET', '/encryption']] as const) {
        const r = await ownerA(m, url, m === 'PUT' ? { public_key: key(4), endpoint: '198.18.0.13:51820' } : undefined);
        assert.equal(r.status, 403, `owner ${m} ${url}`);
      }
    });
    // The peers long-poll: at most 4 held per node; the fifth of one node is 429, another node is still held.
    const rev = (await ok(node1('GET', '/wireguard/peers?since=0&wait=0'))).revision as number;
    const held = Array.from({ length: 4 }, () => node1('GET', `/wireguard/peers?since=${rev}&wait=800`));
    await new Promise((r) => setTimeout(r, 100));
    const fifth = await node1('GET', `/wireguard/peers?since=${rev}&wait=800`);
    assert.equal(fifth.status, 429, JSON.stringify(fifth.body));
    assert.equal(fifth.body.code, 'TooManyRequests');
    assert.equal((await as(T.n2)('GET', `/wireguard/peers?since=${rev}&wait=50`)).status, 200, 'another node');
    for (const r of await Promise.all(held)) assert.equal(r.status, 200);
    assert.equal((await node1('GET', `/wireguard/peers?since=${rev}&wait=50`)).status, 200, 'slots given back');
    assert.equal((await ok(admin('GET', `/wireguard/nodes/${N2}`))).public_key, key(2));
    assert.equal((await node1('DELETE', `/wireguard/nodes/${N1}`)).status, 204);
    assert.equal((await admin('GET', `/wireguard/nodes/${N1}`)).status, 404);
  });
});

describe('the token file', () => {
  it('reload: a new token works at once, a removed one stops; a broken file keeps the tokens in force', async () => {
    const fresh = 'fresh-0123456789abcdef';
    assert.equal((await as(fresh)('GET', '/nics')).status, 401);
    await writeFile(authFile, JSON.stringify({ tokens: [{ token: T.admin, role: 'admin' }, { token: fresh, role: 'owner', owner_uuid: A }] }));
    assert.equal((await tokens.load()).count, 2);
    assert.equal((await as(fresh)('GET', '/nics')).status, 200);
    assert.equal((await ownerB('GET', '/nics')).status, 401, 'removed');
    await writeFile(authFile, '{"tokens": [{"token": "short", "role": "admin"}]}');
    await assert.rejects(tokens.load(), /tokens\[0\]\.token must be/);
    assert.equal((await as(fresh)('GET', '/nics')).status, 200, 'still in force');
    await writeFile(authFile, authDoc());
    await tokens.load();
  });
});

describe('every route declares who may call it', () => {
  it('the routes open beyond admins are exactly these (a new route is admin-only until declared)', () => {
    const open = registeredRoutes(napi.app)
      .filter((r) => r.access !== undefined && (typeof r.access.allow === 'string' || r.access.allow.length > 0))
      .map((r) => `${r.method} ${r.url} ${typeof r.access!.allow === 'string' ? r.access!.allow : r.access!.allow.join('+')}`)
      .sort();
    assert.deepEqual(open, [
      'DELETE /fabrics/:owner_uuid/routers/:uuid owner',
      'DELETE /fabrics/:owner_uuid/vlans/:vlan_id owner',
      'DELETE /fabrics/:owner_uuid/vlans/:vlan_id/networks/:uuid owner',
      'DELETE /fw/docker/containers/:uuid owner',
      'DELETE /fw/instances/:uuid owner',
      'DELETE /nics/:mac owner+node',
      'DELETE /rules/:uuid owner',
      'DELETE /wireguard/nodes/:cn_uuid node',
      'GET /fabrics/:owner_uuid/routers owner+node',
      'GET /fabrics/:owner_uuid/routers/:uuid owner+node',
      'GET /fabrics/:owner_uuid/vlans owner',
      'GET /fabrics/:owner_uuid/vlans/:vlan_id owner',
      'GET /fabrics/:owner_uuid/vlans/:vlan_id/networks owner',
      'GET /fabrics/:owner_uuid/vlans/:vlan_id/networks/:uuid owner',
      'GET /firewalls/vms/:uuid owner',
      'GET /fw/docker/containers/:uuid owner',
      'GET /fw/explain owner',
      'GET /fw/instances owner',
      'GET /fw/instances/:uuid owner',
      'GET /fw/instances/:uuid/ruleset owner',
      'GET /fw/nodes/:cn_uuid/ingress node',
      'GET /fw/nodes/:cn_uuid/rulesets node',
      'GET /metrics metrics',
      'GET /networks node',
      'GET /networks/:uuid node',
      'GET /nics owner+node',
      'GET /nics/:mac owner+node',
      'GET /ping anyone',
      'GET /routers/feed node',
      'GET /rules owner',
      'GET /rules/:uuid owner',
      'GET /rules/:uuid/vms owner',
      'GET /ui/ anyone',
      'GET /ui/:file anyone',
      'GET /wireguard/nodes/:cn_uuid node',
      'GET /wireguard/peers node',
      'POST /fabrics/:owner_uuid/routers owner',
      'POST /fabrics/:owner_uuid/vlans owner',
      'POST /fabrics/:owner_uuid/vlans/:vlan_id/networks owner',
      'POST /fw/docker/containers/:uuid owner',
      'POST /networks/:network_uuid/nics owner+node',
      'POST /nics owner+node',
      'POST /nodes/:cn_uuid/report node',
      'POST /rules owner',
      'PUT /fabrics/:owner_uuid/routers/:uuid owner',
      'PUT /fabrics/:owner_uuid/vlans/:vlan_id owner',
      'PUT /fabrics/:owner_uuid/vlans/:vlan_id/networks/:uuid owner',
      'PUT /fw/instances/:uuid owner',
      'PUT /fw/nodes/:cn_uuid/ingress node',
      'PUT /nics/:mac owner+node',
      'PUT /rules/:uuid owner',
      'PUT /wireguard/nodes/:cn_uuid node',
    ]);
    // Every role a declaration admits says how it is bounded.
    for (const r of registeredRoutes(napi.app)) {
      const allow = r.access?.allow;
      if (!Array.isArray(allow)) continue;
      for (const role of allow) assert.ok(r.access![role as 'owner' | 'node'], `${r.method} ${r.url}: ${role} without checks`);
    }
  });

  it('an owner calling admin-only routes gets 403 before anything runs', async () => {
    const before = await dump(napi.store);
    for (const r of registeredRoutes(napi.app).filter((x) => x.access === undefined || (Array.isArray(x.access.allow) && !x.access.allow.includes('owner')))) {
      if (r.access?.longPoll) continue; // the console's event stream: admin-only too, but a stream
      const url = r.url.replace(/:[a-z_]+/g, (p) => (p === ':mac' ? made.macA! : p === ':name' ? 'sdc_overlay' : made.netA!));
      const res = await ownerA(r.method, url, r.method === 'GET' || r.method === 'DELETE' ? undefined : {});
      assert.equal(res.status, 403, `${r.method} ${url}: ${JSON.stringify(res.body)}`);
    }
    assert.deepEqual(await dump(napi.store), before);
  });
});
