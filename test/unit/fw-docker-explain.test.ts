/**
 * Docker semantics (rules for icc on/off, links, published ports; link env and hosts;
 * -p parsing) and the explain evaluator over compiled policies.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PolicyWorld } from '../../src/fw/compile.js';
import {
  type DockerContainerRecord, dockerRuleUuid, dockerRules, envAlias, hostsLines, linkEnv, parseLink, parsePublish,
} from '../../src/fw/docker.js';
import { evaluate, explain } from '../../src/fw/explain.js';
import { OWNER_A, OWNER_B, instance, policyRule, ruid, vm } from '../helpers/fw-fixtures.js';

function container(n: number, fields: Partial<DockerContainerRecord>): DockerContainerRecord {
  return { uuid: vm(n), owner_uuid: OWNER_A, name: `c${n}`, links: [], exposed: [], published: [], publish_all: false, env: [], ...fields };
}

const db = container(1, { name: 'db', exposed: [{ port: 5432, proto: 'tcp' }, { port: 5433, proto: 'udp' }], env: ['POSTGRES_USER=app', 'HOME=/root', 'PATH=/bin', 'X=a=b'] });
const web = container(2, { name: 'web', links: [{ target: 'db', alias: 'my-db-x' }], exposed: [{ port: 80, proto: 'tcp' }], published: [{ port: 80, proto: 'tcp' }] });
const misc = container(3, { name: 'misc', exposed: [{ port: 9000, proto: 'tcp' }, { port: 9001, proto: 'tcp' }], publish_all: true });

describe('docker rules', () => {
  it('icc on: one owner-scoped all-ports rule per protocol, plus published ports', () => {
    const rules = dockerRules(OWNER_A, [db, web, misc], true);
    assert.deepEqual(rules.map((r) => r.rule), [
      `FROM any TO vm ${vm(2)} ALLOW tcp PORT 80`,
      `FROM any TO vm ${vm(3)} ALLOW tcp (PORT 9000 AND PORT 9001)`,
      'FROM tag "sdc_docker" TO tag "sdc_docker" ALLOW tcp PORT all',
      'FROM tag "sdc_docker" TO tag "sdc_docker" ALLOW udp PORT all',
    ]);
    assert.ok(rules.every((r) => r.owner_uuid === OWNER_A));
    assert.deepEqual(rules.map((r) => r.uuid), rules.map((r) => dockerRuleUuid(OWNER_A, r.rule)));
    assert.match(rules[0]!.uuid, /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.deepEqual(dockerRules(OWNER_B, [db, web], true), [], 'no containers of that owner, no rules');
  });

  it('icc off: only linkers reach the target, on its exposed ports', () => {
    const rules = dockerRules(OWNER_A, [db, web, misc], false).map((r) => r.rule);
    assert.deepEqual(rules, [
      `FROM any TO vm ${vm(2)} ALLOW tcp PORT 80`,
      `FROM any TO vm ${vm(3)} ALLOW tcp (PORT 9000 AND PORT 9001)`,
      `FROM vm ${vm(2)} TO vm ${vm(1)} ALLOW tcp PORT 5432`,
      `FROM vm ${vm(2)} TO vm ${vm(1)} ALLOW udp PORT 5433`,
    ]);
  });

  it('the compiled icc-off policy lets the linker in and nobody else', () => {
    const w = new PolicyWorld();
    for (const [n, ip] of [[1, '10.1.0.1'], [2, '10.1.0.2'], [3, '10.1.0.3']] as const) {
      w.upsertInstance(instance(n, { tags: { sdc_docker: true }, addresses: [ip] }));
    }
    dockerRules(OWNER_A, [db, web, misc], false).forEach((r, i) => w.upsertRule(policyRule(ruid(i + 1), r.rule, { owner_uuid: OWNER_A })));
    const dbPolicy = w.compile(vm(1));
    assert.equal(evaluate(dbPolicy, 'in', '10.1.0.2', { protocol: 'tcp', port: 5432 }).action, 'allow');
    assert.equal(evaluate(dbPolicy, 'in', '10.1.0.2', { protocol: 'tcp', port: 5433 }).action, 'block');
    assert.equal(evaluate(dbPolicy, 'in', '10.1.0.3', { protocol: 'tcp', port: 5432 }).action, 'block');
    assert.equal(evaluate(w.compile(vm(2)), 'in', '203.0.113.9', { protocol: 'tcp', port: 80 }).action, 'allow');
  });
});

describe('docker links', () => {
  it('env: ALIAS uppercased with every - as _, ports, NAME, ENV_* without HOME and PATH', () => {
    assert.equal(envAlias('my-db-x'), 'MY_DB_X');
    assert.deepEqual(linkEnv('web', { alias: 'my-db-x', target: db, ip: '10.1.0.1' }), [
      'MY_DB_X_NAME=/web/my-db-x',
      'MY_DB_X_PORT=tcp://10.1.0.1:5432',
      'MY_DB_X_PORT_5432_TCP=tcp://10.1.0.1:5432',
      'MY_DB_X_PORT_5432_TCP_ADDR=10.1.0.1',
      'MY_DB_X_PORT_5432_TCP_PORT=5432',
      'MY_DB_X_PORT_5432_TCP_PROTO=tcp',
      'MY_DB_X_PORT_5433_UDP=udp://10.1.0.1:5433',
      'MY_DB_X_PORT_5433_UDP_ADDR=10.1.0.1',
      'MY_DB_X_PORT_5433_UDP_PORT=5433',
      'MY_DB_X_PORT_5433_UDP_PROTO=udp',
      'MY_DB_X_ENV_POSTGRES_USER=app',
      'MY_DB_X_ENV_X=a=b',
    ]);
  });

  it('env and hosts follow the target address', () => {
    const before = linkEnv('web', { alias: 'db', target: db, ip: '10.1.0.1' });
    const after = linkEnv('web', { alias: 'db', target: db, ip: '10.1.0.99' });
    assert.ok(after.includes('DB_PORT_5432_TCP_ADDR=10.1.0.99'));
    assert.notDeepEqual(before, after);
    assert.deepEqual(hostsLines([{ alias: 'db', target: db, ip: '10.1.0.99' }, { alias: 'w', target: web, ip: undefined }]), ['10.1.0.99\tdb']);
    assert.deepEqual(hostsLines([{ alias: 'pg', target: db, ip: '10.1.0.1' }]), ['10.1.0.1\tpg db']);
  });

  it('parses -p (no remapping) and links', () => {
    assert.deepEqual(parsePublish('80'), { port: 80, proto: 'tcp' });
    assert.deepEqual(parsePublish('53:53/udp'), { port: 53, proto: 'udp' });
    assert.deepEqual(parsePublish('0.0.0.0:443:443'), { port: 443, proto: 'tcp' });
    assert.equal(parsePublish('8080:80'), 'remapping of port numbers not allowed');
    assert.match(String(parsePublish('70000')), /out of range/);
    assert.deepEqual(parseLink('db:pg'), { target: 'db', alias: 'pg' });
    assert.deepEqual(parseLink('db'), { target: 'db', alias: 'db' });
    assert.match(String(parseLink('db:bad alias')), /invalid link alias/);
  });
});

describe('explain', () => {
  const w = new PolicyWorld();
  w.upsertInstance(instance(1, { tags: { role: 'db' }, addresses: ['10.0.0.1', 'fd00::1'] }));
  w.upsertInstance(instance(2, { tags: { role: 'web' }, addresses: ['10.0.0.2'] }));
  w.upsertRule(policyRule(ruid(1), 'FROM tag role = web TO tag role = db ALLOW tcp PORTS 5000 - 5999'));
  w.upsertRule(policyRule(ruid(2), 'FROM ip 10.0.0.2 TO tag role = db BLOCK tcp PORT 5432'));
  w.upsertRule(policyRule(ruid(3), 'FROM subnet 10.0.0.0/24 TO tag role = db BLOCK tcp PORT 5433 PRIORITY 2'));
  w.upsertRule(policyRule(ruid(4), 'FROM tag role = web TO any BLOCK tcp PORT 5434'));
  w.upsertRule(policyRule(ruid(5), 'FROM any TO tag role = db ALLOW icmp TYPE 8 CODE 0'));

  it('names the deciding rule and why it wins a tie or by priority', () => {
    const tie = evaluate(w.compile(vm(1)), 'in', '10.0.0.2', { protocol: 'tcp', port: 5432 });
    assert.equal(tie.action, 'allow');
    assert.equal(tie.entry!.rule_uuid, ruid(1));
    assert.match(tie.reason, /inbound ALLOW beats BLOCK/);
    const prio = evaluate(w.compile(vm(1)), 'in', '10.0.0.2', { protocol: 'tcp', port: 5433 });
    assert.equal(prio.action, 'block');
    assert.equal(prio.entry!.rule_uuid, ruid(3));
    assert.match(prio.reason, /outranks/);
  });

  it('falls back to the defaults and reports unenforced instances', () => {
    assert.match(evaluate(w.compile(vm(1)), 'in', '10.0.0.9', { protocol: 'tcp', port: 22 }).reason, /blocked by default/);
    assert.equal(evaluate(w.compile(vm(1)), 'in', '10.0.0.9', { protocol: 'icmp', type: 8, code: 0 }).action, 'allow');
    assert.equal(evaluate(w.compile(vm(1)), 'in', '10.0.0.9', { protocol: 'icmp', type: 8, code: 1 }).action, 'block');
    assert.equal(evaluate(w.compile(vm(1)), 'out', '10.0.0.9', { protocol: 'tcp', port: 22 }).action, 'allow');
    assert.deepEqual(evaluate(null, 'in', '10.0.0.9', { protocol: 'tcp', port: 22 }).enforced, false);
  });

  it('combines the source instance\'s outbound policy with the destination\'s inbound', () => {
    const res = explain(
      { from: '10.0.0.2', to: vm(1), toAddress: '10.0.0.1', destination: w.compile(vm(1)), source: { instance: vm(2), policy: w.compile(vm(2)) } },
      { protocol: 'tcp', port: 5434 },
    );
    assert.equal(res.allowed, false);
    assert.equal(res.inbound.action, 'allow');
    assert.equal(res.outbound!.action, 'block');
    assert.match(res.summary, /BLOCKED leaving/);
  });
});
