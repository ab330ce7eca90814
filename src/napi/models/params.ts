/**
 * Field validators for the network-side routes (nic tags, networks, pools, fabrics,
 * aggregations, search) with sdc-napi's wording. Pure: value in, clean value or
 * fail(...) out, as src/rest/validate.ts expects.
 */
import { parseCidr, type Subnet } from '../ipmath.js';
import { isUuid, tryCanonicalIp } from '../../net/addr.js';
import { type FieldValidator, fail, textOf, toList } from '../../rest/validate.js';
import { vVlan } from '../validate.js';

export const NETWORK_MTU_MSG = 'mtu must be a number between 576 and 9000';
export const NIC_TAG_MTU_MSG = 'mtu must be a number between 1500 and 9000';

/** MTUs must be JSON numbers, as in NAPI. */
function vMtu(min: number, message: string): FieldValidator<number> {
  return (field, v) => (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= 9000 ? v : fail(field, message));
}
export const vNetworkMtu = vMtu(576, NETWORK_MTU_MSG);
export const vNicTagMtu = vMtu(1500, NIC_TAG_MTU_MSG);

/** NAPI's UUID array: array or CSV, 'invalid UUID' with the sorted offending values. */
export const vUuids: FieldValidator<string[]> = (field, v) => {
  const list = toList(v);
  if (!list) return fail(field, 'invalid UUID', { invalid: [v] });
  const bad = [...new Set(list.filter((x) => !isUuid(x)).map(textOf))].sort();
  if (bad.length > 0) return fail(field, 'invalid UUID', { invalid: bad });
  return [...new Set(list as string[])].sort();
};

/** Like vUuids, but null also clears (owner_uuids on update). */
export const vUuidsOrNull: FieldValidator<string[]> = (field, v, p, ctx) => (v === null ? [] : vUuids(field, v, p, ctx));

/** NAPI's IP array: array or CSV; 'invalid IP' / 'invalid IPs' with the offending values. */
export const vIps: FieldValidator<string[]> = (field, v) => {
  if (!Array.isArray(v) && typeof v !== 'string') return fail(field, 'must be an array of strings');
  const out: string[] = [];
  const bad: unknown[] = [];
  for (const x of toList(v) ?? []) {
    if (typeof x !== 'string') {
      bad.push(x);
      continue;
    }
    const s = x.replace(/\s+/g, '');
    if (s === '') continue;
    const ip = tryCanonicalIp(s);
    if (ip !== undefined) out.push(ip);
    else bad.push(s);
  }
  if (bad.length > 0) return fail(field, bad.length === 1 ? 'invalid IP' : 'invalid IPs', { invalid: bad });
  return out;
};

/** Gateway: '' or null mean "no gateway" (returns undefined, so the field is dropped). */
export const vGateway: FieldValidator<string | undefined> = (field, v) => {
  if (v === null || v === '') return undefined;
  return tryCanonicalIp(v) ?? fail(field, 'invalid IP address');
};

export const vSubnet: FieldValidator<Subnet> = (field, v) => {
  const r = parseCidr(v);
  return r.ok ? r.subnet : fail(field, r.message);
};

export const vFamily: FieldValidator<'ipv4' | 'ipv6'> = (field, v) =>
  v === 'ipv4' || v === 'ipv6' ? v : fail(field, 'must be one of: "ipv4", "ipv6"');

/** A string, or an array/CSV of strings meaning OR (list filters). Always a list. */
export const vStrings: FieldValidator<string[]> = (field, v) => {
  const list = toList(v);
  if (!list || list.length === 0 || list.some((x) => typeof x !== 'string' || x.length > 64)) {
    return fail(field, 'must be a string or an array of strings');
  }
  return list as string[];
};

/** UUIDs as an OR filter (CSV or array). */
export const vUuidFilter: FieldValidator<string[]> = (field, v) => {
  const list = toList(v);
  if (!list || list.length === 0 || list.some((x) => !isUuid(x))) return fail(field, 'invalid UUID');
  return list as string[];
};

/** VLAN IDs as an OR filter. */
export const vVlanFilter: FieldValidator<number[]> = (field, v, p, ctx) => {
  const list = typeof v === 'number' ? [v] : toList(v);
  if (!list || list.length === 0) return fail(field, 'VLAN ID must be a number between 0 and 4094, and not 1');
  const out: number[] = [];
  for (const x of list) {
    const r = vVlan(field, x, p, ctx);
    if (typeof r !== 'number') return r;
    out.push(r);
  }
  return out;
};

