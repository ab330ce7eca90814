/**
 * `rhumb fw rules …` and `rhumb fw explain` against a real controller app on loopback.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { runFwCli } from '../helpers/fw-cli.js';
import { NODE_1, OWNER_A, putNic, vm } from '../helpers/fw-fixtures.js';
import { startTestNapi, type TestNapi } from '../helpers/napi.js';

let napi: TestNapi;
let api = '';

function rhumb(...args: string[]): Promise<{ out: string; err: string; code: number }> {
  return runFwCli([...args, '--api', api]);
}

before(async () => {
  napi = await startTestNapi();
  await napi.app.listen({ host: '127.0.0.1', port: 0 });
  api = `http://127.0.0.1:${(napi.app.server.address() as AddressInfo).port}`;
});
after(async () => {
  await napi.close();
});

describe('rhumb fw', () => {
  let uuid = '';
  it('rules create / get / list / update / delete', async () => {
    const created = await rhumb('fw', 'rules', 'create', '--rule', 'from any to tag role = db allow tcp port 5432', '--owner', OWNER_A, '--enabled', '--json');
    assert.equal(created.code, 0, created.err);
    const rule = JSON.parse(created.out);
    uuid = rule.uuid;
    assert.equal(rule.rule, 'FROM any TO tag "role" = "db" ALLOW tcp PORT 5432');
    const got = await rhumb('fw', 'rules', 'get', uuid);
    assert.match(got.out, /FROM any TO tag "role" = "db" ALLOW tcp PORT 5432/);
    const list = await rhumb('fw', 'rules', 'list', '--owner', OWNER_A);
    assert.ok(list.out.includes(uuid));
    const upd = await rhumb('fw', 'rules', 'update', uuid, '--enabled', 'false', '--json');
    assert.equal(JSON.parse(upd.out).enabled, false);
    const bad = await rhumb('fw', 'rules', 'create', '--rule', 'FROM any TO any ALLOW tcp PORT 1', '--global');
    assert.equal(bad.code, 1);
    assert.match(bad.err, /rule does not affect VMs/);
  });

  it('explain names the deciding rule', async () => {
    await rhumb('fw', 'rules', 'update', uuid, '--enabled', 'true');
    await napi.call('PUT', `/fw/instances/${vm(1)}`, { owner_uuid: OWNER_A, tags: { role: 'db' }, firewall_enabled: true });
    await putNic(napi.store, 1, { instance: vm(1), ip: '10.0.0.1', cn: NODE_1 });
    const yes = await rhumb('fw', 'explain', '--from', '192.0.2.7', '--to', vm(1), '--proto', 'tcp', '--port', '5432');
    assert.equal(yes.code, 0, yes.err);
    assert.match(yes.out, /^ALLOWED/);
    assert.ok(yes.out.includes(`rule ${uuid} allows it`));
    const no = await rhumb('fw', 'explain', '--from', '192.0.2.7', '--to', vm(1), '--port', '22');
    assert.match(no.out, /^BLOCKED[\s\S]*blocked by default/);
  });

  it('delete', async () => {
    assert.equal((await rhumb('fw', 'rules', 'delete', uuid)).code, 0);
    const gone = await rhumb('fw', 'rules', 'get', uuid);
    assert.equal(gone.code, 1);
    assert.match(gone.err, /Rule not found/);
  });
});
