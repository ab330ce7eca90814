/**
 * Parameter validation in the manner of restify-warden, which NAPI uses:
 *   phase 1: every field validator runs, all errors are collected (sorted by field);
 *   phase 2: only if phase 1 passed, cross-field "after" checks run in order and stop
 *            at the first failure.
 * Strict schemas reject unknown parameters with UnknownParameters.
 * Validators are pure functions: value in, normalised value out, or a FieldError.
 */
import ipaddr from 'ipaddr.js';
import { type FieldError, invalidParam, invalidParams, missingParam, unknownParams } from './errors.js';

export type Params = Record<string, unknown>;

/** Returns the normalised value, or a FieldError (or a list of them). */
export type Validator = (field: string, value: unknown, params: Params) => unknown | FieldError | FieldError[];

export class Invalid {
  constructor(readonly errors: FieldError[]) {}
}

/** Validators signal failure by returning fail(...); anything else is the clean value. */
export function fail(field: string, message: string, extra: Partial<FieldError> = {}): Invalid {
  return new Invalid([invalidParam(field, message, extra)]);
}

export type FieldValidator = (field: string, value: unknown, params: Params) => unknown;

export interface Schema {
  required?: Record<string, FieldValidator>;
  optional?: Record<string, FieldValidator>;
  /** Reject parameters not named in required/optional/allowed. */
  strict?: boolean;
  /** Extra names a strict schema tolerates (e.g. path parameters). */
  allowed?: string[];
  /** Cross-field checks, run in order after all fields pass; throw a NapiError to fail. */
  after?: Array<(clean: Params, raw: Params) => void | Promise<void>>;
}

function isAbsent(v: unknown): boolean {
  return v === undefined || v === null;
}

/**
 * Validates raw merged parameters against a schema; returns the cleaned parameters
 * (only known fields, normalised) or throws the NAPI 422.
 */
export async function validateParams(schema: Schema, raw: Params): Promise<Params> {
  const errors: FieldError[] = [];
  const clean: Params = {};
  const req = schema.required ?? {};
  const opt = schema.optional ?? {};

  for (const [field, v] of Object.entries(req)) {
    if (isAbsent(raw[field]) || raw[field] === '') {
      errors.push(missingParam(field));
      continue;
    }
    collect(field, v(field, raw[field], raw));
  }
  for (const [field, v] of Object.entries(opt)) {
    if (raw[field] === undefined) continue;
    collect(field, v(field, raw[field], raw));
  }
  if (schema.strict) {
    const known = new Set([...Object.keys(req), ...Object.keys(opt), ...(schema.allowed ?? [])]);
    const unknown = Object.keys(raw).filter((k) => !known.has(k));
    if (unknown.length > 0) errors.push(unknownParams(unknown.sort()));
  }
  if (errors.length > 0) throw invalidParams(errors);
  for (const check of schema.after ?? []) await check(clean, raw);
  return clean;

  function collect(field: string, result: unknown): void {
    if (result instanceof Invalid) errors.push(...result.errors);
    else if (result !== undefined) clean[field] = result;
  }
}

// ---- field validators (wording from restify-warden and sdc-napi lib/util/validate.js) ----

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isUuid(v: unknown): v is string {
  return typeof v === 'string' && UUID_RE.test(v);
}

export const vString: FieldValidator = (field, v) => {
  if (typeof v !== 'string') return fail(field, 'must be a string');
  if (v.length > 64) return fail(field, 'must not be longer than 64 characters');
  if (v.trim().length === 0) return fail(field, 'must not be empty');
  return v;
};

export const vUuid: FieldValidator = (field, v) => (isUuid(v) ? v : fail(field, 'invalid UUID'));

/** Array or comma-separated string of UUIDs; deduplicated and sorted. */
export const vUuidArray: FieldValidator = (field, v) => {
  const list = toList(v);
  if (!list) return fail(field, 'must be an array of UUIDs');
  const bad = list.filter((x) => !isUuid(x));
  if (bad.length > 0) return fail(field, 'invalid UUIDs', { invalid: bad });
  return [...new Set(list as string[])].sort();
};

export const vBool: FieldValidator = (field, v) => {
  if (v === true || v === 'true') return true;
  if (v === false || v === 'false') return false;
  return fail(field, 'must be a boolean value');
};

/** Array, or comma-separated string, of strings; undefined when not list-like. */
export function toList(v: unknown): unknown[] | undefined {
  if (Array.isArray(v)) return v;
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  return undefined;
}

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

export const vIp: FieldValidator = (field, v) => {
  const a = parseIp(v);
  return a ? ipText(a) : fail(field, 'invalid IP address');
};

export const vIpArray: FieldValidator = (field, v) => {
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

export const vVlan: FieldValidator = (field, v) => {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 4094) {
    return fail(field, 'VLAN ID must be a number between 0 and 4094, and not 1');
  }
  return n;
};

export const vVnetId: FieldValidator = (field, v) => {
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

export const vMac: FieldValidator = (field, v) => parseMac(v) ?? fail(field, 'invalid MAC address');

export const vNicTagName: FieldValidator = (field, v) => {
  if (typeof v !== 'string' || v.length === 0 || v.length > 31 || !/^[A-Za-z0-9_]+$/.test(v)) {
    return fail(field, 'must only contain numbers, letters and underscores');
  }
  return v;
};

/** Integer parameter (JSON number or numeric string) within [min, max]. */
export function vInt(min: number, max: number, message: string): FieldValidator {
  return (field, v) => {
    const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) return fail(field, message);
    return n;
  };
}

export const vLimit = vInt(1, 1000, 'invalid limit, must be an integer greater than 0 or less than or equal to 1000');
export const vOffset = vInt(0, Number.MAX_SAFE_INTEGER, 'invalid value, offset must be an integer greater than or equal to 0');

/** Pagination fields every list route takes. */
export const paginationFields: Record<string, FieldValidator> = { limit: vLimit, offset: vOffset };

/** limit when none is given (also the largest accepted). */
export const DEFAULT_LIMIT = 1000;

/** Applies limit/offset (defaults 1000/0) to an already sorted list. */
export function paginate<T>(items: T[], clean: Params): T[] {
  const offset = (clean.offset as number | undefined) ?? 0;
  const limit = (clean.limit as number | undefined) ?? DEFAULT_LIMIT;
  return items.slice(offset, offset + limit);
}

/** Throws the NAPI 422 for a single field error (for "after" checks and business rules). */
export function rejectField(field: string, message: string, extra: Partial<FieldError> = {}): never {
  throw invalidParams([invalidParam(field, message, extra)]);
}
