/** Builders and store probes shared by the network-side NAPI route tests. */
import assert from 'node:assert/strict';
import type { Store } from '../../src/store/types.js';
import type { TestNapi } from './napi.js';

export const OWNER_A = 'aaaaaaaa-1111-4111-8111-111111111111';
export const OWNER_B = 'bbbbbbbb-2222-4222-8222-222222222222';

/** Every key and value in the store (to prove bad input wrote nothing). */
export async function dump(store: Store): Promise<Map<string, string>> {
  const { kvs } = await store.range({ prefix: '' });
  return new Map(kvs.map((kv) => [kv.key, kv.value]));
}

/** Runs fn and asserts the store holds exactly the same keys and values afterwards. */
export async function assertUnchanged(store: Store, fn: () => Promise<unknown>): Promise<void> {
  const before = await dump(store);
  await fn();
  assert.deepEqual(await dump(store), before);
}

export async function keysUnder(store: Store, prefix: string): Promise<string[]> {
  return (await store.range({ prefix })).kvs.map((kv) => kv.key);
}

export async function makeTag(n: TestNapi, name: string, mtu?: number): Promise<void> {
  const r = await n.call('POST', '/nic_tags', mtu === undefined ? { name } : { name, mtu });
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

let netSeq = 0;

/** A valid public IPv4 network on 198.18.<third>.0/24 (extra fields override). */
export function netParams(third: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: `net${third}_${++netSeq}`,
    nic_tag: 'external',
    vlan_id: 0,
    subnet: `198.18.${third}.0/24`,
    provision_start_ip: `198.18.${third}.10`,
    provision_end_ip: `198.18.${third}.250`,
    ...extra,
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export async function makeNet(n: TestNapi, params: Record<string, unknown>): Promise<any> {
  const r = await n.call('POST', '/networks', params);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

/** Seeds a NIC record the way the NIC side stores it (for aggregations and in-use checks). */
export async function seedNic(
  store: Store,
  nic: { mac: string; belongs_to_uuid: string; belongs_to_type: 'server' | 'zone' | 'other'; network_uuid?: string },
): Promise<void> {
  const hex = nic.mac.replace(/:/g, '');
  const now = new Date().toISOString();
  const rec = {
    mac: nic.mac,
    owner_uuid: nic.belongs_to_uuid,
    belongs_to_uuid: nic.belongs_to_uuid,
    belongs_to_type: nic.belongs_to_type,
    primary: false,
    state: 'running',
    created_timestamp: now,
    modified_timestamp: now,
    ...(nic.network_uuid ? { network_uuid: nic.network_uuid } : {}),
  };
  const ops = [{ type: 'put' as const, key: `napi/nics/${hex}`, value: JSON.stringify(rec) }];
  if (nic.network_uuid) ops.push({ type: 'put', key: `napi/idx/nic/network/${nic.network_uuid}/${hex}`, value: '' });
  const res = await store.commit({ ops });
  assert.ok(res.ok);
}
