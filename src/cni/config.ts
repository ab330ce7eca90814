/**
 * What a runtime hands the rhumb CNI plugin, parsed and checked (pure): the environment
 * (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS) and the network
 * configuration on stdin. Every problem is a CniError with the spec's code, naming the
 * variable or key.
 *
 * rhumb's configuration keys:
 *   "agent":      the node agent's API: a unix socket path (/run/…, or unix:///…) or
 *                 HOST:PORT (or http://HOST:PORT); default the agent's default address
 *   "network":    a fabric network's UUID, or its name together with
 *   "owner_uuid": the network's owner (also the NIC's owner; default the network's)
 *   "timeout_ms": how long one call to the agent may take (default 60000)
 * Requests honoured (first found wins): MAC from runtimeConfig.mac, args.cni.mac, CNI_ARGS
 * MAC=; addresses from runtimeConfig.ips (the `ips` capability), else args.cni.ips, else
 * CNI_ARGS IP= (the conventions: a runtime passing `ips` in args means CNI_ARGS IP is
 * ignored; sources are never mixed). A rhumb network is one family and gives one address
 * per attachment (dual stack is two networks, two attachments), and runtimes hand the same
 * list to every network of a container (Podman's --ip and --ip6 both land in `ips`), so
 * the request is the first address of the network's family, and the other family's are
 * another network's business. Only the agent knows the network's family: the plugin checks
 * the list (every entry an address, prefixes dropped: the network decides the prefix) and
 * sends it whole; a list with no address of the network's family fails the ADD with code 7
 * (invalid network configuration) naming both — the conventions say a plugin returns an
 * error when it cannot act on a capability it declared, and quietly taking another
 * address than the one asked for would surprise whoever asked.
 */
import { isIP } from 'node:net';
import { DEFAULT_AGENT_API } from '../agent/defaults.js';
import { ifnameProblem, netnsPathProblem } from '../agent/plumbing/checks.js';
import { CNI, CniError } from './errors.js';

/** Spec versions whose configurations rhumb accepts, oldest first; results are shaped per version. */
export const SUPPORTED_VERSIONS = ['0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export const LATEST_VERSION: CniVersion = '1.1.0';

export const COMMANDS = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'] as const;
export type CniCommand = (typeof COMMANDS)[number];

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const NETWORK_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const MAC = /^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$/;
/** Longest container ID rhumb takes (its attachment key holds it; runtimes use 64). */
export const MAX_CONTAINER_ID = 400;
/** Default bound of one call to the agent. */
export const DEFAULT_TIMEOUT_MS = 60_000;

/** Where the agent listens. */
export type AgentAddress = { socketPath: string } | { host: string; port: number };

export interface CniEnv {
  command: CniCommand;
  containerId?: string;
  netns?: string;
  ifname?: string;
  /** CNI_ARGS as key -> value (later keys win; values may contain '='). */
  args: Map<string, string>;
}

/** The network configuration rhumb reads (other keys pass through untouched). */
export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  agent: AgentAddress;
  network: { uuid: string } | { name: string };
  ownerUuid?: string;
  timeoutMs: number;
  /** Raw objects the verbs consult. */
  prevResult?: Record<string, unknown>;
  runtimeConfig: Record<string, unknown>;
  argsCni: Record<string, unknown>;
  dns?: Record<string, unknown>;
  raw: Record<string, unknown>;
}

function invalidEnv(details: string): CniError {
  return new CniError(CNI.INVALID_ENV, 'invalid environment variables', details);
}

function invalidConfig(details: string): CniError {
  return new CniError(CNI.INVALID_NETWORK_CONFIG, 'invalid network configuration', details);
}

/** CNI_ARGS: `K=V;K2=V2`. Unknown keys are kept (and ignored by the verbs); a value may contain '='; pairs without '=' are skipped. */
export function parseCniArgs(text: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const pair of (text ?? '').split(';')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    out.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
  return out;
}

