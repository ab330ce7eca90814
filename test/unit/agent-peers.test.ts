/**
 * The userspace backend's peer set (which underlay addresses VXLAN is accepted from) on a
 * fake clock and API; and the agent's side for VLAN-aware data planes: answers carry the
 * fabric VLAN of the NIC they name, and the peer listing is the API's underlay NICs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { Agent, type AgentNapi, type SvpLookups } from '../../src/agent/agent.js';
import type { BackendStartOptions } from '../../src/agent/backend.js';
import { NapiRequestError } from '../../src/agent/napi-client.js';
import { PeerSet } from '../../src/agent/userspace/peers.js';
import { SvpStatus } from '../../src/svp/codec.js';
import { NullBackend } from '../helpers/fake-backend.js';

function peerSet(list?: () => Promise<string[]>) {
  let t = 1000;
  const applied: string[][] = [];
  const logs: string[] = [];
  const set = new PeerSet({ ...(list ? { list } : {}), apply: (a) => void applied.push(a), log: (m) => void logs.push(m), now: () => t, minGapMs: 1000 });
  return { set, applied, logs, advance: (ms: number) => (t += ms) };
}

test('peer set: the listing is applied; an answer adds its node at once; the next listing is authoritative', async () => {
  let nodes = ['198.18.0.2', '198.18.0.3'];
  const { set, applied, advance } = peerSet(async () => nodes);
  await set.start();
  assert.deepEqual(applied.at(-1), ['198.18.0.2', '198.18.0.3']);
  const n = applied.length;
  set.learn('198.18.0.3');
  assert.equal(applied.length, n, 'a listed node: nothing to apply');
  set.learn('198.18.0.9');
  assert.deepEqual(applied.at(-1), ['198.18.0.2', '198.18.0.3', '198.18.0.9']);
  // .3 left the API, .9 was never in it: a later listing drops both.
  nodes = ['198.18.0.2'];
  advance(10);
  await set.refresh();
  assert.deepEqual(applied.at(-1), ['198.18.0.2']);
  set.close();
});

test('peer set: an address learned while a listing is in flight survives it', async () => {
  let release!: (v: string[]) => void;
  const { set, applied, advance } = peerSet(() => new Promise<string[]>((r) => (release = r)));
  const first = set.refresh();
  advance(10);
  set.learn('198.18.0.7');
  release(['198.18.0.2']);
  await first;
  assert.deepEqual(applied.at(-1), ['198.18.0.2', '198.18.0.7']);
});

test('peer set: unknown sources relist at most once per gap; concurrent refreshes join and run once more', async () => {
  let calls = 0;
  const { set, advance } = peerSet(async () => {
    calls++;
    return ['198.18.0.2'];
  });
  await set.refresh();
  assert.equal(calls, 1);
  set.unknownSource();
  await new Promise((r) => setImmediate(r));
  assert.equal(calls, 1, 'within the gap: no listing');
  advance(1500);
  set.unknownSource();
  set.unknownSource();
  await new Promise((r) => setImmediate(r));
  assert.equal(calls, 2, 'after the gap: one listing');
  await Promise.all([set.refresh(), set.refresh(), set.refresh()]);
  assert.equal(calls, 4, 'one listing, then one more for the refreshes that arrived meanwhile');
});

test('peer set: a failed listing keeps the set; without a listing, learned addresses stay', async () => {
  let fail = false;
  const { set, applied, logs } = peerSet(async () => {
    if (fail) throw new Error('NAPI down');
    return ['198.18.0.2'];
  });
  await set.refresh();
  fail = true;
  await set.refresh();
  assert.deepEqual(set.addresses(), ['198.18.0.2']);
  assert.match(logs.join('\n'), /NAPI down/);
  assert.deepEqual(applied.at(-1), ['198.18.0.2']);

  const alone = peerSet();
  await alone.set.start();
  alone.set.learn('198.18.0.5');
  await alone.set.refresh();
  assert.deepEqual(alone.set.addresses(), ['198.18.0.5']);
});

// ---- the agent with a VLAN-aware data plane ------------------------------------------

const SELF = '198.18.0.1';
const VNET = 4343;

class VlanBackend extends NullBackend {
  override readonly kind = 'userspace';
  readonly vlanAware = true;
  calls: string[] = [];
  started: BackendStartOptions | undefined;
  override async start(o: BackendStartOptions): Promise<void> {
    this.started = o;
  }
  override vnets(): number[] {
    return [VNET];
  }
  override installL3(vnet: number, ip: string, mac: string, underlay: string, vlan?: number): void {
    this.calls.push(`l3 ${vnet} ${ip} ${mac} ${underlay} vlan ${vlan}`);
  }
  override installL2(vnet: number, mac: string, underlay: string, vlan?: number): void {
    this.calls.push(`l2 ${vnet} ${mac} ${underlay} vlan ${vlan}`);
  }
}

const svp: SvpLookups = {
  vl3: async (ip) =>
    ip === '10.0.0.7' || ip === '10.0.0.8'
      ? { server: 's', status: SvpStatus.OK, statusName: 'OK', mac: ip === '10.0.0.7' ? '90:b8:d0:00:00:07' : '90:b8:d0:00:00:08', ip: '198.18.0.2', port: 4789 }
      : { server: 's', status: SvpStatus.NOTFOUND, statusName: 'NOTFOUND', mac: null, ip: null, port: 0 },
  vl2: async () => ({ server: 's', status: SvpStatus.OK, statusName: 'OK', ip: '198.18.0.2', port: 4789 }),
  // A long-poll that returns nothing.
  logReq: () => new Promise((r) => setTimeout(() => r({ server: 's', status: SvpStatus.OK, statusName: 'OK', entries: [], bytes: 4 }), 20)),
  logRm: async () => ({ server: 's', status: SvpStatus.OK, statusName: 'OK' }),
};

const napiNics: Record<string, object> = {
  '90:b8:d0:00:00:07': { mac: '90:b8:d0:00:00:07', vlan_id: 5 },
};

const napi: AgentNapi = {
  getNic: async (mac: string) => {
    const n = napiNics[mac];
    if (!n) throw new NapiRequestError('GET', `/nics/${mac}`, 404, { message: 'nic not found' });
    return n as never;
  },
  listNics: async (filter: Record<string, string | boolean>) => {
    if (filter.underlay === true) {
      return [
        { mac: 'u1', ip: SELF, underlay: true, nic_tag: 'sdc_underlay' },
        { mac: 'u2', ip: '198.18.0.2', underlay: true, nic_tag: 'sdc_underlay' },
        { mac: 'u3', ip: '198.18.0.3', underlay: true },
        { mac: 'u4', ip: '203.0.113.4', underlay: true, nic_tag: 'external' },
      ] as never;
    }
    if (filter.belongs_to_type === 'server') return [{ mac: 'u1', ip: SELF, underlay: true }] as never;
    return [];
  },
  listNetworks: async () => [],
  createNic: async () => ({}) as never,
};

function makeAgent() {
  const backend = new VlanBackend();
  const agent = new Agent({ nodeUuid: 'cccccccc-0000-4000-8000-00000000000c', underlayIp: SELF, napi, svp, backend, registry: new Registry(), adminUuid: '930896af-bf8c-48d4-885c-6573a94b1853' });
  return { agent, backend };
}

test('agent: answers for a VLAN-aware data plane carry the VLAN of the NIC they name', async () => {
  const { agent, backend } = makeAgent();
  assert.equal((await agent.resolveIp(VNET, '10.0.0.7'))?.vlan, 5);
  await agent.resolveMac(VNET, '90:b8:d0:00:00:07');
  assert.deepEqual(backend.calls, [`l3 ${VNET} 10.0.0.7 90:b8:d0:00:00:07 198.18.0.2 vlan 5`, `l2 ${VNET} 90:b8:d0:00:00:07 198.18.0.2 vlan 5`]);
  // The API no longer has the NIC the controller named: nothing is installed.
  assert.equal(await agent.resolveIp(VNET, '10.0.0.8'), null);
  assert.equal(backend.calls.length, 2);
});

test('agent: the data plane\'s peer listing is the API\'s underlay NICs of other nodes on the underlay tag', async () => {
  const { agent, backend } = makeAgent();
  await agent.start();
  try {
    assert.ok(backend.started?.peerUnderlays, 'the agent hands the backend a peer listing');
    assert.deepEqual((await backend.started.peerUnderlays()).sort(), ['198.18.0.2', '198.18.0.3']);
  } finally {
    await agent.close();
  }
});
