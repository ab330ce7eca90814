/**
 * Request parameters of the firewall routes (./routes/): parsing, the FWAPI checks and
 * error bodies they answer with. Pure: no store, no engine.
 */
import { type FieldError, type NapiError, forbidden, invalidParam, invalidParams, notFound, unknownParams } from '../rest/errors.js';
import { type Page, type Params, paginationFields, schema, textOf, validateParams } from '../rest/validate.js';
import { canonicalAddress } from './addr.js';
import type { Probe } from './explain.js';
import { isValidUuid, type ProtocolName, type TagRef } from './lang/index.js';
import type { PolicyRule, StoredRule } from './types.js';

/** FWAPI's PermissionDeniedError for an owner_uuid that does not match the resource's. */
export function ownerMismatch(): NapiError {
  return forbidden('owner does not match', [invalidParam('owner_uuid', 'owner_uuid does not match')]);
}

/** An owner_uuid given with an instance request must be the instance's (403 otherwise). */
export function assertInstanceOwner(owner: string | undefined, ownerParam: unknown): void {
  if (ownerParam === undefined) return;
  if (requireUuid('owner_uuid', ownerParam, 'Invalid owner UUID') !== owner) throw ownerMismatch();
}

/**
 * FWAPI's ruleBefore + disallowOwnerForGlobal (GET, PUT, DELETE /rules/:uuid): an
 * owner_uuid given with the request must be the rule's, and a global rule takes none.
 */
export function assertRuleOwner(rule: StoredRule, ownerParam: unknown): void {
  if (ownerParam === undefined) return;
  const owner = requireUuid('owner_uuid', ownerParam, 'Invalid owner UUID');
  if (rule.global === true || rule.owner_uuid === undefined || rule.owner_uuid !== owner) throw ownerMismatch();
}

export function ruleNotFound(): NapiError {
  return notFound('Rule not found');
}

export function requireUuid(field: string, v: unknown, message = 'Invalid UUID'): string {
  if (typeof v !== 'string' || !isValidUuid(v)) throw invalidParams([invalidParam(field, message)]);
  return v.toLowerCase();
}

export function boolParam(field: string, v: unknown, errors: FieldError[]): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === true || v === 'true') return true;
  if (v === false || v === 'false') return false;
  errors.push(invalidParam(field, `${field} must be true or false`));
  return undefined;
}

export function listParam(v: unknown): string[] {
  if (Array.isArray(v)) return v.map(String);
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter(Boolean);
  return [textOf(v)];
}

const LIST_PARAMS = new Set(['owner_uuid', 'global', 'enabled', 'log', 'action', 'protocol', 'vm', 'tag', 'ip', 'subnet', 'wildcard', 'limit', 'offset']);

export type RuleFilter = (r: PolicyRule) => boolean;