/** The environment a verb needs; the spec's per-verb required variables are checked here. */
export function parseEnv(env: NodeJS.ProcessEnv): CniEnv {
  const command = env.CNI_COMMAND;
  if (!command) throw invalidEnv('CNI_COMMAND is not set');
  if (!(COMMANDS as readonly string[]).includes(command)) throw invalidEnv(`unknown CNI_COMMAND ${JSON.stringify(command).slice(0, 40)}`);
  const cmd = command as CniCommand;
  const out: CniEnv = { command: cmd, args: parseCniArgs(env.CNI_ARGS) };
  if (cmd !== 'ADD' && cmd !== 'DEL' && cmd !== 'CHECK') return out;
  const id = env.CNI_CONTAINERID;
  if (!id) throw invalidEnv('CNI_CONTAINERID is not set');
  if (!CONTAINER_ID.test(id) || id.length > MAX_CONTAINER_ID) {
    throw invalidEnv(`CNI_CONTAINERID must be letters, digits, '_', '.' or '-' (at most ${MAX_CONTAINER_ID}), starting with a letter or digit`);
  }
  out.containerId = id;
  const ifname = env.CNI_IFNAME;
  if (!ifname) throw invalidEnv('CNI_IFNAME is not set');
  const ifProblem = ifnameProblem(ifname);
  if (ifProblem) throw invalidEnv(`CNI_IFNAME: ${ifProblem}`);
  out.ifname = ifname;
  const netns = env.CNI_NETNS;
  if (netns) {
    const nsProblem = netnsPathProblem(netns);
    // DEL cleans up whatever CNI_NETNS says (it may be stale or odd); ADD and CHECK plumb into it.
    if (nsProblem && cmd !== 'DEL') throw invalidEnv(`CNI_NETNS: ${nsProblem}`);
    out.netns = netns;
  } else if (cmd !== 'DEL') throw invalidEnv('CNI_NETNS is not set');
  return out;
}

/** `agent`: a unix socket path or HOST:PORT. */
export function parseAgentAddress(v: unknown): AgentAddress {
  if (typeof v !== 'string' || v === '') throw invalidConfig('"agent" must be a unix socket path or HOST:PORT');
  let text = v;
  if (text.startsWith('unix://')) text = text.slice('unix://'.length);
  if (text.startsWith('/')) {
    if (text.length > 107) throw invalidConfig(`"agent": a unix socket path is at most 107 bytes`);
    return { socketPath: text };
  }
  if (text.startsWith('http://')) text = text.slice('http://'.length).replace(/\/+$/, '');
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535) throw invalidConfig(`"agent" must be a unix socket path or HOST:PORT, got ${JSON.stringify(v).slice(0, 80)}`);
  return { host: m[1] ?? m[2]!, port };
}

function objectOrEmpty(v: unknown, key: string): Record<string, unknown> {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw invalidConfig(`"${key}" must be an object`);
  return v as Record<string, unknown>;
}

