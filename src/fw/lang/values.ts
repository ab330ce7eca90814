/**
 * Value checks fwrule runs while parsing (lib/index.js `parser.yy.*` and
 * lib/validators.js), with its exact messages.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { valueError } from './errors.js';
import { isUuid } from '../../net/addr.js';

const NON_DIGIT_RE = /[^0-9]/;

export function isValidUuid(text: string): boolean {
  return isUuid(text);
}

/** fwrule also refuses the all-zeroes and broadcast addresses. */
export function checkIPv4Address(ip: string): void {
  if (!isIPv4(ip) || ip === '255.255.255.255' || ip === '0.0.0.0') {
    throw valueError(`IPv4 address "${ip}" is invalid`);
  }
}

export function checkIPv6Address(ip: string): void {
  if (!isIPv6(ip)) throw valueError(`IPv6 address "${ip}" is invalid`);
}

export function checkUuid(text: string): void {
  if (!isValidUuid(text)) throw valueError(`UUID "${text}" is invalid`);
}

function checkNumberInRange(num: string, min: number, max: number, what: string): number {
  if (NON_DIGIT_RE.test(num) || Number(num) < min || Number(num) > max) {
    throw valueError(`${what} "${num}" is invalid`);
  }
  return Number(num);
}

export const checkPort = (num: string): number => checkNumberInRange(num, 1, 65535, 'Port number');
export const checkIcmpType = (num: string): number => checkNumberInRange(num, 0, 255, 'ICMP type');
export const checkIcmpCode = (num: string): number => checkNumberInRange(num, 0, 255, 'ICMP code');
export const checkPriority = (num: string): number =>
  checkNumberInRange(num, 0, 100, 'Priority level');

export function checkRangeOrder(start: string, end: string): void {
  if (Number(end) < Number(start)) {
    throw valueError(`The end of the range (${end}) cannot be less than the start (${start})`);
  }
}

/**
 * Parse an address the way node-ip6addr does (fwrule validates subnets with
 * it): returns eight 16-bit fields (IPv4 becomes v4-mapped) or null.
 */
export function parseAddressFields(input: string): { fields: number[]; ipv4: boolean } | null {
  const text = input.toLowerCase();
  if (text.length > 40) return null;
  let ip6: string[] = [];
  const ip4: string[] = [];
  let expIndex: number | null = null;
  let value = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === ':') {
      if (text[i + 1] === ':') {
        if (expIndex !== null) return null; // several '::'
        if (value !== '') ip6.push(value);
        value = '';
        expIndex = ip6.length;
        i++;
      } else {
        if (value === '') return null;
        ip6.push(value);
        value = '';
      }
    } else if (c === '.') {
      ip4.push(value);
      value = '';
    } else {
      value += c;
    }
  }
  if (value !== '') {
    if (ip4.length !== 0) ip4.push(value);
    else ip6.push(value);
  } else if (expIndex !== ip6.length || ip4.length > 0) {
    return null; // may only end with '::'
  }
  let ipv4 = false;
  if (ip4.length === 0) {
    if (ip6.length > 8 || (ip6.length < 8 && expIndex === null)) return null;
  } else {
    if (ip4.length !== 4) return null;
    if (ip6.length === 0 && expIndex === null) {
      ipv4 = true;
      ip6 = ['ffff'];
      expIndex = 0;
    }
    if (ip6.length > 6 || (ip6.length < 6 && expIndex === null)) return null;
  }
  const nums: number[] = [];
  for (const f of ip6) {
    if (!/^[0-9a-f]+$/.test(f)) return null;
    const n = parseInt(f, 16);
    if (n > 0xffff) return null;
    nums.push(n);
  }
  const quad: number[] = [];
  for (const f of ip4) {
    if (!/^[0-9]+$/.test(f)) return null;
    const n = parseInt(f, 10);
    if (n > 255) return null;
    quad.push(n);
  }
  if (quad.length !== 0) nums.push(quad[0] * 256 + quad[1], quad[2] * 256 + quad[3]);
  let fields = nums;
  if (nums.length < 8 && expIndex !== null) {
    const filler = new Array<number>(8 - nums.length).fill(0);
    fields = [...nums.slice(0, expIndex), ...filler, ...nums.slice(expIndex)];
  }
  if (quad.length !== 0) {
    const mapped = [0, 0, 0, 0, 0, 0xffff];
    if (!mapped.every((v, i) => fields[i] === v)) return null;
  }
  return { fields, ipv4 };
}

/** fwrule's validateSubnet(): three distinct failure messages. */
export function checkSubnet(input: string, enforceSubnetMask: boolean): void {
  const [addrText, prefixText] = input.split('/');
  const addr = parseAddressFields(addrText);
  if (addr === null) throw valueError(`Subnet "${input}" is invalid (bad address component)`);
  let prefix = Number(prefixText) | 0;
  if (addr.ipv4) prefix += 96;
  if (prefix < 0 || prefix > 128) throw valueError(`Subnet "${input}" is invalid (bad prefix length)`);
  if (enforceSubnetMask) {
    let bits = prefix;
    for (let i = 0; i < 8; i++, bits -= 16) {
      const keep = bits >= 16 ? 0xffff : bits <= 0 ? 0 : 0xffff - ((1 << (16 - bits)) - 1);
      if ((addr.fields[i] & keep) !== addr.fields[i]) {
        throw valueError(`Subnet "${input}" is invalid (bits set to right of mask)`);
      }
    }
  }
}
