/**
 * Docker networking semantics over the firewall.
 *
 * - icc on (Docker's default; sdc-docker's model): owner-scoped
 *   `FROM tag "sdc_docker" TO tag "sdc_docker" ALLOW tcp|udp PORT all` — one rule per
 *   protocol, since a fwrule names one protocol.
 * - containers of a Docker network (`network`: the fabric network's uuid, from the Docker
 *   plugin) take icc from that network's record (./docker-networks.ts) instead of the
 *   owner's, and are tagged `sdc_docker_network = <uuid>` rather than `sdc_docker`: with
 *   icc on, every container of that network reaches every other (tcp, udp and icmp, as
 *   Docker's bridge allows everything), and no other network's.
 * - icc off: only a container linking to a target reaches it, and only on the target's
 *   exposed ports: `FROM vm <linker> TO vm <target> ALLOW tcp|udp PORTS …`.
 * - published ports (-p, or every exposed port with -P): `FROM any TO vm <uuid> ALLOW …`.
 * - links also give Docker's environment variables and /etc/hosts lines, computed from the
 *   target's current address (recomputed whenever asked, so they follow address changes).
 *
 * Rules are owned by the container's owner and get uuids derived from (owner, text), so
 * reconciling the wanted set with the stored one is idempotent.
 *
 * The semantics and the parsing of the API's container spec are pure; saving and removing
 * a container (its record, its instance record, the owner's reconciled rules) work inside
 * a caller's transaction, with no HTTP.
 */
import { createHash } from 'node:crypto';
import { type FieldError, type NapiError, forbidden, invalidParam, invalidParams, notFound, unknownParams } from '../rest/errors.js';
import { type Params, textOf } from '../rest/validate.js';
import type { Tx } from '../store/txn.js';
import { boolParam } from './api-params.js';
import { ownerNetworkIcc } from './docker-networks.js';
import { canonicalize, isValidUuid } from './lang/index.js';
import {
  DOCKER_CONTAINER_PREFIX,
  RULE_PREFIX,
  dockerContainerKey,
  dockerOwnerKey,
  instanceKey,
  newVersion,
  ruleKey,
  serializeRule,
} from './registry.js';
import type { InstanceRecord, PolicyRule, StoredRule } from './types.js';

export type DockerProto = 'tcp' | 'udp';

export interface DockerPort {
  port: number;
  proto: DockerProto;
}

export interface DockerLink {
  /** Target container: name or uuid, within the same owner. */
  target: string;
  alias: string;
}

export interface DockerContainerRecord {
  uuid: string;
  owner_uuid: string;
  name: string;
  links: DockerLink[];
  exposed: DockerPort[];
  published: DockerPort[];
  /** -P: publish every exposed port. */
  publish_all: boolean;
  /** The container's own environment (KEY=VALUE), exported to linkers as ALIAS_ENV_*. */
  env: string[];
  /** The fabric network of its Docker network (Docker plugin containers); icc is that network's. */
  network?: string;
}

/** A rule the Docker semantics want to exist. */
export interface DockerRule {
  uuid: string;
  owner_uuid: string;
  rule: string;
  description: string;
}

export const DOCKER_TAG = 'sdc_docker';
/** Tag of a Docker network's containers; its value is the fabric network's uuid. */
export const DOCKER_NETWORK_TAG = 'sdc_docker_network';
export const DOCKER_CREATED_BY = 'rhumb-docker';
/** fwrule v4 allows 24 ports per rule. */
const PORTS_PER_RULE = 24;

