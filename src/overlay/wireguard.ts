/**
 * Encrypted underlay (WireGuard): the deployment's setting, the nodes' published keys and
 * the view of them every agent follows. Pure: shapes, store keys, checks and the tunnel
 * addressing, shared by the controller (which stores and serves them) and the agent
 * (which checks again what it is served before configuring anything).
 *
 *   ovl/ulwg/cfg             EncryptionSetting    the deployment's mode and tunnel subnet
 *   ovl/ulwg/node/<cn_uuid>  WireguardNodeRecord  a node's public key(s) and endpoint
 *
 * They sort right after the underlay records (ovl/ul/<cn_uuid>) so that the peer
 * directory's one watch over both covers nothing else: etcd watches a key range.
 *
 * A node's peer view joins its underlay record (ovl/ul/<cn_uuid>) with its WireGuard
 * record: a node is a peer exactly while it has an underlay address, and it can be
 * reached encrypted once it has published a valid key and endpoint.
 *
 * Tunnel addressing: a node's tunnel address is its underlay address's low bits inside the
 * tunnel subnet (100.64.0.0/10 by default: the low 22 bits), so 198.18.7.1 is 100.82.7.1.
 * Deterministic on every node with no allocation; two nodes collide only if their underlay
 * addresses agree in those bits (never within one underlay network no larger than the
 * subnet), and a collision is reported, not configured.
 */
import ipaddr from 'ipaddr.js';

export const WG_PREFIX = 'ovl/ulwg/';
export const ENCRYPTION_KEY = 'ovl/ulwg/cfg';
export const WG_NODE_PREFIX = 'ovl/ulwg/node/';

export const DEFAULT_TUNNEL_SUBNET = '100.64.0.0/10';
export const DEFAULT_WIREGUARD_PORT = 51820;

/** Bytes WireGuard adds per packet: outer IP + UDP (8) + WireGuard header (16) + tag (16). */
export const WIREGUARD_OVERHEAD = { ipv4: 60, ipv6: 80 } as const;

/**
 * none: cleartext VXLAN. prepare: every node brings up WireGuard, publishes its key and
 * configures its peers, VXLAN still in cleartext (and accepted both ways). wireguard: VXLAN
 * only through WireGuard; cleartext VXLAN neither leaves nor is accepted.
 */
export const ENCRYPTION_MODES = ['none', 'prepare', 'wireguard'] as const;
export type EncryptionMode = (typeof ENCRYPTION_MODES)[number];

export interface EncryptionSetting {
  mode: EncryptionMode;
  /** Set while preparing on the way to wireguard: the controller switches once every node is ready. */
  target?: 'wireguard';
  tunnel_subnet: string;
  /** ISO time of the last change. */
  changed?: string;
}

export interface WireguardNodeRecord {
  cn_uuid: string;
  public_key: string;
  /** During a key rotation: the key the node is about to switch to (peers accept its handshakes). */
  next_public_key?: string;
  /** Where peers send WireGuard UDP: "ip:port" ("[ip]:port" for IPv6). */
  endpoint: string;
  updated?: string;
}

/** One node as every agent sees it (GET /wireguard/peers). */
export interface PeerView {
  cn_uuid: string;
  underlay_ip: string;
  /** Undefined when it cannot be derived (see problem). */
  tunnel_ip?: string;
  public_key?: string;
  next_public_key?: string;
  endpoint?: string;
  /** Why the node cannot be reached encrypted (no key yet, a bad record, a collision). */
  problem?: string;
}

/** GET /wireguard/peers: everything (full) or what changed after `since`. */
export interface PeersFeed {
  revision: number;
  full: boolean;
  encryption: EncryptionSetting;
  peers: PeerView[];
  /** Nodes gone since `since` (not in a full answer). */
  removed: string[];
}

export const DEFAULT_SETTING: EncryptionSetting = { mode: 'none', tunnel_subnet: DEFAULT_TUNNEL_SUBNET };

export function wgNodeKey(cnUuid: string): string {
  return `${WG_NODE_PREFIX}${cnUuid}`;
}

export function isEncryptionMode(v: unknown): v is EncryptionMode {
  return typeof v === 'string' && (ENCRYPTION_MODES as readonly string[]).includes(v);
}

/** Why this is not a WireGuard public key (base64 of 32 bytes, canonical, not all zero), or undefined. */
export function wireguardKeyProblem(key: unknown): string | undefined {
  if (typeof key !== 'string') return 'a WireGuard key must be a string';
  if (!/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/.test(key)) return 'a WireGuard key is 44 characters of base64 encoding 32 bytes';
  const raw = Buffer.from(key, 'base64');
  if (raw.length !== 32 || raw.toString('base64') !== key) return 'a WireGuard key is 44 characters of base64 encoding 32 bytes';
  if (raw.every((b) => b === 0)) return 'a WireGuard key must not be all zeros';
  return undefined;
}

/** "ip:port" or "[ipv6]:port" -> its parts, or undefined. */
export function parseEndpoint(endpoint: string): { ip: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(endpoint);
  if (!m) return undefined;
  const host = m[1] ?? m[2]!;
  if (!ipaddr.isValid(host) || (m[1] !== undefined && ipaddr.parse(host).kind() !== 'ipv6')) return undefined;
  if (m[2] !== undefined && !ipaddr.IPv4.isValidFourPartDecimal(host)) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { ip: ipaddr.parse(host).toString(), port };
}

