/**
 * IP, MAC and UUID parsing, canonical text and byte conversion: one module for every
 * room (NAPI validation, the SVP wire, the mapping index, the agent, the data plane). Pure.
 *
 * Canonical IP text is the dotted quad for IPv4 (an IPv4-mapped IPv6 address is its IPv4
 * address) and RFC 5952 for IPv6: the form the overlay keys use. On the wire IPs travel as
 * 16 bytes with IPv4 as v4-mapped (::ffff:a.b.c.d). Canonical MAC text is lower-case
 * colon form ('aa:bb:cc:dd:ee:ff'); canonical UUID text is lower case.
 *
 * Functions named `try…` return undefined for input that is not an address; the others
 * throw a TypeError. Rooms that answer users (NAPI, the agent's API) word their own
 * errors on top of these.
 */
import ipaddr from 'ipaddr.js';

export type IpAddr = ipaddr.IPv4 | ipaddr.IPv6;

// ---- IP ----

/**
 * The address in `v`, or undefined. Accepted, as sdc-napi's ip6addr does: IPv4 as four
 * decimal parts only, IPv6 text, and IPv4 as an integer (a JSON number or a decimal
 * string). An IPv4-mapped IPv6 address is returned as the IPv4 address.
 */
export function parseIp(v: unknown): IpAddr | undefined {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff) return ipv4FromNumber(v);
  if (typeof v !== 'string') return undefined;
  if (/^\d+$/.test(v)) {
    const n = Number(v);
    return n <= 0xffffffff ? ipv4FromNumber(n) : undefined;
  }
  try {
    const a = ipaddr.parse(v);
    if (a.kind() === 'ipv4' && !ipaddr.IPv4.isValidFourPartDecimal(v)) return undefined;
    if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) return (a as ipaddr.IPv6).toIPv4Address();
    return a;
  } catch {
    return undefined;
  }
}

/**
 * A canonical dotted quad ('10.1.2.3': four decimal octets, no leading zeros, which
 * ipaddr.js would read as octal) as a 32-bit unsigned number, or undefined for any other
 * text. The allocator's hot paths take this shortcut; everything else goes through
 * ipaddr.js.
 */
export function quadToNumber(text: string): number | undefined {
  let n = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || dots === 3) return undefined;
      n = n * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return undefined; // a leading zero
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return undefined;
    } else {
      return undefined;
    }
  }
  if (dots !== 3 || digits === 0) return undefined;
  return n * 256 + octet;
}

