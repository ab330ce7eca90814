/**
 * `fw explain` (pure): which compiled entry decides a packet, evaluated over
 * CompiledPolicy exactly as nftables walks the table — established flows aside, the first
 * matching entry in order wins, else the chain's default (inbound drop, outbound accept).
 */
import { elementContains, familyOf } from './addr.js';
import type { ProtocolName } from './lang/index.js';
import { type IngressEntry, type IngressMatch, describeIngress } from './ingress.js';
import type { CompiledPolicy, PolicyEntry } from './types.js';

export interface Probe {
  protocol: ProtocolName;
  /** tcp/udp destination port. */
  port?: number;
  /** icmp/icmp6 type and code. */
  type?: number;
  code?: number;
}

export interface Verdict {
  action: 'allow' | 'block';
  /** The deciding entry, or undefined when the default policy decides. */
  entry?: PolicyEntry;
  /** Whether the firewall applies at all (false: instance has no table — firewall off). */
  enforced: boolean;
  reason: string;
}

function protocolMatches(e: PolicyEntry, p: Probe): boolean {
  if (e.protocol !== p.protocol) return false;
  if (e.protocol === 'tcp' || e.protocol === 'udp') {
    if (e.ports === 'all' || e.ports === undefined) return true;
    if (p.port === undefined) return false;
    return e.ports.some(([s, end]) => p.port! >= s && p.port! <= end);
  }
  if (e.protocol === 'icmp' || e.protocol === 'icmp6') {
    const types = e.types ?? ['all'];
    if (types.includes('all')) return true;
    if (p.type === undefined) return false;
    return types.some((t) => t !== 'all' && t.type === p.type && (t.code === undefined || t.code === p.code));
  }
  return true;
}

function peerMatches(policy: CompiledPolicy, e: PolicyEntry, address: string): boolean {
  if (e.peer.any) return true;
  const name = familyOf(address) === 'ipv4' ? e.peer.v4 : e.peer.v6;
  if (!name) return false;
  const set = policy.sets.find((s) => s.name === name);
  return !!set && set.elements.some((el) => elementContains(el, address));
}

function describe(e: PolicyEntry): string {
  const verb = e.action === 'allow' ? 'allows' : 'blocks';
  const prio = e.priority > 0 ? ` at priority ${e.priority}` : '';
  return `rule ${e.rule_uuid} ${verb} it${prio}: ${e.rule}`;
}

/**
 * The verdict of one direction of an instance's policy for a packet whose other end is
 * `peer` (the source for inbound, the destination for outbound).
 */
export function evaluate(policy: CompiledPolicy | null, direction: 'in' | 'out', peer: string, probe: Probe): Verdict {
  if (!policy) {
    return { action: 'allow', enforced: false, reason: 'the instance has no firewall (firewall_enabled is false or it is unknown)' };
  }
  const entries = direction === 'in' ? policy.inbound : policy.outbound;
  for (const e of entries) {
    if (!protocolMatches(e, probe) || !peerMatches(policy, e, peer)) continue;
    const others = entries.filter((o) => o !== e && protocolMatches(o, probe) && peerMatches(policy, o, peer));
    const beaten = others.filter((o) => o.action !== e.action);
    let why = describe(e);
    if (beaten.length > 0) {
      const o = beaten[0]!;
      why +=
        o.priority < e.priority
          ? ` (it outranks rule ${o.rule_uuid}, priority ${o.priority})`
          : ` (at equal priority ${e.direction === 'in' ? 'inbound ALLOW beats BLOCK' : 'outbound BLOCK beats ALLOW'}; rule ${o.rule_uuid} loses)`;
    }
    return { action: e.action, entry: e, enforced: true, reason: why };
  }
  return direction === 'in'
    ? { action: 'block', enforced: true, reason: 'no rule allows it: inbound traffic is blocked by default' }
    : { action: 'allow', enforced: true, reason: 'no rule blocks it: outbound traffic is allowed by default' };
}

export interface Explanation {
  allowed: boolean;
  from: string;
  to: string;
  /** The source instance's outbound verdict, when the source address is an instance's. */
  outbound?: Verdict & { instance: string };
  inbound: Verdict & { instance: string };
  /** When the packet arrived on a node's published port: where that port leads. */
  ingress?: IngressEntry & { node: string; description: string };
  summary: string;
}

function describeProbe(probe: Probe): string {
  return `${probe.protocol}${probe.port !== undefined ? ` port ${probe.port}` : ''}${probe.type !== undefined ? ` type ${probe.type}${probe.code !== undefined ? ` code ${probe.code}` : ''}` : ''}`;
}

/**
 * A packet from `from` (an address) to instance `to` on `toAddress`: the source
 * instance's outbound policy (if the address is one of its own) and then the
 * destination's inbound policy must both let it through.
 */
export function explain(
  input: { from: string; to: string; source?: { instance: string; policy: CompiledPolicy | null }; destination: CompiledPolicy | null; toAddress: string },
  probe: Probe,
): Explanation {
  const inbound = { ...evaluate(input.destination, 'in', input.from, probe), instance: input.to };
  const outbound = input.source
    ? { ...evaluate(input.source.policy, 'out', input.toAddress, probe), instance: input.source.instance }
    : undefined;
  const allowed = inbound.action === 'allow' && (!outbound || outbound.action === 'allow');
  const what = describeProbe(probe);
  let summary: string;
  if (outbound && outbound.action === 'block') summary = `BLOCKED leaving ${outbound.instance}: ${outbound.reason}`;
  else summary = `${inbound.action === 'allow' ? 'ALLOWED' : 'BLOCKED'} into ${input.to}: ${inbound.reason}`;
  return { allowed, from: input.from, to: input.to, ...(outbound ? { outbound } : {}), inbound, summary: `${what} from ${input.from}: ${summary}` };
}

/**
 * A packet from `from` (outside) to a node's published port (`probe.port` is the host
 * port): DNATed to the instance's port, it must pass that instance's inbound policy, for
 * the source the instance sees (the node's masquerading address for Docker -p, else
 * `from` itself), unless the node says its firewall does not see that path. No
 * instance's outbound policy applies.
 */
export function explainIngress(input: { from: string; match: IngressMatch; destination: CompiledPolicy | null }, probe: Probe): Explanation {
  const e = input.match.entry;
  const seenFrom = e.seen_from ?? input.from;
  const dnated: Probe = { ...probe, port: e.port };
  const decided: Verdict = e.unfiltered
    ? { action: 'allow' as const, enforced: false, reason: `the instance's firewall does not see it: ${e.unfiltered}` }
    : evaluate(input.destination, 'in', seenFrom, dnated);
  const inbound = { ...decided, instance: e.instance };
  const arrives = `${describeProbe(probe)} on ${e.address} from ${input.from}`;
  const verdict = `${inbound.action === 'allow' ? 'ALLOWED' : 'BLOCKED'} into ${e.instance} on ${describeProbe(dnated)}: ${inbound.reason}`;
  return {
    allowed: inbound.action === 'allow',
    from: input.from,
    to: e.instance,
    inbound,
    ingress: { ...e, node: input.match.node, description: describeIngress(input.match) },
    summary: `${arrives}: DNAT to ${e.ip}:${e.port}, ${verdict}`,
  };
}
