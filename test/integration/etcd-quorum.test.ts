/**
 * The etcd cluster loses quorum under two controller replicas, then gets it back:
 *  - while it is gone, writes fail as 503 (nothing half-written), /ping reports the store
 *    offline, and SVP lookups keep being answered from each replica's in-memory index;
 *  - once the members are back, both replicas take writes again without a restart and
 *    each answers for what was written through the other (the watches resumed).
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { EtcdCluster, etcdSkipReason } from '../helpers/etcd-cluster.js';
import { api, makeFabric, nicBody, startReplicas, underlayIp, vl3WhenFound } from '../helpers/etcd-replicas.js';
import { http, type RunningController } from '../helpers/processes.js';
import { SvpClient } from '../../src/svp/client.js';
import { SvpStatus } from '../../src/svp/codec.js';

const NODES = 4;

it('quorum lost and regained: 503 and SVP from memory meanwhile, writes resume afterwards on both replicas', { skip: etcdSkipReason, timeout: 90_000 }, async (t) => {
  const cluster = await EtcdCluster.start({ members: 3 });
  let replicas: RunningController[] = [];
  const svps: SvpClient[] = [];
  try {
    replicas = await startReplicas(cluster, 2, 'quorum/');
    const [a, b] = replicas as [RunningController, RunningController];
    const fabric = await makeFabric(a.restUrl, { nodes: NODES, vlanId: 70, subnet: '10.70.0.0/24', provisionStart: '10.70.0.10', provisionEnd: '10.70.0.250' });
    const before = [];
    for (let i = 0; i < 6; i++) before.push({ i, ...(await api(i % 2 ? b.restUrl : a.restUrl, 'POST', `/networks/${fabric.networkUuid}/nics`, nicBody(i, NODES))) });
    for (const ctl of replicas) {
      const s = new SvpClient({ servers: [`${ctl.svp!.host}:${ctl.svp!.port}`], timeoutMs: 3000 });
      svps.push(s);
      await s.start();
    }

    // Two of three members gone: no quorum.
    const leader = await cluster.leader();
    const other = cluster.members.find((m) => m !== leader)!;
    await Promise.all([cluster.kill(leader), cluster.kill(other)]);
    const t0 = performance.now();
    const failed = await http(a.restUrl, 'POST', `/networks/${fabric.networkUuid}/nics`, nicBody(100, NODES));
    t.diagnostic(`write without quorum answered ${failed.status} after ${Math.round(performance.now() - t0)} ms: ${JSON.stringify(failed.body).slice(0, 200)}`);
    assert.equal(failed.status, 503);
    assert.equal(failed.body.code, 'ServiceUnavailable');
    for (const ctl of replicas) {
      const ping = await http(ctl.restUrl, 'GET', '/ping');
      assert.equal(ping.body.services.store, 'offline');
      assert.equal(ping.body.healthy, false);
    }
    // The data plane keeps resolving: answers come from each replica's index.
    for (const s of svps) {
      for (const n of before) {
        const r = await s.vl3(n.ip, fabric.vnet);
        assert.equal(r.status, SvpStatus.OK);
        assert.equal(r.mac, n.mac);
        assert.equal(r.ip, underlayIp(n.i % NODES));
      }
    }

    // Quorum back: the same replica processes carry on.
    await cluster.restart(leader);
    await cluster.restart(other);
    const after = [];
    for (const [k, ctl] of replicas.entries()) {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const r = await http(ctl.restUrl, 'POST', `/networks/${fabric.networkUuid}/nics`, nicBody(200 + k, NODES));
        if (r.status === 200) {
          after.push({ i: 200 + k, k, ...r.body });
          break;
        }
        assert.equal(r.status, 503, JSON.stringify(r.body));
        assert.ok(Date.now() < deadline, 'writes did not resume within 20 s of quorum returning');
        await new Promise((res) => setTimeout(res, 200));
      }
      assert.equal((await http(ctl.restUrl, 'GET', '/ping')).body.healthy, true);
    }
    // Each replica answers for the write made through the other, once its watch has resumed
    // (the etcd client re-establishes it on its own schedule after the outage).
    for (const n of after) {
      const { answer: r, waitedMs } = await vl3WhenFound(svps[1 - n.k]!, n.ip, fabric.vnet, 20_000);
      t.diagnostic(`VL3 ${n.ip} answered by the other replica after ${waitedMs} ms`);
      assert.equal(r.status, SvpStatus.OK, `VL3 ${n.ip} on the other replica within 20 s`);
      assert.equal(r.mac, n.mac);
    }
    // The write refused during the outage left nothing behind.
    const all = await api(b.restUrl, 'GET', `/nics?network_uuid=${fabric.networkUuid}`);
    assert.equal(all.length, before.length + after.length);
    assert.equal(all.filter((n: { belongs_to_uuid: string }) => n.belongs_to_uuid === nicBody(100, NODES).belongs_to_uuid).length, 0);
  } finally {
    for (const s of svps) s.close();
    await Promise.all(replicas.map((c) => c.stop()));
    await cluster.stop();
  }
});
