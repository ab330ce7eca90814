/**
 * Request parameters of the firewall routes (./api.ts): parsing, the FWAPI checks and
 * error bodies they answer with. Pure: no store, no engine.
 */
import { type FieldError, NapiError, invalidParam, invalidParams, notFound, unknownParams } from '../napi/errors.js';
import { type Params, paginationFields, validateParams } from '../napi/validate.js';
import { canonicalAddress } from './addr.js';
import { type DockerContainerRecord, type DockerPort, parseLink, parsePort, parsePublish } from './docker.js';
import type { Probe } from './explain.js';
import { isValidUuid, type ProtocolName, type TagRef } from './lang/index.js';
import type { PolicyRule, StoredRule } from './types.js';

export function forbidden(message = 'owner does not match'): NapiError {
  return new NapiError(403, 'Forbidden', message);
}

/** FWAPI's PermissionDeniedError for an owner_uuid that does not match the resource's. */
export function ownerMismatch(): NapiError {
  return new NapiError(403, 'Forbidden', 'owner does not match', [invalidParam('owner_uuid', 'owner_uuid does not match')]);
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
  return [String(v)];
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
    const a = String(params.action).toLowerCase();
    if (a !== 'allow' && a !== 'block') errors.push(invalidParam('action', 'action must be "allow" or "block"'));
    preds.push((r) => r.model.action === a);
  }
  if (params.protocol !== undefined) {
    const p = String(params.protocol).toLowerCase();
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

/** limit (1..1000, default 1000) and offset, checked with NAPI's messages. */
export async function pageParams(params: Record<string, unknown>): Promise<Params> {
  return validateParams({ optional: paginationFields }, params);
}

export function parseProbe(params: Record<string, unknown>, errors: FieldError[]): Probe {
  const proto = String(params.proto ?? params.protocol ?? 'tcp').toLowerCase();
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

export function parseContainer(uuid: string, params: Record<string, unknown>, base?: DockerContainerRecord): { record: DockerContainerRecord; icc?: boolean } {
  const errors: FieldError[] = [];
  const known = new Set(['uuid', 'owner_uuid', 'name', 'links', 'exposed_ports', 'published_ports', 'publish_all', 'env', 'icc']);
  const unknown = Object.keys(params).filter((k) => !known.has(k));
  if (unknown.length > 0) errors.push(unknownParams(unknown.sort()));
  if (!isValidUuid(uuid)) errors.push(invalidParam('uuid', 'Invalid container UUID'));
  const owner = params.owner_uuid ?? base?.owner_uuid;
  if (typeof owner !== 'string' || !isValidUuid(owner)) errors.push(invalidParam('owner_uuid', 'Invalid owner UUID'));
  const name = params.name ?? base?.name;
  if (typeof name !== 'string' || !/^\/?[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) errors.push(invalidParam('name', 'Invalid container name'));
  const list = <T>(field: string, parse: (v: unknown) => T | string, dflt: T[]): T[] => {
    const v = params[field];
    if (v === undefined) return dflt;
    if (!Array.isArray(v)) {
      errors.push(invalidParam(field, `${field} must be an array`));
      return dflt;
    }
    const out: T[] = [];
    for (const item of v) {
      const r = parse(item);
      if (typeof r === 'string') errors.push(invalidParam(field, r));
      else out.push(r);
    }
    return out;
  };
  const links = list('links', parseLink, base?.links ?? []);
  const exposed = list<DockerPort>('exposed_ports', parsePort, base?.exposed ?? []);
  const published = list<DockerPort>('published_ports', parsePublish, base?.published ?? []);
  const env = list<{ kv: string }>('env', (v) => (typeof v === 'string' && v.indexOf('=') > 0 ? { kv: v } : 'env entries must be "KEY=VALUE"'), (base?.env ?? []).map((kv) => ({ kv }))).map((e) => e.kv);
  const publishAll = boolParam('publish_all', params.publish_all, errors) ?? base?.publish_all ?? false;
  const icc = boolParam('icc', params.icc, errors);
  if (errors.length > 0) throw invalidParams(errors);
  const record: DockerContainerRecord = {
    uuid: uuid.toLowerCase(),
    owner_uuid: (owner as string).toLowerCase(),
    name: (name as string).replace(/^\//, ''),
    links,
    exposed,
    published,
    publish_all: publishAll,
    env,
  };
  return icc === undefined ? { record } : { record, icc };
}
