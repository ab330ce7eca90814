/**
 * Address text <-> bytes for IPs, MACs and UUIDs: one module for every room (the SVP
 * wire, the mapping index, the agent, the data plane). Pure.
 *
 * IPs travel as 16 bytes with IPv4 as v4-mapped (::ffff:a.b.c.d); canonical IP text is
 * the dotted quad for IPv4 and RFC 5952 for IPv6 (the form the overlay keys use).
 */
import ipaddr from 'ipaddr.js';

/** Text ('10.0.0.1', '::ffff:10.0.0.1', 'fd00::1') -> 16 bytes, IPv4 as v4-mapped. */
export function ipToBytes(text: string): Buffer {
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
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

/**
 * 16 bytes -> canonical text: IPv4-mapped as dotted quad ('10.0.0.1'), anything else as
 * RFC 5952 IPv6 ('fd00::1'). This is the form the overlay keys use.
 */
export function ipFromBytes(buf: Uint8Array, off = 0): string {
  if (isV4Mapped(buf, off)) return `${buf[off + 12]}.${buf[off + 13]}.${buf[off + 14]}.${buf[off + 15]}`;
  return new ipaddr.IPv6(Array.from(buf.subarray(off, off + 16))).toRFC5952String();
}

/** Canonical text of any IP text: IPv4 (or v4-mapped) dotted quad, else RFC 5952. */
export function canonicalIp(text: string): string {
  return ipFromBytes(ipToBytes(text));
}

const MAC_RE = /^[0-9a-f]{12}$/;

/** 'aa:bb:cc:dd:ee:ff', 'AA-BB-…' or 'aabbccddeeff' -> 6 bytes. */
export function macToBytes(text: string): Buffer {
  const hex = text.replace(/[:-]/g, '').toLowerCase();
  if (!MAC_RE.test(hex)) throw new TypeError(`not a MAC address: ${JSON.stringify(text)}`);
  return Buffer.from(hex, 'hex');
}

export function macFromBytes(buf: Uint8Array, off = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push(buf[off + i].toString(16).padStart(2, '0'));
  return parts.join(':');
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Canonical UUID text -> its 16 raw bytes in order. */
export function uuidToBytes(text: string): Buffer {
  if (!UUID_RE.test(text)) throw new TypeError(`not a UUID: ${JSON.stringify(text)}`);
  return Buffer.from(text.replace(/-/g, ''), 'hex');
}

export function uuidFromBytes(buf: Uint8Array, off = 0): string {
  const hex = Buffer.from(buf.buffer, buf.byteOffset + off, 16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
