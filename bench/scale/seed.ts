/**
 * Fills a store for bench/scale through the real REST app, in process (no sockets): an
 * underlay network with every node's underlay NIC, one fabric (owner, VLAN, network) per
 * vnet, and every NIC (POST /networks/:uuid/nics, automatic IP and MAC). Then measures
 * what writes cost the store, with a CountingStore: NIC moves, and a LOG_RM.
 */
import type { FastifyInstance } from 'fastify';
import { DEFAULT_ADMIN_UUID, napiConfigFrom } from '../../src/controller/index.js';
import { MappingIndex } from '../../src/mapping/index.js';
import { createRegistry } from '../../src/metrics/index.js';
import { buildNapiApp } from '../../src/napi/app.js';
import { ensureInitialData } from '../../src/napi/bootstrap.js';
import { nicKey } from '../../src/napi/keys.js';
import { NODE_STATE_PREFIX } from '../../src/overlay/keys.js';
import type { Store } from '../../src/store/types.js';
import { CountingStore, type CommitCost } from '../../test/helpers/counting-store.js';
import { nodeUuid, ownerUuid, type Topology, underlayIp, vmUuid } from './topology.js';

export interface SeededNic {
  mac: string;
  ip: string;
  vnet: number;
  vnetId: number;
  node: number;
}

export interface Seeded {
  nics: SeededNic[];
  /** vnet index -> vnet_id. */
  vnetIds: number[];
  seconds: number;
}

export interface WriteCosts {
  move: { ops: number; preconditions: number; bytes: number };
  /** A LOG_RM of one node's events: the whole commit (it may carry other nodes' too). */
  logRm: { ops: number; preconditions: number; bytes: number; nodes: number };
}

async function pool<T>(n: number, concurrency: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out = new Array<T>(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      for (let i = next++; i < n; i = next++) out[i] = await fn(i);
    }),
  );
  return out;
}

async function call(app: FastifyInstance, method: string, url: string, body?: object): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  for (let attempt = 0; ; attempt++) {
    const r = await app.inject({ method: method as 'POST', url, ...(body ? { payload: body } : {}) });
    if (r.statusCode < 300) return r.body ? JSON.parse(r.body) : undefined;
    if (r.statusCode >= 500 && attempt < 5) continue; // a conflict storm: try again
    throw new Error(`${method} ${url} -> ${r.statusCode} ${r.body}`);
  }
}

function app(store: Store): Promise<FastifyInstance> {
  const config = napiConfigFrom({ store: { kind: 'memory' }, listen: { host: '127.0.0.1', port: 0 }, svpListen: { host: '127.0.0.1', port: 0 }, adminUuid: DEFAULT_ADMIN_UUID, overlayMtu: 1400 });
  return ensureInitialData({ store, config }).then(async () => {
    // Seeding is one client writing as fast as it can: no per-client rate limit.
    const a = buildNapiApp({ store, config, registry: createRegistry('seed') }, { auth: { limits: { maxInFlight: 4096, rate: null } } });
    await a.ready();
    return a;
  });
}

export async function seed(store: Store, topo: Topology, log: (s: string) => void): Promise<Seeded> {
  const t0 = performance.now();
  const a = await app(store);
  try {
    const ul = await call(a, 'POST', '/networks', {
      name: 'underlay',
      nic_tag: 'sdc_underlay',
      vlan_id: 0,
      subnet: '198.18.0.0/15',
      provision_start_ip: '198.18.0.1',
      provision_end_ip: '198.19.255.250',
    });
    await pool(topo.nodes, 32, (n) =>
      call(a, 'POST', `/networks/${ul.uuid}/nics`, { belongs_to_uuid: nodeUuid(n), belongs_to_type: 'server', owner_uuid: DEFAULT_ADMIN_UUID, ip: underlayIp(n), underlay: true }),
    );
    // One at a time: network creates all touch one generation key and would only conflict.
    const nets = await pool(topo.vnets, 1, async (v) => {
      const vlan = await call(a, 'POST', `/fabrics/${ownerUuid(v)}/vlans`, { vlan_id: 10, name: 'v10' });
      const net = await call(a, 'POST', `/fabrics/${ownerUuid(v)}/vlans/10/networks`, {
        name: 'net',
        subnet: '10.0.0.0/16',
        provision_start_ip: '10.0.0.10',
        provision_end_ip: '10.0.250.250',
      });
      return { uuid: net.uuid as string, vnetId: vlan.vnet_id as number };
    });
    log(`  fabric: ${topo.nodes} underlay NICs, ${topo.vnets} fabric networks in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    let done = 0;
    const nics = await pool(topo.nics.length, 64, async (i) => {
      const x = topo.nics[i]!;
      const nic = await call(a, 'POST', `/networks/${nets[x.vnet]!.uuid}/nics`, {
        belongs_to_uuid: vmUuid(i),
        belongs_to_type: 'zone',
        owner_uuid: ownerUuid(x.vnet),
        cn_uuid: nodeUuid(x.node),
      });
      if (++done % 10000 === 0) log(`  ${done} NICs (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
      return { mac: nic.mac as string, ip: nic.ip as string, vnet: x.vnet, vnetId: nets[x.vnet]!.vnetId, node: x.node };
    });
    return { nics, vnetIds: nets.map((n) => n.vnetId), seconds: (performance.now() - t0) / 1000 };
  } finally {
    await a.close();
  }
}

/**
 * What a NIC move and a LOG_RM cost the store: moves NICs of vnet 0 back and forth
 * through the app and reads their commits, then removes one node's events through an
 * index. Leaves every NIC where it was.
 */
export async function measureWriteCosts(inner: Store, topo: Topology, seeded: Seeded, moves = 10): Promise<WriteCosts> {
  const store = new CountingStore(inner);
  const a = await app(store);
  const index = new MappingIndex({ store });
  try {
    await index.start();
    const nics = seeded.nics.filter((n) => n.vnet === 0).slice(0, moves);
    const costs: CommitCost[] = [];
    for (const nic of nics) {
      const other = topo.vnetNodes[0]!.find((n) => n !== nic.node)!;
      for (const to of [other, nic.node]) {
        await call(a, 'PUT', `/nics/${nic.mac}`, { cn_uuid: nodeUuid(to) });
        costs.push(store.commitWriting(nicKey(nic.mac))!);
      }
    }
    await index.waitForRevision(await store.revision());
    const node = topo.vnetNodes[0]![0]!;
    const ids = index.pendingEvents(nodeUuid(node)).map((e) => e.id);
    await index.removeEvents(ids);
    const rm = store.commitWriting(`${NODE_STATE_PREFIX}${nodeUuid(node)}`)!;
    // Everyone else drains too, so the store is left as a quiet fabric.
    for (const n of topo.vnetNodes[0]!) await index.removeEvents(index.pendingEvents(nodeUuid(n)).map((e) => e.id));
    const avg = (f: (c: CommitCost) => number): number => Math.round(costs.reduce((s, c) => s + f(c), 0) / costs.length);
    return {
      move: { ops: avg((c) => c.ops), preconditions: avg((c) => c.preconditions), bytes: avg((c) => c.bytes) },
      logRm: { ops: rm.ops, preconditions: rm.preconditions, bytes: rm.bytes, nodes: rm.keys.length },
    };
  } finally {
    index.close();
    await a.close();
  }
}