/** A stable uuid (v5-shaped) for a docker-managed rule. */
export function dockerRuleUuid(owner: string, text: string): string {
  const h = createHash('sha1').update(`rhumb-docker\n${owner}\n${text}`).digest('hex');
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function uniqSorted(ports: number[]): number[] {
  return [...new Set(ports)].sort((a, b) => a - b);
}

function portClauses(ports: number[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < ports.length; i += PORTS_PER_RULE) {
    const chunk = ports.slice(i, i + PORTS_PER_RULE);
    out.push(chunk.length === 1 ? `PORT ${chunk[0]}` : `(${chunk.map((p) => `PORT ${p}`).join(' AND ')})`);
  }
  return out;
}

function byProto(ports: DockerPort[], proto: DockerProto): number[] {
  return uniqSorted(ports.filter((p) => p.proto === proto).map((p) => p.port));
}

/** Resolves a link target among the owner's containers (uuid, then name). */
export function resolveTarget(containers: readonly DockerContainerRecord[], owner: string, target: string): DockerContainerRecord | undefined {
  const mine = containers.filter((c) => c.owner_uuid === owner);
  return mine.find((c) => c.uuid === target) ?? mine.find((c) => c.name === target);
}

export function publishedPorts(c: DockerContainerRecord): DockerPort[] {
  return c.publish_all ? [...c.exposed, ...c.published] : c.published;
}

/**
 * Every rule one owner's containers need, sorted by text. `icc` is the owner's setting
 * (containers without a network); `networkIcc` a network's (default on).
 */
export function dockerRules(
  owner: string,
  containers: readonly DockerContainerRecord[],
  icc: boolean,
  networkIcc: ReadonlyMap<string, boolean> = new Map(),
): DockerRule[] {
  const texts = new Map<string, string>();
  const mine = containers.filter((c) => c.owner_uuid === owner);
  const iccOf = (c: DockerContainerRecord): boolean => (c.network === undefined ? icc : (networkIcc.get(c.network) ?? true));
  if (icc && mine.some((c) => c.network === undefined)) {
    for (const proto of ['tcp', 'udp'] as const) {
      texts.set(`FROM tag "${DOCKER_TAG}" TO tag "${DOCKER_TAG}" ALLOW ${proto} PORT all`, 'docker: inter-container communication');
    }
  }
  for (const net of new Set(mine.flatMap((c) => (c.network !== undefined && iccOf(c) ? [c.network] : [])))) {
    const tag = `tag "${DOCKER_NETWORK_TAG}" = "${net}"`;
    for (const what of ['tcp PORT all', 'udp PORT all', 'icmp TYPE all']) {
      texts.set(`FROM ${tag} TO ${tag} ALLOW ${what}`, `docker: inter-container communication on network ${net}`);
    }
  }
  for (const c of mine) {
    if (!iccOf(c)) {
      for (const link of c.links) {
        const t = resolveTarget(mine, owner, link.target);
        if (!t || t.uuid === c.uuid) continue;
        for (const proto of ['tcp', 'udp'] as const) {
          for (const clause of portClauses(byProto(t.exposed, proto))) {
            texts.set(`FROM vm ${c.uuid} TO vm ${t.uuid} ALLOW ${proto} ${clause}`, `docker: link ${c.name} -> ${t.name}:${link.alias}`);
          }
        }
      }
    }
    const pub = publishedPorts(c);
    for (const proto of ['tcp', 'udp'] as const) {
      for (const clause of portClauses(byProto(pub, proto))) {
        texts.set(`FROM any TO vm ${c.uuid} ALLOW ${proto} ${clause}`, `docker: published ports of ${c.name}`);
      }
    }
  }
  return [...texts]
    .map(([text, description]) => {
      const rule = canonicalize(text);
      return { uuid: dockerRuleUuid(owner, rule), owner_uuid: owner, rule, description };
    })
    .sort((a, b) => (a.rule < b.rule ? -1 : a.rule > b.rule ? 1 : 0));
}

/** Docker's alias form in variable names: upper case, every '-' as '_'. */
export function envAlias(alias: string): string {
  return alias.toUpperCase().replace(/-/g, '_');
}

export interface ResolvedLink {
  alias: string;
  target: DockerContainerRecord;
  /** The target's current address (undefined: it has none yet). */
  ip: string | undefined;
}

/** Docker's link environment for one link (docker/daemon/links ToEnv). */
export function linkEnv(containerName: string, link: ResolvedLink): string[] {
  const A = envAlias(link.alias);
  const env: string[] = [`${A}_NAME=/${containerName}/${link.alias}`];
  if (link.ip !== undefined) {
    const ports = [...link.target.exposed].sort((a, b) => a.port - b.port || (a.proto < b.proto ? -1 : 1));
    const seen = new Set<string>();
    const first = ports[0];
    if (first) env.push(`${A}_PORT=${first.proto}://${link.ip}:${first.port}`);
    for (const p of ports) {
      const key = `${p.port}_${p.proto.toUpperCase()}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const base = `${A}_PORT_${key}`;
      env.push(`${base}=${p.proto}://${link.ip}:${p.port}`);
      env.push(`${base}_ADDR=${link.ip}`);
      env.push(`${base}_PORT=${p.port}`);
      env.push(`${base}_PROTO=${p.proto}`);
    }
  }
  for (const kv of link.target.env) {
    const eq = kv.indexOf('=');
    if (eq <= 0) continue;
    const name = kv.slice(0, eq);
    if (name === 'HOME' || name === 'PATH') continue;
    env.push(`${A}_ENV_${name}=${kv.slice(eq + 1)}`);
  }
  return env;
}

/** One /etc/hosts line per link with an address: ip, alias, then the target's name. */
export function hostsLines(links: readonly ResolvedLink[]): string[] {
  return links
    .filter((l) => l.ip !== undefined)
    .map((l) => `${l.ip}\t${[...new Set([l.alias, l.target.name])].join(' ')}`);
}

export interface LinkDetails {
  env: string[];
  hosts: string[];
}

export function linkDetails(containerName: string, links: readonly ResolvedLink[]): LinkDetails {
  return { env: links.flatMap((l) => linkEnv(containerName, l)), hosts: hostsLines(links) };
}

// ---- parsing the API's port and link notation ----

/** "5432", "5432/tcp", 53/udp, {port, proto}. */
export function parsePort(v: unknown): DockerPort | string {
  if (typeof v === 'number') v = String(v);
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as { port?: unknown; proto?: unknown };
    v = `${textOf(o.port)}/${textOf(o.proto ?? 'tcp')}`;
  }
  if (typeof v !== 'string') return 'must be a port like "80" or "53/udp"';
  const m = /^(\d{1,5})(?:\/(tcp|udp))?$/.exec(v.trim());
  if (!m) return `"${v}" is not a port like "80" or "53/udp"`;
  const port = Number(m[1]);
  if (port < 1 || port > 65535) return `port ${port} is out of range`;
  return { port, proto: (m[2] ?? 'tcp') as DockerProto };
}

