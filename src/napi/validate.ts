/**
 * Field validators for NAPI's network values: IP addresses, MACs, VLAN and VNET ids,
 * nic tag names (wording from sdc-napi lib/util/validate.js; parsing in src/net/addr.ts).
 * Pure: value in, clean value or fail(...) out, as the schema runner in
 * src/rest/validate.ts expects.
 */
import { tryCanonicalIp, tryCanonicalMac } from '../net/addr.js';
import { type FieldValidator, fail, toList } from '../rest/validate.js';

export const vIp: FieldValidator<string> = (field, v) => tryCanonicalIp(v) ?? fail(field, 'invalid IP address');

export const vIpArray: FieldValidator<string[]> = (field, v) => {
  const list = toList(v);
  if (!list) return fail(field, 'must be an array of IP addresses');
  const out: string[] = [];
  const bad: unknown[] = [];
  for (const x of list) {
    const ip = tryCanonicalIp(x);
    if (ip !== undefined) out.push(ip);
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

export const vMac: FieldValidator<string> = (field, v) => tryCanonicalMac(v) ?? fail(field, 'invalid MAC address');

export const vNicTagName: FieldValidator<string> = (field, v) => {
  if (typeof v !== 'string' || v.length === 0 || v.length > 31 || !/^[A-Za-z0-9_]+$/.test(v)) {
    return fail(field, 'must only contain numbers, letters and underscores');
  }
  return v;
};
