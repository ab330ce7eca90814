/**
 * `fw explain` for published ports (issue #12, ingress), through the REST API and the
 * CLI: a node reports its published ports (PUT /fw/nodes/:cn_uuid/ingress, as the agent's
 * IngressReporter does), and explain follows a packet to the node's address and port to
 * the instance and port it is DNATed to, then that instance's inbound rules decide.
 * Who may report and explain what, and bad reports leaving the stored table as it was.
 */
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { IngressReporter } from '../../src/agent/ingress-report.js';
import { runFwCli } from '../helpers/fw-cli.js';
import type { IngressEntry } from '../../src/fw/ingress.js';
import { TokenBook } from '../../src/security/tokens.js';
import { NODE_1, NODE_2, OWNER_A, OWNER_B, mac, putNic, vm } from '../helpers/fw-fixtures.js';
import { type TestNapi, startTestNapi } from '../helpers/napi.js';

const T = { admin: 'admin-0123456789abcdef', a: 'owner-a-0123456789abcdef', b: 'owner-b-0123456789abcdef', n1: 'node-1-0123456789abcdef', n2: 'node-2-0123456789abcdef' };
const as = (token: string) => (method: string, url: string, body?: unknown) => napi.call(method, url, body, { authorization: `Bearer ${token}` });

let dir: string;
let napi: TestNapi;
let api = '';
const admin = as(T.admin);

const web: IngressEntry = { address: '198.18.5.1', protocol: 'tcp', host_port: 8080, instance: vm(1), mac: mac(1), ip: '10.0.0.1', port: 80, via: 'published' };
const dockerPub: IngressEntry = {
  address: '198.18.0.11', protocol: 'tcp', host_port: 8443, instance: vm(2), mac: mac(2), ip: '10.0.0.2', port: 443, via: 'docker', seen_from: '169.254.0.1',
  unfiltered: 'this node applies no firewall (--no-firewall)',
};

