/**
 * The firewall REST routes over the real app (inject, in-memory store): every route,
 * FWAPI error bodies, nothing stored on bad input, the per-node feed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RULE_PREFIX } from '../../src/fw/registry.js';
import { startTestNapi, type TestNapi } from '../helpers/napi.js';
import { NODE_1, NODE_2, OWNER_A, OWNER_B, putNic, vm } from '../helpers/fw-fixtures.js';

let napi: TestNapi;

async function ruleCount(): Promise<number> {
  return napi.store.count(RULE_PREFIX);
}

before(async () => {
  napi = await startTestNapi();
});
after(async () => {
  await napi.close();
});

describe('rules API', () => {
  let ruleUuid = '';

  it('creates a rule (202) with canonical text and FWAPI fields', async () => {
    const res = await napi.call('POST', '/rules', {
      rule: 'from tag role = web to tag role = db allow tcp port 5432',
      owner_uuid: OWNER_A,
      enabled: true,
      description: 'web to db',
    });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    assert.equal(res.body.rule, 'FROM tag "role" = "web" TO tag "role" = "db" ALLOW tcp PORT 5432');
    assert.equal(res.body.owner_uuid, OWNER_A);
    assert.equal(res.body.enabled, true);
    assert.equal(res.body.log, false);
    assert.equal(res.body.global, undefined);
    assert.match(res.body.version, /^\d+\.\d{6}$/);
    assert.deepEqual(Object.keys(res.body), ['description', 'enabled', 'log', 'owner_uuid', 'rule', 'uuid', 'version']);
    ruleUuid = res.body.uuid;
    const got = await napi.call('GET', `/rules/${ruleUuid}`);
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, res.body);
  });

  it('rejects a malformed rule with fwrule message in a 422 and stores nothing', async () => {
    const before = await ruleCount();
    const res = await napi.call('POST', '/rules', { rule: 'FROM any TO all vms ALLOW tcp PORT 99999', global: true });
    assert.equal(res.status, 422);
    assert.equal(res.body.code, 'InvalidParameters');
    assert.equal(res.body.message, 'Invalid parameters');
    assert.deepEqual(res.body.errors, [{ field: 'rule', code: 'InvalidParameter', message: 'Port number "99999" is invalid' }]);
    const syntax = await napi.call('POST', '/rules', { rule: 'FROM any TO all vms ALLOW tcp', global: true });
    assert.equal(syntax.status, 422);
    assert.match(syntax.body.errors[0].message, /^Error at character \d+: /);
    const noVms = await napi.call('POST', '/rules', { rule: 'FROM any TO ip 10.0.0.1 ALLOW tcp PORT 1', global: true });
    assert.equal(noVms.body.errors[0].message, 'rule does not affect VMs');
    assert.equal(await ruleCount(), before);
  });

  it('collects every field error into one 422', async () => {
    const res = await napi.call('POST', '/rules', {
      rule: 'FROM any TO all vms ALLOW tcp PORT 80',
      owner_uuid: 'nope',
      enabled: 'maybe',
      description: 5,
    });
    assert.equal(res.status, 422);
    assert.deepEqual(
      res.body.errors.map((e: { field: string; message: string }) => [e.field, e.message]),
      [
        ['description', 'description must be a string'],
        ['enabled', 'enabled must be true or false'],
        ['owner_uuid', 'Invalid owner UUID'],
      ],
    );
    const both = await napi.call('POST', '/rules', { rule: 'FROM any TO all vms ALLOW tcp PORT 80', owner_uuid: OWNER_A, global: true });
    assert.equal(both.body.errors[0].message, 'cannot specify both global and owner_uuid');
    const neither = await napi.call('POST', '/rules', { rule: 'FROM any TO all vms ALLOW tcp PORT 80' });
    assert.deepEqual(neither.body.errors, [{ field: 'owner_uuid', code: 'MissingParameter', message: 'owner_uuid required' }]);
    const missing = await napi.call('POST', '/rules', { global: true });
    assert.deepEqual(missing.body.errors, [{ field: 'rule', code: 'MissingParameter', message: 'No rule specified' }]);
    const unknown = await napi.call('POST', '/rules', { rule: 'FROM any TO all vms ALLOW tcp PORT 80', global: true, bogus: 1 });
    assert.equal(unknown.body.errors[0].code, 'UnknownParameters');
  });

  it('refuses a duplicate uuid and an invalid one', async () => {
    const dup = await napi.call('POST', '/rules', { rule: 'FROM any TO all vms ALLOW tcp PORT 80', global: true, uuid: ruleUuid });
    assert.equal(dup.status, 422);
    assert.equal(dup.body.code, 'RuleExists');
    const bad = await napi.call('POST', '/rules', { rule: 'FROM any TO all vms ALLOW tcp PORT 80', global: true, uuid: 'x' });
    assert.equal(bad.body.errors[0].message, 'Invalid rule UUID');
  });

  it('GET checks the owner (403) and 404s unknown rules', async () => {
    assert.equal((await napi.call('GET', `/rules/${ruleUuid}?owner_uuid=${OWNER_A}`)).status, 200);
    const forbidden = await napi.call('GET', `/rules/${ruleUuid}?owner_uuid=${OWNER_B}`);
    assert.equal(forbidden.status, 403);
    assert.deepEqual(forbidden.body, {
      code: 'Forbidden',
      message: 'owner does not match',
      errors: [{ field: 'owner_uuid', code: 'InvalidParameter', message: 'owner_uuid does not match' }],
    });
    const missing = await napi.call('GET', '/rules/30000000-0000-4000-8000-000000000000');
    assert.deepEqual([missing.status, missing.body.code, missing.body.message], [404, 'ResourceNotFound', 'Rule not found']);
  });

  it('updates by merging, revalidates and changes version; bad update stores nothing', async () => {
    const before = (await napi.call('GET', `/rules/${ruleUuid}`)).body;
    await new Promise((r) => setTimeout(r, 2));
    const res = await napi.call('PUT', `/rules/${ruleUuid}`, { rule: 'FROM tag role = web TO tag role = db ALLOW tcp PORTS 5432-5433 PRIORITY 0' });
    assert.equal(res.status, 202);
    assert.equal(res.body.rule, 'FROM tag "role" = "web" TO tag "role" = "db" ALLOW tcp PORTS 5432 - 5433');
    assert.equal(res.body.description, 'web to db');
    assert.equal(res.body.uuid, ruleUuid);
    assert.notEqual(res.body.version, before.version);
    const bad = await napi.call('PUT', `/rules/${ruleUuid}`, { rule: 'FROM tag role = web TO tag role = db ALLOW tcp PORT 0' });
    assert.equal(bad.status, 422);
    assert.equal(bad.body.errors[0].message, 'Port number "0" is invalid');
    assert.equal((await napi.call('GET', `/rules/${ruleUuid}`)).body.rule, res.body.rule);
  });

  it('lists with FWAPI filters and pagination', async () => {
    const g = await napi.call('POST', '/rules', { rule: 'FROM any TO all vms ALLOW icmp TYPE 8', global: true, enabled: true });
    assert.equal(g.status, 202);
    const b = await napi.call('POST', '/rules', { rule: `FROM any TO vm ${vm(9)} BLOCK udp PORT 53`, owner_uuid: OWNER_B });
    assert.equal(b.status, 202);
    const uuids = (r: { body: Array<{ uuid: string }> }) => r.body.map((x) => x.uuid).sort();
    assert.deepEqual(uuids(await napi.call('GET', `/rules?owner_uuid=${OWNER_A}`)), [ruleUuid]);
    assert.deepEqual(uuids(await napi.call('GET', `/rules?owner_uuid=${OWNER_A}&global=true`)), [g.body.uuid, ruleUuid].sort());
    assert.deepEqual(uuids(await napi.call('GET', '/rules?global=true')), [g.body.uuid]);
    assert.deepEqual(uuids(await napi.call('GET', '/rules?tag=role')), [ruleUuid]);
    assert.deepEqual(uuids(await napi.call('GET', '/rules?tag=role=db')), [ruleUuid]);
    assert.deepEqual(uuids(await napi.call('GET', '/rules?tag=role=nope')), []);
    assert.deepEqual(uuids(await napi.call('GET', `/rules?vm=${vm(9)}`)), [b.body.uuid]);
    assert.deepEqual(uuids(await napi.call('GET', '/rules?enabled=false')), [b.body.uuid]);
    assert.deepEqual(uuids(await napi.call('GET', '/rules?protocol=icmp')), [g.body.uuid]);
    assert.deepEqual(uuids(await napi.call('GET', '/rules?action=block')), [b.body.uuid]);
    assert.deepEqual(uuids(await napi.call('GET', '/rules?wildcard=vmall')), [g.body.uuid]);
    const all = await napi.call('GET', '/rules');
    assert.equal(all.body.length, 3);
    const page = await napi.call('GET', '/rules?limit=2&offset=1');
    assert.deepEqual(page.body.map((r: { uuid: string }) => r.uuid), all.body.slice(1, 3).map((r: { uuid: string }) => r.uuid));
    const bad = await napi.call('GET', '/rules?enabled=sometimes&foo=1');
    assert.equal(bad.status, 422);
    assert.deepEqual(bad.body.errors.map((e: { code: string }) => e.code).sort(), ['InvalidParameter', 'UnknownParameters']);
  });

  it('instance registry, /rules/:uuid/vms and /firewalls/vms/:uuid', async () => {
    const put = await napi.call('PUT', `/fw/instances/${vm(1)}`, { owner_uuid: OWNER_A, tags: { role: 'db' }, firewall_enabled: true });
    assert.equal(put.status, 200);
    assert.deepEqual(put.body, { uuid: vm(1), owner_uuid: OWNER_A, tags: { role: 'db' }, firewall_enabled: true });
    await napi.call('PUT', `/fw/instances/${vm(2)}`, { owner_uuid: OWNER_A, tags: { role: 'web' } });
    await napi.call('PUT', `/fw/instances/${vm(3)}`, { owner_uuid: OWNER_B, tags: { role: 'web' } });
    await putNic(napi.store, 1, { instance: vm(1), ip: '10.0.0.1', cn: NODE_1 });
    await putNic(napi.store, 2, { instance: vm(2), ip: '10.0.0.2', cn: NODE_1 });
    const got = await napi.call('GET', `/fw/instances/${vm(1)}`);
    assert.deepEqual(got.body, { uuid: vm(1), owner_uuid: OWNER_A, tags: { role: 'db' }, firewall_enabled: true, ips: ['10.0.0.1'], nodes: [NODE_1] });
    const vms = await napi.call('GET', `/rules/${ruleUuid}/vms`);
    // Owner-scoped: vm(3) has the tag but another owner.
    assert.deepEqual(vms.body.map((i: { uuid: string }) => i.uuid), [vm(1), vm(2)]);
    const applies = await napi.call('GET', `/firewalls/vms/${vm(1)}`);
    assert.deepEqual(applies.body.map((r: { rule: string }) => r.rule).sort(), [
      'FROM any TO all vms ALLOW icmp TYPE 8',
      'FROM tag "role" = "web" TO tag "role" = "db" ALLOW tcp PORTS 5432 - 5433',
    ]);
    const badTags = await napi.call('PUT', `/fw/instances/${vm(4)}`, { tags: ['x'], firewall_enabled: 'yes' });
    assert.equal(badTags.status, 422);
    assert.equal(badTags.body.errors.length, 2);
    assert.equal((await napi.call('GET', `/fw/instances/${vm(4)}`)).status, 404);
    const ruleset = await napi.call('GET', `/fw/instances/${vm(1)}/ruleset`);
    assert.match(ruleset.body.text, /tcp dport 5432-5433 accept/);
    assert.match(ruleset.body.text, /elements = \{ 10\.0\.0\.2 \}/);
    // The node-side form, filtering the instance's ports: the only one an agent loads.
    assert.match(ruleset.body.text, /^table bridge /);
    assert.equal(ruleset.body.netns_text, undefined);
  });

  it('explains a decision', async () => {
    const ok = await napi.call('GET', `/fw/explain?from=10.0.0.2&to=${vm(1)}&proto=tcp&port=5432`);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.body.allowed, true);
    assert.equal(ok.body.inbound.entry.rule_uuid, ruleUuid);
    const no = await napi.call('GET', `/fw/explain?from=10.0.0.2&to=${vm(1)}&proto=tcp&port=22`);
    assert.equal(no.body.allowed, false);
    assert.match(no.body.inbound.reason, /blocked by default/);
    const byInstance = await napi.call('GET', `/fw/explain?from=${vm(2)}&to=${vm(1)}&proto=tcp&port=5433`);
    assert.equal(byInstance.body.from, '10.0.0.2');
    assert.equal(byInstance.body.allowed, true);
    const bad = await napi.call('GET', `/fw/explain?from=nope&to=${vm(1)}&proto=tcp`);
    assert.equal(bad.status, 422);
    assert.deepEqual(bad.body.errors.map((e: { field: string }) => e.field).sort(), ['from', 'port']);
  });

  it('node feed: full resync, then only changes, long-poll wakes on a change', async () => {
    const full = await napi.call('GET', `/fw/nodes/${NODE_1}/rulesets?since=0`);
    assert.equal(full.status, 200);
    assert.equal(full.body.full, true);
    assert.deepEqual(full.body.rulesets.map((r: { uuid: string }) => r.uuid), [vm(1), vm(2)]);
    const rev = full.body.revision;
    const quiet = await napi.call('GET', `/fw/nodes/${NODE_1}/rulesets?since=${rev}&wait=0`);
    assert.deepEqual([quiet.body.full, quiet.body.rulesets.length], [false, 0]);
    const pending = napi.call('GET', `/fw/nodes/${NODE_1}/rulesets?since=${rev}&wait=20000`);
    // vm(2)'s address is in vm(1)'s set; vm(2) itself (firewall off) has nothing to change.
    await putNic(napi.store, 2, { instance: vm(2), ip: '10.0.0.22', cn: NODE_1 });
    const changed = await pending;
    assert.equal(changed.body.full, false);
    assert.ok(changed.body.revision > rev);
    assert.deepEqual(changed.body.rulesets.map((r: { uuid: string }) => r.uuid), [vm(1)]);
    assert.match(changed.body.rulesets[0].text, /10\.0\.0\.22/);
    // Moving vm(2) to another node: tombstone on node 1, full ruleset on node 2.
    const rev2 = changed.body.revision;
    await putNic(napi.store, 2, { instance: vm(2), ip: '10.0.0.22', cn: NODE_2 });
    const moved = await napi.call('GET', `/fw/nodes/${NODE_1}/rulesets?since=${rev2}&wait=20000`);
    assert.deepEqual(moved.body.rulesets.map((r: { uuid: string; removed?: boolean }) => [r.uuid, r.removed ?? false]), [[vm(2), true]]);
    const node2 = await napi.call('GET', `/fw/nodes/${NODE_2}/rulesets?since=0`);
    assert.deepEqual(node2.body.rulesets.map((r: { uuid: string }) => r.uuid), [vm(2)]);
    const bad = await napi.call('GET', `/fw/nodes/${NODE_1}/rulesets?since=-1`);
    assert.equal(bad.status, 422);
  });

  it('an unrelated rule change leaves other instances alone', async () => {
    const engine = napi.fwEngine;
    await engine.sync();
    const rev = engine.revision;
    const r = await napi.call('POST', '/rules', { rule: `FROM any TO vm ${vm(1)} ALLOW tcp PORT 22`, owner_uuid: OWNER_A, enabled: true });
    assert.equal(r.status, 202);
    const feed = await napi.call('GET', `/fw/nodes/${NODE_1}/rulesets?since=${rev}&wait=20000`);
    assert.deepEqual(feed.body.rulesets.map((x: { uuid: string }) => x.uuid), [vm(1)]);
  });

  it('deletes (204) and 404s afterwards; metrics exported', async () => {
    const del = await napi.call('DELETE', `/rules/${ruleUuid}`);
    assert.equal(del.status, 204);
    assert.equal((await napi.call('GET', `/rules/${ruleUuid}`)).status, 404);
    assert.equal((await napi.call('DELETE', `/rules/${ruleUuid}`)).status, 404);
    assert.equal((await napi.call('DELETE', `/fw/instances/${vm(3)}`)).status, 204);
    const metrics = await napi.app.inject({ method: 'GET', url: '/metrics' });
    assert.match(metrics.body, /rhumb_fw_compile_seconds_count\{process="test"\} [1-9]/);
    assert.match(metrics.body, /rhumb_fw_rulesets_pushed_total\{process="test"\} [1-9]/);
  });

  it('docker containers: rules, env and hosts; bad input stores nothing', async () => {
    const OWNER_D = 'dddddddd-0000-4000-8000-00000000000d';
    await putNic(napi.store, 21, { instance: vm(21), ip: '10.2.0.21', cn: NODE_1, owner: OWNER_D });
    const before = await ruleCount();
    const remap = await napi.call('POST', `/fw/docker/containers/${vm(21)}`, { owner_uuid: OWNER_D, name: 'db', published_ports: ['8080:80'] });
    assert.equal(remap.status, 422);
    assert.deepEqual(remap.body.errors, [{ field: 'published_ports', code: 'InvalidParameter', message: 'remapping of port numbers not allowed' }]);
    const noTarget = await napi.call('POST', `/fw/docker/containers/${vm(22)}`, { owner_uuid: OWNER_D, name: 'web', links: ['nope:db'] });
    assert.equal(noTarget.status, 422);
    assert.equal(noTarget.body.errors[0].message, 'link target "nope" not found');
    assert.equal(await ruleCount(), before);
    assert.equal((await napi.call('GET', `/fw/docker/containers/${vm(22)}`)).status, 404);

    const db = await napi.call('POST', `/fw/docker/containers/${vm(21)}`, { owner_uuid: OWNER_D, name: 'db', exposed_ports: ['5432'], env: ['A=1'], icc: false });
    assert.equal(db.status, 200, JSON.stringify(db.body));
    const web = await napi.call('POST', `/fw/docker/containers/${vm(22)}`, { owner_uuid: OWNER_D, name: 'web', links: ['db:pg'], published_ports: ['80'] });
    assert.equal(web.status, 200, JSON.stringify(web.body));
    assert.deepEqual(web.body.hosts, ['10.2.0.21\tpg db']);
    assert.ok(web.body.env.includes('PG_PORT_5432_TCP=tcp://10.2.0.21:5432'));
    assert.ok(web.body.env.includes('PG_ENV_A=1'));
    const rules = (await napi.call('GET', `/rules?owner_uuid=${OWNER_D}`)).body.map((r: { rule: string }) => r.rule).sort();
    assert.deepEqual(rules, [`FROM any TO vm ${vm(22)} ALLOW tcp PORT 80`, `FROM vm ${vm(22)} TO vm ${vm(21)} ALLOW tcp PORT 5432`]);
    const dup = await napi.call('POST', `/fw/docker/containers/${vm(23)}`, { owner_uuid: OWNER_D, name: 'db' });
    assert.equal(dup.body.errors[0].code, 'Duplicate');
    // Turning icc on replaces the link rule with the owner-wide ones; deleting web drops its rules.
    await napi.call('POST', `/fw/docker/containers/${vm(21)}`, { icc: true });
    assert.equal((await napi.call('DELETE', `/fw/docker/containers/${vm(22)}`)).status, 204);
    const after = (await napi.call('GET', `/rules?owner_uuid=${OWNER_D}`)).body.map((r: { rule: string }) => r.rule).sort();
    assert.deepEqual(after, [
      'FROM tag "sdc_docker" TO tag "sdc_docker" ALLOW tcp PORT all',
      'FROM tag "sdc_docker" TO tag "sdc_docker" ALLOW udp PORT all',
    ]);
    const inst = await napi.call('GET', `/fw/instances/${vm(21)}`);
    assert.deepEqual([inst.body.firewall_enabled, inst.body.tags], [true, { sdc_docker: true }]);
  });
});

describe('ownership on writes (issue 17 item 3): FWAPI\'s owner checks on PUT, an instance keeps its owner', () => {
  const FORBIDDEN = {
    code: 'Forbidden',
    message: 'owner does not match',
    errors: [{ field: 'owner_uuid', code: 'InvalidParameter', message: 'owner_uuid does not match' }],
  };

  it('PUT /rules/:uuid with another owner_uuid is a 403 and changes nothing (the rule is not handed over)', async () => {
    const created = await napi.call('POST', '/rules', { rule: `FROM any TO vm ${vm(60)} ALLOW tcp PORT 443`, owner_uuid: OWNER_A, enabled: true });
    assert.equal(created.status, 202);
    const uuid = created.body.uuid;
    const put = await napi.call('PUT', `/rules/${uuid}`, { owner_uuid: OWNER_B, enabled: false });
    assert.equal(put.status, 403, JSON.stringify(put.body));
    assert.deepEqual(put.body, FORBIDDEN);
    assert.deepEqual((await napi.call('GET', `/rules/${uuid}`)).body, created.body, 'stored rule unchanged');
    // The owner's own PUT (and an operator's, without owner_uuid) still works.
    const own = await napi.call('PUT', `/rules/${uuid}`, { owner_uuid: OWNER_A, enabled: false });
    assert.equal(own.status, 202, JSON.stringify(own.body));
    assert.equal(own.body.enabled, false);
    assert.equal(own.body.owner_uuid, OWNER_A);
    const operator = await napi.call('PUT', `/rules/${uuid}`, { description: 'https' });
    assert.equal(operator.status, 202);
    assert.equal(operator.body.owner_uuid, OWNER_A);
    // DELETE by another owner: 403 as well.
    const del = await napi.call('DELETE', `/rules/${uuid}?owner_uuid=${OWNER_B}`);
    assert.equal(del.status, 403);
    assert.deepEqual(del.body, FORBIDDEN);
    assert.equal((await napi.call('GET', `/rules/${uuid}`)).status, 200);
  });

  it('PUT of a global rule with an owner_uuid is a 403 (no owner may take or edit it); without one it updates', async () => {
    const g = await napi.call('POST', '/rules', { rule: 'FROM any TO all vms ALLOW icmp TYPE 0', global: true });
    assert.equal(g.status, 202);
    const put = await napi.call('PUT', `/rules/${g.body.uuid}`, { owner_uuid: OWNER_A, enabled: true });
    assert.equal(put.status, 403, JSON.stringify(put.body));
    assert.deepEqual(put.body, FORBIDDEN);
    const after = (await napi.call('GET', `/rules/${g.body.uuid}`)).body;
    assert.deepEqual([after.global, after.owner_uuid, after.enabled], [true, undefined, false]);
    assert.equal((await napi.call('GET', `/rules/${g.body.uuid}?owner_uuid=${OWNER_A}`)).status, 403);
    const operator = await napi.call('PUT', `/rules/${g.body.uuid}`, { enabled: true });
    assert.equal(operator.status, 202);
    assert.equal(operator.body.global, true);
    assert.equal(operator.body.enabled, true);
  });

  it('PUT /fw/instances/:uuid naming another owner is a 403 and changes nothing; GET and DELETE check owner_uuid too', async () => {
    const inst = vm(61);
    const first = await napi.call('PUT', `/fw/instances/${inst}`, { owner_uuid: OWNER_A, tags: { role: 'db' }, firewall_enabled: true });
    assert.equal(first.status, 200);
    const steal = await napi.call('PUT', `/fw/instances/${inst}`, { owner_uuid: OWNER_B, tags: { role: 'web' }, firewall_enabled: false });
    assert.equal(steal.status, 403, JSON.stringify(steal.body));
    assert.deepEqual(steal.body, FORBIDDEN);
    const got = await napi.call('GET', `/fw/instances/${inst}`);
    assert.deepEqual([got.body.owner_uuid, got.body.tags, got.body.firewall_enabled], [OWNER_A, { role: 'db' }, true]);
    const same = await napi.call('PUT', `/fw/instances/${inst}`, { owner_uuid: OWNER_A, tags: { role: 'web' } });
    assert.equal(same.status, 200);
    assert.deepEqual(same.body.tags, { role: 'web' });
    const bad = await napi.call('PUT', `/fw/instances/${inst}`, { owner_uuid: 'nope' });
    assert.equal(bad.status, 422);
    assert.equal((await napi.call('GET', `/fw/instances/${inst}?owner_uuid=${OWNER_B}`)).status, 403);
    assert.equal((await napi.call('GET', `/fw/instances/${inst}?owner_uuid=${OWNER_A}`)).status, 200);
    assert.equal((await napi.call('DELETE', `/fw/instances/${inst}?owner_uuid=${OWNER_B}`)).status, 403);
    assert.equal((await napi.call('GET', `/fw/instances/${inst}`)).status, 200);
    assert.equal((await napi.call('DELETE', `/fw/instances/${inst}?owner_uuid=${OWNER_A}`)).status, 204);
  });
});

describe('bounded requests (issue 17 item 8): held feed requests capped per node, registry lists paginated', () => {
  const NODE_3 = 'c0000000-0000-4000-8000-000000000003';
  const waitingNow = async (): Promise<number> => {
    const m = await napi.app.inject({ method: 'GET', url: '/metrics' });
    const line = /^rhumb_fw_feed_waiting\{[^}]*\} (\d+)/m.exec(m.body);
    return line ? Number(line[1]) : 0;
  };

  it('at most 4 requests wait on one node\'s rulesets: the 5th is a 429 at once; other nodes and wait=0 are unaffected', async () => {
    const since = (await napi.call('GET', `/fw/nodes/${NODE_3}/rulesets?since=0`)).body.revision;
    const settled: boolean[] = [];
    const held = Array.from({ length: 4 }, (_, i) => {
      settled[i] = false;
      return napi.call('GET', `/fw/nodes/${NODE_3}/rulesets?since=${since}&wait=30000`).then((r) => {
        settled[i] = true;
        return r;
      });
    });
    for (let i = 0; i < 200 && (await waitingNow()) < 4; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(await waitingNow(), 4);
    const fifth = await napi.call('GET', `/fw/nodes/${NODE_3}/rulesets?since=${since}&wait=30000`);
    assert.equal(fifth.status, 429, JSON.stringify(fifth.body));
    assert.equal(fifth.body.code, 'TooManyRequests');
    assert.match(fifth.body.message, /at most 4 per node/);
    assert.deepEqual(settled, [false, false, false, false], 'the held requests are still waiting');
    // Not waiting is never refused; another node may wait.
    assert.equal((await napi.call('GET', `/fw/nodes/${NODE_3}/rulesets?since=${since}&wait=0`)).status, 200);
    const other = await napi.call('GET', `/fw/nodes/${NODE_2}/rulesets?since=0&wait=30000`);
    assert.equal(other.status, 200);
    // A change for the node releases the held requests; then new ones may wait again.
    assert.equal((await napi.call('PUT', `/fw/instances/${vm(70)}`, { owner_uuid: OWNER_A, firewall_enabled: true })).status, 200);
    await putNic(napi.store, 70, { instance: vm(70), ip: '10.0.7.70', cn: NODE_3 });
    const released = await Promise.all(held);
    assert.deepEqual(released.map((r) => [r.status, r.body.rulesets.map((x: { uuid: string }) => x.uuid)]), Array(4).fill([200, [vm(70)]]));
    assert.equal(await waitingNow(), 0);
  });

  it('/fw/instances, /rules/:uuid/vms and /firewalls/vms/:uuid take limit and offset like NAPI', async () => {
    for (let n = 80; n < 86; n++) {
      assert.equal((await napi.call('PUT', `/fw/instances/${vm(n)}`, { owner_uuid: OWNER_A, tags: { page: 'yes' } })).status, 200);
    }
    const all = (await napi.call('GET', '/fw/instances')).body.map((i: { uuid: string }) => i.uuid);
    assert.ok(all.length >= 6);
    assert.deepEqual(all, [...all].sort());
    const page = await napi.call('GET', '/fw/instances?limit=2&offset=3');
    assert.deepEqual(page.body.map((i: { uuid: string }) => i.uuid), all.slice(3, 5));
    assert.deepEqual((await napi.call('GET', `/fw/instances?offset=${all.length}`)).body, []);
    const rule = await napi.call('POST', '/rules', { rule: 'FROM tag page TO tag page ALLOW tcp PORT 8080', owner_uuid: OWNER_A, enabled: true });
    assert.equal(rule.status, 202);
    const vms = (await napi.call('GET', `/rules/${rule.body.uuid}/vms?owner_uuid=${OWNER_A}`)).body.map((i: { uuid: string }) => i.uuid);
    assert.deepEqual(vms, [80, 81, 82, 83, 84, 85].map(vm));
    const vmsPage = await napi.call('GET', `/rules/${rule.body.uuid}/vms?owner_uuid=${OWNER_A}&limit=2&offset=1`);
    assert.deepEqual(vmsPage.body.map((i: { uuid: string }) => i.uuid), vms.slice(1, 3));
    const second = await napi.call('POST', '/rules', { rule: `FROM any TO vm ${vm(80)} ALLOW tcp PORT 8081`, owner_uuid: OWNER_A, enabled: true });
    assert.equal(second.status, 202);
    const applies = (await napi.call('GET', `/firewalls/vms/${vm(80)}`)).body.map((r: { uuid: string }) => r.uuid);
    assert.ok(applies.includes(rule.body.uuid) && applies.includes(second.body.uuid));
    const one = await napi.call('GET', `/firewalls/vms/${vm(80)}?limit=1&offset=1`);
    assert.deepEqual(one.body.map((r: { uuid: string }) => r.uuid), applies.slice(1, 2));
    for (const url of ['/fw/instances?limit=0', `/rules/${rule.body.uuid}/vms?limit=1001`, `/firewalls/vms/${vm(80)}?offset=-1`]) {
      const bad = await napi.call('GET', url);
      assert.equal(bad.status, 422, url);
      assert.match(bad.body.errors[0].message, /^invalid (limit, must be an integer greater than 0 or less than or equal to 1000|value, offset must be an integer greater than or equal to 0)$/, url);
    }
  });
});
