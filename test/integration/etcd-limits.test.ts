/**
 * rhumb on a stock etcd: Debian's etcd with its default limits (--max-txn-ops 128,
 * --max-request-bytes 1.5 MiB). A NIC write is a constant number of operations, so a vnet
 * with more nodes than etcd allows operations in one transaction takes NIC writes, and
 * every node on it gets its shootdowns; deleting a network that held more IP records than
 * one transaction may carry works too, and so does the underlay move of a node on more
 * vnets than that. A flag from older deployments is accepted and ignored.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { SvpClient } from '../../src/svp/client.js';
import { SvpStatus } from '../../src/svp/codec.js';
import { EtcdCluster, etcdControllerArgs, etcdSkipReason } from '../helpers/etcd-cluster.js';
import { api, cnUuid, makeFabric, nicBody, OWNER, underlayIp, vmUuid } from '../helpers/etcd-replicas.js';
import { EtcdStore } from '../../src/store/etcd.js';
import { ipPrefix } from '../../src/napi/keys.js';
import { http, startControllerProcess } from '../helpers/processes.js';

it('on etcd defaults, a vnet with 140 nodes takes NIC writes and every node gets the move; its network (140 IP records) deletes; --etcd-max-txn-ops is ignored', { skip: etcdSkipReason, timeout: 120_000 }, async () => {
  const NODES = 140;
  const cluster = await EtcdCluster.start({ members: 1 });
  const ctl = await startControllerProcess({ args: etcdControllerArgs(cluster, 'vnet140/', ['--etcd-max-txn-ops', '4096', '--log-wait', '2000']) });
  const svp = new SvpClient({ servers: [`${ctl.svp!.host}:${ctl.svp!.port}`], timeoutMs: 10_000 });
  try {
    assert.equal((await http(ctl.restUrl, 'GET', '/ping')).status, 200);
    const fabric = await makeFabric(ctl.restUrl, { nodes: NODES, vlanId: 40, subnet: '10.40.0.0/16', provisionStart: '10.40.0.10', provisionEnd: '10.40.250.250' });
    // One NIC per node: the vnet grows to NODES members.
    const nics = [];
    for (let i = 0; i < NODES; i++) nics.push(await api(ctl.restUrl, 'POST', `/networks/${fabric.networkUuid}/nics`, nicBody(i, NODES)));
    await svp.start();
    // Node i joined with the i-th create and was told about every later one.
    for (let i = 0; i < NODES - 1; i++) {
      const r = await svp.logReq(underlayIp(i), 65536);
      assert.equal(r.status, SvpStatus.OK);
      assert.deepEqual(
        r.entries.map((e) => (e.type === 'vl3' ? e.ip : e.mac)),
        nics.slice(i + 1).map((n) => n.ip),
        `node ${i}`,
      );
      await svp.logRm(r.entries.map((e) => e.id));
    }
    // Move the first NIC to the last node: one write, every node on the vnet is told.
    const moved = await api(ctl.restUrl, 'PUT', `/nics/${nics[0].mac}`, { cn_uuid: nicBody(NODES - 1, NODES).cn_uuid });
    assert.equal(moved.cn_uuid, nicBody(NODES - 1, NODES).cn_uuid);
    for (let i = 0; i < NODES; i++) {
      const r = await svp.logReq(underlayIp(i), 65536);
      assert.deepEqual(
        r.entries.map((e) => (e.type === 'vl2' ? `vl2 ${e.mac}` : `vl3 ${e.ip}`)),
        [`vl2 ${nics[0].mac}`, `vl3 ${nics[0].ip}`],
        `node ${i}`,
      );
      await svp.logRm(r.entries.map((e) => e.id));
    }
    // Every NIC goes, then the network with its 140+ IP records.
    for (const n of nics) assert.equal((await http(ctl.restUrl, 'DELETE', `/nics/${n.mac}`)).status, 204);
    const admin = await EtcdStore.open({ endpoints: cluster.endpoints, prefix: 'vnet140/' });
    try {
      assert.ok((await admin.count(ipPrefix(fabric.networkUuid))) > 128, 'more IP records than one etcd transaction may delete');
      const del = await http(ctl.restUrl, 'DELETE', `/fabrics/${OWNER}/vlans/40/networks/${fabric.networkUuid}`);
      assert.equal(del.status, 204, JSON.stringify(del.body));
      assert.equal(await admin.count(ipPrefix(fabric.networkUuid)), 0);
    } finally {
      await admin.close();
    }
  } finally {
    svp.close();
    await ctl.stop();
    await cluster.stop();
  }
});

it('on etcd defaults, a node with NICs on 140 vnets moves its underlay address in one write, and a peer on each vnet gets a VL2 for each', { skip: etcdSkipReason, timeout: 180_000 }, async () => {
  const VNETS = 140;
  const cluster = await EtcdCluster.start({ members: 1 });
  const ctl = await startControllerProcess({ args: etcdControllerArgs(cluster, 'ulmove/', ['--log-wait', '2000']) });
  const svp = new SvpClient({ servers: [`${ctl.svp!.host}:${ctl.svp!.port}`], timeoutMs: 10_000 });
  try {
    // Nodes 0 and 1 (underlay NICs), then one owner per vnet, each with a NIC on both nodes.
    const first = await makeFabric(ctl.restUrl, { nodes: 2, vlanId: 10, subnet: '10.10.0.0/24', provisionStart: '10.10.0.10', provisionEnd: '10.10.0.250' });
    const nets = [first.networkUuid];
    const owners = [OWNER];
    for (let i = 1; i < VNETS; i++) {
      const owner = `22222222-0000-4000-8000-${String(i).padStart(12, '0')}`;
      await api(ctl.restUrl, 'POST', `/fabrics/${owner}/vlans`, { vlan_id: 10, name: 'v10' });
      const net = await api(ctl.restUrl, 'POST', `/fabrics/${owner}/vlans/10/networks`, { name: 'n', subnet: '10.10.0.0/24', provision_start_ip: '10.10.0.10', provision_end_ip: '10.10.0.250' });
      nets.push(net.uuid as string);
      owners.push(owner);
    }
    const moving: string[] = [];
    for (let i = 0; i < VNETS; i++) {
      for (const node of [0, 1]) {
        const nic = await api(ctl.restUrl, 'POST', `/networks/${nets[i]}/nics`, { belongs_to_uuid: vmUuid(i * 2 + node), belongs_to_type: 'zone', owner_uuid: owners[i], cn_uuid: cnUuid(node) });
        if (node === 0) moving.push(nic.mac as string);
      }
    }
    await svp.start();
    // Node 1 joined each vnet after node 0: it has nothing pending yet.
    assert.deepEqual((await svp.logReq(underlayIp(1), 65536)).entries, []);
    const [ul] = await api(ctl.restUrl, 'GET', `/nics?belongs_to_uuid=${cnUuid(0)}&belongs_to_type=server`);
    const newIp = '198.18.200.1';
    const moved = await http(ctl.restUrl, 'PUT', `/nics/${String(ul.mac).replace(/:/g, '')}`, { ip: newIp });
    assert.equal(moved.status, 200, JSON.stringify(moved.body));
    const got: string[] = [];
    for (let round = 0; round < 20 && got.length < VNETS; round++) {
      const r = await svp.logReq(underlayIp(1), 65536);
      assert.equal(r.status, SvpStatus.OK);
      got.push(...r.entries.map((e) => (e.type === 'vl2' ? e.mac : `vl3 ${e.ip}`)));
      await svp.logRm(r.entries.map((e) => e.id));
    }
    assert.deepEqual(got.sort(), [...moving].sort());
    // And the peer now finds node 0's NICs at its new address.
    const answer = await svp.vl2(moving[5]!, (await api(ctl.restUrl, 'GET', `/networks/${nets[5]}`)).vnet_id as number);
    assert.equal(answer.status, SvpStatus.OK);
    assert.equal(answer.ip, newIp);
  } finally {
    svp.close();
    await ctl.stop();
    await cluster.stop();
  }
});
