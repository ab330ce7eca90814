/**
 * Controller replicas on one etcd cluster, for the distributed-mode tests: N real
 * `rhumb controller --store etcd` processes sharing a key prefix, and a fabric network
 * with underlay NICs for a set of compute nodes, created through the REST API.
 */
import assert from 'node:assert/strict';
import { type EtcdCluster, etcdControllerArgs } from './etcd-cluster.js';
import { http, type RunningController, startControllerProcess } from './processes.js';
import type { SvpClient } from '../../src/svp/client.js';
import { SvpStatus } from '../../src/svp/codec.js';

export const OWNER = '11111111-2222-4333-8444-555555555555';
export const cnUuid = (i: number): string => `c0000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
export const vmUuid = (i: number): string => `a0000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
/** Underlay address of compute node i (198.18.0.0/16 is benchmarking space, never routed here). */
export const underlayIp = (i: number): string => `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`;

export async function startReplicas(cluster: EtcdCluster, n: number, prefix: string, extra: string[] = []): Promise<RunningController[]> {
  const out: RunningController[] = [];
  try {
    // One at a time: the first creates the initial data, the others find it.
    for (let i = 0; i < n; i++) out.push(await startControllerProcess({ args: etcdControllerArgs(cluster, prefix, extra), timeoutMs: 30_000 }));
  } catch (err) {
    await Promise.all(out.map((c) => c.stop()));
    throw err;
  }
  return out;
}

/** REST call that must succeed. */
export async function api(base: string, method: string, path: string, body?: unknown): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await http(base, method, path, body);
  assert.ok(r.status < 300, `${method} ${path} -> ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

export interface Fabric {
  vnet: number;
  networkUuid: string;
}

/**
 * Underlay NICs for compute nodes 0..nodes-1 (so VL2/VL3 answers carry an underlay
 * address) and one fabric network 10.<third>.0.0/<16|24> on VLAN vlanId.
 */
export async function makeFabric(
  base: string,
  opts: { nodes: number; vlanId: number; subnet: string; provisionStart: string; provisionEnd: string },
): Promise<Fabric> {
  const ul = await api(base, 'POST', '/networks', {
    name: `underlay-${opts.vlanId}`,
    nic_tag: 'sdc_underlay',
    vlan_id: 0,
    subnet: '198.18.0.0/16',
    provision_start_ip: '198.18.0.1',
    provision_end_ip: '198.18.250.250',
  });
  for (let i = 0; i < opts.nodes; i++) {
    await api(base, 'POST', `/networks/${ul.uuid}/nics`, {
      belongs_to_uuid: cnUuid(i),
      belongs_to_type: 'server',
      owner_uuid: OWNER,
      ip: underlayIp(i),
      underlay: true,
      check_owner: false,
    });
  }
  const vlan = await api(base, 'POST', `/fabrics/${OWNER}/vlans`, { vlan_id: opts.vlanId, name: `v${opts.vlanId}` });
  const net = await api(base, 'POST', `/fabrics/${OWNER}/vlans/${opts.vlanId}/networks`, {
    name: `net${opts.vlanId}`,
    subnet: opts.subnet,
    provision_start_ip: opts.provisionStart,
    provision_end_ip: opts.provisionEnd,
  });
  return { vnet: vlan.vnet_id as number, networkUuid: net.uuid as string };
}

/** Body of a fabric NIC create for VM i on node i % nodes. */
export function nicBody(i: number, nodes: number): Record<string, unknown> {
  return { belongs_to_uuid: vmUuid(i), belongs_to_type: 'zone', owner_uuid: OWNER, cn_uuid: cnUuid(i % nodes) };
}

/** Every NIC of a network, read through one replica (all pages). */
export async function listNics(base: string, networkUuid: string): Promise<Array<{ mac: string; ip: string; belongs_to_uuid: string }>> {
  const out: Array<{ mac: string; ip: string; belongs_to_uuid: string }> = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await api(base, 'GET', `/nics?network_uuid=${networkUuid}&limit=1000&offset=${offset}`);
    out.push(...page);
    if (page.length < 1000) return out;
  }
}

/**
 * A replica learns of another's write through its etcd watch, a few ms after the commit
 * (longer after an outage, when the watch is re-created on its own schedule): VL3 asked
 * until it is found or `ms` pass. Resolves with the last answer and how long it took.
 */
export async function vl3WhenFound(svp: SvpClient, ip: string, vnet: number, ms = 5000): Promise<{ answer: Awaited<ReturnType<SvpClient['vl3']>>; waitedMs: number }> {
  const t0 = Date.now();
  let answer = await svp.vl3(ip, vnet);
  while (answer.status !== SvpStatus.OK && Date.now() - t0 < ms) {
    await new Promise((r) => setTimeout(r, 50));
    answer = await svp.vl3(ip, vnet);
  }
  return { answer, waitedMs: Date.now() - t0 };
}
