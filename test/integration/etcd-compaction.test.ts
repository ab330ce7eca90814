/**
 * A replica cut off from etcd while the history it missed is compacted away: replica B
 * knows only member m0; m0 is killed (the cluster keeps quorum), writes go on through
 * replica A, etcd is compacted past them, m0 comes back. B cannot replay the gap from
 * history, so its mapping index must notice the compaction and reload: afterwards it
 * answers for NICs created during the outage, no longer answers for one deleted during
 * it, and hands out the shootdown events written meanwhile.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { EtcdCluster, etcdControllerArgs, etcdSkipReason } from '../helpers/etcd-cluster.js';
import { api, makeFabric, nicBody, underlayIp, vl3WhenFound } from '../helpers/etcd-replicas.js';
import { http, type RunningController, startControllerProcess } from '../helpers/processes.js';
import { EtcdStore } from '../../src/store/etcd.js';
import { SvpClient } from '../../src/svp/client.js';
import { SvpStatus } from '../../src/svp/codec.js';

const NODES = 3;
const PREFIX = 'compaction/';

it('a replica whose watch fell behind an etcd compaction reloads its index and answers the current state', { skip: etcdSkipReason, timeout: 90_000 }, async (t) => {
  const cluster = await EtcdCluster.start({ members: 3 });
  const [m0, m1, m2] = cluster.members as [(typeof cluster.members)[0], (typeof cluster.members)[0], (typeof cluster.members)[0]];
  const ctls: RunningController[] = [];
  let svpB: SvpClient | null = null;
  let admin: EtcdStore | null = null;
  try {
    const a = await startControllerProcess({ args: etcdControllerArgs(cluster, PREFIX) });
    ctls.push(a);
    const b = await startControllerProcess({ args: ['--store', 'etcd', '--etcd', m0.clientUrl, '--etcd-prefix', PREFIX, '--log-wait', '300'] });
    ctls.push(b);
    const fabric = await makeFabric(a.restUrl, { nodes: NODES, vlanId: 80, subnet: '10.80.0.0/24', provisionStart: '10.80.0.10', provisionEnd: '10.80.0.250' });
    // kept keeps node 0 on the vnet, so node 0 is told about every other change.
    const kept = await api(a.restUrl, 'POST', `/networks/${fabric.networkUuid}/nics`, nicBody(0, NODES));
    const doomed = await api(a.restUrl, 'POST', `/networks/${fabric.networkUuid}/nics`, nicBody(1, NODES));

    svpB = new SvpClient({ servers: [`${b.svp!.host}:${b.svp!.port}`], timeoutMs: 3000 });
    await svpB.start();
    assert.equal((await vl3WhenFound(svpB, doomed.ip, fabric.vnet)).answer.status, SvpStatus.OK, 'B follows the feed before the outage');
    // Node 0's queue is empty before the outage.
    const ul0 = underlayIp(0);
    for (let got = await svpB.logReq(ul0, 65536); got.entries.length > 0; got = await svpB.logReq(ul0, 65536)) {
      await svpB.logRm(got.entries.map((e) => e.id));
    }

    // B loses its only etcd member; the other two keep quorum and A keeps writing.
    await cluster.kill(m0);
    const during = [];
    for (let i = 2; i < 8; i++) during.push({ i, ...(await api(a.restUrl, 'POST', `/networks/${fabric.networkUuid}/nics`, nicBody(i, NODES))) });
    await api(a.restUrl, 'DELETE', `/nics/${doomed.mac}`);
    admin = await EtcdStore.open({ endpoints: [m1.clientUrl, m2.clientUrl], prefix: PREFIX });
    const head = await admin.revision();
    await admin.compact(head);
    t.diagnostic(`compacted etcd at store revision ${head} while B was cut off`);
    // B still answers from memory meanwhile (its last view).
    assert.equal((await svpB.vl3(doomed.ip, fabric.vnet)).status, SvpStatus.OK);

    await cluster.restart(m0);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const r = await svpB.vl3(during.at(-1)!.ip, fabric.vnet);
      if (r.status === SvpStatus.OK) break;
      assert.ok(Date.now() < deadline, 'B did not catch up within 30 s of its member returning');
      await new Promise((res) => setTimeout(res, 100));
    }
    for (const n of [kept, ...during]) {
      const r = await svpB.vl3(n.ip, fabric.vnet);
      assert.equal(r.status, SvpStatus.OK, `VL3 ${n.ip} on B`);
      assert.equal(r.mac, n.mac);
    }
    assert.equal((await svpB.vl3(doomed.ip, fabric.vnet)).status, SvpStatus.NOTFOUND, 'the NIC deleted during the outage is gone on B');
    assert.equal((await svpB.vl2(doomed.mac, fabric.vnet)).status, SvpStatus.NOTFOUND);
    // The events written for node 0 during the outage are on B's queue.
    const events = await svpB.logReq(ul0, 65536);
    const got = events.entries.map((e) => (e.type === 'vl2' ? `vl2 ${e.mac}` : `vl3 ${e.ip}`));
    for (const n of during.filter((x) => x.i % NODES !== 0)) assert.ok(got.includes(`vl3 ${n.ip}`), `event for ${n.ip} on node 0's queue via B`);
    assert.ok(got.includes(`vl2 ${doomed.mac}`), 'the delete shootdown reached node 0 via B');
    // And B writes again on the recovered member.
    const nic = await api(b.restUrl, 'POST', `/networks/${fabric.networkUuid}/nics`, nicBody(50, NODES));
    assert.equal((await http(a.restUrl, 'GET', `/nics/${nic.mac}`)).status, 200);
  } finally {
    svpB?.close();
    await admin?.close();
    await Promise.all(ctls.map((c) => c.stop()));
    await cluster.stop();
  }
});
