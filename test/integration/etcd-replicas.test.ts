/**
 * Two controller replicas on a three-member etcd cluster (issue 7):
 *  - 200 concurrent NIC creates spread over both replicas on one fabric network with room
 *    for 189: 189 succeed with distinct IPs and MACs, the rest get SubnetFull;
 *  - both replicas list the same NICs, and each answers VL3/VL2 for NICs created through
 *    the other (their mapping indexes follow the etcd watch);
 *  - an event committed through replica A wakes a LOG_REQ long-poll held by replica B.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EtcdCluster, etcdSkipReason } from '../helpers/etcd-cluster.js';
import { api, cnUuid, type Fabric, listNics, makeFabric, nicBody, underlayIp, startReplicas, vl3WhenFound } from '../helpers/etcd-replicas.js';
import { http, type RunningController } from '../helpers/processes.js';
import { SvpClient } from '../../src/svp/client.js';
import { SvpStatus } from '../../src/svp/codec.js';

const NODES = 20;
const CREATES = 200;
// 10.30.0.10 .. 10.30.0.199, less the first address, which a fabric network reserves (gateway).
const CAPACITY = 189;
const LOG_WAIT_MS = 20_000;

describe('two controller replicas on a three-member etcd cluster', { skip: etcdSkipReason, timeout: 90_000 }, () => {
  let cluster: EtcdCluster;
  let a: RunningController;
  let b: RunningController;
  let fabric: Fabric;
  const created: Array<{ mac: string; ip: string; vm: string; via: 'A' | 'B' }> = [];

  before(async () => {
    cluster = await EtcdCluster.start({ members: 3 });
    [a, b] = (await startReplicas(cluster, 2, 'replicas/', ['--log-wait', String(LOG_WAIT_MS)])) as [RunningController, RunningController];
    fabric = await makeFabric(a.restUrl, { nodes: NODES, vlanId: 30, subnet: '10.30.0.0/24', provisionStart: '10.30.0.10', provisionEnd: '10.30.0.199' });
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await cluster?.stop();
  });

  it(`${CREATES} concurrent NIC creates over both replicas: ${CAPACITY} distinct IPs and MACs, SubnetFull for the rest`, async (t) => {
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: CREATES }, async (_, i) => {
        const via = i % 2 === 0 ? 'A' : 'B';
        const r = await http(via === 'A' ? a.restUrl : b.restUrl, 'POST', `/networks/${fabric.networkUuid}/nics`, nicBody(i, NODES));
        return { i, via, ...r } as const;
      }),
    );
    t.diagnostic(`${CREATES} creates in ${Math.round(performance.now() - started)} ms`);
    const ok: Array<{ i: number; via: 'A' | 'B'; status: number; body: any }> = results.filter((r) => r.status === 200); // eslint-disable-line @typescript-eslint/no-explicit-any
    const full = results.filter((r) => r.status === 507 && r.body?.code === 'SubnetFull');
    const other = results.filter((r) => r.status !== 200 && !(r.status === 507 && r.body?.code === 'SubnetFull'));
    assert.deepEqual(other.map((r) => `${r.i}: ${r.status} ${JSON.stringify(r.body)}`), [], 'every create either succeeds or finds the subnet full');
    assert.equal(ok.length + full.length, CREATES);
    assert.ok(ok.length <= CAPACITY && ok.length >= CAPACITY - 5, `${ok.length} of ${CAPACITY} addresses handed out in the burst`);
    assert.ok(ok.some((r) => r.via === 'A') && ok.some((r) => r.via === 'B'), 'both replicas allocated');
    // Whatever a racing create passed over is still allocatable afterwards, through either replica.
    for (let i = CREATES, fullInARow = 0; fullInARow < 2 && i < CREATES + 20; i++) {
      const via = i % 2 === 0 ? 'A' : 'B';
      const r = await http(via === 'A' ? a.restUrl : b.restUrl, 'POST', `/networks/${fabric.networkUuid}/nics`, nicBody(i, NODES));
      if (r.status === 507) fullInARow++;
      else {
        assert.equal(r.status, 200, JSON.stringify(r.body));
        fullInARow = 0;
        ok.push({ i, via, ...r });
      }
    }
    t.diagnostic(`burst: ${CREATES - full.length} created, ${full.length} SubnetFull; after top-up ${ok.length} of ${CAPACITY}`);
    assert.equal(ok.length, CAPACITY, 'every address of the provision range is handed out');
    const ips = ok.map((r) => r.body.ip as string);
    const macs = ok.map((r) => r.body.mac as string);
    assert.equal(new Set(ips).size, ips.length, 'duplicate IP');
    assert.equal(new Set(macs).size, macs.length, 'duplicate MAC');
    for (const r of ok) created.push({ mac: r.body.mac, ip: r.body.ip, vm: r.body.belongs_to_uuid, via: r.via });

    // Both replicas see exactly the acknowledged NICs.
    const want = created.map((n) => `${n.mac} ${n.ip} ${n.vm}`).sort();
    for (const [name, ctl] of [['A', a], ['B', b]] as const) {
      const got = (await listNics(ctl.restUrl, fabric.networkUuid)).map((n) => `${n.mac} ${n.ip} ${n.belongs_to_uuid}`).sort();
      assert.deepEqual(got, want, `replica ${name} lists the same NICs`);
    }
  });

  it('each replica answers VL3 and VL2 over SVP for NICs created through the other', async () => {
    assert.ok(created.length > 0, 'the concurrency test created NICs');
    const svpA = new SvpClient({ servers: [`${a.svp!.host}:${a.svp!.port}`], timeoutMs: 3000 });
    const svpB = new SvpClient({ servers: [`${b.svp!.host}:${b.svp!.port}`], timeoutMs: 3000 });
    try {
      await Promise.all([svpA.start(), svpB.start()]);
      for (const n of created) {
        const i = Number(n.vm.slice(-12));
        const svp = n.via === 'A' ? svpB : svpA; // ask the other replica
        // The last writes of the burst may still be on their way to the other replica.
        const { answer: vl3 } = await vl3WhenFound(svp, n.ip, fabric.vnet);
        assert.equal(vl3.status, SvpStatus.OK, `VL3 ${n.ip} on the replica that did not create it`);
        assert.equal(vl3.mac, n.mac);
        assert.equal(vl3.ip, underlayIp(i % NODES));
        const vl2 = await svp.vl2(n.mac, fabric.vnet);
        assert.equal(vl2.status, SvpStatus.OK);
        assert.equal(vl2.ip, underlayIp(i % NODES));
      }
    } finally {
      svpA.close();
      svpB.close();
    }
  });

  it('an event committed through replica A wakes a LOG_REQ long-poll waiting on replica B', async (t) => {
    const svpB = new SvpClient({ servers: [`${b.svp!.host}:${b.svp!.port}`], timeoutMs: LOG_WAIT_MS + 5000 });
    try {
      await svpB.start();
      // Node 0 is on the vnet; empty its queue so the next LOG_REQ has to wait.
      const ul = underlayIp(0);
      for (;;) {
        const got = await svpB.logReq(ul, 65536);
        if (got.entries.length === 0) break;
        await svpB.logRm(got.entries.map((e) => e.id));
      }
      // A VM on node 2 moves to node 1: every node on the vnet, node 0 too, gets a VL2 and a VL3 event.
      const moving = created.find((n) => Number(n.vm.slice(-12)) % NODES === 2);
      assert.ok(moving);
      const waiting = svpB.logReq(ul, 65536).then((r) => ({ r, at: performance.now() }));
      await new Promise((r) => setTimeout(r, 200)); // the LOG_REQ is parked on B
      const sent = performance.now();
      const put = await api(a.restUrl, 'PUT', `/nics/${moving.mac}`, { cn_uuid: cnUuid(1) });
      assert.equal(put.cn_uuid, cnUuid(1));
      const acked = performance.now();
      const { r, at } = await waiting;
      const wake = at - acked;
      t.diagnostic(
        `LOG_REQ on B returned ${(at - sent).toFixed(1)} ms after the PUT was sent to A (A acknowledged it after ${(acked - sent).toFixed(1)} ms)`,
      );
      assert.equal(r.server, `${b.svp!.host}:${b.svp!.port}`);
      assert.deepEqual(
        r.entries.map((e) => (e.type === 'vl2' ? `vl2 ${e.mac}` : `vl3 ${e.ip}`)).sort(),
        [`vl2 ${moving.mac}`, `vl3 ${moving.ip}`],
      );
      // Woken by the watch, not by the long-poll's own deadline (which answers empty).
      assert.ok(wake < LOG_WAIT_MS / 4, `LOG_REQ took ${Math.round(wake)} ms`);
      await svpB.logRm(r.entries.map((e) => e.id));
    } finally {
      svpB.close();
    }
  });
});
