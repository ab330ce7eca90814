/**
 * fwrule's rule model (lib/rule.js FwRule): normalisation of the parsed form
 * and the whole-rule checks, in fwrule's order and wording.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { modelError } from './errors.js';
import { CURRENT_VERSION } from './parser.js';
import type {
  Direction, FwRule, IcmpType, ParsedIcmpTarget, ParsedRule, ParsedTarget, ParseOptions,
  PortTarget, RuleProtocol, SideTargets, TagRef, Wildcard,
} from './types.js';

export const MAX_TARGETS_PER_SIDE = 24;
/** Protocol targets (ports or ICMP types) per rule: 24 from language v4, 8 before. */
export const MAX_PROTOCOL_TARGETS = 24;
export const MAX_PROTOCOL_TARGETS_V3 = 8;

/** fwrule processes 'to' before 'from' when checking limits. */
const CHECK_ORDER: readonly Direction[] = ['to', 'from'];

function portStart(p: PortTarget): number {
  return typeof p === 'object' ? p.start : Number(p);
}

/** fwrule sorts ports numerically by start (stable; not deduplicated). */
function sortPorts(ports: readonly PortTarget[]): PortTarget[] {
  return [...ports].sort((a, b) => portStart(a) - portStart(b));
}

/**
 * fwrule's order for ICMP type lists (lib/rule.js icmpTypeSort, fwrule 2.1.x): the
 * targets ("t" or "t:c") go through Array.prototype.sort with keys (type << 8) + code,
 * but the comparator looks at the FIRST operand to decide whether either operand's code
 * counts. Spelled out, compare(a, b) is:
 *   a plain            -> a.type - b.type (b's code ignored)
 *   a coded, b coded   -> (a.type, a.code) - (b.type, b.code)
 *   a coded, b plain   -> fwrule computes NaN, which sort takes as "equal"
 * That is no consistent order, so the result depends on the sort algorithm; fwrule 2.1.1
 * on Node >= 11 (V8's TimSort, the engine rhumb runs on) gives what the same comparator
 * gives here: a list of plain types only, or of coded types only, comes out sorted by
 * (type, code); in a mixed list a coded type can stay ahead of a smaller plain one
 * ("TYPE 250 AND TYPE 225 CODE 239" is kept as is). Duplicates are kept, and 'all'
 * stands alone.
 */
function fwruleIcmpCompare(a: IcmpKey, b: IcmpKey): number {
  if (a.code === undefined) return (a.type - b.type) * 256;
  if (b.code === undefined) return 0;
  return (a.type - b.type) * 256 + (a.code - b.code);
}

interface IcmpKey {
  type: number;
  code?: number;
  text: string;
}

function sortIcmpTypes(targets: readonly ParsedIcmpTarget[]): string[] {
  return targets
    .map((t): IcmpKey => {
      const [type, code] = String(t).split(':');
      return { type: Number(type), ...(code === undefined ? {} : { code: Number(code) }), text: String(t) };
    })
    .sort(fwruleIcmpCompare)
    .map((k) => k.text);
}

function toIcmpType(text: string): IcmpType {
  if (text === 'all') return 'all';
  const [type, code] = text.split(':');
  return code === undefined ? { type: Number(type) } : { type: Number(type), code: Number(code) };
}

/** Per-name tag accumulator: a bare name subsumes every name=value. */
class TagSet {
  private readonly byName = new Map<string, { all: boolean; values: Set<string> }>();

  add(ref: TagRef): void {
    const name = typeof ref === 'string' ? ref : ref[0];
    let entry = this.byName.get(name);
    if (entry === undefined) {
      entry = { all: false, values: new Set() };
      this.byName.set(name, entry);
    }
    if (typeof ref === 'string') entry.all = true;
    else entry.values.add(ref[1]);
  }

  list(): TagRef[] {
    const out: TagRef[] = [];
    for (const name of [...this.byName.keys()].sort()) {
      const entry = this.byName.get(name)!;
      if (entry.all) out.push(name);
      else for (const value of [...entry.values].sort()) out.push([name, value]);
    }
    return out;
  }
}

function buildSide(targets: readonly ParsedTarget[]): SideTargets {
  const wildcards = new Set<Wildcard>();
  const ips = new Set<string>();
  const subnets = new Set<string>();
  const vms = new Set<string>();
  const tags = new TagSet();
  for (const target of targets) {
    switch (target[0]) {
      case 'wildcard': wildcards.add(target[1]); break;
      case 'ip': ips.add(target[1]); break;
      case 'subnet': subnets.add(target[1]); break;
      case 'vm': vms.add(target[1]); break;
      case 'tag': tags.add(target[1]); break;
    }
  }
  return {
    wildcards: [...wildcards].sort(),
    ips: [...ips].sort(),
    subnets: [...subnets].sort(),
    tags: tags.list(),
    vms: [...vms].sort(),
  };
}

function buildProtocol(parsed: ParsedRule): RuleProtocol {
  const p = parsed.protocol;
  switch (p.name) {
    case 'tcp':
    case 'udp':
      return { name: p.name, ports: sortPorts(p.targets) };
    case 'icmp':
    case 'icmp6':
      return { name: p.name, types: sortIcmpTypes(p.targets).map(toIcmpType) };
    default:
      return { name: p.name };
  }
}

