/**
 * An edge plan (./plan.ts) for the kernel backend: the node's nftables table and the
 * addresses, routes and rules it holds, as text and data. Pure; ./edge.ts applies them.
 *
 * Per vnet: the gateway addresses on the vnet's bridge (noprefixroute: owners' subnets
 * may overlap, so nothing of theirs goes into the main table); the vnet's subnets routed
 * to the bridge in the vnet's own table; `fwmark <mark> lookup <table>`. Packets the bridge
 * receives to route are marked with the vnet's mark (and their connection with it, so
 * replies from outside find their way back, and net.ipv4.fwmark_reflect makes the node's
 * own answers follow it too). nftables (table ip rhumb_edge):
 * - prerouting: mark what the vnets' bridges hand to IP; give replies from outside the
 *   mark of their connection;
 * - input: from a vnet, only pings to its gateways (and answers to the node) — nothing of
 *   the node's own services;
 * - forward: a vnet's packets leave only to the external side from a NAT subnet, or
 *   between subnets a router connects; replies follow their connection;
 * - postrouting: SNAT to the external address.
 * A connection belongs to the vnet that opened it: its mark is set by its first packet
 * (from a port, or by a published port's DNAT) and not by the replies.
 *
 * Hairpin (VnetEdge.hairpin, ../../edge/plan.ts hairpinSubnets): an instance of a NAT
 * subnet connecting to the external address on a published port is DNAT'ed to the target
 * as a connection from outside would be, and SNAT'ed to the external address (so the
 * target, even on the client's own network, answers through the gateway). Its packets are
 * routed by the target's vnet (marked by the connection's original destination), its
 * replies by the client's (the connection's mark); a hairpinned connection is told from an
 * outside one by its conntrack zone (set only for what comes from a port). No ICMP
 * redirects leave the ports: a hairpin's client and target may share a network, and a
 * redirect would send one straight to the other, around the NAT. On the kernel backend a
 * hairpin into the client's own bridge is bridged, not routed (br_netfilter, after the DNAT;
 * the SNAT still applies in its postrouting), and the bridge keeps the frame on the
 * client's VLAN and off its ingress port: it reaches the target on the client's own
 * network, not on another network of the vnet, nor the client itself.
 */
import { cidrProblem, firstProblem, ifnameProblem, intProblem, ipProblem, ipv4Problem, ipv6Problem, macProblem } from '../plumbing/checks.js';
import { EDGE_BASE, EDGE_MARK_MASK, EDGE_RULE_PREF, EDGE_TAG_MASK, type EdgePlan, type VnetEdge, isV6, publishedProblem } from '../../edge/plan.js';
import { markHex as hex } from '../../net/marks.js';
import type { EdgeOp } from '../../dataplane/links.js';

export const EDGE_NFT_TABLE = 'rhumb_edge';

/**
 * Where a vnet's routed traffic meets the node: the device and the gateway MAC frames to
 * be routed are sent to. The kernel backend: the vnet's bridge (every VLAN); the userspace
 * backend: a TAP per (vnet, VLAN).
 */
export interface EdgePort {
  dev: string;
  mac: string;
}

export type PortOf = (vnet: number, vlan: number) => EdgePort;

/** The distinct ports a vnet's gateways and routes use. */
export function portsOf(v: VnetEdge, portOf: PortOf): EdgePort[] {
  const vlans = [...new Set([...v.gateways.map((g) => g.vlan), ...v.routes.map((r) => r.vlan)])].sort((a, b) => a - b);
  const byDev = new Map<string, EdgePort>();
  for (const vlan of vlans) {
    const p = portOf(v.vnet, vlan);
    if (!byDev.has(p.dev)) byDev.set(p.dev, p);
  }
  return [...byDev.values()];
}

function assertPlan(plan: EdgePlan, portOf: PortOf): void {
  const problems: Array<string | undefined> = [];
  if (plan.external) {
    problems.push(ifnameProblem(plan.external.iface), ipv4Problem('external address', plan.external.address));
    if (plan.external.address6 !== undefined) problems.push(ipv6Problem('external IPv6 address', plan.external.address6));
  }
  for (const v of plan.vnets) {
    problems.push(intProblem('conntrack zone', v.zone, 1, 65535));
    for (const p of portsOf(v, portOf)) problems.push(ifnameProblem(p.dev), macProblem(p.mac));
    for (const g of v.gateways) problems.push(ipProblem('gateway', g.address), cidrProblem('subnet', g.subnet));
    for (const r of v.routes) problems.push(cidrProblem('route', r.subnet), ipProblem('route source', r.src), r.mtu === undefined ? undefined : intProblem('route MTU', r.mtu, 68, 65535));
    for (const s of v.nat) problems.push(cidrProblem('NAT subnet', s));
    for (const [a, b] of v.routed) problems.push(cidrProblem('routed subnet', a), cidrProblem('routed subnet', b));
    problems.push(publishedProblem(v.published));
    for (const p of v.published) problems.push(ipProblem('published address', p.ip));
    if (!plan.external?.address6 && v.published.some((p) => isV6(p.ip))) problems.push('an IPv6 port is published, but the external side has no IPv6 address');
  }
  const problem = firstProblem(...problems);
  // Only plain values reach the nft text (it runs as root).
  if (problem) throw new TypeError(`edge: ${problem}`);
}

