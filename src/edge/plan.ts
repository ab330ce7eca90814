/**
 * The distributed gateway, as data: what a node's edge must hold for the fabric networks
 * it has instances on, derived from those networks (and, later, the routers connecting
 * them) alone. Pure; a backend carries the plan out (../agent/kernel/edge.ts).
 *
 * Every node with an instance on a fabric network answers that network's gateway address
 * itself, with one MAC per vnet shared by all nodes (gatewayMac), and routes what is sent
 * to it on that node: into the internet through SNAT to the node's external address
 * (networks with internet_nat), or nowhere. Owners' subnets may overlap, so a vnet's
 * routes live in a table of its own (edgeTable), chosen by the packet mark every packet
 * routed from the vnet carries (edgeMark); replies from outside get the mark back from
 * their connection.
 */
import ipaddr from 'ipaddr.js';
import { EDGE_MARK_MASK, EDGE_TAG, EDGE_TAG_MASK } from '../net/marks.js';
import { ipInSubnet, ipText } from '../net/addr.js';
import { PORT_BRIDGE_ZONE } from '../net/ports.js';

/**
 * Marks, routing tables and device groups of ours: 0x72 in the top byte, the vnet below.
 * The firewall shares the mark's top byte (../net/marks.ts has the layout): a mark of
 * ours is compared under EDGE_MARK_MASK / EDGE_TAG_MASK, never exactly.
 */
export const EDGE_BASE = EDGE_TAG;
export { EDGE_MARK_MASK, EDGE_TAG_MASK };
/** A routing table id of ours: the whole top byte is the tag (tables carry no firewall bits). */
const TABLE_TAG_MASK = 0xff000000;
/** Priority of the policy-routing rules (fwmark → the vnet's table). */
export const EDGE_RULE_PREF = 1100;

function assertVnet(vnet: number): void {
  if (!Number.isInteger(vnet) || vnet < 0 || vnet > 0xffffff) throw new RangeError(`vnet id must be a 24-bit integer, got ${vnet}`);
}

/**
 * The gateway MAC of a vnet, the same on every node: locally administered, unicast,
 * 02:72:67 then the vnet's 24 bits. A backend that keeps a vnet's fabric VLANs apart (the
 * userspace fast path) has one gateway port per VLAN, each with its own MAC:
 * 06|vlan's top 4 bits, the vlan's low 8 bits, 67, then the vnet.
 */
export function gatewayMac(vnet: number, vlan = 0): string {
  assertVnet(vnet);
  if (!Number.isInteger(vlan) || vlan < 0 || vlan > 4095) throw new RangeError(`vlan must be 0..4095, got ${vlan}`);
  const hex = vnet.toString(16).padStart(6, '0');
  const tail = `67:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4, 6)}`;
  if (vlan === 0) return `02:72:${tail}`;
  const h = (n: number) => n.toString(16).padStart(2, '0');
  return `${h(0x06 | ((vlan >> 8) << 4))}:${h(vlan & 0xff)}:${tail}`;
}

/** The packet (and connection) mark of traffic routed from a vnet. */
export function edgeMark(vnet: number): number {
  assertVnet(vnet);
  return EDGE_BASE + vnet;
}

/** The routing table of a vnet's edge. */
export function edgeTable(vnet: number): number {
  return edgeMark(vnet);
}

/** The vnet a packet or connection mark of ours names (whatever the firewall's bits), or undefined. */
export function vnetOfMark(mark: number): number | undefined {
  return (mark & EDGE_TAG_MASK) >>> 0 === EDGE_BASE ? mark & 0xffffff : undefined;
}

/** The vnet a routing table id of ours names, or undefined. */
export function vnetOfTable(table: number): number | undefined {
  return (table & TABLE_TAG_MASK) >>> 0 === EDGE_BASE ? table & 0xffffff : undefined;
}

/** A fabric network as the edge sees it. */
export interface EdgeNetwork {
  vnet: number;
  /** The network's fabric VLAN (default 0). */
  vlan?: number;
  /** Canonical a.b.c.d/n or h:h::/n (IPv6 networks are planned as IPv4 ones are). */
  subnet: string;
  /** Absent: the network has no gateway (nothing is routed for it). */
  gateway?: string;
  internetNat: boolean;
  network_uuid?: string;
  /** The network's MTU: routed packets towards it that are larger and may not be fragmented get ICMP "fragmentation needed". */
  mtu?: number;
}

/** The node's external side: the interface and its address (the SNAT address). */
export interface ExternalSide {
  iface: string;
  address: string;
  /** Its global IPv6 address, if it has one: IPv6 networks with internet_nat leave SNAT'ed (NAT66) to it. */
  address6?: string;
}

/**
 * A port of an instance published on the node's external address of its family (DNAT):
 * an IPv4 NIC's on the external IPv4 address, an IPv6 NIC's on the external global IPv6
 * address (the NAT66 one; without one an IPv6 NIC publishes nothing).
 */
