/**
 * Field validators for NAPI's network values: IP addresses, MACs, VLAN and VNET ids,
 * nic tag names (wording from sdc-napi lib/util/validate.js). Pure: value in, clean
 * value or fail(...) out, as the schema runner in src/rest/validate.ts expects.
 */
import ipaddr from 'ipaddr.js';
import { type FieldValidator, fail, toList } from '../rest/validate.js';

/** Canonical text of an IP (IPv4 dotted quad; IPv6 RFC 5952), or undefined if invalid. */
export function parseIp(v: unknown): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff) return ipv4FromNumber(v);
  if (typeof v !== 'string') return undefined;
  if (/^\d+$/.test(v)) {
    const n = Number(v);
    return n <= 0xffffffff ? ipv4FromNumber(n) : undefined;
  }
  try {
    const a = ipaddr.parse(v);
    if (a.kind() === 'ipv4' && !ipaddr.IPv4.isValidFourPartDecimal(v)) return undefined;
    // An IPv4-mapped IPv6 address is the IPv4 address, as ip6addr treats it.
    if (a.kind() === 'ipv6' && (a as ipaddr.IPv6).isIPv4MappedAddress()) return (a as ipaddr.IPv6).toIPv4Address();
    return a;
  } catch {
    return undefined;
  }
}

function ipv4FromNumber(n: number): ipaddr.IPv4 {
  return new ipaddr.IPv4([(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
}

export function ipText(a: ipaddr.IPv4 | ipaddr.IPv6): string {
  return a.kind() === 'ipv4' ? a.toString() : (a as ipaddr.IPv6).toRFC5952String();
}

export const vIp: FieldValidator<string> = (field, v) => {
  const a = parseIp(v);
  return a ? ipText(a) : fail(field, 'invalid IP address');
};

export const vIpArray: FieldValidator<string[]> = (field, v) => {
  const list = toList(v);
  if (!list) return fail(field, 'must be an array of IP addresses');
  const out: string[] = [];
  const bad: unknown[] = [];
  for (const x of list) {
    const a = parseIp(x);
    if (a) out.push(ipText(a));
    else bad.push(x);
  }
  if (bad.length > 0) return fail(field, 'invalid IPs', { invalid: bad });
  return out;
};

export const vVlan: FieldValidator<number> = (field, v) => {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 4094) {
    return fail(field, 'VLAN ID must be a number between 0 and 4094, and not 1');
  }
  return n;
};

export const vVnetId: FieldValidator<number> = (field, v) => {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 16777215) {
    return fail(field, 'VNET ID must be a number between 0 and 16777215');
  }
  return n;
};

/** MAC in any macaddr-accepted form -> 'xx:xx:xx:xx:xx:xx'; undefined if invalid. */
export function parseMac(v: unknown): string | undefined {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 2 ** 48) {
    return macFromNumber(v);
  }
  if (typeof v !== 'string') return undefined;
  let parts: string[];
  if (/^[0-9a-fA-F]{12}$/.test(v)) parts = v.match(/../g) as string[];
  else {
    parts = v.split(/[:-]/);
    if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{1,2}$/.test(p))) return undefined;
  }
  return parts.map((p) => p.toLowerCase().padStart(2, '0')).join(':');
}

export function macFromNumber(n: number): string {
  return n.toString(16).padStart(12, '0').match(/../g)!.join(':');
}

export function macToNumber(mac: string): number {
  return parseInt(mac.replace(/[:-]/g, ''), 16);
}

export const vMac: FieldValidator<string> = (field, v) => parseMac(v) ?? fail(field, 'invalid MAC address');

export const vNicTagName: FieldValidator<string> = (field, v) => {
  if (typeof v !== 'string' || v.length === 0 || v.length > 31 || !/^[A-Za-z0-9_]+$/.test(v)) {
    return fail(field, 'must only contain numbers, letters and underscores');
  }
  return v;
};
