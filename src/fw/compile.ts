/**
 * The firewall compiler (pure): rules × instances → one CompiledPolicy per instance,
 * rendered to nftables text by ./nft.ts.
 *
 * Semantics (spec "Compiled semantics", fwadm's prepareIPFdata/compareRules):
 * - a rule applies inbound to the instances its TO side selects and outbound to those its
 *   FROM side selects; the other side becomes addresses (matched instances' addresses,
 *   literal ips/subnets, or any);
 * - owner-scoped rules select only their owner's instances, on both sides;
 * - disabled rules produce nothing; an instance with firewall_enabled false gets no
 *   table, but its addresses still count on the other side of others' rules;
 * - entries are ordered priority descending, then the action that departs from the
 *   default first (inbound ALLOW before BLOCK, outbound BLOCK before ALLOW), then by rule
 *   uuid; the first match decides.
 *
 * PolicyWorld keeps the current rules and instances with indexes and per-rule caches so a
 * change recompiles exactly the affected instances (`upsert*` return them).
 */
import { mergeAddresses } from './addr.js';
import { tagMatches, type FwRule, type SideTargets } from './lang/index.js';
import type {
  AddressSet, CompiledPolicy, Direction, InstanceView, Peer, PolicyEntry, PolicyRule,
} from './types.js';

type Side = 'from' | 'to';
const SIDES: readonly Side[] = ['from', 'to'];
const other = (s: Side): Side => (s === 'from' ? 'to' : 'from');

/**
 * Hex of a uuid without dashes (set and table names): the only instance or rule data that
 * reaches nft text besides numbers and canonical addresses, so anything but a UUID's 32
 * hex digits is refused here, whoever stored it.
 */
