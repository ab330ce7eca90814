/**
 * When the agent reads routers: at start, and on an attach or detach only when an owner
 * arrives on the node or leaves it (one feed request naming the node's owners then); an
 * attach for an owner already here reads nothing (the held feed request brings router
 * changes). A controller without the feed is read the older way, per owner. A fake
 * backend and API count the reads.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { Agent, type AgentNapi } from '../../src/agent/agent.js';
import type { EdgeRouter } from '../../src/edge/plan.js';
import { type ApiNic, NapiRequestError } from '../../src/agent/napi-client.js';
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

/** An API whose router feed answers at once, or holds until the test releases it (or the agent drops it). */
function fakeNapi(opts: { feed: boolean }) {
  const reads: string[] = [];
  const held: Array<() => void> = [];
  const napi: AgentNapi = {
    getNic: async () => {
      throw new Error('not used');
    },
    // The node's underlay NIC is registered already.
    listNics: async (f: Record<string, string | boolean>) => (f.belongs_to_type === 'server' ? [{ mac: 'u1', ip: '198.18.0.1', underlay: true }] : []) as never,
    listNetworks: async () => [],
    createNic: async () => ({}) as never,
    request: (async (_method: string, path: string, _body: unknown, _timeout: number, signal?: AbortSignal) => {
      reads.push(path);
      if (!path.startsWith('/routers/feed')) return [];
      if (!opts.feed) throw new NapiRequestError('GET', path, 404, { code: 'ResourceNotFound' });
      const q = new URL(`http://x${path}`).searchParams;
      if (q.get('since') && q.get('wait') !== '0') {
        await new Promise<void>((resolve, reject) => {
          held.push(resolve);
          signal?.addEventListener('abort', () => reject(new Error('aborted')));
        });
      }
      return { version: 'v1', routers: [] };
    }) as never,
  };
  const release = () => {
    for (const r of held.splice(0)) r();
  };
  return { napi, reads, release };
}

const agentWith = (napi: AgentNapi, backend: CountingBackend) =>
  new Agent({
    nodeUuid: NODE, underlayIp: '198.18.0.1', napi, svp, backend, registry: new Registry(), adminUuid: '930896af-bf8c-48d4-885c-6573a94b1853',
    routerPollMs: 3_600_000, prefetch: false, checkNetns: async () => undefined,
  });

test('routers are read when an owner arrives on the node or leaves it, not on every attach and detach', async () => {
  const { napi, reads, release } = fakeNapi({ feed: true });
  const backend = new CountingBackend();
  const agent = agentWith(napi, backend);
  await agent.start();
  try {
    /** The owners of each feed request asked at once (wait=0): the agent's reads. */
    const asked = () => reads.filter((p) => p.startsWith('/routers/feed') && p.includes('wait=0')).map((p) => new URL(`http://x${p}`).searchParams.get('owner_uuids'));
    assert.deepEqual(asked(), [], 'no NIC, no owner to read');
    await agent.attachNic(nic(1, A), { mac: nic(1, A).mac, netns: '/run/netns/x1' });
    assert.deepEqual(asked(), [A], 'a new owner: its routers are read');
    await agent.attachNic(nic(2, A), { mac: nic(2, A).mac, netns: '/run/netns/x2' });
    assert.deepEqual(asked(), [A], 'an owner already here: nothing read');
    await agent.attachNic(nic(3, B), { mac: nic(3, B).mac, netns: '/run/netns/x3' });
    assert.deepEqual(asked(), [A, [A, B].join(',')], 'another new owner: every owner here is asked for');
    await agent.detach(nic(2, A).mac);
    assert.equal(asked().length, 2, 'the owner still has a NIC here: nothing read');
    await agent.detach(nic(1, A).mac);
    assert.deepEqual(asked().slice(2), [B], 'the owner left: the remaining owners are read');
    // Between those, one request is held for the owners here, naming the version the agent has.
    await waitFor(() => reads.some((p) => p.includes('since=v1') && p.includes(`owner_uuids=${B}`)));
    release();
  } finally {
    await agent.close();
  }
});

test('a controller without the router feed (404): routers are read per owner instead', async () => {
  const { napi, reads } = fakeNapi({ feed: false });
  const agent = agentWith(napi, new CountingBackend());
  await agent.start();
  try {
    await agent.attachNic(nic(1, A), { mac: nic(1, A).mac, netns: '/run/netns/x1' });
    assert.ok(reads.includes(`/fabrics/${A}/routers`), reads.join(' '));
    assert.equal(reads.filter((p) => p.startsWith('/routers/feed')).length, 1, 'the feed is asked once, then no more');
    await agent.attachNic(nic(3, B), { mac: nic(3, B).mac, netns: '/run/netns/x3' });
    assert.ok(reads.includes(`/fabrics/${B}/routers`));
    assert.equal(reads.filter((p) => p.startsWith('/routers/feed')).length, 1);
  } finally {
    await agent.close();
  }
});

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