/** `-p` forms: "80", "80:80", "80:80/udp", "0.0.0.0:80:80"; host port must equal container port. */
export function parsePublish(v: unknown): DockerPort | string {
  if (typeof v === 'number' || (v && typeof v === 'object')) return parsePort(v);
  if (typeof v !== 'string') return 'must be a port like "80" or "80:80/udp"';
  const [spec, proto] = v.split('/');
  const parts = spec!.split(':');
  const container = parts[parts.length - 1]!;
  const host = parts.length >= 2 ? parts[parts.length - 2]! : '';
  if (host !== '' && host !== container) return 'remapping of port numbers not allowed';
  return parsePort(proto ? `${container}/${proto}` : container);
}

/** "target:alias", "target" (alias = target), or {target, alias}. */
export function parseLink(v: unknown): DockerLink | string {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as { target?: unknown; alias?: unknown };
    if (typeof o.target !== 'string' || o.target === '') return 'link target must be a string';
    const alias = o.alias === undefined ? o.target : o.alias;
    if (typeof alias !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(alias)) return `invalid link alias "${textOf(alias)}"`;
    return { target: o.target, alias };
  }
  if (typeof v !== 'string' || v === '') return 'link must be "target:alias"';
  const [target, alias = target] = v.split(':');
  return parseLink({ target, alias });
}

// ---- the API's container spec ----

const CONTAINER_PARAMS = new Set(['uuid', 'owner_uuid', 'name', 'links', 'exposed_ports', 'published_ports', 'publish_all', 'env', 'icc', 'network']);

/**
 * POST /fw/docker/containers/:uuid parameters → the container record, merged over `base`
 * (the stored one), and the owner's icc setting when given. Every field is checked; all
 * errors in one 422.
 */