/** Why this is not a usable endpoint, or undefined. */
export function endpointProblem(endpoint: unknown): string | undefined {
  if (endpoint === undefined || endpoint === null || endpoint === '') return 'no endpoint';
  if (typeof endpoint !== 'string' || !parseEndpoint(endpoint)) return `endpoint ${JSON.stringify(endpoint)} is not IP:PORT`;
  return undefined;
}

/** "ip:port" text for an address and port. */
export function formatEndpoint(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** Why this cannot be the tunnel subnet (an IPv4 network, /8 to /30), or undefined. */
export function tunnelSubnetProblem(subnet: unknown): string | undefined {
  if (typeof subnet !== 'string') return 'the tunnel subnet must be a string';
  try {
    const [net, bits] = ipaddr.parseCIDR(subnet);
    if (net.kind() !== 'ipv4') return 'the tunnel subnet must be IPv4 (VXLAN in the tunnel is IPv4)';
    if (bits < 8 || bits > 30) return 'the tunnel subnet must be a /8 to /30';
    if (ipaddr.IPv4.networkAddressFromCIDR(subnet).toString() !== net.toString()) return `${subnet} is not a network address`;
    return undefined;
  } catch {
    return `${JSON.stringify(subnet)} is not a CIDR subnet`;
  }
}

function v4ToInt(ip: string): number {
  return ipaddr.IPv4.parse(ip).octets.reduce((a, o) => a * 256 + o, 0);
}

function intToV4(n: number): string {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');
}

/**
 * The tunnel address of the node with this (IPv4) underlay address: the underlay
 * address's host bits (as many as the subnet has) inside the subnet. Throws when the
 * result would be the subnet's network or broadcast address.
 */
export function tunnelAddress(underlayIp: string, subnet: string): string {
  const problem = tunnelSubnetProblem(subnet);
  if (problem) throw new Error(problem);
  if (!ipaddr.IPv4.isValidFourPartDecimal(underlayIp)) throw new Error(`tunnel addresses are derived from IPv4 underlay addresses, not ${underlayIp}`);
  const [net, bits] = ipaddr.parseCIDR(subnet);
  const hostBits = 32 - bits;
  const hostMask = 2 ** hostBits - 1;
  const host = v4ToInt(underlayIp) % 2 ** hostBits;
  if (host === 0 || host === hostMask) throw new Error(`the underlay address ${underlayIp} maps to the network or broadcast address of ${subnet}`);
  return intToV4(v4ToInt(net.toString()) + host);
}

/** The prefix length of the tunnel subnet (the tunnel interface's address carries it). */
export function tunnelPrefix(subnet: string): number {
  return ipaddr.parseCIDR(subnet)[1];
}


/** Why a stored node record is unusable, or undefined. */
export function nodeRecordProblem(r: Partial<WireguardNodeRecord> | undefined): string | undefined {
  if (!r || r.public_key === undefined) return 'no WireGuard key published';
  const key = wireguardKeyProblem(r.public_key);
  if (key) return `public_key: ${key}`;
  if (r.next_public_key !== undefined) {
    const next = wireguardKeyProblem(r.next_public_key);
    if (next) return `next_public_key: ${next}`;
  }
  return endpointProblem(r.endpoint);
}

/**
 * Every node's view from its underlay address and WireGuard record, with problems:
 * records that do not check out, underlay addresses without a tunnel address, and tunnel
 * addresses or keys claimed by two nodes (all of those nodes get the problem).
 */
export function peerViews(
  underlay: ReadonlyMap<string, string>,
  records: ReadonlyMap<string, Partial<WireguardNodeRecord>>,
  subnet: string,
): Map<string, PeerView> {
  const views = new Map<string, PeerView>();
  const byTunnel = new Map<string, string[]>();
  const byKey = new Map<string, string[]>();
  const claim = (m: Map<string, string[]>, k: string, cn: string) => m.set(k, [...(m.get(k) ?? []), cn]);
  for (const [cn, ip] of underlay) {
    const v: PeerView = { cn_uuid: cn, underlay_ip: ip };
    try {
      v.tunnel_ip = tunnelAddress(ip, subnet);
      claim(byTunnel, v.tunnel_ip, cn);
    } catch (err) {
      v.problem = (err as Error).message;
    }
    const r = records.get(cn);
    if (r) {
      if (typeof r.public_key === 'string') v.public_key = r.public_key;
      if (typeof r.next_public_key === 'string') v.next_public_key = r.next_public_key;
      if (typeof r.endpoint === 'string') v.endpoint = r.endpoint;
    }
    const problem = nodeRecordProblem(r);
    if (problem && !v.problem) v.problem = problem;
    if (!problem) for (const k of [v.public_key!, ...(v.next_public_key ? [v.next_public_key] : [])]) claim(byKey, k, cn);
    views.set(cn, v);
  }
  for (const [tunnel, cns] of byTunnel) {
    if (cns.length < 2) continue;
    for (const cn of cns) views.get(cn)!.problem = `tunnel address ${tunnel} is also that of node(s) ${cns.filter((c) => c !== cn).join(', ')}`;
  }
  for (const [, cns] of byKey) {
    const others = [...new Set(cns)];
    if (others.length < 2) continue;
    for (const cn of others) views.get(cn)!.problem ??= `its WireGuard key is also published by node(s) ${others.filter((c) => c !== cn).join(', ')}`;
  }
  return views;
}