export interface PublishedPort {
  vnet: number;
  /** The instance's address (its NIC's). */
  ip: string;
  protocol: 'tcp' | 'udp';
  /** The instance's port. */
  port: number;
  /** The port on the node's external address. */
  hostPort: number;
}

/**
 * Why a node's published ports cannot all hold (a host port twice for one protocol and
 * family), or undefined. A port given without its instance's address counts as IPv4: the
 * two families' external addresses are two addresses, so each has its own host ports.
 */
export function publishedProblem(ports: readonly (Pick<PublishedPort, 'protocol' | 'port' | 'hostPort'> & { ip?: string })[]): string | undefined {
  const seen = new Set<string>();
  for (const p of ports) {
    if (p.protocol !== 'tcp' && p.protocol !== 'udp') return `protocol must be tcp or udp, got ${JSON.stringify(p.protocol)}`;
    for (const [what, v] of [['port', p.port], ['host_port', p.hostPort]] as const) {
      if (!Number.isInteger(v) || v < 1 || v > 65535) return `${what} must be an integer in 1..65535, got ${JSON.stringify(v)}`;
    }
    const v6 = p.ip !== undefined && isV6(p.ip);
    const key = `${v6 ? 6 : 4} ${p.protocol}/${p.hostPort}`;
    if (seen.has(key)) return `${p.protocol} host port ${p.hostPort} is published twice${v6 ? ' (IPv6)' : ''}`;
    seen.add(key);
  }
  return undefined;
}

export interface VnetEdge {
  vnet: number;
  mac: string;
  mark: number;
  table: number;
  /**
   * Conntrack zone of the vnet's routed connections (original direction; replies are
   * found by their reply tuple, which NAT keeps unique): two owners' connections with
   * the same addresses and ports stay two connections on the node.
   */
  zone: number;
  /** Gateway addresses answered here, with their prefix lengths and their network's VLAN. */
  gateways: Array<{ address: string; prefix: number; subnet: string; vlan: number }>;
  /** Subnets routed into the vnet, each with the source address used towards it and its VLAN. */
  routes: Array<{ subnet: string; src: string; vlan: number; mtu?: number }>;
  /** Source subnets allowed out through SNAT (their network has internet_nat). */
  nat: string[];
  /** Routed between subnets of the vnet: [from, to] pairs (a router connects them). */
  routed: Array<[string, string]>;
  /** Instance ports reachable on the external address (only with an external side). */
  published: Array<Omit<PublishedPort, 'vnet'>>;
  /**
   * Source subnets whose instances reach the node's published ports (any vnet's) on the
   * external address through their gateway — hairpin NAT: its NAT subnets, of each
   * family the node publishes ports on. See hairpinSubnets.
   */
  hairpin: string[];
}

export interface EdgePlan {
  external?: ExternalSide;
  vnets: VnetEdge[];
}

/** Zones 1 … EDGE_ZONES are the edge's (the last one is the userspace backend's NIC bridges'). */
const EDGE_ZONES = PORT_BRIDGE_ZONE - 1;

/**
 * Conntrack zones (16 bits) for a node's vnets (24 bits): vnet mod 65534, plus one; a
 * collision between two of the node's vnets takes the next free zone, in vnet order (so
 * the same vnets get the same zones).
 */
export function edgeZones(vnets: readonly number[]): Map<number, number> {
  const used = new Set<number>();
  const out = new Map<number, number>();
  for (const vnet of [...new Set(vnets)].sort((a, b) => a - b)) {
    let z = (vnet % EDGE_ZONES) + 1;
    while (used.has(z)) z = (z % EDGE_ZONES) + 1;
    used.add(z);
    out.set(vnet, z);
  }
  return out;
}

/** The network of ip/prefix with the host bits cleared (a.b.c.d/n, or canonical IPv6 h:h::/n). */
export function subnetOf(ip: string, prefix: number): string {
  const net = ipaddr.parse(ip).kind() === 'ipv6' ? ipaddr.IPv6.networkAddressFromCIDR(`${ip}/${prefix}`) : ipaddr.IPv4.networkAddressFromCIDR(`${ip}/${prefix}`);
  return `${ipText(net)}/${prefix}`;
}

/** Whether an address or prefix (its text) is IPv6. */
export function isV6(addressOrSubnet: string): boolean {
  return addressOrSubnet.includes(':');
}

function prefixOf(subnet: string): number {
  return Number(subnet.slice(subnet.indexOf('/') + 1));
}