/**
 * Turn fwrule's parsed form into the normalised model, running FwRule's
 * checks in its order: protocol-target limit, targets per side (to, then
 * from; counted before deduplication), ICMP address family, touches VMs.
 */
export function buildRule(parsed: ParsedRule, opts: ParseOptions = {}): FwRule {
  const maxVersion = opts.maxVersion || CURRENT_VERSION;
  const maxProtoTargets = maxVersion >= 4 ? MAX_PROTOCOL_TARGETS : MAX_PROTOCOL_TARGETS_V3;
  const isIcmp = parsed.protocol.name === 'icmp' || parsed.protocol.name === 'icmp6';
  if (parsed.protocol.targets.length > maxProtoTargets) {
    throw modelError(`maximum of ${maxProtoTargets} ${isIcmp ? 'types' : 'ports'} allowed`);
  }
  for (const dir of CHECK_ORDER) {
    if (parsed[dir].length > MAX_TARGETS_PER_SIDE) {
      throw modelError(`maximum of ${MAX_TARGETS_PER_SIDE} targets allowed per side`);
    }
  }
  const rule: FwRule = {
    action: parsed.action,
    from: buildSide(parsed.from),
    to: buildSide(parsed.to),
    protocol: buildProtocol(parsed),
    priority: parsed.priority ?? 0,
  };
  const ips = [...rule.from.ips, ...rule.to.ips];
  const subnetAddrs = [...rule.from.subnets, ...rule.to.subnets].map((s) => s.split('/')[0]);
  if (rule.protocol.name === 'icmp') {
    if (ips.some((ip) => !isIPv4(ip))) {
      throw modelError('rule affects ICMPv4 but contains a non-IPv4 address');
    }
    if (subnetAddrs.some((a) => !isIPv4(a))) {
      throw modelError('rule affects ICMPv4 but contains a non-IPv4 subnet');
    }
  } else if (rule.protocol.name === 'icmp6') {
    if (ips.some((ip) => !isIPv6(ip))) {
      throw modelError('rule affects ICMPv6 but contains a non-IPv6 address');
    }
    if (subnetAddrs.some((a) => !isIPv6(a))) {
      throw modelError('rule affects ICMPv6 but contains a non-IPv6 subnet');
    }
  }
  if (!touchesInstances(rule.from) && !touchesInstances(rule.to)) {
    throw modelError('rule does not affect VMs');
  }
  return rule;
}

// --- Helpers for the rules API and the compiler ---------------------------

/** Which instances a side selects (before owner scoping). */
export interface InstanceSelector {
  allVMs: boolean;
  vms: string[];
  tags: TagRef[];
}

/** Literal addresses a side names (the "other side" of a compiled rule). */
export interface AddressSelector {
  any: boolean;
  ips: string[];
  subnets: string[];
}

export function touchesInstances(side: SideTargets): boolean {
  return side.wildcards.includes('vmall') || side.vms.length > 0 || side.tags.length > 0;
}

export function instancesOnSide(side: SideTargets): InstanceSelector {
  return { allVMs: side.wildcards.includes('vmall'), vms: [...side.vms], tags: [...side.tags] };
}

export function addressesOnSide(side: SideTargets): AddressSelector {
  return { any: side.wildcards.includes('any'), ips: [...side.ips], subnets: [...side.subnets] };
}

/** Every instance a rule selects on either side (what GET /rules/:uuid/vms lists). */
export function instancesTouched(rule: FwRule): InstanceSelector {
  const tags = new TagSet();
  for (const t of [...rule.from.tags, ...rule.to.tags]) tags.add(t);
  return {
    allVMs: rule.from.wildcards.includes('vmall') || rule.to.wildcards.includes('vmall'),
    vms: [...new Set([...rule.from.vms, ...rule.to.vms])].sort(),
    tags: tags.list(),
  };
}

export type InstanceTags = Readonly<Record<string, string | number | boolean>>;

/**
 * fwadm's tag lookup: a bare name matches any value; a value matches the
 * instance's tag compared as a string (so tag 1 / true match "1" / "true").
 */
export function tagMatches(ref: TagRef, tags: InstanceTags): boolean {
  const name = typeof ref === 'string' ? ref : ref[0];
  if (!Object.prototype.hasOwnProperty.call(tags, name)) return false;
  return typeof ref === 'string' || String(tags[name]) === ref[1];
}

export function selectorMatches(
  selector: InstanceSelector,
  instance: { uuid: string; tags?: InstanceTags },
): boolean {
  if (selector.allVMs || selector.vms.includes(instance.uuid)) return true;
  const tags = instance.tags ?? {};
  return selector.tags.some((ref) => tagMatches(ref, tags));
}

/** Does this side select the instance? (Owner scoping is the caller's job.) */
export function sideMatchesInstance(
  side: SideTargets,
  instance: { uuid: string; tags?: InstanceTags },
): boolean {
  return selectorMatches(instancesOnSide(side), instance);
}
