/**
 * Docker networking semantics over the firewall (pure).
 *
 * - icc on (Docker's default; sdc-docker's model): owner-scoped
 *   `FROM tag "sdc_docker" TO tag "sdc_docker" ALLOW tcp|udp PORT all` — one rule per
 *   protocol, since a fwrule names one protocol.
 * - icc off: only a container linking to a target reaches it, and only on the target's
 *   exposed ports: `FROM vm <linker> TO vm <target> ALLOW tcp|udp PORTS …`.
 * - published ports (-p, or every exposed port with -P): `FROM any TO vm <uuid> ALLOW …`.
 * - links also give Docker's environment variables and /etc/hosts lines, computed from the
 *   target's current address (recomputed whenever asked, so they follow address changes).
 *
 * Rules are owned by the container's owner and get uuids derived from (owner, text), so
 * reconciling the wanted set with the stored one is idempotent.
 */
import { createHash } from 'node:crypto';
import { canonicalize } from './lang/index.js';

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
}

/** A rule the Docker semantics want to exist. */
export interface DockerRule {
  uuid: string;
  owner_uuid: string;
  rule: string;
  description: string;
}

export const DOCKER_TAG = 'sdc_docker';
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

/** Every rule one owner's containers need, sorted by text. */
export function dockerRules(owner: string, containers: readonly DockerContainerRecord[], icc: boolean): DockerRule[] {
  const texts = new Map<string, string>();
  const mine = containers.filter((c) => c.owner_uuid === owner);
  if (mine.length > 0 && icc) {
    for (const proto of ['tcp', 'udp'] as const) {
      texts.set(`FROM tag "${DOCKER_TAG}" TO tag "${DOCKER_TAG}" ALLOW ${proto} PORT all`, 'docker: inter-container communication');
    }
  }
  for (const c of mine) {
    if (!icc) {
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
    v = `${String(o.port)}/${String(o.proto ?? 'tcp')}`;
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
    if (typeof alias !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(alias)) return `invalid link alias "${String(alias)}"`;
    return { target: o.target, alias };
  }
  if (typeof v !== 'string' || v === '') return 'link must be "target:alias"';
  const [target, alias = target] = v.split(':');
  return parseLink({ target, alias });
}