export function parseContainer(uuid: string, params: Params, base?: DockerContainerRecord): { record: DockerContainerRecord; icc?: boolean } {
  const errors: FieldError[] = [];
  const unknown = Object.keys(params).filter((k) => !CONTAINER_PARAMS.has(k));
  if (unknown.length > 0) errors.push(unknownParams(unknown.sort()));
  if (!isValidUuid(uuid)) errors.push(invalidParam('uuid', 'Invalid container UUID'));
  const owner = params.owner_uuid ?? base?.owner_uuid;
  const ownerUuid = typeof owner === 'string' && isValidUuid(owner) ? owner.toLowerCase() : undefined;
  if (ownerUuid === undefined) errors.push(invalidParam('owner_uuid', 'Invalid owner UUID'));
  const name = params.name ?? base?.name;
  const validName = typeof name === 'string' && /^\/?[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name) ? name.replace(/^\//, '') : undefined;
  if (validName === undefined) errors.push(invalidParam('name', 'Invalid container name'));
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
  let network = base?.network;
  if (params.network !== undefined) {
    if (typeof params.network === 'string' && isValidUuid(params.network)) network = params.network.toLowerCase();
    else errors.push(invalidParam('network', 'Invalid network UUID'));
  }
  if (network !== undefined && icc !== undefined) errors.push(invalidParam('icc', "a Docker network's containers take icc from the network"));
  if (errors.length > 0 || ownerUuid === undefined || validName === undefined) throw invalidParams(errors);
  const record: DockerContainerRecord = {
    uuid: uuid.toLowerCase(),
    owner_uuid: ownerUuid,
    name: validName,
    links,
    exposed,
    published,
    publish_all: publishAll,
    env,
    ...(network !== undefined ? { network } : {}),
  };
  return icc === undefined ? { record } : { record, icc };
}

// ---- stored containers and their rules (inside a caller's transaction) ----

export function containerNotFound(): NapiError {
  return notFound('Container not found');
}

/** The owner's stored containers, except `except` (read through tx). */
async function ownerContainers(tx: Tx, owner: string, except: string): Promise<DockerContainerRecord[]> {
  return (await tx.range({ prefix: DOCKER_CONTAINER_PREFIX }))
    .map((kv) => JSON.parse(kv.value) as DockerContainerRecord)
    .filter((c) => c.owner_uuid === owner && c.uuid !== except);
}

/** The owner's inter-container communication setting (on unless turned off). */
async function ownerIcc(tx: Tx, owner: string): Promise<boolean> {
  return (await tx.getJson<{ icc: boolean }>(dockerOwnerKey(owner)))?.icc ?? true;
}

/**
 * Makes the owner's stored docker rules exactly the set `containers` want: rules no
 * longer wanted are deleted, missing or changed ones written. Returns the wanted set.
 */
export async function reconcileDockerRules(
  tx: Tx,
  owner: string,
  containers: DockerContainerRecord[],
  icc: boolean,
): Promise<DockerRule[]> {
  const wanted = dockerRules(owner, containers, icc, await ownerNetworkIcc(tx, owner));
  const wantedIds = new Set(wanted.map((r) => r.uuid));
  for (const kv of await tx.range({ prefix: RULE_PREFIX })) {
    const r = JSON.parse(kv.value) as StoredRule;
    if (r.created_by === DOCKER_CREATED_BY && r.owner_uuid === owner && !wantedIds.has(r.uuid)) tx.del(kv.key);
  }
  for (const w of wanted) {
    const existing = await tx.getJson<StoredRule>(ruleKey(w.uuid));
    if (existing && existing.rule === w.rule && existing.enabled) continue;
    const stored: StoredRule = {
      uuid: w.uuid, rule: w.rule, enabled: true, log: false, owner_uuid: owner,
      description: w.description, created_by: DOCKER_CREATED_BY, version: newVersion(),
    };
    tx.putJson(ruleKey(w.uuid), serializeRule(stored));
  }
  return wanted;
}

/**
 * Creates or updates a container from the API's spec: its record, its instance record
 * (tagged sdc_docker, firewall on), the owner's icc setting when given, and the owner's
 * reconciled rules. Names are unique per owner; link targets must exist; a container
 * keeps its owner (another → 403).
 */
export async function saveContainer(tx: Tx, uuid: string, params: Params): Promise<DockerContainerRecord> {
  const base = await tx.getJson<DockerContainerRecord>(dockerContainerKey(uuid));
  const { record, icc } = parseContainer(uuid, params, base);
  if (base && base.owner_uuid !== record.owner_uuid) throw forbidden('container belongs to another owner');
  const others = await ownerContainers(tx, record.owner_uuid, record.uuid);
  if (others.some((c) => c.name === record.name)) {
    throw invalidParams([{ field: 'name', code: 'Duplicate', message: `container name "${record.name}" is already in use` }]);
  }
  const all = [...others, record];
  const missing = record.links.filter((l) => !resolveTarget(all, record.owner_uuid, l.target));
  if (missing.length > 0) {
    throw invalidParams(missing.map((l) => invalidParam('links', `link target "${l.target}" not found`)));
  }
  tx.putJson(dockerContainerKey(record.uuid), record);
  if (icc !== undefined) tx.putJson(dockerOwnerKey(record.owner_uuid), { icc });
  const effectiveIcc = icc ?? (await ownerIcc(tx, record.owner_uuid));
  const inst = await tx.getJson<InstanceRecord>(instanceKey(record.uuid));
  const { [DOCKER_TAG]: _docker, [DOCKER_NETWORK_TAG]: _network, ...otherTags } = inst?.tags ?? {};
  tx.putJson(instanceKey(record.uuid), {
    uuid: record.uuid,
    owner_uuid: record.owner_uuid,
    tags: { ...otherTags, ...(record.network === undefined ? { [DOCKER_TAG]: true } : { [DOCKER_NETWORK_TAG]: record.network }) },
    firewall_enabled: true,
  } satisfies InstanceRecord);
  await reconcileDockerRules(tx, record.owner_uuid, all, effectiveIcc);
  return record;
}

/** Makes the owner's docker rules what its stored containers and networks want now. */
export async function reconcileOwner(tx: Tx, owner: string): Promise<DockerRule[]> {
  return reconcileDockerRules(tx, owner, await ownerContainers(tx, owner, ''), await ownerIcc(tx, owner));
}

/** Removes a container, its instance record, and the rules only it needed (404 when absent). */
export async function removeContainer(tx: Tx, uuid: string): Promise<void> {
  const rec = await tx.getJson<DockerContainerRecord>(dockerContainerKey(uuid));
  if (!rec) throw containerNotFound();
  tx.del(dockerContainerKey(uuid));
  tx.del(instanceKey(uuid));
  const rest = await ownerContainers(tx, rec.owner_uuid, uuid);
  await reconcileDockerRules(tx, rec.owner_uuid, rest, await ownerIcc(tx, rec.owner_uuid));
}

// ---- what the API shows for a container ----

export interface ContainerView extends LinkDetails {
  container: DockerContainerRecord;
  rules: StoredRule[];
}

/**
 * A container as GET answers it: the spec, the owner's docker rules that concern it, and
 * its links' environment and hosts lines from the targets' current addresses.
 * `containers` are the owner's, `rules` every stored rule, `addressesOf` an instance's
 * current addresses.
 */
export function containerView(
  record: DockerContainerRecord,
  containers: readonly DockerContainerRecord[],
  rules: readonly PolicyRule[],
  addressesOf: (uuid: string) => string[],
): ContainerView {
  const links: ResolvedLink[] = [];
  for (const l of record.links) {
    const target = resolveTarget(containers, record.owner_uuid, l.target);
    if (!target) continue;
    const addrs = addressesOf(target.uuid);
    links.push({ alias: l.alias, target, ip: addrs.find((a) => !a.includes(':')) ?? addrs[0] });
  }
  const mine = rules
    .filter((r) => r.stored.created_by === DOCKER_CREATED_BY && r.stored.owner_uuid === record.owner_uuid)
    .filter((r) => r.model.from.vms.includes(record.uuid) || r.model.to.vms.includes(record.uuid) || r.model.from.tags.length > 0)
    .map((r) => serializeRule(r.stored));
  return { container: record, rules: mine, ...linkDetails(record.name, links) };
}
