/**
 * Failover in distributed mode (issue 7), with two controller replicas on a three-member
 * etcd cluster:
 *  - the etcd leader is SIGKILLed during a burst of REST NIC creates through both
 *    replicas: every write answered 200 is there afterwards (on both replicas, over REST
 *    and SVP), writes caught by the election fail only as 503, the replicas carry on
 *    without a restart and writes resume;
 *  - a replica is SIGKILLed while an SVP client that knows both replicas resolves through
 *    it: every lookup still succeeds, answered by the surviving replica.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EtcdCluster, etcdSkipReason } from '../helpers/etcd-cluster.js';
import { api, type Fabric, makeFabric, nicBody, startReplicas, underlayIp } from '../helpers/etcd-replicas.js';
import { http, type RunningController } from '../helpers/processes.js';
import { SvpClient } from '../../src/svp/client.js';
import { SvpStatus } from '../../src/svp/codec.js';

const NODES = 8;
const WORKERS = 8;
const BEFORE_KILL = 100;
const AFTER_KILL = 100;

interface Acked {
  i: number;
  mac: string;
  ip: string;
  vm: string;
  afterKill: boolean;
}

describe('distributed mode failover', { skip: etcdSkipReason, timeout: 90_000 }, () => {
  let cluster: EtcdCluster;
  let a: RunningController;
  let b: RunningController;
  let fabric: Fabric;
  const acked: Acked[] = [];

  before(async () => {
    cluster = await EtcdCluster.start({ members: 3 });
    [a, b] = (await startReplicas(cluster, 2, 'failover/')) as [RunningController, RunningController];
    fabric = await makeFabric(a.restUrl, { nodes: NODES, vlanId: 50, subnet: '10.50.0.0/16', provisionStart: '10.50.0.10', provisionEnd: '10.50.250.250' });
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await cluster?.stop();
  });

  it('etcd leader killed during REST writes: every acknowledged write survives, replicas recover without restart', async (t) => {
    const failures = new Map<string, number>();
    let next = 0;
    let killed = false;
    let stop = false;
    const afterKill = (): number => acked.filter((x) => x.afterKill).length;
    async function worker(): Promise<void> {
      while (!stop) {
        const i = next++;
        const base = i % 2 === 0 ? a.restUrl : b.restUrl;
        const wasKilled = killed;
        const r = await http(base, 'POST', `/networks/${fabric.networkUuid}/nics`, nicBody(i, NODES));
        if (r.status === 200) {
          acked.push({ i, mac: r.body.mac, ip: r.body.ip, vm: r.body.belongs_to_uuid, afterKill: wasKilled });
        } else {
          const k = `${r.status} ${r.body?.code}`;
          failures.set(k, (failures.get(k) ?? 0) + 1);
          // Caught by the election: the store was unavailable (the client re-reads before retrying).
          assert.equal(r.status, 503, `create ${i}: ${r.status} ${JSON.stringify(r.body)}`);
          await new Promise((res) => setTimeout(res, 20));
        }
      }
    }
    async function until(cond: () => boolean, what: string, ms: number): Promise<void> {
      const deadline = Date.now() + ms;
      while (!cond()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (acked ${acked.length}, failures ${JSON.stringify([...failures])})`);
        await new Promise((res) => setTimeout(res, 10));
      }
    }
    const workers = Promise.all(Array.from({ length: WORKERS }, () => worker()));
    let resumedMs = 0;
    try {
      await until(() => acked.length >= BEFORE_KILL, `${BEFORE_KILL} acknowledged creates`, 30_000);
      const leader = await cluster.leader();
      await cluster.kill(leader, 'SIGKILL');
      killed = true;
      const killedAt = performance.now();
      t.diagnostic(`killed etcd leader ${leader.name} after ${acked.length} acknowledged creates`);
      await until(() => afterKill() >= 1, 'the first create acknowledged after the kill', 30_000);
      resumedMs = performance.now() - killedAt;
      await until(() => afterKill() >= AFTER_KILL, `${AFTER_KILL} creates acknowledged after the kill`, 30_000);
    } finally {
      stop = true;
      await workers;
    }
    t.diagnostic(`acknowledged ${acked.length} (${afterKill()} after the kill; first ${Math.round(resumedMs)} ms after it); failed: ${JSON.stringify([...failures])}`);

    // Every acknowledged NIC is there, the same on both replicas; no address handed out twice.
    for (const ctl of [a, b]) {
      for (const n of acked) {
        const r = await http(ctl.restUrl, 'GET', `/nics/${n.mac}`);
        assert.equal(r.status, 200, `acknowledged NIC ${n.mac} (create ${n.i}) missing on ${ctl.restUrl}`);
        assert.equal(r.body.ip, n.ip);
        assert.equal(r.body.belongs_to_uuid, n.vm);
      }
    }
    const all = await api(a.restUrl, 'GET', `/nics?network_uuid=${fabric.networkUuid}&limit=1000`);
    assert.equal(new Set(all.map((n: { ip: string }) => n.ip)).size, all.length, 'duplicate IP');
    assert.equal(new Set(all.map((n: { mac: string }) => n.mac)).size, all.length, 'duplicate MAC');
    assert.deepEqual(
      all.map((n: { mac: string }) => n.mac).sort(),
      (await api(b.restUrl, 'GET', `/nics?network_uuid=${fabric.networkUuid}&limit=1000`)).map((n: { mac: string }) => n.mac).sort(),
    );

    // Both mapping indexes followed the watch through the election.
    const svp = new SvpClient({ servers: [`${a.svp!.host}:${a.svp!.port}`, `${b.svp!.host}:${b.svp!.port}`], timeoutMs: 3000 });
    try {
      await svp.start();
      await svp.ready();
      const servers = new Set<string>();
      for (const n of acked) {
        for (let k = 0; k < 2; k++) {
          const r = await svp.vl3(n.ip, fabric.vnet);
          servers.add(r.server);
          assert.equal(r.status, SvpStatus.OK, `VL3 ${n.ip} from ${r.server}`);
          assert.equal(r.mac, n.mac);
          assert.equal(r.ip, underlayIp(n.i % NODES));
        }
      }
      assert.equal(servers.size, 2, 'both replicas answered');
    } finally {
      svp.close();
    }
  });

  it('a replica killed while an SVP client resolves through it: lookups move to the other replica and keep succeeding', async (t) => {
    assert.ok(acked.length > 0, 'the first test created NICs');
    const labelA = `${a.svp!.host}:${a.svp!.port}`;
    const labelB = `${b.svp!.host}:${b.svp!.port}`;
    const svp = new SvpClient({ servers: [labelA, labelB], timeoutMs: 3000, backoffBaseMs: 200 });
    const answeredBy = { before: new Map<string, number>(), after: new Map<string, number>() };
    const bad: string[] = [];
    let killed = false;
    let stop = false;
    let lookups = 0;
    try {
      await svp.start();
      await svp.ready();
      // Wait until the client has both connections up, so lookups really go through A.
      const deadline = Date.now() + 5000;
      while (svp.endpoints().filter((e) => e.state === 'active').length < 2) {
        assert.ok(Date.now() < deadline, `both SVP connections up: ${JSON.stringify(svp.endpoints())}`);
        await new Promise((res) => setTimeout(res, 20));
      }
      async function resolver(w: number): Promise<void> {
        for (let k = w; !stop; k += 4) {
          const n = acked[k % acked.length]!;
          const phase = killed ? answeredBy.after : answeredBy.before;
          try {
            const r = await svp.vl3(n.ip, fabric.vnet);
            lookups++;
            phase.set(r.server, (phase.get(r.server) ?? 0) + 1);
            if (r.status !== SvpStatus.OK || r.mac !== n.mac) bad.push(`${n.ip}: ${r.statusName} ${r.mac} from ${r.server}`);
          } catch (err) {
            bad.push(`${n.ip}: ${(err as Error).message}`);
          }
        }
      }
      const resolvers = Promise.all([0, 1, 2, 3].map((w) => resolver(w)));
      try {
        while ((answeredBy.before.get(labelA) ?? 0) < 200) await new Promise((res) => setTimeout(res, 5));
        await a.kill('SIGKILL');
        killed = true;
        const killedAt = lookups;
        while (lookups < killedAt + 400) await new Promise((res) => setTimeout(res, 5));
      } finally {
        stop = true;
        await resolvers;
      }
      t.diagnostic(`${lookups} lookups; before the kill ${JSON.stringify([...answeredBy.before])}, after ${JSON.stringify([...answeredBy.after])}`);
      assert.deepEqual(bad, [], 'every lookup succeeded');
      assert.ok((answeredBy.before.get(labelA) ?? 0) >= 200);
      // Lookups sent before the kill may still be answered by A; everything after is B's.
      assert.ok((answeredBy.after.get(labelB) ?? 0) >= 350, 'the surviving replica took over');
      assert.equal(svp.endpoints().find((e) => e.server === labelA)?.state === 'active', false, 'the client noticed A is gone');

      // The surviving replica still takes writes, and answers them at once.
      const nic = await api(b.restUrl, 'POST', `/networks/${fabric.networkUuid}/nics`, nicBody(100_000, NODES));
      const r = await svp.vl3(nic.ip, fabric.vnet);
      assert.equal(r.server, labelB);
      assert.equal(r.status, SvpStatus.OK);
      assert.equal(r.mac, nic.mac);
    } finally {
      svp.close();
    }
  });
});