export const vFamilyFilter: FieldValidator<Array<'ipv4' | 'ipv6'>> = (field, v, p, ctx) => {
  const list = toList(v);
  if (!list || list.length === 0) return fail(field, 'must be one of: "ipv4", "ipv6"');
  const out: Array<'ipv4' | 'ipv6'> = [];
  for (const x of list) {
    const r = vFamily(field, x, p, ctx);
    if (typeof r !== 'string') return r;
    out.push(r);
  }
  return out;
};

/**
 * The `uuid` list filter: a full UUID, or a prefix ending in a single `*`
 * (NAPI-409). Returns {exact} or {prefix}.
 */
export const vUuidPrefix: FieldValidator<UuidMatch> = (field, v) => {
  if (typeof v !== 'string') return fail(field, 'invalid UUID');
  const stars = v.split('*').length - 1;
  if (stars === 0) return isUuid(v) ? { exact: v } : fail(field, 'invalid UUID');
  if (stars > 1) return fail(field, 'need only 1 wildcard');
  if (!v.endsWith('*')) return fail(field, 'only UUID prefixes are allowed');
  const prefix = v.slice(0, -1);
  if (!/^[0-9a-f-]*$/.test(prefix)) return fail(field, 'invalid UUID');
  return { prefix };
};

export type UuidMatch = { exact: string } | { prefix: string };

export function matchesUuid(uuid: string, m: UuidMatch | undefined): boolean {
  if (!m) return true;
  return 'exact' in m ? uuid === m.exact : uuid.startsWith(m.prefix);
}

/**
 * `fields`: which keys of the object to return. Array or CSV of known names, fewer
 * than all of them (restify-warden's validateFieldsArray).
 */
export function vFields(allowed: readonly string[]): FieldValidator<string[]> {
  return (field, v) => {
    const list = typeof v === 'string' ? toList(v) : v;
    if (!Array.isArray(list)) return fail(field, 'must be an array of strings');
    if (list.length === 0) return fail(field, 'must not be an empty array');
    if (list.length > allowed.length) return fail(field, `can only specify a maximum of ${allowed.length} fields`);
    for (const f of list) {
      if (typeof f !== 'string') return fail(field, 'must be an array of strings');
      if (!allowed.includes(f)) return fail(field, 'unknown field specified');
    }
    return list as string[];
  };
}

/** Keeps only the requested keys of a serialized object. */
export function pickFields<T extends object>(obj: T, fields: string[] | undefined): Partial<T> {
  if (!fields) return obj;
  const out: Record<string, unknown> = {};
  for (const f of fields) if (f in obj) out[f] = (obj as Record<string, unknown>)[f];
  return out as Partial<T>;
}

/**
 * Routes: {destination IP or CIDR: next hop IP (or 'linklocal' when allowed)}.
 * Keys come back canonical; 'invalid route(s)' lists every bad destination or hop.
 */
export function vRoutes(allowLinklocal: boolean): FieldValidator<Record<string, string>> {
  return (field, v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(field, 'must be an object');
    const out: Record<string, string> = {};
    const bad: unknown[] = [];
    let badRoutes = 0;
    for (const [dst, hop] of Object.entries(v as Record<string, unknown>)) {
      const before = bad.length;
      let key: string | undefined;
      if (dst.includes('/')) {
        const r = parseCidr(dst);
        if (r.ok) key = `${bigCanonical(dst.split('/')[0])}/${r.subnet.bits}`;
      } else {
        key = tryCanonicalIp(dst);
      }
      if (!key) bad.push(dst);
      let hopText: string | undefined;
      if (hop === 'linklocal' && allowLinklocal) hopText = 'linklocal';
      else {
        hopText = tryCanonicalIp(hop);
        if (hopText === undefined) bad.push(hop);
      }
      if (bad.length > before) badRoutes++;
      else out[key as string] = hopText as string;
    }
    if (badRoutes > 0) return fail(field, badRoutes === 1 ? 'invalid route' : 'invalid routes', { invalid: bad });
    return out;
  };
}

function bigCanonical(ip: string): string {
  return tryCanonicalIp(ip) ?? ip;
}

/** The family of a route destination key (IP or CIDR). */
export function routeFamily(dst: string): 'ipv4' | 'ipv6' {
  return dst.split('/')[0].includes(':') ? 'ipv6' : 'ipv4';
}
