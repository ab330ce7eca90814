/** What the firewall's route groups share: their dependencies and the store reads they all make. */
import type { Store } from '../../store/types.js';
import type { FwEngine } from '../push.js';
import type { fwAccess } from './access.js';
import { RULE_PREFIX, ruleKey, toPolicyRule } from '../registry.js';
import type { InstanceView, PolicyRule, StoredRule } from '../types.js';

export interface FwRouteDeps {
  store: Store;
  /** Compiled state: the instance registry joined with NICs, policies, the node feed. */
  engine: FwEngine;
  /** Who may call each route (./access.ts). */
  access: ReturnType<typeof fwAccess>;
}

/** Rules are read in pages of this many. */
const RULE_PAGE = 5000;

export async function loadRule(store: Store, uuid: string): Promise<StoredRule | undefined> {
  const kv = await store.get(ruleKey(uuid));
  return kv ? (JSON.parse(kv.value) as StoredRule) : undefined;
}

/** Every stored rule that parses (one that does not is skipped). */
export async function allRules(store: Store): Promise<PolicyRule[]> {
  const out: PolicyRule[] = [];
  let gt: string | undefined;
  for (;;) {
    const res = await store.range({ prefix: RULE_PREFIX, gt, limit: RULE_PAGE });
    for (const kv of res.kvs) {
      try {
        out.push(toPolicyRule(JSON.parse(kv.value) as StoredRule));
      } catch {
        /* unparseable stored rule: skipped */
      }
    }
    if (res.kvs.length < RULE_PAGE) return out;
    gt = res.kvs[res.kvs.length - 1]!.key;
  }
}

export function byRuleUuid(a: PolicyRule, b: PolicyRule): number {
  return a.stored.uuid < b.stored.uuid ? -1 : 1;
}

export function serializeInstance(v: InstanceView): Record<string, unknown> {
  return { uuid: v.uuid, owner_uuid: v.owner_uuid, tags: v.tags, firewall_enabled: v.firewall_enabled, ips: v.addresses, nodes: v.nodes };
}
