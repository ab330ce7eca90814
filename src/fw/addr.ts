/**
 * Address arithmetic for compiled sets: addresses and CIDRs as inclusive bigint
 * intervals, merged so an nftables interval set never sees overlapping elements
 * (which `nft` rejects), printed back as address, CIDR or "a-b" range.
 */
import ipaddr from 'ipaddr.js';
import { ipText } from '../net/addr.js';

export type Family = 'ipv4' | 'ipv6';

export interface Interval {
  family: Family;
  start: bigint;
  end: bigint;
}

const BITS: Record<Family, number> = { ipv4: 32, ipv6: 128 };

function toBig(a: ipaddr.IPv4 | ipaddr.IPv6): bigint {
  let n = 0n;
  for (const b of a.toByteArray()) n = (n << 8n) | BigInt(b);
  return n;
}

function fromBig(n: bigint, family: Family): string {
  const bytes: number[] = [];
  const count = BITS[family] / 8;
  for (let i = count - 1; i >= 0; i--) bytes.push(Number((n >> BigInt(i * 8)) & 0xffn));
  return ipText(ipaddr.fromByteArray(bytes));
}

/** Canonical text of an address (IPv6 as RFC 5952), or undefined if it is not one. */
export function canonicalAddress(text: string): string | undefined {
  try {
    return ipText(ipaddr.parse(text));
  } catch {
    return undefined;
  }
}

export function familyOf(text: string): Family {
  return text.includes(':') ? 'ipv6' : 'ipv4';
}

/** An address or CIDR as an interval (host bits of a CIDR are ignored). */
export function toInterval(text: string): Interval {
  const slash = text.indexOf('/');
  const addr = ipaddr.parse(slash < 0 ? text : text.slice(0, slash));
  const family: Family = addr.kind();
  const bits = BITS[family];
  const prefix = slash < 0 ? bits : Number(text.slice(slash + 1));
  const host = (1n << BigInt(bits - prefix)) - 1n;
  const base = toBig(addr) & ~host;
  return { family, start: base, end: base | host };
}

/** Sorted, merged (overlapping or adjacent joined) intervals of one family. */
export function mergeIntervals(list: Interval[]): Interval[] {
  const sorted = [...list].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: Interval[] = [];
  for (const iv of sorted) {
    const last = out[out.length - 1];
    if (last && iv.start <= last.end + 1n) {
      if (iv.end > last.end) last.end = iv.end;
    } else out.push({ ...iv });
  }
  return out;
}

/** An interval as nftables writes it: an address, a CIDR block, or "a-b". */
export function intervalText(iv: Interval): string {
  if (iv.start === iv.end) return fromBig(iv.start, iv.family);
  const size = iv.end - iv.start + 1n;
  if ((size & (size - 1n)) === 0n && (iv.start & (size - 1n)) === 0n) {
    let bits = 0;
    for (let s = size; s > 1n; s >>= 1n) bits++;
    return `${fromBig(iv.start, iv.family)}/${BITS[iv.family] - bits}`;
  }
  return `${fromBig(iv.start, iv.family)}-${fromBig(iv.end, iv.family)}`;
}

/** Addresses/CIDRs → merged element texts per family. */
export function mergeAddresses(texts: Iterable<string>): { v4: string[]; v6: string[] } {
  const v4: Interval[] = [];
  const v6: Interval[] = [];
  for (const t of texts) {
    const iv = toInterval(t);
    (iv.family === 'ipv4' ? v4 : v6).push(iv);
  }
  return { v4: mergeIntervals(v4).map(intervalText), v6: mergeIntervals(v6).map(intervalText) };
}

/** Does an element text (address, CIDR or "a-b") contain this address? */
export function elementContains(element: string, address: string): boolean {
  const target = toInterval(address);
  let iv: Interval;
  const dash = element.indexOf('-');
  if (dash > 0) {
    const a = toInterval(element.slice(0, dash));
    const b = toInterval(element.slice(dash + 1));
    iv = { family: a.family, start: a.start, end: b.end };
  } else iv = toInterval(element);
  return iv.family === target.family && target.start >= iv.start && target.start <= iv.end;
}
