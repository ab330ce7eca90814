/**
 * Shapes shared by the firewall's API, compiler, feed and agent.
 */
import type { Action, FwRule, IcmpType, InstanceTags, ProtocolName } from './lang/index.js';

/** A rule as FWAPI stores and serializes it (`rule` is always the canonical text). */
export interface StoredRule {
  uuid: string;
  rule: string;
  enabled: boolean;
  log: boolean;
  /** Present (true) only for global rules; exactly one of global / owner_uuid. */
  global?: true;
  owner_uuid?: string;
  description?: string;
  created_by?: string;
  version: string;
}

/** A stored rule with its parsed model (what the compiler works from). */
export interface PolicyRule {
  stored: StoredRule;
  model: FwRule;
}

/** The registry's record of an instance (what rules select besides its uuid). */
export interface InstanceRecord {
  uuid: string;
  owner_uuid?: string;
  tags: Record<string, string | number | boolean>;
  firewall_enabled: boolean;
}

/** An instance as the compiler sees it: registry data plus what its NICs say. */
export interface InstanceView {
  uuid: string;
  owner_uuid?: string;
  tags: InstanceTags;
  firewall_enabled: boolean;
  /** Canonical IPv4/IPv6 addresses of its NICs, sorted. */
  addresses: string[];
  /** Compute nodes hosting its NICs (cn_uuid), sorted. */
  nodes: string[];
}

export type Direction = 'in' | 'out';

/** Address list of one family for one side of one rule, shared by every instance it applies to. */
export interface AddressSet {
  name: string;
  family: 'ipv4' | 'ipv6';
  /** Merged, sorted elements: an address, a CIDR block, or an inclusive range "a-b". */
  elements: string[];
}

/** The other side of a compiled rule as addresses. */
export interface Peer {
  /** `any`: no address match at all. */
  any: boolean;
  /** Set names (absent when that family has no addresses). */
  v4?: string;
  v6?: string;
}

/** One compiled rule line-group in one direction of one instance's policy. */
export interface PolicyEntry {
  direction: Direction;
  action: Action;
  priority: number;
  rule_uuid: string;
  /** Canonical rule text, for explanations and comments. */
  rule: string;
  log: boolean;
  protocol: ProtocolName;
  /** tcp/udp: merged inclusive spans, or 'all'. */
  ports?: Array<[number, number]> | 'all';
  /** icmp/icmp6 types. */
  types?: IcmpType[];
  peer: Peer;
  /**
   * True when the default policy already does what this entry says (priority 0
   * inbound BLOCK, priority 0 outbound ALLOW): kept for explanations, not emitted.
   */
  noop: boolean;
}

/** What one instance's nftables table enforces, before rendering to text. */
export interface CompiledPolicy {
  instance: string;
  table: string;
  sets: AddressSet[];
  /** First match wins, in this order; then the default (inbound drop). */
  inbound: PolicyEntry[];
  /** First match wins, in this order; then the default (outbound accept). */
  outbound: PolicyEntry[];
}
