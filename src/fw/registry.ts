/**
 * Firewall storage: where rules, instance records and Docker container specs live in the
 * store, and FWAPI's rule-object validation (fields collected into one 422, rule text
 * through fwrule with enforceSubnetMask, exactly one of global / owner_uuid).
 *
 *   fw/rules/<uuid>                    StoredRule
 *   fw/instances/<uuid>                InstanceRecord (owner_uuid, tags, firewall_enabled)
 *   fw/docker/containers/<uuid>        DockerContainerRecord (./docker.ts)
 *   fw/docker/owners/<owner uuid>      { icc: boolean }
 *   fw/docker/networks/<network uuid>  DockerNetworkRecord (./docker-networks.ts)
 *
 * Instance addresses and hosting nodes are not stored here: they come from the NICs
 * (napi/nics/…, belongs_to_uuid, ip, cn_uuid).
 */
import { randomUUID } from 'node:crypto';
import { type FieldError, invalidParam, invalidParams, missingParam } from '../rest/errors.js';
import { FwRuleError, isValidUuid, parseRule, validateRule } from './lang/index.js';
import type { InstanceRecord, PolicyRule, StoredRule } from './types.js';

export const FW_PREFIX = 'fw/';
export const RULE_PREFIX = 'fw/rules/';
export const INSTANCE_PREFIX = 'fw/instances/';
export const DOCKER_CONTAINER_PREFIX = 'fw/docker/containers/';
export const DOCKER_OWNER_PREFIX = 'fw/docker/owners/';
export const DOCKER_NETWORK_PREFIX = 'fw/docker/networks/';

export const ruleKey = (uuid: string): string => RULE_PREFIX + uuid;
export const instanceKey = (uuid: string): string => INSTANCE_PREFIX + uuid;
export const dockerContainerKey = (uuid: string): string => DOCKER_CONTAINER_PREFIX + uuid;
export const dockerOwnerKey = (owner: string): string => DOCKER_OWNER_PREFIX + owner;
export const dockerNetworkKey = (network: string): string => DOCKER_NETWORK_PREFIX + network;

/** FWAPI's serialized field order (fwrule's FIELDS). */
export const RULE_FIELDS = ['created_by', 'description', 'enabled', 'global', 'log', 'owner_uuid', 'rule', 'uuid', 'version'] as const;

/** fwrule's version string: epoch ms, a dot, the pid zero-padded to 6 digits. */
export function newVersion(now = Date.now()): string {
  return `${now}.${String(process.pid).padStart(6, '0')}`;
}

/** A stored rule with its fields in FWAPI's order (global only when true). */
export function serializeRule(r: StoredRule): StoredRule {
  const out: Record<string, unknown> = {};
  for (const f of RULE_FIELDS) if (r[f] !== undefined) out[f] = r[f];
  return out as unknown as StoredRule;
}

export function toPolicyRule(stored: StoredRule): PolicyRule {
  return { stored, model: parseRule(stored.rule, { enforceSubnetMask: false }) };
}

function fwErrorToField(err: FwRuleError): FieldError {
  return invalidParam(err.field, err.message);
}

function boolField(field: string, v: unknown, errors: FieldError[]): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === true || v === 'true') return true;
  if (v === false || v === 'false') return false;
  errors.push(invalidParam(field, `${field} must be true or false`));
  return undefined;
}

function stringField(field: string, v: unknown, errors: FieldError[]): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') {
    errors.push(invalidParam(field, `${field} must be a string`));
    return undefined;
  }
  if (v.length >= 255) {
    errors.push(invalidParam(field, `${field} must be shorter than 255 characters`));
    return undefined;
  }
  return v;
}

export const RULE_PARAMS = new Set(['rule', 'uuid', 'owner_uuid', 'global', 'enabled', 'log', 'description', 'created_by']);

/**
 * Builds a rule object from request parameters the way FWAPI's `new Rule()` does:
 * every field checked, all errors in one 422 (fwrule's wording, field blamed), the rule
 * text stored in canonical form. `base` is the existing rule for an update (merged
 * under the parameters; uuid immutable).
 */