const set = (items: readonly string[]) => (items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`);

/** An nftables family of the edge: IPv4 (table ip) or IPv6 (table ip6), with its words. */
interface Family {
  table: 'ip' | 'ip6';
  v6: boolean;
  /** The external address NAT uses for this family (IPv6: only when the external side has one). */
  snat?: string | undefined;
}

function familyOf(plan: EdgePlan, v6: boolean): Family {
  return v6 ? { table: 'ip6', v6, snat: plan.external?.address6 } : { table: 'ip', v6, snat: plan.external?.address };
}

function vnetRules(v: VnetEdge, ports: EdgePort[], plan: EdgePlan, fam: Family): { raw: string[]; pre: string[]; input: string[]; forward: string[] } {
  const mine = (text: string) => isV6(text) === fam.v6;
  const gateways = v.gateways.filter((g) => mine(g.address));
  const nat = fam.snat ? v.nat.filter(mine) : [];
  const routed = v.routed.filter(([a]) => mine(a));
  const ip = fam.table;
  const mark = hex(v.mark);
  // The firewall's state bits may be set beside the vnet's mark (../../net/marks.ts).
  const marked = `meta mark & ${hex(EDGE_MARK_MASK)} == ${mark}`;
  // Before conntrack: the vnet's routed connections in its own zone (original direction).
  const raw = ports.map((p) => `iifname "${p.dev}" ether daddr ${p.mac} ct original zone set ${v.zone}`);
  // With br_netfilter the IP hooks also see bridged frames, with the bridge as their
  // device: only frames sent to the gateway MAC are the vnet's routed traffic.
  const pre = ports.map((p) => `iifname "${p.dev}" ether daddr ${p.mac} meta mark set ${mark} ct direction original ct mark set ${mark}`);
  const echo = fam.v6 ? 'icmpv6 type echo-request' : 'icmp type echo-request';
  const input = gateways.length > 0 ? [`${marked} ${ip} daddr ${set(gateways.map((g) => g.address))} ${echo} accept`] : [];
  // IPv6 needs neighbour discovery with the gateway (unicast solicitations and adverts reach it marked).
  if (fam.v6) input.push(`${marked} icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept`);
  const forward: string[] = [];
  if (plan.external && nat.length > 0) forward.push(`${marked} oifname "${plan.external.iface}" ${ip} saddr ${set(nat)} accept`);
  for (const [a, b] of routed) forward.push(`${marked} ${ip} saddr ${a} ${ip} daddr ${b} accept`);
  return { raw, pre, input, forward };
}

/** Whether the plan routes any IPv6 (then the node's edge has an ip6 table too). */
export function planHasIpv6(plan: EdgePlan): boolean {
  return plan.vnets.some((v) => v.gateways.some((g) => isV6(g.address)) || v.routes.some((r) => isV6(r.subnet)));
}

/**
 * A complete `nft -f` transaction replacing the edge tables (removing them when the plan is
 * empty): table ip rhumb_edge, and table ip6 rhumb_edge when the plan routes IPv6.
 */
export function renderEdgeNft(plan: EdgePlan, portOf: PortOf): string {
  assertPlan(plan, portOf);
  const v4 = renderFamilyTable(plan, portOf, familyOf(plan, false));
  const v6 = planHasIpv6(plan) ? renderFamilyTable(plan, portOf, familyOf(plan, true)) : [`table ip6 ${EDGE_NFT_TABLE}`, `delete table ip6 ${EDGE_NFT_TABLE}`];
  return [...v4, ...v6, ''].join('\n');
}

function renderFamilyTable(plan: EdgePlan, portOf: PortOf, fam: Family): string[] {
  const head = [`table ${fam.table} ${EDGE_NFT_TABLE}`, `delete table ${fam.table} ${EDGE_NFT_TABLE}`];
  if (plan.vnets.length === 0) return head;
  const ours = `meta mark & ${hex(EDGE_TAG_MASK)} == ${hex(EDGE_BASE)}`;
  const raw: string[] = [];
  const pre: string[] = [];
  const input: string[] = [];
  const forward: string[] = [];
  for (const v of plan.vnets) {
    const r = vnetRules(v, portsOf(v, portOf), plan, fam);
    raw.push(...r.raw);
    pre.push(...r.pre);
    input.push(...r.input);
    forward.push(...r.forward);
  }
  const ports = [...new Set(plan.vnets.flatMap((v) => portsOf(v, portOf).map((p) => p.dev)))].sort();
  const ext = plan.external;
  // Published ports: DNAT on the family's external address; the connection carries the vnet's mark
  // (its packets are routed by the vnet's table, its replies leave as the external address).
  const target = (p: { ip: string; port: number }) => (fam.v6 ? `[${p.ip}]:${p.port}` : `${p.ip}:${p.port}`);
  const dnat = ext && fam.snat
    ? plan.vnets.flatMap((v) =>
        v.published
          .filter((p) => isV6(p.ip) === fam.v6)
          .map((p) => `iifname "${ext.iface}" ${fam.table} daddr ${fam.snat} ${p.protocol} dport ${p.hostPort} meta mark set ${hex(v.mark)} ct mark set ${hex(v.mark)} dnat to ${target(p)}`),
      )
    : [];
  if (ext && fam.snat) pre.push(`iifname "${ext.iface}" ct mark & ${hex(EDGE_TAG_MASK)} == ${hex(EDGE_BASE)} meta mark set ct mark`);
  const hp = ext && fam.snat && dnat.length > 0 ? hairpinRules(plan, fam, fam.snat) : { pre: [], dstnat: [], chain: [], post: [] };
  pre.push(...hp.pre);
  dnat.push(...hp.dstnat);
  const chain = (name: string, hook: string, rules: string[]) => [`  chain ${name} {`, `    ${hook}`, ...rules.map((r) => `    ${r}`), '  }'];
  return [
    ...head,
    `table ${fam.table} ${EDGE_NFT_TABLE} {`,
    ...chain('raw', 'type filter hook prerouting priority raw; policy accept;', raw),
    ...chain('prerouting', 'type filter hook prerouting priority mangle; policy accept;', pre),
    ...chain('input', 'type filter hook input priority filter; policy accept;', [...input, `${ours} ct state established,related accept`, `${ours} drop`]),
    ...chain('forward', 'type filter hook forward priority filter; policy accept;', [
      `${ours} ct state established,related accept`,
      ...forward,
      ...(dnat.length > 0 ? [`${ours} ct status dnat accept`] : []),
      `${ours} drop`,
    ]),
    ...(hp.chain.length > 0 ? [`  chain hairpin {`, ...hp.chain.map((r) => `    ${r}`), '  }'] : []),
    ...(dnat.length > 0 ? chain('dstnat', 'type nat hook prerouting priority dstnat; policy accept;', dnat) : []),
    // A redirect would send an instance around the router (straight to another network's port),
    // or a hairpin's client straight to its target.
    ...chain('output', 'type filter hook output priority filter; policy accept;', [`oifname ${set(ports.map((p) => `"${p}"`))} ${fam.v6 ? 'icmpv6 type nd-redirect' : 'icmp type redirect'} drop`]),
    ...chain('postrouting', 'type nat hook postrouting priority srcnat; policy accept;', [
      ...hp.post,
      ...(ext && fam.snat ? [`${ours} oifname "${ext.iface}" snat ${fam.v6 ? 'ip6 ' : ''}to ${fam.snat}`] : []),
    ]),
    '}',
  ];
}

/**
 * The hairpin's rules for a family with published ports (see the header): in prerouting
 * (mangle) the replies' mark from their connection and the target's vnet's mark on the
 * original direction; the DNAT from the hairpin subnets (a chain of the family's published
 * ports); the SNAT to the external address.
 */
function hairpinRules(plan: EdgePlan, fam: Family, address: string): { pre: string[]; dstnat: string[]; chain: string[]; post: string[] } {
  const ip = fam.table;
  const ours = `meta mark & ${hex(EDGE_TAG_MASK)} == ${hex(EDGE_BASE)}`;
  const target = (p: { ip: string; port: number }) => (fam.v6 ? `[${p.ip}]:${p.port}` : `${p.ip}:${p.port}`);
  const ports = plan.vnets.flatMap((v) => v.published.filter((p) => isV6(p.ip) === fam.v6).map((p) => ({ v, p })));
  const clients = plan.vnets.map((v) => ({ v, from: v.hairpin.filter((s) => isV6(s) === fam.v6) })).filter((c) => c.from.length > 0);
  if (ports.length === 0 || clients.length === 0) return { pre: [], dstnat: [], chain: [], post: [] };
  const pre = [
    `${ours} ct direction reply ct mark & ${hex(EDGE_TAG_MASK)} == ${hex(EDGE_BASE)} meta mark set ct mark`,
    ...ports.map(({ v, p }) => `${ours} ct direction original ct original ${ip} daddr ${address} meta l4proto ${p.protocol} ct original proto-dst ${p.hostPort} meta mark set ${hex(v.mark)}`),
  ];
  const dstnat = clients.map(({ v, from }) => `ct mark & ${hex(EDGE_MARK_MASK)} == ${hex(v.mark)} ${ip} saddr ${set(from)} ${ip} daddr ${address} jump hairpin`);
  const chain = ports.map(({ p }) => `${p.protocol} dport ${p.hostPort} dnat to ${target(p)}`);
  const post = [`${ours} ct direction original ct status dnat ct original zone != 0 ct original ${ip} daddr ${address} snat ${fam.v6 ? 'ip6 ' : ''}to ${address}`];
  return { pre, dstnat, chain, post };
}

/** An address the edge puts on a vnet's bridge. */
export interface EdgeAddress {
  dev: string;
  address: string;
  prefix: number;
}

/** A route in a vnet's table. */
export interface EdgeRoute {
  table: number;
  dst: string;
  dev: string;
  src: string;
  /** Route MTU: forwarded packets above it get "fragmentation needed" (the kernel honours it when forwarding). */
  mtu?: number;
}

export interface EdgeRule {
  /** 6: an `ip -6 rule` (default: IPv4). */
  family?: 6;
  mark: number;
  /** Which bits of the packet's mark the rule compares (iproute2's fwmask; 0xffffffff when a rule has none). */
  mask: number;
  table: number;
}

export interface EdgeKernelState {
  addresses: EdgeAddress[];
  routes: EdgeRoute[];
  rules: EdgeRule[];
}

/** The addresses, routes and rules the plan wants in the node's namespace. */
export function edgeKernelState(plan: EdgePlan, portOf: PortOf): EdgeKernelState {
  assertPlan(plan, portOf);
  const out: EdgeKernelState = { addresses: [], routes: [], rules: [] };
  for (const v of plan.vnets) {
    for (const g of v.gateways) out.addresses.push({ dev: portOf(v.vnet, g.vlan).dev, address: g.address, prefix: g.prefix });
    for (const r of v.routes) out.routes.push({ table: v.table, dst: r.subnet, dev: portOf(v.vnet, r.vlan).dev, src: r.src, ...(r.mtu ? { mtu: r.mtu } : {}) });
    out.rules.push({ mark: v.mark, mask: EDGE_MARK_MASK, table: v.table });
    if (v.gateways.some((g) => isV6(g.address)) || v.routes.some((r) => isV6(r.subnet))) out.rules.push({ family: 6, mark: v.mark, mask: EDGE_MARK_MASK, table: v.table });
  }
  return out;
}

const addrKey = (a: EdgeAddress) => `${a.dev} ${a.address}/${a.prefix}`;
const routeKey = (r: EdgeRoute) => `${r.table} ${r.dst} ${r.dev} ${r.src} ${r.mtu ?? ''}`;
const ruleKey = (r: EdgeRule) => `${r.family === 6 ? '6 ' : ''}${r.mark}/${r.mask} ${r.table}`;
const fwmark = (r: EdgeRule) => (r.mask >>> 0 === 0xffffffff ? hex(r.mark) : `${hex(r.mark)}/${hex(r.mask)}`);

/**
 * `ip -batch` lines taking the node from `current` (what of ours is there: addresses on
 * the vnets' bridges, routes in our tables, our rules) to `want`. Additions first, then
 * removals, so nothing that stays blinks.
 */
export function edgeIpCommands(want: EdgeKernelState, current: EdgeKernelState): string[] {
  return ipCommands(want, current, false);
}

/** The `ip -6 -batch` lines for the IPv6 rules (iproute2 takes a rule's family from the command line only). */
export function edgeIp6RuleCommands(want: EdgeKernelState, current: EdgeKernelState): string[] {
  return ipCommands(want, current, true);
}

/** An a.b.c.d/n (or IPv6) destination as its address and prefix; a bare address is a host route. */
function splitDst(dst: string): { dst: string; prefix: number } {
  const slash = dst.indexOf('/');
  if (slash < 0) return { dst, prefix: isV6(dst) ? 128 : 32 };
  return { dst: dst.slice(0, slash), prefix: Number(dst.slice(slash + 1)) };
}

/**
 * The native requests (src/dataplane/links.ts edgeApply) taking the node from `current`
 * to `want`: the same changes as edgeIpCommands and edgeIp6RuleCommands together, in
 * the same order (additions first, then removals, so nothing that stays blinks).
 */
export function edgeChanges(want: EdgeKernelState, current: EdgeKernelState): EdgeOp[] {
  const ops: EdgeOp[] = [];
  const have = { a: new Set(current.addresses.map(addrKey)), r: new Set(current.routes.map(routeKey)), u: new Set(current.rules.map(ruleKey)) };
  const keep = { a: new Set(want.addresses.map(addrKey)), r: new Set(want.routes.map(routeKey)), u: new Set(want.rules.map(ruleKey)) };
  const rule = (u: EdgeRule, add: boolean): EdgeOp => ({ op: 'rule', add, family: u.family === 6 ? 6 : 4, pref: EDGE_RULE_PREF, mark: u.mark, mask: u.mask >>> 0, table: u.table });
  for (const a of want.addresses) if (!have.a.has(addrKey(a))) ops.push({ op: 'addr', add: true, dev: a.dev, address: a.address, prefix: a.prefix });
  for (const r of want.routes) {
    if (!have.r.has(routeKey(r))) ops.push({ op: 'route', add: true, ...splitDst(r.dst), table: r.table, dev: r.dev, ...(r.src ? { src: r.src } : {}), ...(r.mtu ? { mtu: r.mtu } : {}) });
  }
  for (const u of want.rules) if (!have.u.has(ruleKey(u))) ops.push(rule(u, true));
  const wantedDst = new Set(want.routes.map((r) => `${r.table} ${r.dst}`));
  for (const r of current.routes) {
    if (!keep.r.has(routeKey(r)) && !wantedDst.has(`${r.table} ${r.dst}`)) ops.push({ op: 'route', add: false, ...splitDst(r.dst), table: r.table });
  }
  for (const a of current.addresses) if (!keep.a.has(addrKey(a))) ops.push({ op: 'addr', add: false, dev: a.dev, address: a.address, prefix: a.prefix });
  for (const u of current.rules) if (!keep.u.has(ruleKey(u))) ops.push(rule(u, false));
  return ops;
}

function ipCommands(want: EdgeKernelState, current: EdgeKernelState, v6Rules: boolean): string[] {
  const lines: string[] = [];
  const ofRules = (s: EdgeKernelState): EdgeKernelState =>
    v6Rules ? { addresses: [], routes: [], rules: s.rules.filter((r) => r.family === 6) } : { ...s, rules: s.rules.filter((r) => r.family !== 6) };
  want = ofRules(want);
  current = ofRules(current);
  const have = { a: new Set(current.addresses.map(addrKey)), r: new Set(current.routes.map(routeKey)), u: new Set(current.rules.map(ruleKey)) };
  const keep = { a: new Set(want.addresses.map(addrKey)), r: new Set(want.routes.map(routeKey)), u: new Set(want.rules.map(ruleKey)) };
  for (const a of want.addresses) if (!have.a.has(addrKey(a))) lines.push(`addr add ${a.address}/${a.prefix} dev ${a.dev} noprefixroute${isV6(a.address) ? ' nodad' : ''}`);
  for (const r of want.routes) if (!have.r.has(routeKey(r))) lines.push(`route replace ${r.dst} dev ${r.dev} src ${r.src} table ${r.table}${r.mtu ? ` mtu ${r.mtu}` : ''}`);
  for (const u of want.rules) if (!have.u.has(ruleKey(u))) lines.push(`rule add pref ${EDGE_RULE_PREF} fwmark ${fwmark(u)} lookup ${u.table}`);
  const wantedDst = new Set(want.routes.map((r) => `${r.table} ${r.dst}`));
  for (const r of current.routes) if (!keep.r.has(routeKey(r)) && !wantedDst.has(`${r.table} ${r.dst}`)) lines.push(`route del ${r.dst} table ${r.table}`);
  for (const a of current.addresses) if (!keep.a.has(addrKey(a))) lines.push(`addr del ${a.address}/${a.prefix} dev ${a.dev}`);
  for (const u of current.rules) if (!keep.u.has(ruleKey(u))) lines.push(`rule del pref ${EDGE_RULE_PREF} fwmark ${fwmark(u)} lookup ${u.table}`);
  return lines;
}

