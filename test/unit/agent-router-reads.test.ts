/**
 * When the agent reads routers: at start, and on an attach or detach only when an owner
 * arrives on the node or leaves it (one REST round trip per owner then); an attach for
 * an owner already here reads nothing (the periodic poll brings router changes). A fake
 * backend and API count the reads.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { Agent, type AgentNapi } from '../../src/agent/agent.js';
import type { EdgeRouter } from '../../src/edge/plan.js';
import type { ApiNic } from '../../src/agent/napi-client.js';
import { NullBackend, quietSvp } from '../helpers/fake-backend.js';

const NODE = 'cccccccc-0000-4000-8000-00000000000c';
const A = 'aaaaaaaa-0000-4000-8000-00000000000a';
const B = 'bbbbbbbb-0000-4000-8000-00000000000b';

/** Records what is plumbed and counts the routers handed to the data plane. */
class CountingBackend extends NullBackend {
  override readonly kind = 'counting';
  private readonly plumbed = new Set<string>();
  routerSets = 0;
  override plumbedMacs(): string[] {
    return [...this.plumbed];
  }
  override isPlumbed(mac: string): boolean {
    return this.plumbed.has(mac);
  }
  override async plumb(p: { mac: string }): Promise<{ firstOnVnet: boolean }> {
    this.plumbed.add(p.mac);
    return { firstOnVnet: false };
  }
  override async unplumb(mac: string): Promise<{ vnetRemoved: boolean }> {
    this.plumbed.delete(mac);
    return { vnetRemoved: false };
  }
  async setRouters(_r: readonly EdgeRouter[]): Promise<void> {
    this.routerSets++;
  }
}

const svp = quietSvp;

const nic = (n: number, owner: string): ApiNic =>
  ({
    mac: `90:b8:d0:00:00:0${n}`, ip: `10.0.0.${n}`, netmask: '255.255.255.0', nic_tag: 'sdc_overlay/7', fabric: true, vlan_id: 0,
    owner_uuid: owner, belongs_to_uuid: `1000000${n}-0000-4000-8000-000000000001`, cn_uuid: NODE, network_uuid: '20000000-0000-4000-8000-000000000001',
  }) as ApiNic;

test('routers are read when an owner arrives on the node or leaves it, not on every attach and detach', async () => {
  const reads: string[] = [];
  const napi: AgentNapi = {
    getNic: async () => {
      throw new Error('not used');
    },
    // The node's underlay NIC is registered already.
    listNics: async (f: Record<string, string | boolean>) => (f.belongs_to_type === 'server' ? [{ mac: 'u1', ip: '198.18.0.1', underlay: true }] : []) as never,
    listNetworks: async () => [],
    createNic: async () => ({}) as never,
    request: (async (_method: string, path: string) => {
      reads.push(path);
      return [];
    }) as never,
  };
  const backend = new CountingBackend();
  const agent = new Agent({
    nodeUuid: NODE, underlayIp: '198.18.0.1', napi, svp, backend, registry: new Registry(), adminUuid: '930896af-bf8c-48d4-885c-6573a94b1853',
    routerPollMs: 3_600_000, prefetch: false, checkNetns: async () => undefined,
  });
  await agent.start();
  try {
    const owners = () => reads.filter((p) => p.endsWith('/routers')).map((p) => p.split('/')[2]);
    assert.deepEqual(owners(), [], 'no NIC, no owner to read');
    await agent.attachNic(nic(1, A), { mac: nic(1, A).mac, netns: '/run/netns/x1' });
    assert.deepEqual(owners(), [A], 'a new owner: its routers are read');
    await agent.attachNic(nic(2, A), { mac: nic(2, A).mac, netns: '/run/netns/x2' });
    assert.deepEqual(owners(), [A], 'an owner already here: nothing read');
    await agent.attachNic(nic(3, B), { mac: nic(3, B).mac, netns: '/run/netns/x3' });
    assert.deepEqual(owners(), [A, A, B], 'another new owner: every owner here is read again');
    await agent.detach(nic(2, A).mac);
    assert.equal(owners().length, 3, 'the owner still has a NIC here: nothing read');
    await agent.detach(nic(1, A).mac);
    assert.deepEqual(owners().slice(3), [B], 'the owner left: the remaining owners are read');
  } finally {
    await agent.close();
  }
});
