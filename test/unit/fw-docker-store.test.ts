/**
 * Docker containers in the store without HTTP: parsing the API's container spec, saving
 * and removing containers inside a transaction, and reconciling the owner's rules with
 * what the containers want. Refused writes leave the store as it was.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DOCKER_CREATED_BY, type DockerContainerRecord, containerView, dockerRules, parseContainer, reconcileDockerRules,
  removeContainer, saveContainer,
} from '../../src/fw/docker.js';
import { RULE_PREFIX, dockerContainerKey, instanceKey, ruleKey, toPolicyRule } from '../../src/fw/registry.js';
import type { InstanceRecord, StoredRule } from '../../src/fw/types.js';
import { transact } from '../../src/store/txn.js';
import { NapiError } from '../../src/rest/errors.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { Store } from '../../src/store/types.js';
import { OWNER_A, OWNER_B, vm } from '../helpers/fw-fixtures.js';

async function storedRules(store: Store): Promise<StoredRule[]> {
  return (await store.range({ prefix: RULE_PREFIX })).kvs.map((kv) => JSON.parse(kv.value) as StoredRule);
}

async function dump(store: Store): Promise<string> {
  return JSON.stringify((await store.range({ prefix: '' })).kvs.map((kv) => [kv.key, kv.value]));
}

function rejects422(fields: Array<string | string[]>): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof NapiError);
    assert.equal(err.statusCode, 422);
    assert.deepEqual(err.errors?.map((e) => e.field), fields);
    return true;
  };
}

describe('parseContainer', () => {
  it('normalises the spec and merges it over the stored record', () => {
    const { record, icc } = parseContainer(vm(1), {
      owner_uuid: OWNER_A, name: '/db', exposed_ports: ['5432', '53/udp'], links: ['cache'], icc: 'false',
    });
    assert.deepEqual(record, {
      uuid: vm(1), owner_uuid: OWNER_A, name: 'db', links: [{ target: 'cache', alias: 'cache' }],
      exposed: [{ port: 5432, proto: 'tcp' }, { port: 53, proto: 'udp' }], published: [], publish_all: false, env: [],
    });
    assert.equal(icc, false);
    const merged = parseContainer(vm(1), { publish_all: true }, record);
    assert.deepEqual(merged, { record: { ...record, publish_all: true } });
  });

  it('collects every bad field into one 422', () => {
    assert.throws(
      () => parseContainer('nope', { name: '-x', links: 'db', exposed_ports: ['99999'], env: ['NOEQ'], icc: 'maybe', color: 1 }),
      rejects422([['color'], 'env', 'exposed_ports', 'icc', 'links', 'name', 'owner_uuid', 'uuid']),
    );
  });
});

describe('saving and removing containers', () => {
  it('icc off: a link gives the linker its target exposed ports; removing the linker drops that rule', async () => {
    const store = new MemoryStore();
    await transact(store, (tx) => saveContainer(tx, vm(1), { owner_uuid: OWNER_A, name: 'db', exposed_ports: ['5432'], icc: false }));
    await transact(store, (tx) => saveContainer(tx, vm(2), { owner_uuid: OWNER_A, name: 'web', links: ['db:pg'] }));
    const texts = (await storedRules(store)).map((r) => r.rule).sort();
    assert.deepEqual(texts, [`FROM vm ${vm(2)} TO vm ${vm(1)} ALLOW tcp PORT 5432`]);
    const stored = (await storedRules(store))[0]!;
    assert.deepEqual([stored.owner_uuid, stored.created_by, stored.enabled], [OWNER_A, DOCKER_CREATED_BY, true]);
    const inst = JSON.parse((await store.get(instanceKey(vm(2))))!.value) as InstanceRecord;
    assert.deepEqual(inst, { uuid: vm(2), owner_uuid: OWNER_A, tags: { sdc_docker: true }, firewall_enabled: true });

    await transact(store, (tx) => removeContainer(tx, vm(2)));
    assert.deepEqual(await storedRules(store), []);
    assert.equal(await store.get(instanceKey(vm(2))), undefined);
    assert.equal(await store.get(dockerContainerKey(vm(2))), undefined);
    assert.ok(await store.get(dockerContainerKey(vm(1))));
  });

  it('turning icc back on replaces the link rules with the owner-wide ones; other owners are untouched', async () => {
    const store = new MemoryStore();
    await transact(store, (tx) => saveContainer(tx, vm(1), { owner_uuid: OWNER_A, name: 'db', exposed_ports: ['5432'], icc: false }));
    await transact(store, (tx) => saveContainer(tx, vm(2), { owner_uuid: OWNER_A, name: 'web', links: ['db'] }));
    await transact(store, (tx) => saveContainer(tx, vm(3), { owner_uuid: OWNER_B, name: 'db', published_ports: ['80'] }));
    await transact(store, (tx) => saveContainer(tx, vm(1), { icc: true }));
    const byOwner = (owner: string) => storedRules(store).then((rs) => rs.filter((r) => r.owner_uuid === owner).map((r) => r.rule).sort());
    assert.deepEqual(await byOwner(OWNER_A), [
      'FROM tag "sdc_docker" TO tag "sdc_docker" ALLOW tcp PORT all',
      'FROM tag "sdc_docker" TO tag "sdc_docker" ALLOW udp PORT all',
    ]);
    assert.deepEqual(await byOwner(OWNER_B), [
      `FROM any TO vm ${vm(3)} ALLOW tcp PORT 80`,
      'FROM tag "sdc_docker" TO tag "sdc_docker" ALLOW tcp PORT all',
      'FROM tag "sdc_docker" TO tag "sdc_docker" ALLOW udp PORT all',
    ]);
  });

  it('refuses a duplicate name, a missing link target and another owner, writing nothing', async () => {
    const store = new MemoryStore();
    await transact(store, (tx) => saveContainer(tx, vm(1), { owner_uuid: OWNER_A, name: 'db' }));
    const before = await dump(store);
    await assert.rejects(transact(store, (tx) => saveContainer(tx, vm(2), { owner_uuid: OWNER_A, name: 'db' })), rejects422(['name']));
    await assert.rejects(
      transact(store, (tx) => saveContainer(tx, vm(2), { owner_uuid: OWNER_A, name: 'web', links: ['nope:x'] })),
      rejects422(['links']),
    );
    await assert.rejects(transact(store, (tx) => saveContainer(tx, vm(1), { owner_uuid: OWNER_B })), (err) => {
      assert.ok(err instanceof NapiError);
      assert.deepEqual([err.statusCode, err.message], [403, 'container belongs to another owner']);
      return true;
    });
    await assert.rejects(transact(store, (tx) => removeContainer(tx, vm(9))), (err) => err instanceof NapiError && err.statusCode === 404);
    assert.equal(await dump(store), before);
  });

  it('reconciling rewrites a changed or disabled rule and is idempotent', async () => {
    const store = new MemoryStore();
    const db: DockerContainerRecord = {
      uuid: vm(1), owner_uuid: OWNER_A, name: 'db', links: [], exposed: [], published: [{ port: 80, proto: 'tcp' }], publish_all: false, env: [],
    };
    const [wanted] = dockerRules(OWNER_A, [db], false);
    await transact(store, async (tx) => {
      tx.putJson(ruleKey(wanted!.uuid), { uuid: wanted!.uuid, rule: wanted!.rule, enabled: false, owner_uuid: OWNER_A, created_by: DOCKER_CREATED_BY });
    });
    await transact(store, (tx) => reconcileDockerRules(tx, OWNER_A, [db], false));
    assert.equal((await storedRules(store))[0]!.enabled, true);
    const rev = await store.revision();
    const { revision } = await transact(store, (tx) => reconcileDockerRules(tx, OWNER_A, [db], false));
    assert.equal(revision, rev, 'nothing to change: nothing written');
  });
});

describe('containerView', () => {
  it('resolves links to the targets current addresses and lists the owner docker rules', async () => {
    const db: DockerContainerRecord = {
      uuid: vm(1), owner_uuid: OWNER_A, name: 'db', links: [], exposed: [{ port: 5432, proto: 'tcp' }], published: [], publish_all: false, env: [],
    };
    const web: DockerContainerRecord = { ...db, uuid: vm(2), name: 'web', exposed: [], links: [{ target: 'db', alias: 'pg' }, { target: 'gone', alias: 'x' }] };
    const rules = dockerRules(OWNER_A, [db, web], false).map((r) =>
      toPolicyRule({ uuid: r.uuid, rule: r.rule, enabled: true, log: false, owner_uuid: OWNER_A, created_by: DOCKER_CREATED_BY, version: '1' }),
    );
    const view = containerView(web, [db, web], rules, (u) => (u === vm(1) ? ['fd00::1', '10.0.0.1'] : []));
    assert.deepEqual(view.hosts, ['10.0.0.1\tpg db']);
    assert.ok(view.env.includes('PG_PORT_5432_TCP_ADDR=10.0.0.1'));
    assert.deepEqual(view.rules.map((r) => r.rule), [`FROM vm ${vm(2)} TO vm ${vm(1)} ALLOW tcp PORT 5432`]);
  });
});