export function buildStoredRule(params: Record<string, unknown>, base?: StoredRule): StoredRule {
  const merged: Record<string, unknown> = { ...(base ?? {}), ...params };
  if (base) merged.uuid = base.uuid;
  // An update that names owner_uuid (or global) replaces the other.
  if (base && params.owner_uuid !== undefined && params.global === undefined) delete merged.global;
  if (base && params.global !== undefined && params.owner_uuid === undefined && (params.global === true || params.global === 'true')) {
    delete merged.owner_uuid;
  }
  const errors: FieldError[] = [];
  let canonical: string | undefined;
  if (merged.rule === undefined || merged.rule === null || merged.rule === '') {
    errors.push(missingParam('rule', 'No rule specified'));
  } else {
    const res = validateRule(merged.rule, { enforceSubnetMask: true });
    if (res.ok) canonical = res.canonical;
    else errors.push(fwErrorToField(res.error));
  }
  let uuid: string | undefined;
  if (merged.uuid !== undefined) {
    if (typeof merged.uuid === 'string' && isValidUuid(merged.uuid)) uuid = merged.uuid.toLowerCase();
    else errors.push(invalidParam('uuid', 'Invalid rule UUID'));
  }
  let owner: string | undefined;
  if (merged.owner_uuid !== undefined && merged.owner_uuid !== null) {
    if (typeof merged.owner_uuid === 'string' && isValidUuid(merged.owner_uuid)) owner = merged.owner_uuid.toLowerCase();
    else errors.push(invalidParam('owner_uuid', 'Invalid owner UUID'));
  }
  const enabled = boolField('enabled', merged.enabled, errors);
  const log = boolField('log', merged.log, errors);
  const global = boolField('global', merged.global, errors);
  const description = stringField('description', merged.description, errors);
  const createdBy = stringField('created_by', merged.created_by, errors);
  if (errors.length === 0) {
    if (global === true && merged.owner_uuid !== undefined) {
      errors.push(invalidParam('global', 'cannot specify both global and owner_uuid'));
    } else if (global !== true && owner === undefined) {
      errors.push(missingParam('owner_uuid', 'owner_uuid required'));
    }
  }
  if (errors.length > 0) throw invalidParams(errors);
  const rule: StoredRule = {
    uuid: uuid ?? randomUUID(),
    rule: canonical!,
    enabled: enabled ?? false,
    log: log ?? false,
    version: newVersion(),
  };
  if (owner !== undefined) rule.owner_uuid = owner;
  else rule.global = true;
  if (description !== undefined) rule.description = description;
  if (createdBy !== undefined) rule.created_by = createdBy;
  return serializeRule(rule);
}

export const INSTANCE_PARAMS = new Set(['uuid', 'owner_uuid', 'tags', 'firewall_enabled']);

/** Validates an instance registry write (PUT /fw/instances/:uuid); merged over `base`. */
export function buildInstanceRecord(uuid: string, params: Record<string, unknown>, base?: InstanceRecord): InstanceRecord {
  const errors: FieldError[] = [];
  if (!isValidUuid(uuid)) errors.push(invalidParam('uuid', 'Invalid instance UUID'));
  const unknown = Object.keys(params).filter((k) => !INSTANCE_PARAMS.has(k));
  if (unknown.length > 0) errors.push({ field: unknown.sort(), code: 'UnknownParameters', message: `Unknown parameters: ${unknown.sort().join(', ')}` });
  let owner = base?.owner_uuid;
  if (params.owner_uuid !== undefined) {
    if (typeof params.owner_uuid === 'string' && isValidUuid(params.owner_uuid)) owner = params.owner_uuid.toLowerCase();
    else errors.push(invalidParam('owner_uuid', 'Invalid owner UUID'));
  }
  let tags = base?.tags ?? {};
  if (params.tags !== undefined) {
    const t = params.tags;
    if (t === null || typeof t !== 'object' || Array.isArray(t)) {
      errors.push(invalidParam('tags', 'tags must be an object'));
    } else {
      const bad = Object.entries(t).filter(([, v]) => !['string', 'number', 'boolean'].includes(typeof v));
      if (bad.length > 0) errors.push(invalidParam('tags', `tag values must be strings, numbers or booleans: ${bad.map(([k]) => k).join(', ')}`));
      else tags = { ...(t as Record<string, string | number | boolean>) };
    }
  }
  let enabled = base?.firewall_enabled ?? false;
  if (params.firewall_enabled !== undefined) {
    const v = params.firewall_enabled;
    if (v === true || v === 'true') enabled = true;
    else if (v === false || v === 'false') enabled = false;
    else errors.push(invalidParam('firewall_enabled', 'firewall_enabled must be true or false'));
  }
  if (errors.length > 0) throw invalidParams(errors);
  const rec: InstanceRecord = { uuid: uuid.toLowerCase(), tags, firewall_enabled: enabled };
  if (owner !== undefined) rec.owner_uuid = owner;
  return rec;
}