function rhumb(...args: string[]): Promise<{ out: string; err: string; code: number }> {
  return runFwCli([...args, '--api', api, '--token-file', join(dir, 'admin.token')]);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rhumb-fw-ingress-'));
  const authFile = join(dir, 'auth.json');
  await writeFile(authFile, JSON.stringify({
    tokens: [
      { token: T.admin, role: 'admin' },
      { token: T.a, role: 'owner', owner_uuid: OWNER_A },
      { token: T.b, role: 'owner', owner_uuid: OWNER_B },
      { token: T.n1, role: 'node', node_uuid: NODE_1 },
      { token: T.n2, role: 'node', node_uuid: NODE_2 },
    ],
  }));
  await chmod(authFile, 0o600);
  await writeFile(join(dir, 'admin.token'), `${T.admin}\n`, { mode: 0o600 });
  const tokens = new TokenBook(authFile);
  await tokens.load();
  napi = await startTestNapi({ auth: { tokens, limits: { maxInFlight: 512, rate: null } } });
  await napi.app.listen({ host: '127.0.0.1', port: 0 });
  api = `http://127.0.0.1:${(napi.app.server.address() as AddressInfo).port}`;
  for (const [n, ip, cn] of [[1, '10.0.0.1', NODE_1], [2, '10.0.0.2', NODE_1]] as const) {
    assert.equal((await admin('PUT', `/fw/instances/${vm(n)}`, { owner_uuid: OWNER_A, firewall_enabled: true })).status, 200);
    await putNic(napi.store, n, { instance: vm(n), ip, cn });
  }
  const rule = await admin('POST', '/rules', { owner_uuid: OWNER_A, enabled: true, rule: `FROM ip 203.0.113.9 TO vm ${vm(1)} ALLOW tcp PORT 80` });
  assert.equal(rule.status, 202, JSON.stringify(rule.body));
});
after(async () => {
  await napi?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('node ingress reports', () => {
  it('a node reports its own table, and reads it back canonical', async () => {
    const put = await as(T.n1)('PUT', `/fw/nodes/${NODE_1}/ingress`, { entries: [dockerPub, web] });
    assert.equal(put.status, 204, JSON.stringify(put.body));
    const got = await as(T.n1)('GET', `/fw/nodes/${NODE_1}/ingress`);
    assert.deepEqual(got.body, { node: NODE_1, entries: [dockerPub, web] });
  });

  it("another node's table, and an owner, are refused; nothing changes", async () => {
    assert.equal((await as(T.n2)('PUT', `/fw/nodes/${NODE_1}/ingress`, { entries: [] })).status, 404);
    assert.equal((await as(T.a)('PUT', `/fw/nodes/${NODE_1}/ingress`, { entries: [] })).status, 403);
    assert.equal((await admin('GET', `/fw/nodes/${NODE_1}/ingress`)).body.entries.length, 2);
  });

  it('a bad table is a 422 naming the entry, and the stored one stays', async () => {
    const bad = await as(T.n1)('PUT', `/fw/nodes/${NODE_1}/ingress`, { entries: [web, { ...web, host_port: 70000 }] });
    assert.equal(bad.status, 422);
    assert.equal(bad.body.errors[0].field, 'entries');
    assert.match(bad.body.message, /entries\[1\]: host_port must be an integer in 1\.\.65535/);
    const twice = await as(T.n1)('PUT', `/fw/nodes/${NODE_1}/ingress`, { entries: [web, web] });
    assert.equal(twice.status, 422);
    assert.deepEqual((await admin('GET', `/fw/nodes/${NODE_1}/ingress`)).body.entries, [dockerPub, web]);
  });
});

describe('fw explain to a published port', () => {
  it('follows the DNAT to the instance port, where its rules decide', async () => {
    const yes = await admin('GET', '/fw/explain?from=203.0.113.9&to=198.18.5.1&proto=tcp&port=8080');
    assert.equal(yes.status, 200, JSON.stringify(yes.body));
    assert.equal(yes.body.allowed, true);
    assert.equal(yes.body.to, vm(1));
    assert.equal(yes.body.ingress.node, NODE_1);
    assert.equal(yes.body.ingress.port, 80);
    assert.match(yes.body.inbound.reason, /allows it/);
    const no = await admin('GET', '/fw/explain?from=192.0.2.50&to=198.18.5.1&proto=tcp&port=8080');
    assert.equal(no.body.allowed, false);
    assert.match(no.body.inbound.reason, /blocked by default/);
  });

  it("says when the instance's firewall does not see the path (a node that applies none)", async () => {
    const r = await admin('GET', '/fw/explain?from=192.0.2.50&to=198.18.0.11&port=8443');
    assert.equal(r.body.allowed, true);
    assert.equal(r.body.inbound.enforced, false);
    assert.match(r.body.inbound.reason, /--no-firewall/);
    assert.equal(r.body.ingress.seen_from, '169.254.0.1');
  });

  it('nothing published there, or published on two nodes without node=, is a clear error', async () => {
    const none = await admin('GET', '/fw/explain?from=203.0.113.9&to=198.18.5.1&proto=tcp&port=8081');
    assert.equal(none.status, 404);
    assert.match(none.body.message, /nothing is published at tcp port 8081 on 198\.18\.5\.1/);
    assert.equal((await as(T.n2)('PUT', `/fw/nodes/${NODE_2}/ingress`, { entries: [{ ...web, instance: vm(2), mac: mac(2), ip: '10.0.0.2' }] })).status, 204);
    const two = await admin('GET', '/fw/explain?from=203.0.113.9&to=198.18.5.1&proto=tcp&port=8080');
    assert.equal(two.status, 422);
    assert.equal(two.body.errors[0].field, 'node');
    const one = await admin('GET', `/fw/explain?from=203.0.113.9&to=198.18.5.1&proto=tcp&port=8080&node=${NODE_2}`);
    assert.equal(one.status, 200);
    assert.equal(one.body.to, vm(2));
    assert.equal(one.body.allowed, false, 'the rule names vm 1, not vm 2');
    assert.equal((await as(T.n2)('PUT', `/fw/nodes/${NODE_2}/ingress`, { entries: [] })).status, 204);
    const icmp = await admin('GET', '/fw/explain?from=203.0.113.9&to=198.18.5.1&proto=icmp');
    assert.equal(icmp.status, 422);
    const nowhere = await admin('GET', '/fw/explain?from=203.0.113.9&to=nowhere&port=8080');
    assert.equal(nowhere.status, 422);
    assert.match(nowhere.body.errors[0].message, /instance UUID or a node address/);
    const fromVm = await admin('GET', `/fw/explain?from=${vm(2)}&to=198.18.5.1&port=8080`);
    assert.equal(fromVm.status, 422);
    assert.equal(fromVm.body.errors[0].field, 'from');
  });

  it("an owner explains its own instance's published port; another owner gets 404", async () => {
    const a = await as(T.a)('GET', '/fw/explain?from=203.0.113.9&to=198.18.5.1&port=8080');
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(a.body.allowed, true);
    const b = await as(T.b)('GET', '/fw/explain?from=203.0.113.9&to=198.18.5.1&port=8080');
    assert.equal(b.status, 404);
  });

  it('an instance the firewall does not know has no firewall (admins only)', async () => {
    const stray = { ...web, address: '198.18.5.2', instance: vm(9), mac: mac(9), ip: '10.0.0.9' };
    assert.equal((await as(T.n2)('PUT', `/fw/nodes/${NODE_2}/ingress`, { entries: [stray] })).status, 204);
    const r = await admin('GET', '/fw/explain?from=203.0.113.9&to=198.18.5.2&port=8080');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([r.body.allowed, r.body.inbound.enforced], [true, false]);
    assert.match(r.body.inbound.reason, /no firewall/);
    assert.equal((await as(T.a)('GET', '/fw/explain?from=203.0.113.9&to=198.18.5.2&port=8080')).status, 404);
    assert.equal((await as(T.n2)('PUT', `/fw/nodes/${NODE_2}/ingress`, { entries: [] })).status, 204);
  });

  it('rhumb fw explain --to ADDR --port HOST_PORT prints where the port leads', async () => {
    const r = await rhumb('fw', 'explain', '--from', '203.0.113.9', '--to', '198.18.5.1', '--port', '8080');
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^ALLOWED/);
    assert.match(r.out, new RegExp(`ingress: tcp 198\\.18\\.5\\.1:8080 on node ${NODE_1} is DNATed to instance ${vm(1)} at 10\\.0\\.0\\.1:80 \\(a published port\\)`));
    const json = JSON.parse((await rhumb('fw', 'explain', '--from', '203.0.113.9', '--to', '198.18.5.1', '--port', '8080', '--json')).out);
    assert.equal(json.ingress.instance, vm(1));
  });
});

describe('IngressReporter', () => {
  it("sends the agent's table with the node's credentials, again only when it changed, and retries", async () => {
    let entries: IngressEntry[] = [{ ...web, host_port: 9090 }];
    let puts = 0;
    const nodeFetch: typeof fetch = (input, init) => {
      puts++;
      return fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), authorization: `Bearer ${T.n1}` } });
    };
    const reporter = new IngressReporter({ controllerUrl: api, fetch: nodeFetch, nodeUuid: NODE_1, collect: () => entries, intervalMs: 60_000 });
    reporter.start();
    await reporter.settled();
    assert.deepEqual((await admin('GET', `/fw/nodes/${NODE_1}/ingress`)).body.entries, entries);
    reporter.poke();
    await reporter.settled();
    assert.equal(puts, 1, 'an unchanged table is not sent again');
    entries = [];
    reporter.poke();
    await reporter.settled();
    assert.deepEqual((await admin('GET', `/fw/nodes/${NODE_1}/ingress`)).body.entries, []);
    // A refused report (another node's credentials) is tried again on the next poke.
    let tries = 0;
    const n2Fetch: typeof fetch = (i, init) => {
      tries++;
      return fetch(i, { ...init, headers: { ...(init?.headers as Record<string, string>), authorization: `Bearer ${T.n2}` } });
    };
    const wrong = new IngressReporter({ controllerUrl: api, fetch: n2Fetch, nodeUuid: NODE_1, collect: () => [web], intervalMs: 60_000 });
    wrong.start();
    await wrong.settled();
    wrong.poke();
    await wrong.settled();
    assert.equal(tries, 2);
    assert.deepEqual((await admin('GET', `/fw/nodes/${NODE_1}/ingress`)).body.entries, []);
    reporter.stop();
    wrong.stop();
  });
});
