/**
 * etcd's transaction limits against rhumb's NIC writes. A NIC write is one transaction
 * carrying one shootdown event per compute node on the vnet, so etcd's default of 128
 * operations per transaction is too small for a busy vnet. The controller checks at start
 * that the cluster accepts its configured transaction size (--etcd-max-txn-ops, default
 * 4096) and refuses to start with a clear message otherwise.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { EtcdCluster, etcdControllerArgs, etcdSkipReason, RHUMB_ETCD_SETTINGS } from '../helpers/etcd-cluster.js';
import { api, makeFabric, nicBody } from '../helpers/etcd-replicas.js';
import { http, startControllerProcess } from '../helpers/processes.js';

it('a controller refuses to start on a cluster with etcd\'s default --max-txn-ops, or too small --max-request-bytes', { skip: etcdSkipReason, timeout: 60_000 }, async () => {
  for (const settings of [{}, { maxTxnOps: 4096, maxRequestBytes: 256 * 1024 }]) {
    const cluster = await EtcdCluster.start({ members: 1, ...settings });
    try {
      await assert.rejects(startControllerProcess({ args: etcdControllerArgs(cluster, 'limits/') }), (err: Error) => {
        assert.match(err.message, /exited with 1/);
        assert.match(err.message, /rejected a transaction of 4096 operations/);
        assert.match(err.message, settings.maxRequestBytes ? /request is too large|larger than max/ : /too many operations/);
        assert.match(err.message, /--max-txn-ops=4096/);
        return true;
      });
      // An operator may knowingly run with etcd's default and a smaller limit.
      const ctl = await startControllerProcess({ args: etcdControllerArgs(cluster, 'limits/', ['--etcd-max-txn-ops', '64']) });
      try {
        assert.equal((await http(ctl.restUrl, 'GET', '/ping')).status, 200);
      } finally {
        await ctl.stop();
      }
    } finally {
      await cluster.stop();
    }
  }
});

it('with --max-txn-ops raised, a NIC write on a vnet with 140 nodes (139 events) commits; a replica held to 128 ops refuses it cleanly', { skip: etcdSkipReason, timeout: 90_000 }, async (t) => {
  const NODES = 140;
  const cluster = await EtcdCluster.start({ members: 1, ...RHUMB_ETCD_SETTINGS });
  const big = await startControllerProcess({ args: etcdControllerArgs(cluster, 'vnet140/') });
  try {
    const fabric = await makeFabric(big.restUrl, { nodes: 0, vlanId: 40, subnet: '10.40.0.0/16', provisionStart: '10.40.0.10', provisionEnd: '10.40.250.250' });
    // One NIC per node: the vnet grows to NODES members, each create telling all earlier ones.
    for (let i = 0; i < NODES; i++) await api(big.restUrl, 'POST', `/networks/${fabric.networkUuid}/nics`, nicBody(i, NODES));
    const nics = await api(big.restUrl, 'GET', `/nics?network_uuid=${fabric.networkUuid}&limit=1000`);
    assert.equal(nics.length, NODES);

    const small = await startControllerProcess({ args: etcdControllerArgs(cluster, 'vnet140/', ['--etcd-max-txn-ops', '128']) });
    try {
      const before = (await api(small.restUrl, 'GET', `/nics?network_uuid=${fabric.networkUuid}&limit=1000`)).length;
      const r = await http(small.restUrl, 'POST', `/networks/${fabric.networkUuid}/nics`, nicBody(NODES, NODES));
      t.diagnostic(`replica held to 128 ops: ${r.status} ${JSON.stringify(r.body)}`);
      assert.equal(r.status, 500);
      assert.match(r.body.message, /at most 128|max-txn-ops/);
      // Nothing half-written; the replica with the raised limit still takes the same write.
      assert.equal((await api(small.restUrl, 'GET', `/nics?network_uuid=${fabric.networkUuid}&limit=1000`)).length, before);
      const nic = await api(big.restUrl, 'POST', `/networks/${fabric.networkUuid}/nics`, nicBody(NODES, NODES));
      assert.match(nic.mac, /^[0-9a-f:]{17}$/);
    } finally {
      await small.stop();
    }
  } finally {
    await big.stop();
    await cluster.stop();
  }
});