/** The canonical dotted quad of a 32-bit unsigned number. */
export function numberToQuad(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function ipv4FromNumber(n: number): ipaddr.IPv4 {
  return new ipaddr.IPv4([(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
}

/** Canonical text of a parsed address. */
export function ipText(a: IpAddr): string {
  return a.kind() === 'ipv4' ? a.toString() : (a as ipaddr.IPv6).toRFC5952String();
}

/** Canonical text of any form parseIp accepts, or undefined. */
export function tryCanonicalIp(v: unknown): string | undefined {
  const a = parseIp(v);
  return a ? ipText(a) : undefined;
}

/** True when ip is an address inside the CIDR subnet, of its family; false for anything unparseable. */
export function ipInSubnet(ip: string, subnet: string): boolean {
  try {
    const addr = ipaddr.parse(ip);
    const [net, bits] = ipaddr.parseCIDR(subnet);
    return addr.kind() === net.kind() && addr.match(net, bits);
  } catch {
    return false;
  }
}

/** Canonical text of any form parseIp accepts; throws a TypeError on anything else. */
export function canonicalIp(text: string): string {
  const ip = tryCanonicalIp(text);
  if (ip === undefined) throw new TypeError(`not an IP address: ${JSON.stringify(text)}`);
  return ip;
}

/**
 * Text ('10.0.0.1', '::ffff:10.0.0.1', 'fd00::1') -> 16 bytes, IPv4 as v4-mapped.
 * Takes every form ipaddr.js parses (also inet_aton's shorthand such as '10.1').
 */
export function ipToBytes(text: string): Buffer {
  let addr: IpAddr;
  try {
    addr = ipaddr.parse(text);
  } catch {
    throw new TypeError(`not an IP address: ${JSON.stringify(text)}`);
  }
  const v6 = addr.kind() === 'ipv4' ? (addr as ipaddr.IPv4).toIPv4MappedAddress() : (addr as ipaddr.IPv6);
  return Buffer.from(v6.toByteArray());
}

/** True when the 16 bytes at off are an IPv4-mapped address (::ffff:a.b.c.d). */
export function isV4Mapped(buf: Uint8Array, off = 0): boolean {
  for (let i = 0; i < 10; i++) if (buf[off + i] !== 0) return false;
  return buf[off + 10] === 0xff && buf[off + 11] === 0xff;
}

/** 16 bytes -> canonical text: IPv4-mapped as dotted quad ('10.0.0.1'), anything else as RFC 5952 ('fd00::1'). */
export function ipFromBytes(buf: Uint8Array, off = 0): string {
  if (isV4Mapped(buf, off)) return `${buf[off + 12]}.${buf[off + 13]}.${buf[off + 14]}.${buf[off + 15]}`;
  return new ipaddr.IPv6(Array.from(buf.subarray(off, off + 16))).toRFC5952String();
}

// ---- MAC ----

const CANONICAL_MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/**
 * Canonical text of a MAC, or undefined. Accepted, as sdc-napi's macaddr does: twelve hex
 * digits, six groups of one or two hex digits separated by ':' or '-', or a 48-bit integer
 * (a JSON number).
 */
export function tryCanonicalMac(v: unknown): string | undefined {
  // Already canonical (what stores, the kernel and the agent pass around): no work.
  if (typeof v === 'string' && CANONICAL_MAC_RE.test(v)) return v;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 2 ** 48) return macFromNumber(v);
  if (typeof v !== 'string') return undefined;
  let parts: string[];
  if (/^[0-9a-fA-F]{12}$/.test(v)) parts = v.match(/../g) as string[];
  else {
    parts = v.split(/[:-]/);
    if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) return undefined;
  }
  return parts.map((p) => p.toLowerCase().padStart(2, '0')).join(':');
}

/** Canonical text of any form tryCanonicalMac accepts; throws a TypeError on anything else. */
export function canonicalMac(text: string): string {
  const mac = tryCanonicalMac(text);
  if (mac === undefined) throw new TypeError(`not a MAC address: ${JSON.stringify(text)}`);
  return mac;
}

/** The twelve lower-case hex digits of a MAC ('aabbccddeeff'); throws like canonicalMac. */
export function macHex(text: string): string {
  return canonicalMac(text).replace(/:/g, '');
}

/** 'aa:bb:cc:dd:ee:ff', 'AA-BB-…' or 'aabbccddeeff' -> 6 bytes; throws like canonicalMac. */
export function macToBytes(text: string): Buffer {
  return Buffer.from(macHex(text), 'hex');
}

/** 6 bytes at off -> canonical text. */
export function macFromBytes(buf: Uint8Array, off = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push(buf[off + i].toString(16).padStart(2, '0'));
  return parts.join(':');
}

/** A 48-bit integer -> canonical text (NAPI stores MACs as numbers in its keys). */
export function macFromNumber(n: number): string {
  return n.toString(16).padStart(12, '0').match(/../g)!.join(':');
}

// ---- UUID ----

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** True for canonical (lower-case) UUID text; use isUuid(s.toLowerCase()) to accept any case. */
export function isUuid(v: unknown): v is string {
  return typeof v === 'string' && UUID_RE.test(v);
}

/** UUID text (any case) -> its 16 raw bytes in order. */
export function uuidToBytes(text: string): Buffer {
  if (!isUuid(text.toLowerCase())) throw new TypeError(`not a UUID: ${JSON.stringify(text)}`);
  return Buffer.from(text.replace(/-/g, ''), 'hex');
}

/** 16 bytes at off -> canonical UUID text. */
export function uuidFromBytes(buf: Uint8Array, off = 0): string {
  const hex = Buffer.from(buf.buffer, buf.byteOffset + off, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
