/**
 * Docker networks in the firewall (src/fw/docker-networks.ts, and the network-scoped icc
 * of src/fw/docker.ts): nodes join and leave a network's record, icc must agree, and a
 * network's containers get that network's icc — with icc on they reach each other on
 * every protocol, with icc off only links (and published ports) pass, and neither reaches
 * into another network's or the owner-wide rules.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { joinDockerNetwork, leaveDockerNetwork, loadDockerNetwork, nodeDockerNetworks } from '../../src/fw/docker-networks.js';
import { type DockerContainerRecord, dockerRules, saveContainer } from '../../src/fw/docker.js';
import { RULE_PREFIX, dockerNetworkKey, instanceKey } from '../../src/fw/registry.js';
import type { InstanceRecord, StoredRule } from '../../src/fw/types.js';
import { NapiError } from '../../src/rest/errors.js';
import { MemoryStore } from '../../src/store/memory.js';
import { transact } from '../../src/store/txn.js';
import { NODE_1, NODE_2, OWNER_A, OWNER_B, vm } from '../helpers/fw-fixtures.js';

const NET_1 = 'e0000000-0000-4000-8000-000000000001';
const NET_2 = 'e0000000-0000-4000-8000-000000000002';

const rec = (n: number, over: Partial<DockerContainerRecord> = {}): DockerContainerRecord => ({
  uuid: vm(n), owner_uuid: OWNER_A, name: `c${n}`, links: [], exposed: [], published: [], publish_all: false, env: [], ...over,
});

describe('Docker network records', () => {
  it('nodes join (icc set by the first) and leave; the record goes with the last node', async () => {
    const store = new MemoryStore();
    const first = (await transact(store, (tx) => joinDockerNetwork(tx, NET_1, { owner_uuid: OWNER_A, node: NODE_1, docker_id: 'a'.repeat(64), icc: 'false', managed: true, vlan_created: true }))).value;
    assert.deepEqual(first, { uuid: NET_1, owner_uuid: OWNER_A, icc: false, nodes: [NODE_1], docker_ids: { [NODE_1]: 'a'.repeat(64) }, managed: true, vlan_created: true });
    const second = (await transact(store, (tx) => joinDockerNetwork(tx, NET_1, { owner_uuid: OWNER_A, node: NODE_2, docker_id: 'b'.repeat(64), icc: false }))).value;
    assert.deepEqual(second.nodes, [NODE_1, NODE_2]);
    assert.deepEqual((await transact(store, (tx) => nodeDockerNetworks(tx, NODE_2))).value.map((r) => r.docker_ids[NODE_2]), ['b'.repeat(64)]);
    assert.equal(second.managed, true, 'a joining node does not change who made the network');
    const left = (await transact(store, (tx) => leaveDockerNetwork(tx, NET_1, NODE_1))).value;
    assert.deepEqual(left.nodes, [NODE_2]);
    assert.deepEqual(left.docker_ids, { [NODE_2]: 'b'.repeat(64) });
    assert.deepEqual((await transact(store, (tx) => loadDockerNetwork(tx, NET_1))).value.nodes, [NODE_2]);
    assert.deepEqual((await transact(store, (tx) => leaveDockerNetwork(tx, NET_1, NODE_2))).value.nodes, []);
    assert.equal(await store.get(dockerNetworkKey(NET_1)), undefined);
  });

  it('refuses another icc, another owner and bad fields, writing nothing', async () => {
    const store = new MemoryStore();
    await transact(store, (tx) => joinDockerNetwork(tx, NET_1, { owner_uuid: OWNER_A, node: NODE_1, icc: false }));
    const before = JSON.stringify((await store.range({ prefix: '' })).kvs);
    await assert.rejects(
      transact(store, (tx) => joinDockerNetwork(tx, NET_1, { owner_uuid: OWNER_A, node: NODE_2, icc: true })),
      (err) => err instanceof NapiError && err.statusCode === 422 && /already exists with icc=false/.test(err.errors?.[0]?.message ?? ''),
    );
    await assert.rejects(transact(store, (tx) => joinDockerNetwork(tx, NET_1, { owner_uuid: OWNER_B, node: NODE_2, icc: false })), (err) => err instanceof NapiError && err.statusCode === 403);
    await assert.rejects(
      transact(store, (tx) => joinDockerNetwork(tx, 'nope', { owner_uuid: 'x', node: 'y', docker_id: 'z', icc: 'maybe', colour: 1 })),
      (err) => err instanceof NapiError && err.statusCode === 422 && err.errors?.length === 6,
    );
    assert.equal(JSON.stringify((await store.range({ prefix: '' })).kvs), before);
    await assert.rejects(transact(store, (tx) => leaveDockerNetwork(tx, NET_2, NODE_1)), (err) => err instanceof NapiError && err.statusCode === 404);
  });
});

describe('network-scoped icc', () => {
  it('icc on: one rule per protocol between the network\'s containers, tcp, udp and icmp; none owner-wide', () => {
    const rules = dockerRules(OWNER_A, [rec(1, { network: NET_1 }), rec(2, { network: NET_1 })], true, new Map([[NET_1, true]])).map((r) => r.rule);
    const tag = `tag "sdc_docker_network" = "${NET_1}"`;
    assert.deepEqual(rules.sort(), [`FROM ${tag} TO ${tag} ALLOW icmp TYPE all`, `FROM ${tag} TO ${tag} ALLOW tcp PORT all`, `FROM ${tag} TO ${tag} ALLOW udp PORT all`].sort());
  });

  it('icc off on one network: only its links pass there, while another network keeps icc on', () => {
    const db = rec(1, { network: NET_1, exposed: [{ port: 5432, proto: 'tcp' }] });
    const web = rec(2, { network: NET_1, links: [{ target: vm(1), alias: 'db' }] });
    const lone = rec(3, { network: NET_1 });
    const other = rec(4, { network: NET_2 });
    const rules = dockerRules(OWNER_A, [db, web, lone, other], true, new Map([[NET_1, false], [NET_2, true]])).map((r) => r.rule);
    assert.ok(rules.includes(`FROM vm ${vm(2)} TO vm ${vm(1)} ALLOW tcp PORT 5432`));
    assert.ok(!rules.some((r) => r.includes(NET_1) || r.includes('"sdc_docker"')), 'no icc rule for the icc=false network, none owner-wide');
    assert.ok(rules.some((r) => r.includes(`"${NET_2}"`)));
  });

  it("a network's container is tagged with its network, not sdc_docker; its rules follow the network record", async () => {
    const store = new MemoryStore();
    await transact(store, (tx) => joinDockerNetwork(tx, NET_1, { owner_uuid: OWNER_A, node: NODE_1, icc: false }));
    await transact(store, (tx) => saveContainer(tx, vm(1), { owner_uuid: OWNER_A, name: 'db', network: NET_1, exposed_ports: ['5432'] }));
    await transact(store, (tx) => saveContainer(tx, vm(2), { owner_uuid: OWNER_A, name: 'web', network: NET_1, links: [{ target: vm(1), alias: 'db' }] }));
    const inst = JSON.parse((await store.get(instanceKey(vm(1))))!.value) as InstanceRecord;
    assert.deepEqual(inst.tags, { sdc_docker_network: NET_1 });
    const rules = (await store.range({ prefix: RULE_PREFIX })).kvs.map((kv) => (JSON.parse(kv.value) as StoredRule).rule);
    assert.deepEqual(rules, [`FROM vm ${vm(2)} TO vm ${vm(1)} ALLOW tcp PORT 5432`]);
    await assert.rejects(
      transact(store, (tx) => saveContainer(tx, vm(3), { owner_uuid: OWNER_A, name: 'x', network: NET_1, icc: true })),
      (err) => err instanceof NapiError && /take icc from the network/.test(err.errors?.[0]?.message ?? ''),
    );
  });
});
