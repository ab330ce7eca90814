/**
 * Pure IP and subnet arithmetic for NAPI networks (IPv4 and IPv6), on BigInt so both
 * families share one code path. Addresses come in and go out as canonical text
 * (IPv4 dotted quad, IPv6 RFC 5952).
 */
import ipaddr from 'ipaddr.js';
import { ipText, numberToQuad, parseIp, quadToNumber } from '../net/addr.js';

export type Family = 'ipv4' | 'ipv6';

export interface Subnet {
  family: Family;
  /** Network address as a number. */
  start: bigint;
  bits: number;
}

const WIDTH: Record<Family, number> = { ipv4: 32, ipv6: 128 };

export function familyOf(ip: string): Family {
  if (quadToNumber(ip) !== undefined) return 'ipv4';
  return ipaddr.parse(ip).kind() as Family;
}

export function ipToBigInt(ip: string): bigint {
  const quad = quadToNumber(ip);
  if (quad !== undefined) return BigInt(quad);
  const bytes = ipaddr.parse(ip).toByteArray();
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

export function bigIntToIp(n: bigint, family: Family): string {
  if (family === 'ipv4' && n >= 0n && n <= 0xffffffffn) return numberToQuad(Number(n));
  const len = WIDTH[family] / 8;
  const bytes: number[] = new Array(len);
  let v = n;
  for (let i = len - 1; i >= 0; i--) {
    bytes[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return ipText(ipaddr.fromByteArray(bytes) as ipaddr.IPv4 | ipaddr.IPv6);
}

export type CidrResult = { ok: true; subnet: Subnet } | { ok: false; message: string };

/**
 * Parses CIDR text with NAPI's rules and messages: IPv4 prefix 8–32, IPv6 8–128, and
 * the address must be the network address.
 */
export function parseCidr(text: unknown): CidrResult {
  if (typeof text !== 'string') return { ok: false, message: 'must be a string' };
  const parts = text.split('/');
  if (parts.length !== 2) return { ok: false, message: 'Subnet must be in CIDR form' };
  const addr = parseIp(parts[0]);
  if (!addr) return { ok: false, message: 'Subnet IP invalid' };
  const family = addr.kind() as Family;
  if (!/^\d+$/.test(parts[1])) return { ok: false, message: 'Subnet bits invalid' };
  const bits = Number(parts[1]);
  if (bits < 8 || bits > WIDTH[family]) return { ok: false, message: 'Subnet bits invalid' };
  const start = ipToBigInt(ipText(addr));
  const subnet: Subnet = { family, start, bits };
  if ((start & hostMask(subnet)) !== 0n) return { ok: false, message: 'invalid CIDR format' };
  return { ok: true, subnet };
}

/** Parses CIDR text that is known to be valid (stored records). */
export function subnetOf(text: string): Subnet {
  const r = parseCidr(text);
  if (!r.ok) throw new Error(`invalid subnet ${text}: ${r.message}`);
  return r.subnet;
}

export function subnetText(s: Subnet): string {
  return `${bigIntToIp(s.start, s.family)}/${s.bits}`;
}

function hostMask(s: Subnet): bigint {
  return (1n << BigInt(WIDTH[s.family] - s.bits)) - 1n;
}

/** Last address of the subnet (the IPv4 broadcast address). */
export function subnetEnd(s: Subnet): bigint {
  return s.start | hostMask(s);
}

/** The IPv4 broadcast address of a subnet; undefined for IPv6. */
export function broadcastAddress(s: Subnet): string | undefined {
  return s.family === 'ipv4' ? bigIntToIp(subnetEnd(s), 'ipv4') : undefined;
}

export function subnetContains(s: Subnet, ip: string): boolean {
  if (familyOf(ip) !== s.family) return false;
  const n = ipToBigInt(ip);
  return n >= s.start && n <= subnetEnd(s);
}

export function subnetsOverlap(a: Subnet, b: Subnet): boolean {
  if (a.family !== b.family) return false;
  return a.start <= subnetEnd(b) && b.start <= subnetEnd(a);
}

/** True when inner lies entirely inside outer. */
export function subnetWithin(inner: Subnet, outer: Subnet): boolean {
  return inner.family === outer.family && inner.start >= outer.start && subnetEnd(inner) <= subnetEnd(outer);
}

export function netmaskOf(s: Subnet): string | undefined {
  if (s.family !== 'ipv4') return undefined;
  return bigIntToIp(0xffffffffn ^ hostMask(s), 'ipv4');
}

const RFC1918 = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'].map(subnetOf);
const ULA = subnetOf('fd00::/8');

/** Inside 10/8, 172.16/12 or 192.168/16: the only subnets fabric networks may use. */
export function isRfc1918(s: Subnet): boolean {
  return RFC1918.some((p) => subnetWithin(s, p));
}

/** Inside fd00::/8 (unique local, locally assigned): the only IPv6 subnets fabric networks may use. */
export function isUla(s: Subnet): boolean {
  return subnetWithin(s, ULA);
}

/**
 * The IPv6 Subnet-Router anycast address of a subnet (its network address, RFC 4291
 * 2.6.1): a router on the link answers it, so no NIC may hold it. Undefined for IPv4.
 */
export function subnetRouterAnycast(s: Subnet): string | undefined {
  return s.family === 'ipv6' ? bigIntToIp(s.start, 'ipv6') : undefined;
}

/** Private ranges whose non-fabric networks may overlap freely: RFC1918 and fd00::/8. */
export function isPrivateSubnet(s: Subnet): boolean {
  return isRfc1918(s) || subnetWithin(s, ULA);
}

export function compareIps(a: string, b: string): number {
  const fa = familyOf(a);
  const fb = familyOf(b);
  if (fa !== fb) return fa === 'ipv4' ? -1 : 1;
  const na = ipToBigInt(a);
  const nb = ipToBigInt(b);
  return na < nb ? -1 : na > nb ? 1 : 0;
}

/** ip + delta, or undefined when that leaves the address space. */
export function ipAdd(ip: string, delta: number | bigint): string | undefined {
  const family = familyOf(ip);
  const n = ipToBigInt(ip) + BigInt(delta);
  if (n < 0n || n >= 1n << BigInt(WIDTH[family])) return undefined;
  return bigIntToIp(n, family);
}

/** Every address from start to end inclusive, in order (lazily). */
export function* ipRange(start: string, end: string): Generator<string> {
  const family = familyOf(start);
  const last = ipToBigInt(end);
  for (let n = ipToBigInt(start); n <= last; n++) yield bigIntToIp(n, family);
}

/** Number of addresses from start to end inclusive (0 if end < start). */
export function rangeSize(start: string, end: string): bigint {
  const d = ipToBigInt(end) - ipToBigInt(start) + 1n;
  return d > 0n ? d : 0n;
}