/** GET /rules parameters → one predicate (FWAPI: parameters ANDed, each target filter either side). */
export function listFilter(params: Record<string, unknown>): { filter: RuleFilter; limit: number; offset: number } {
  const errors: FieldError[] = [];
  const unknown = Object.keys(params).filter((k) => !LIST_PARAMS.has(k));
  if (unknown.length > 0) errors.push(unknownParams(unknown.sort()));
  const preds: RuleFilter[] = [];
  const global = boolParam('global', params.global, errors);
  let owner: string | undefined;
  if (params.owner_uuid !== undefined) {
    if (typeof params.owner_uuid === 'string' && isValidUuid(params.owner_uuid)) owner = params.owner_uuid.toLowerCase();
    else errors.push(invalidParam('owner_uuid', 'Invalid owner UUID'));
  }
  if (owner !== undefined) preds.push((r) => r.stored.owner_uuid === owner || (global === true && r.stored.global === true));
  else if (global !== undefined) preds.push((r) => (r.stored.global === true) === global);
  for (const f of ['enabled', 'log'] as const) {
    const b = boolParam(f, params[f], errors);
    if (b !== undefined) preds.push((r) => r.stored[f] === b);
  }
  if (params.action !== undefined) {
    const a = textOf(params.action).toLowerCase();
    if (a !== 'allow' && a !== 'block') errors.push(invalidParam('action', 'action must be "allow" or "block"'));
    preds.push((r) => r.model.action === a);
  }
  if (params.protocol !== undefined) {
    const p = textOf(params.protocol).toLowerCase();
    if (!['tcp', 'udp', 'icmp', 'icmp6', 'ah', 'esp'].includes(p)) errors.push(invalidParam('protocol', `Invalid protocol "${p}"`));
    preds.push((r) => r.model.protocol.name === p);
  }
  const both = (r: PolicyRule) => [r.model.from, r.model.to];
  if (params.vm !== undefined) {
    const vms = listParam(params.vm).map((s) => s.toLowerCase());
    if (vms.some((v) => !isValidUuid(v))) errors.push(invalidParam('vm', 'Invalid VM UUID'));
    preds.push((r) => both(r).some((s) => s.vms.some((v) => vms.includes(v))));
  }
  if (params.tag !== undefined) {
    const wanted = listParam(params.tag).map((t) => {
      const eq = t.indexOf('=');
      return eq < 0 ? { name: t, value: undefined } : { name: t.slice(0, eq), value: t.slice(eq + 1) };
    });
    const refMatches = (ref: TagRef) => {
      const name = typeof ref === 'string' ? ref : ref[0];
      const value = typeof ref === 'string' ? undefined : ref[1];
      return wanted.some((w) => w.name === name && (w.value === undefined || value === undefined || w.value === value));
    };
    preds.push((r) => both(r).some((s) => s.tags.some(refMatches)));
  }
  if (params.ip !== undefined) {
    const ips = listParam(params.ip).map((ip) => canonicalAddress(ip) ?? ip);
    preds.push((r) => both(r).some((s) => s.ips.some((ip) => ips.includes(canonicalAddress(ip) ?? ip))));
  }
  if (params.subnet !== undefined) {
    const subnets = listParam(params.subnet);
    preds.push((r) => both(r).some((s) => s.subnets.some((n) => subnets.includes(n))));
  }
  if (params.wildcard !== undefined) {
    const w = listParam(params.wildcard).map((x) => (x === 'all vms' || x === 'all' ? 'vmall' : x));
    preds.push((r) => both(r).some((s) => s.wildcards.some((x) => w.includes(x))));
  }
  const int = (f: string, min: number, max: number, dflt: number): number => {
    const v = params[f];
    if (v === undefined) return dflt;
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      errors.push(invalidParam(f, `${f} must be an integer between ${min} and ${max}`));
      return dflt;
    }
    return n;
  };
  const limit = int('limit', 1, 1000, 1000);
  const offset = int('offset', 0, Number.MAX_SAFE_INTEGER, 0);
  if (errors.length > 0) throw invalidParams(errors);
  return { filter: (r) => preds.every((p) => p(r)), limit, offset };
}

const PAGE_SCHEMA = schema({ optional: paginationFields });

/** limit (1..1000, default 1000) and offset, checked with NAPI's messages. */
export async function pageParams(params: Params): Promise<Page> {
  return validateParams(PAGE_SCHEMA, params);
}

export function parseProbe(params: Record<string, unknown>, errors: FieldError[]): Probe {
  const proto = textOf(params.proto ?? params.protocol ?? 'tcp').toLowerCase();
  if (!['tcp', 'udp', 'icmp', 'icmp6', 'ah', 'esp'].includes(proto)) errors.push(invalidParam('proto', `Invalid protocol "${proto}"`));
  const probe: Probe = { protocol: proto as ProtocolName };
  const num = (f: string, min: number, max: number): number | undefined => {
    const v = params[f];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      errors.push(invalidParam(f, `${f} must be an integer between ${min} and ${max}`));
      return undefined;
    }
    return n;
  };
  const port = num('port', 1, 65535);
  const type = num('type', 0, 255);
  const code = num('code', 0, 255);
  if (port !== undefined) probe.port = port;
  if (type !== undefined) probe.type = type;
  if (code !== undefined) probe.code = code;
  if ((proto === 'tcp' || proto === 'udp') && port === undefined) errors.push(invalidParam('port', 'port is required for tcp and udp'));
  return probe;
}
