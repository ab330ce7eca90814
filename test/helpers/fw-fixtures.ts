/**
 * Firewall test fixtures: NIC records written straight into the store (what the NIC write
 * path stores under napi/nics/), rule construction, fixed uuids.
 */
import { nicKey } from '../../src/napi/keys.js';
import type { NicRecord } from '../../src/napi/models/records.js';
import type { Store } from '../../src/store/types.js';
import { parseRule, serialize } from '../../src/fw/lang/index.js';
import type { InstanceView, PolicyRule, StoredRule } from '../../src/fw/types.js';

export const OWNER_A = 'aaaaaaaa-0000-4000-8000-00000000000a';
export const OWNER_B = 'bbbbbbbb-0000-4000-8000-00000000000b';
export const NODE_1 = 'c0000000-0000-4000-8000-000000000001';
export const NODE_2 = 'c0000000-0000-4000-8000-000000000002';

/** Instance uuid n (1-based), readable in failures. */
export function vm(n: number): string {
  return `10000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

/** Rule uuid n. */
export function ruid(n: number): string {
  return `20000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

export function mac(n: number): string {
  return `90:b8:d0:00:${((n >> 8) & 255).toString(16).padStart(2, '0')}:${(n & 255).toString(16).padStart(2, '0')}`;
}

export async function putNic(store: Store, n: number, fields: { instance: string; ip: string; cn?: string; owner?: string }): Promise<void> {
  const now = new Date(0).toISOString();
  const nic: NicRecord = {
    mac: mac(n),
    owner_uuid: fields.owner ?? OWNER_A,
    belongs_to_uuid: fields.instance,
    belongs_to_type: 'zone',
    primary: true,
    state: 'running',
    created_timestamp: now,
    modified_timestamp: now,
    ip: fields.ip,
  };
  if (fields.cn) nic.cn_uuid = fields.cn;
  const res = await store.commit({ ops: [{ type: 'put', key: nicKey(mac(n)), value: JSON.stringify(nic) }] });
  if (!res.ok) throw new Error('putNic failed');
}

export async function delNic(store: Store, n: number): Promise<void> {
  await store.commit({ ops: [{ type: 'del', key: nicKey(mac(n)) }] });
}

export function policyRule(uuid: string, text: string, extra: Partial<StoredRule> = {}): PolicyRule {
  const model = parseRule(text);
  const stored: StoredRule = { uuid, rule: serialize(model), enabled: true, log: false, version: '1.000001', global: true, ...extra };
  if (stored.owner_uuid) delete stored.global;
  return { stored, model };
}

export function instance(n: number, fields: Partial<InstanceView> = {}): InstanceView {
  return { uuid: vm(n), owner_uuid: OWNER_A, tags: {}, firewall_enabled: true, addresses: [], nodes: [NODE_1], ...fields };
}