/** The `cniVersion` of a decoded configuration, checked against what rhumb speaks. */
export function configVersion(raw: Record<string, unknown>): CniVersion {
  const v = raw.cniVersion;
  if (v === undefined || v === '') {
    throw new CniError(CNI.INCOMPATIBLE_VERSION, 'incompatible CNI versions', `the configuration has no cniVersion; rhumb supports ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  if (typeof v !== 'string') throw invalidConfig('"cniVersion" must be a string');
  if (!(SUPPORTED_VERSIONS as readonly string[]).includes(v)) {
    throw new CniError(CNI.INCOMPATIBLE_VERSION, 'incompatible CNI versions', `config is ${JSON.stringify(v).slice(0, 40)}, rhumb supports ${SUPPORTED_VERSIONS.join(', ')}`);
  }
  return v as CniVersion;
}

/** stdin -> a JSON object (code 6 when it is not one). */
export function decodeStdin(text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CniError(CNI.DECODE_FAILURE, 'decoding the network configuration failed', (err as Error).message);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new CniError(CNI.DECODE_FAILURE, 'decoding the network configuration failed', 'stdin is not a JSON object');
  }
  return parsed as Record<string, unknown>;
}

/** A decoded configuration -> NetConf. */
export function parseNetConf(raw: Record<string, unknown>): NetConf {
  const cniVersion = configVersion(raw);
  const name = raw.name;
  if (typeof name !== 'string' || !NETWORK_NAME.test(name) || name.length > 200) {
    throw invalidConfig(`"name" must be letters, digits, '_', '.' or '-' (at most 200), starting with a letter or digit`);
  }
  const agent = raw.agent === undefined ? parseAgentAddress(DEFAULT_AGENT_API) : parseAgentAddress(raw.agent);
  const owner = raw.owner_uuid;
  if (owner !== undefined && (typeof owner !== 'string' || !UUID.test(owner))) throw invalidConfig('"owner_uuid" must be a UUID');
  const net = raw.network;
  if (typeof net !== 'string' || net === '') throw invalidConfig('"network" is required: a fabric network UUID, or its name with "owner_uuid"');
  let network: NetConf['network'];
  if (UUID.test(net)) network = { uuid: net.toLowerCase() };
  else {
    if (owner === undefined) throw invalidConfig(`"network" ${JSON.stringify(net).slice(0, 80)} is a name: "owner_uuid" is required with it`);
    if (net.length > 64 || /[\u0000-\u001f\u007f]/.test(net)) throw invalidConfig('"network" must be a UUID or a name of at most 64 printable characters'); // eslint-disable-line no-control-regex
    network = { name: net };
  }
  const timeout = raw.timeout_ms ?? DEFAULT_TIMEOUT_MS;
  if (typeof timeout !== 'number' || !Number.isInteger(timeout) || timeout < 100 || timeout > 600_000) throw invalidConfig('"timeout_ms" must be an integer in 100..600000');
  const prev = raw.prevResult;
  if (prev !== undefined && prev !== null && (typeof prev !== 'object' || Array.isArray(prev))) throw invalidConfig('"prevResult" must be an object');
  const args = objectOrEmpty(raw.args, 'args');
  const dns = raw.dns === undefined || raw.dns === null ? undefined : objectOrEmpty(raw.dns, 'dns');
  return {
    cniVersion,
    name,
    agent,
    network,
    ...(owner !== undefined ? { ownerUuid: (owner as string).toLowerCase() } : {}),
    timeoutMs: timeout,
    ...(prev ? { prevResult: prev as Record<string, unknown> } : {}),
    runtimeConfig: objectOrEmpty(raw.runtimeConfig, 'runtimeConfig'),
    argsCni: objectOrEmpty(args.cni, 'args.cni'),
    ...(dns ? { dns } : {}),
    raw,
  };
}

/** Most addresses one request may list (a runtime asks for one or two: one per family). */
export const MAX_REQUESTED_IPS = 16;

/**
 * The MAC and the addresses the runtime asks for, if any (first source wins; see the
 * header): the addresses in the runtime's order, without prefixes; which of them is taken
 * is the agent's choice by the network's family.
 */
export function requestedAddresses(conf: NetConf, env: CniEnv): { mac?: string; ips?: string[] } {
  const macs = [conf.runtimeConfig.mac, conf.argsCni.mac, env.args.get('MAC')].filter((m) => m !== undefined && m !== '');
  const asList = (l: unknown): unknown[] => (Array.isArray(l) ? l : l === undefined || l === null || l === '' ? [] : [l]);
  const sources = [asList(conf.runtimeConfig.ips), asList(conf.argsCni.ips), env.args.get('IP') ? env.args.get('IP')!.split(',') : []];
  const ips = sources.find((l) => l.length > 0) ?? [];
  const out: { mac?: string; ips?: string[] } = {};
  if (macs.length > 0) {
    const mac = macs[0];
    if (typeof mac !== 'string' || !MAC.test(mac)) throw invalidConfig(`the requested MAC ${JSON.stringify(mac).slice(0, 40)} is not a MAC address`);
    out.mac = mac.toLowerCase().replace(/-/g, ':');
  }
  if (ips.length > MAX_REQUESTED_IPS) throw invalidConfig(`at most ${MAX_REQUESTED_IPS} requested IPs, got ${ips.length}`);
  const addrs: string[] = [];
  for (const entry of ips) {
    if (typeof entry !== 'string') throw invalidConfig(`a requested IP must be a string, got ${JSON.stringify(entry).slice(0, 40)}`);
    const addr = entry.trim().replace(/\/\d{1,3}$/, '');
    if (isIP(addr) === 0 || addr.includes('%')) throw invalidConfig(`the requested IP ${JSON.stringify(entry).slice(0, 40)} is not an IP address`);
    if (!addrs.includes(addr)) addrs.push(addr);
  }
  if (addrs.length > 0) out.ips = addrs;
  return out;
}

/** The attachment key for (container, interface): what the NIC's identity derives from. */
export function attachmentKey(containerId: string, ifname: string): string {
  return `cni/${containerId}/${ifname}`;
}

/** Scope of a CNI network's attachments (what GC sweeps). */
export function networkScope(name: string): string {
  return `cni/${name}`;
}

/** GC's `cni.dev/valid-attachments` (also the pre-rename `cni.dev/attachments`) as keys; undefined when absent. */
export function validAttachments(raw: Record<string, unknown>): Set<string> | undefined {
  const list = raw['cni.dev/valid-attachments'] ?? raw['cni.dev/attachments'];
  if (list === undefined || list === null) return undefined;
  if (!Array.isArray(list)) throw invalidConfig('"cni.dev/valid-attachments" must be a list');
  const keys = new Set<string>();
  for (const a of list) {
    const { containerID, ifname } = (a ?? {}) as { containerID?: unknown; ifname?: unknown };
    if (typeof containerID !== 'string' || typeof ifname !== 'string') throw invalidConfig('each valid attachment needs "containerID" and "ifname" strings');
    keys.add(attachmentKey(containerID, ifname));
  }
  return keys;
}
