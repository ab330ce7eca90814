/**
 * Types for the fwrule v4 language.
 *
 * Two shapes:
 * - `ParsedRule` is faithful to sdc-fwrule's jison output: targets in the
 *   order written, duplicates kept, tag values as [name, value] pairs.
 * - `FwRule` is fwrule's normalised model (`FwRule.raw()`): per-side targets
 *   deduplicated and sorted, ports/types sorted, priority defaulted to 0.
 *   Canonical text is a function of `FwRule` alone.
 */

export type Action = 'allow' | 'block';
export type PortProtocol = 'tcp' | 'udp';
export type IcmpProtocol = 'icmp' | 'icmp6';
export type IpsecProtocol = 'ah' | 'esp';
export type ProtocolName = PortProtocol | IcmpProtocol | IpsecProtocol;

/** `any` and `all vms` (fwrule calls the latter `vmall`). */
export type Wildcard = 'any' | 'vmall';

/** A tag target: bare name (any value) or [name, value]. */
export type TagRef = string | readonly [name: string, value: string];

export type ParsedTarget =
  | readonly ['wildcard', Wildcard]
  | readonly ['ip', string]
  | readonly ['subnet', string]
  | readonly ['vm', string]
  | readonly ['tag', TagRef];

export type TargetKind = ParsedTarget[0];

export interface PortRange {
  start: number;
  end: number;
}

/** tcp/udp target: a port, an inclusive range, or 'all' (only ever alone). */
export type PortTarget = number | PortRange | 'all';

/** icmp/icmp6 target as fwrule's parser emits it: type, "type:code", or 'all'. */
export type ParsedIcmpTarget = number | string;

export type ParsedProtocol =
  | { name: PortProtocol; targets: PortTarget[] }
  | { name: IcmpProtocol; targets: ParsedIcmpTarget[] }
  | { name: IpsecProtocol; targets: ['all'] };

export interface ParsedRule {
  from: ParsedTarget[];
  to: ParsedTarget[];
  action: Action;
  protocol: ParsedProtocol;
  /** Present only when the text had a PRIORITY clause. */
  priority?: number;
}

/** ICMP type with optional code, or every type. */
export type IcmpType = { type: number; code?: number } | 'all';

export interface SideTargets {
  /** Sorted, deduplicated. At most one wildcard per side in practice. */
  wildcards: Wildcard[];
  ips: string[];
  subnets: string[];
  /** Sorted by name then value; a bare name subsumes name=value entries. */
  tags: TagRef[];
  vms: string[];
}

export type RuleProtocol =
  | { name: PortProtocol; ports: PortTarget[] }
  | { name: IcmpProtocol; types: IcmpType[] }
  | { name: IpsecProtocol };

/** fwrule's normalised rule model (the language part of `FwRule.raw()`). */
export interface FwRule {
  action: Action;
  from: SideTargets;
  to: SideTargets;
  protocol: RuleProtocol;
  /** 0..100, 0 when not written. */
  priority: number;
}

export interface ParseOptions {
  /** Highest language version accepted (1..4); 0/undefined means 4 (fwrule's CURR_VERSION). */
  maxVersion?: number;
  /** Reject subnets with host bits set ("bits set to right of mask"). FWAPI sets this. */
  enforceSubnetMask?: boolean;
}

export type Direction = 'from' | 'to';
