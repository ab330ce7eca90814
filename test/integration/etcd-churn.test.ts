/**
 * Continuous churn on a three-member etcd started with the settings README recommends for
 * a busy site (automatic periodic compaction, a backend quota; retention scaled down to
 * seconds here): NIC moves through a controller replica while every node drains its
 * shootdowns over SVP. History is compacted as the churn goes on, the live keyspace stays
 * as small as the fabric (log entries are trimmed once consumed), a defragmented backend
 * is back to a few MiB, and the controller keeps serving throughout.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { EtcdStore } from '../../src/store/etcd.js';
import { CompactedError } from '../../src/store/types.js';
import { NODE_STATE_PREFIX, VLOG_PREFIX } from '../../src/overlay/keys.js';
import { SvpClient } from '../../src/svp/client.js';
import { busySiteEtcdArgs, EtcdCluster, etcdControllerArgs, etcdSkipReason } from '../helpers/etcd-cluster.js';
import { api, makeFabric, nicBody, underlayIp } from '../helpers/etcd-replicas.js';
import { startControllerProcess } from '../helpers/processes.js';

const NODES = 4;
const NICS = 8;
const MOVES = 300;
const PREFIX = 'churn/';

it('under continuous churn, history is compacted, the live keyspace stays bounded and defrag reclaims the backend', { skip: etcdSkipReason, timeout: 180_000 }, async (t) => {
  const cluster = await EtcdCluster.start({ members: 3, extraArgs: busySiteEtcdArgs('3s', 256 * 1024 * 1024) });
  const ctl = await startControllerProcess({ args: etcdControllerArgs(cluster, PREFIX, ['--log-wait', '1000']) });
  const svp = new SvpClient({ servers: [`${ctl.svp!.host}:${ctl.svp!.port}`], timeoutMs: 10_000 });
  const admin = await EtcdStore.open({ endpoints: cluster.endpoints, prefix: PREFIX });
  let churning = true;
  const told = new Map<number, number>();
  const drains: Promise<void>[] = [];
  try {
    const fabric = await makeFabric(ctl.restUrl, { nodes: NODES, vlanId: 90, subnet: '10.90.0.0/24', provisionStart: '10.90.0.10', provisionEnd: '10.90.0.250' });
    const nics = [];
    for (let i = 0; i < NICS; i++) nics.push(await api(ctl.restUrl, 'POST', `/networks/${fabric.networkUuid}/nics`, nicBody(i, NODES)));
    await svp.start();
    // Every node consumes its shootdowns as an agent does.
    for (let n = 0; n < NODES; n++) {
      drains.push(
        (async () => {
          while (churning) {
            const r = await svp.logReq(underlayIp(n), 65536);
            told.set(n, (told.get(n) ?? 0) + r.entries.length);
            if (r.entries.length > 0) await svp.logRm(r.entries.map((e) => e.id));
          }
        })(),
      );
    }
    const firstRev = await admin.revision();
    const live: number[] = [];
    const at = nics.map((_, i) => i % NODES);
    // Paced to at least 2 s per 50 moves, so that log sweeps (every 5 s) and etcd's
    // compactions (every 3 s here) happen during the churn even on a fast machine.
    let blockStart = Date.now();
    for (let m = 0; m < MOVES; m++) {
      if (m % 50 === 0) {
        await new Promise((r) => setTimeout(r, Math.max(0, blockStart + 2000 - Date.now())));
        blockStart = Date.now();
      }
      const i = m % NICS;
      at[i] = (at[i]! + 1) % NODES;
      await api(ctl.restUrl, 'PUT', `/nics/${nics[i].mac}`, { cn_uuid: nicBody(at[i]!, NODES).cn_uuid });
      if (m % 50 === 49) live.push(await admin.count(VLOG_PREFIX));
    }
    const lastRev = await admin.revision();
    t.diagnostic(`${MOVES} moves took ${lastRev - firstRev} revisions; live log entries every 50 moves: ${live.join(', ')}`);

    // The history before the churn has been compacted away by etcd itself. Its periodic
    // compactor compacts to the revision it sampled one retention period ago, so on a fast
    // machine the churn can end before that passes firstRev: ask again for a few periods.
    const watchFrom = (rev: number) =>
      new Promise<Error | null>((resolve) => {
        const w = admin.watch({ prefix: 'ovl/', fromRevision: rev }, { onChange: () => undefined, onError: (err) => resolve(err) });
        setTimeout(() => {
          w.close();
          resolve(null);
        }, 1000);
      });
    let compacted = await watchFrom(firstRev);
    for (let tries = 0; !(compacted instanceof CompactedError) && tries < 15; tries++) compacted = await watchFrom(firstRev);
    assert.ok(compacted instanceof CompactedError, `history from revision ${firstRev} should be compacted, got ${compacted}`);

    // Once the nodes have drained and the sweep has run, the log is as small as the fabric.
    const deadline = Date.now() + 30_000;
    while ((await admin.count(VLOG_PREFIX)) > 0) {
      assert.ok(Date.now() < deadline, `log entries left: ${await admin.count(VLOG_PREFIX)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    // Trimmed while the churn went on, not only at its end.
    assert.ok(live.some((n, i) => i > 0 && n < live[i - 1]!), `live log entries never fell during the churn: ${live.join(', ')}`);
    assert.ok(Math.max(...live) < MOVES, `live log entries: ${live.join(', ')}`);
    assert.ok((await admin.count(NODE_STATE_PREFIX)) <= NODES);
    for (let n = 0; n < NODES; n++) assert.ok((told.get(n) ?? 0) > 0, `node ${n} was told`);

    // Wait for one more compaction past the churn, then defragment: the backend is small again.
    const before = await cluster.dbSizes();
    await new Promise((r) => setTimeout(r, 4000));
    await cluster.defragment();
    const after = await cluster.dbSizes();
    t.diagnostic(`backend before defrag: ${before.map((s) => `${(s.size / 1e6).toFixed(1)} MB (${(s.inUse / 1e6).toFixed(1)} in use)`).join(', ')}; after: ${after.map((s) => `${(s.size / 1e6).toFixed(1)} MB`).join(', ')}`);
    for (const s of after) assert.ok(s.size < 8 * 1024 * 1024, `${s.member.name}: ${s.size} bytes after defrag`);

    // The controller still serves writes and shootdowns.
    const r = await api(ctl.restUrl, 'PUT', `/nics/${nics[0].mac}`, { cn_uuid: nicBody(2, NODES).cn_uuid });
    assert.equal(r.cn_uuid, nicBody(2, NODES).cn_uuid);
  } finally {
    churning = false;
    await Promise.allSettled(drains);
    svp.close();
    await admin.close();
    await ctl.stop();
    await cluster.stop();
  }
});