/** The network of a NIC (its address, prefix length, gateway and NAT flag). */
export function edgeNetworkOf(nic: { vnet: number; vlan?: number; ip: string; prefix: number; gateway?: string; internetNat?: boolean; networkUuid?: string; mtu?: number }): EdgeNetwork {
  return {
    vnet: nic.vnet,
    vlan: nic.vlan ?? 0,
    subnet: subnetOf(nic.ip, nic.prefix),
    ...(nic.gateway ? { gateway: nic.gateway } : {}),
    internetNat: nic.internetNat !== false,
    ...(nic.networkUuid ? { network_uuid: nic.networkUuid } : {}),
    ...(nic.mtu ? { mtu: nic.mtu } : {}),
  };
}

/**
 * Which of a vnet's subnets may hairpin: connect to the node's external address and reach a
 * port published there (on this node, of any vnet). A hairpinned connection is what the
 * same connection would be had it left through egress NAT and come back in on the external
 * interface — so only a network with internet_nat (one that reaches the external address
 * at all) may, and only on a family the node publishes ports on. The target sees the
 * node's external address as the client (as it sees another node's for a client there),
 * and replies return through the gateway. Nothing else of the external address (the node's
 * own services) is reachable through the gateway.
 */
export function hairpinSubnets(nat: readonly string[], publishedIps: readonly string[]): string[] {
  const families = new Set(publishedIps.map(isV6));
  return nat.filter((s) => families.has(isV6(s)));
}

/** Networks connected by one router (every one of them reaches every other). */
export interface EdgeRouter {
  networks: EdgeNetwork[];
}

function sortedUnique<T>(items: T[], key: (t: T) => string): T[] {
  const m = new Map<string, T>();
  for (const i of items) if (!m.has(key(i))) m.set(key(i), i);
  return [...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
}

/**
 * The edge of a node whose instances are on `local` networks (one entry per NIC is fine):
 * per vnet the gateways, the routes into the vnet (its local networks, and the networks
 * routers connect to them), the subnets allowed out, and the routed pairs.
 */
export function planEdge(
  local: readonly EdgeNetwork[],
  opts: { external?: ExternalSide; routers?: readonly EdgeRouter[]; published?: readonly PublishedPort[] } = {},
): EdgePlan {
  const byVnet = new Map<number, EdgeNetwork[]>();
  for (const n of local) {
    if (!n.gateway) continue;
    byVnet.set(n.vnet, [...(byVnet.get(n.vnet) ?? []), n]);
  }
  const vnets: VnetEdge[] = [];
  const zones = edgeZones([...byVnet.keys()]);
  for (const [vnet, nets] of [...byVnet.entries()].sort(([a], [b]) => a - b)) {
    const here = sortedUnique(nets, (n) => n.subnet);
    const gateways = here.map((n) => ({ address: n.gateway!, prefix: prefixOf(n.subnet), subnet: n.subnet, vlan: n.vlan ?? 0 }));
    const withMtu = (n: EdgeNetwork) => (n.mtu ? { mtu: n.mtu } : {});
    const routes = new Map<string, { src: string; vlan: number; mtu?: number }>(here.map((n) => [n.subnet, { src: n.gateway!, vlan: n.vlan ?? 0, ...withMtu(n) }]));
    const routed: Array<[string, string]> = [];
    for (const r of opts.routers ?? []) {
      const members = r.networks.filter((n) => n.vnet === vnet && n.gateway);
      const mine = members.filter((m) => here.some((h) => h.subnet === m.subnet));
      if (mine.length === 0) continue;
      // Towards a connected network not here, packets leave from a local gateway address.
      const src = mine[0]!.gateway!;
      for (const m of members) if (!routes.has(m.subnet)) routes.set(m.subnet, { src, vlan: m.vlan ?? 0, ...withMtu(m) });
      for (const a of members) for (const b of members) if (a.subnet !== b.subnet) routed.push([a.subnet, b.subnet]);
    }
    vnets.push({
      vnet,
      mac: gatewayMac(vnet),
      mark: edgeMark(vnet),
      table: edgeTable(vnet),
      zone: zones.get(vnet)!,
      gateways,
      routes: [...routes.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([subnet, r]) => ({ subnet, ...r })),
      nat: opts.external ? here.filter((n) => n.internetNat).map((n) => n.subnet) : [],
      routed: sortedUnique(routed, ([a, b]) => `${a} ${b}`),
      published: opts.external
        ? (opts.published ?? [])
            .filter((p) => p.vnet === vnet && here.some((n) => ipInSubnet(p.ip, n.subnet)) && (!isV6(p.ip) || opts.external?.address6 !== undefined))
            .map(({ ip, protocol, port, hostPort }) => ({ ip, protocol, port, hostPort }))
            .sort((a, b) => a.hostPort - b.hostPort || (a.protocol < b.protocol ? -1 : 1))
        : [],
      hairpin: [],
    });
  }
  const publishedIps = vnets.flatMap((v) => v.published.map((p) => p.ip));
  for (const v of vnets) v.hairpin = hairpinSubnets(v.nat, publishedIps);
  return { ...(opts.external ? { external: opts.external } : {}), vnets };
}