export function uuidHex(uuid: string): string {
  const hex = uuid.replace(/-/g, '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(hex)) throw new TypeError(`not a UUID, refused in nft names: ${JSON.stringify(uuid).slice(0, 80)}`);
  return hex;
}

/** The nftables table (family inet) holding an instance's policy. */
export function tableName(instanceUuid: string): string {
  return `rhumb_fw_${uuidHex(instanceUuid)}`;
}

/** The set holding one family of one side of one rule (same name in every instance). */
export function setName(ruleUuid: string, side: Side, family: 'v4' | 'v6'): string {
  return `r${uuidHex(ruleUuid)}_${side}_${family}`;
}

/** Does an instance fall under this owner's (or a global) rule's scope? */
export function inScope(rule: PolicyRule, inst: { owner_uuid?: string }): boolean {
  const owner = rule.stored.owner_uuid;
  return owner === undefined || inst.owner_uuid === owner;
}

function sideSelects(side: SideTargets, inst: InstanceView): boolean {
  if (side.wildcards.includes('vmall') || side.vms.includes(inst.uuid)) return true;
  return side.tags.some((ref) => tagMatches(ref, inst.tags));
}

/** Does this side of the rule select the instance (owner scoping included)? */
export function ruleSelects(rule: PolicyRule, side: Side, inst: InstanceView): boolean {
  return inScope(rule, inst) && sideSelects(rule.model[side], inst);
}

interface SideCache {
  /** Selected instance uuids (sorted). */
  matches?: string[];
  /** Addresses of this side as merged set elements. */
  addrs?: { v4: string[]; v6: string[] };
}

function mergeSpans(spans: Array<[number, number]>): Array<[number, number]> {
  const sorted = [...spans].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const out: Array<[number, number]> = [];
  for (const [s, e] of sorted) {
    const last = out[out.length - 1];
    if (last && s <= last[1] + 1) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

function protocolFields(model: FwRule): Pick<PolicyEntry, 'protocol' | 'ports' | 'types'> {
  const p = model.protocol;
  if (p.name === 'tcp' || p.name === 'udp') {
    if (p.ports.includes('all')) return { protocol: p.name, ports: 'all' };
    const spans = p.ports.map((x): [number, number] => (typeof x === 'object' ? [x.start, x.end] : [Number(x), Number(x)]));
    return { protocol: p.name, ports: mergeSpans(spans) };
  }
  if (p.name === 'icmp' || p.name === 'icmp6') {
    return { protocol: p.name, types: p.types.includes('all') ? ['all'] : [...p.types] };
  }
  return { protocol: p.name };
}

function actionRank(dir: Direction, action: string): number {
  // The action that departs from the default wins a tie at equal priority.
  return dir === 'in' ? (action === 'allow' ? 0 : 1) : action === 'block' ? 0 : 1;
}

export function compareEntries(a: PolicyEntry, b: PolicyEntry): number {
  return (
    b.priority - a.priority ||
    actionRank(a.direction, a.action) - actionRank(b.direction, b.action) ||
    (a.rule_uuid < b.rule_uuid ? -1 : a.rule_uuid > b.rule_uuid ? 1 : 0)
  );
}

export class PolicyWorld {
  private readonly rules = new Map<string, PolicyRule>();
  private readonly instances = new Map<string, InstanceView>();
  private readonly byOwner = new Map<string, Set<string>>();
  private readonly byTag = new Map<string, Set<string>>();
  /** name NUL value (value as a string, as tag matching compares) → instances. */
  private readonly byTagValue = new Map<string, Set<string>>();
  private readonly cache = new Map<string, Record<Side, SideCache>>();
  /** Addresses of instances → instance uuids (for explain: who owns an address). */
  private readonly byAddress = new Map<string, Set<string>>();

  getRule(uuid: string): PolicyRule | undefined {
    return this.rules.get(uuid);
  }

  getInstance(uuid: string): InstanceView | undefined {
    return this.instances.get(uuid);
  }

  allRules(): PolicyRule[] {
    return [...this.rules.values()].sort((a, b) => (a.stored.uuid < b.stored.uuid ? -1 : 1));
  }

  instanceUuids(): string[] {
    return [...this.instances.keys()].sort();
  }

  instancesWithAddress(address: string): string[] {
    return [...(this.byAddress.get(address) ?? [])].sort();
  }

  // ---- changes (each returns the instances whose policy may have changed) ----

  upsertRule(rule: PolicyRule): Set<string> {
    const affected = new Set<string>();
    const old = this.rules.get(rule.stored.uuid);
    if (old) for (const s of SIDES) for (const u of this.matches(old, s)) affected.add(u);
    this.rules.set(rule.stored.uuid, rule);
    this.cache.delete(rule.stored.uuid);
    for (const s of SIDES) for (const u of this.matches(rule, s)) affected.add(u);
    return affected;
  }

  deleteRule(uuid: string): Set<string> {
    const affected = new Set<string>();
    const old = this.rules.get(uuid);
    if (!old) return affected;
    for (const s of SIDES) for (const u of this.matches(old, s)) affected.add(u);
    this.rules.delete(uuid);
    this.cache.delete(uuid);
    return affected;
  }

  upsertInstance(view: InstanceView): Set<string> {
    return this.changeInstance(view.uuid, view);
  }

  deleteInstance(uuid: string): Set<string> {
    return this.changeInstance(uuid, undefined);
  }

  private changeInstance(uuid: string, next: InstanceView | undefined): Set<string> {
    const prev = this.instances.get(uuid);
    const affected = new Set<string>([uuid]);
    // Rules that selected the instance before the change: the other side's instances
    // hold its old addresses; invalidate what depended on it.
    const touched: Array<[PolicyRule, Side]> = [];
    for (const rule of this.rules.values()) {
      for (const s of SIDES) {
        if ((prev && ruleSelects(rule, s, prev)) || (next && ruleSelects(rule, s, next))) touched.push([rule, s]);
      }
    }
    for (const [rule, s] of touched) for (const u of this.matches(rule, other(s))) affected.add(u);
    if (prev) this.unindex(prev);
    if (next) {
      this.instances.set(uuid, next);
      this.index(next);
    } else this.instances.delete(uuid);
    for (const [rule, s] of touched) {
      const c = this.cache.get(rule.stored.uuid);
      if (c) c[s] = {};
    }
    for (const [rule, s] of touched) for (const u of this.matches(rule, other(s))) affected.add(u);
    return affected;
  }

  private index(v: InstanceView): void {
    add(this.byOwner, v.owner_uuid ?? '', v.uuid);
    for (const [name, value] of Object.entries(v.tags)) {
      add(this.byTag, name, v.uuid);
      add(this.byTagValue, `${name}\0${String(value)}`, v.uuid);
    }
    for (const a of v.addresses) add(this.byAddress, a, v.uuid);
  }

  private unindex(v: InstanceView): void {
    remove(this.byOwner, v.owner_uuid ?? '', v.uuid);
    for (const [name, value] of Object.entries(v.tags)) {
      remove(this.byTag, name, v.uuid);
      remove(this.byTagValue, `${name}\0${String(value)}`, v.uuid);
    }
    for (const a of v.addresses) remove(this.byAddress, a, v.uuid);
  }

  private sideCache(rule: PolicyRule, s: Side): SideCache {
    let c = this.cache.get(rule.stored.uuid);
    if (!c) {
      c = { from: {}, to: {} };
      this.cache.set(rule.stored.uuid, c);
    }
    return c[s];
  }

  /** Instances a side of a rule selects (owner-scoped), sorted; cached. */
  matches(rule: PolicyRule, s: Side): string[] {
    const c = this.sideCache(rule, s);
    if (c.matches) return c.matches;
    const side = rule.model[s];
    const candidates = new Set<string>();
    if (side.wildcards.includes('vmall')) {
      const owner = rule.stored.owner_uuid;
      const pool = owner === undefined ? this.instances.keys() : (this.byOwner.get(owner) ?? new Set<string>()).values();
      for (const u of pool) candidates.add(u);
    } else {
      for (const vm of side.vms) if (this.instances.has(vm)) candidates.add(vm);
      for (const ref of side.tags) {
        const index = typeof ref === 'string' ? this.byTag.get(ref) : this.byTagValue.get(`${ref[0]}\0${ref[1]}`);
        for (const u of index ?? []) candidates.add(u);
      }
    }
    const out: string[] = [];
    for (const u of candidates) {
      const inst = this.instances.get(u)!;
      if (ruleSelects(rule, s, inst)) out.push(u);
    }
    c.matches = out.sort();
    return c.matches;
  }

  /** A side as addresses: its literal ips/subnets plus every selected instance's addresses. */
  addresses(rule: PolicyRule, s: Side): { v4: string[]; v6: string[] } {
    const c = this.sideCache(rule, s);
    if (c.addrs) return c.addrs;
    const side = rule.model[s];
    const texts: string[] = [...side.ips, ...side.subnets];
    for (const u of this.matches(rule, s)) texts.push(...this.instances.get(u)!.addresses);
    const merged = mergeAddresses(texts);
    // icmp reaches only IPv4 peers and icmp6 only IPv6 ones.
    if (rule.model.protocol.name === 'icmp') merged.v6 = [];
    if (rule.model.protocol.name === 'icmp6') merged.v4 = [];
    c.addrs = merged;
    return merged;
  }

  // ---- compilation ----

  /** Compiled policies for these instances (null: no table — unknown or firewall off). */
  compileMany(uuids: Iterable<string>): Map<string, CompiledPolicy | null> {
    const wanted = new Set(uuids);
    const hits = new Map<string, Array<[PolicyRule, Side]>>();
    for (const u of wanted) hits.set(u, []);
    for (const rule of this.allRules()) {
      if (!rule.stored.enabled) continue;
      for (const s of SIDES) {
        const list = this.matches(rule, s);
        if (list.length <= wanted.size) {
          for (const u of list) hits.get(u)?.push([rule, s]);
        } else {
          for (const u of wanted) {
            const inst = this.instances.get(u);
            if (inst && ruleSelects(rule, s, inst)) hits.get(u)!.push([rule, s]);
          }
        }
      }
    }
    const out = new Map<string, CompiledPolicy | null>();
    for (const u of [...wanted].sort()) {
      const inst = this.instances.get(u);
      out.set(u, inst && inst.firewall_enabled ? this.build(inst, hits.get(u)!) : null);
    }
    return out;
  }

  compile(uuid: string): CompiledPolicy | null {
    return this.compileMany([uuid]).get(uuid) ?? null;
  }

  compileAll(): Map<string, CompiledPolicy | null> {
    return this.compileMany(this.instances.keys());
  }

  private build(inst: InstanceView, hits: Array<[PolicyRule, Side]>): CompiledPolicy {
    const sets = new Map<string, AddressSet>();
    const inbound: PolicyEntry[] = [];
    const outbound: PolicyEntry[] = [];
    for (const [rule, s] of hits) {
      // Selected on TO: inbound from the FROM side's addresses; on FROM: outbound to TO's.
      const direction: Direction = s === 'to' ? 'in' : 'out';
      const peerSide = other(s);
      const peerTargets = rule.model[peerSide];
      const peer: Peer = { any: peerTargets.wildcards.includes('any') };
      if (!peer.any) {
        const addrs = this.addresses(rule, peerSide);
        for (const fam of ['v4', 'v6'] as const) {
          if (addrs[fam].length === 0) continue;
          const name = setName(rule.stored.uuid, peerSide, fam);
          peer[fam] = name;
          sets.set(name, { name, family: fam === 'v4' ? 'ipv4' : 'ipv6', elements: addrs[fam] });
        }
      }
      const entry: PolicyEntry = {
        direction,
        action: rule.model.action,
        priority: rule.model.priority,
        rule_uuid: rule.stored.uuid,
        rule: rule.stored.rule,
        log: rule.stored.log,
        ...protocolFields(rule.model),
        peer,
        noop: rule.model.priority === 0 && (direction === 'in' ? rule.model.action === 'block' : rule.model.action === 'allow'),
      };
      (direction === 'in' ? inbound : outbound).push(entry);
    }
    return {
      instance: inst.uuid,
      table: tableName(inst.uuid),
      sets: [...sets.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
      inbound: inbound.sort(compareEntries),
      outbound: outbound.sort(compareEntries),
    };
  }
}

function add(map: Map<string, Set<string>>, key: string, value: string): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(value);
}

function remove(map: Map<string, Set<string>>, key: string, value: string): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(value);
  if (set.size === 0) map.delete(key);
}
