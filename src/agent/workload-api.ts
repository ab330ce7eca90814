/**
 * The wire shapes of the agent's workload-attachment API (POST/GET/DELETE /workloads),
 * shared by the agent and its clients (the CNI plugin, the Docker plugin), and the pure
 * checks of a request body. A workload attachment is one interface of a workload
 * (container, pod sandbox) on a fabric network: the agent creates its NAPI NIC, plumbs it
 * and releases both, keyed by a stable identity the caller derives (CNI: container ID +
 * interface name).
 *
 * Every field is checked against a strict shape here, before anything runs: keys and
 * labels end up in the agent's state file, netns and ifname in root's `ip` input.
 */
import { isIP } from 'node:net';
import { isUuid, tryCanonicalMac } from '../net/addr.js';
import { firstProblem, ifnameProblem, netnsPathProblem } from './plumbing/checks.js';

/** Longest attachment key (a CNI container ID is 64 hex digits; runtimes may use more). */
export const MAX_KEY = 512;
const KEY = new RegExp(`^[A-Za-z0-9][A-Za-z0-9_.:/@+=-]{0,${MAX_KEY - 1}}$`);
const SCOPE = /^[A-Za-z0-9][A-Za-z0-9_.:/@+=-]{0,254}$/;
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,62}$/;
export const MAX_LABELS = 16;
export const MAX_LABEL_VALUE = 256;

/** POST /workloads: attach (idempotent per key). */
export interface WorkloadAttachRequest {
  /** Stable identity of the attachment; the NIC's belongs_to_uuid derives from it (and the node). */
  key: string;
  /** Groups attachments for listing and garbage collection (CNI: "cni/<network name>"). */
  scope?: string;
  /** Free metadata kept with the record (e.g. the CNI container ID and ifname). */
  labels?: Record<string, string>;
  /** The fabric network: its UUID, or network_name with owner_uuid. */
  network_uuid?: string;
  network_name?: string;
  /** Owner of the NIC (and, with network_name, of the network); default: the network's. */
  owner_uuid?: string;
  netns: string;
  ifname: string;
  /** Requested MAC / address (honoured at creation; a mismatch with an existing NIC is a conflict). */
  mac?: string;
  ip?: string;
  /**
   * Requested addresses of either family, in preference order (a CNI runtime's `ips`):
   * the first of the network's family is the one asked for (requestedIpOf); none of it is
   * a 422. Not together with `ip`.
   */
  ips?: string[];
}

export interface WorkloadIp {
  /** Address with its prefix, e.g. 10.0.0.5/24. */
  address: string;
  gateway?: string;
}

export interface WorkloadRoute {
  dst: string;
  gw?: string;
}

/** The answer to an attach, and an entry of GET /workloads. */
export interface WorkloadAttachment {
  key: string;
  scope?: string;
  labels?: Record<string, string>;
  /** creating: the NIC may exist, plumbing not done; attached; releasing: a release did not finish. */
  phase: 'creating' | 'attached' | 'releasing';
  belongs_to_uuid: string;
  network_uuid: string;
  owner_uuid: string;
  netns: string;
  ifname: string;
  mac?: string;
  /** The node-side interface of the NIC when the backend has one (kernel: the host veth). */
  host_ifname?: string;
  mtu?: number;
  ips?: WorkloadIp[];
  routes?: WorkloadRoute[];
  /** DNS resolvers of the network. */
  resolvers?: string[];
  vnet?: number;
  vlan?: number;
}

/** DELETE /workloads/:key */
export interface WorkloadReleaseResult {
  key: string;
  /** False when there was nothing to release (an unknown key, or a second release). */
  released: boolean;
  /** Unplumbed, but the controller was unreachable: the agent deletes the NIC once it answers. */
  deferred?: boolean;
}

/** GET /workloads/:key/check */
export interface WorkloadCheckResult {
  key: string;
  ok: boolean;
  problems: string[];
}

/** GET /health: can this agent serve attachments right now? */
export interface AgentHealth {
  node: string;
  controller: { reachable: boolean; error?: string };
}

export function keyProblem(key: unknown): string | undefined {
  return typeof key === 'string' && KEY.test(key)
    ? undefined
    : `key must be 1-${MAX_KEY} letters, digits or _ . : / @ + = - (not starting with a symbol); got ${JSON.stringify(key)?.slice(0, 80)}`;
}

export function scopeProblem(scope: unknown): string | undefined {
  return typeof scope === 'string' && SCOPE.test(scope)
    ? undefined
    : `scope must be 1-255 letters, digits or _ . : / @ + = - (not starting with a symbol); got ${JSON.stringify(scope)?.slice(0, 80)}`;
}

export function labelsProblem(labels: unknown): string | undefined {
  if (!labels || typeof labels !== 'object' || Array.isArray(labels)) return 'labels must be an object of strings';
  const entries = Object.entries(labels as Record<string, unknown>);
  if (entries.length > MAX_LABELS) return `at most ${MAX_LABELS} labels`;
  for (const [k, v] of entries) {
    if (!LABEL_KEY.test(k)) return `label name ${JSON.stringify(k).slice(0, 80)} must be 1-63 letters, digits or _ . : / -`;
    // No control characters: labels are shown in listings and logs.
    if (typeof v !== 'string' || v.length > MAX_LABEL_VALUE || hasControl(v)) {
      return `label ${k} must be a string of at most ${MAX_LABEL_VALUE} printable characters`;
    }
  }
  return undefined;
}

/** True when the text has a control character (C0 or DEL). */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

export class WorkloadRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkloadRequestError';
  }
}

const KNOWN_FIELDS = new Set(['key', 'scope', 'labels', 'network_uuid', 'network_name', 'owner_uuid', 'netns', 'ifname', 'mac', 'ip', 'ips']);
/** Most addresses `ips` may list. */
export const MAX_REQUESTED_IPS = 16;

function optionalString(body: Record<string, unknown>, field: string): string | undefined {
  const v = body[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v === '') throw new WorkloadRequestError(`${field} must be a non-empty string`);
  return v;
}

/**
 * A POST /workloads body -> the request with canonical values; throws WorkloadRequestError
 * naming the first problem. Unknown fields are refused (a typo must not pass silently).
 */
export function parseAttachRequest(body: unknown): WorkloadAttachRequest {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new WorkloadRequestError('the body must be a JSON object');
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => !KNOWN_FIELDS.has(k));
  if (unknown.length > 0) throw new WorkloadRequestError(`unknown field(s): ${unknown.slice(0, 5).join(', ')}`);
  const key = optionalString(b, 'key');
  const netns = optionalString(b, 'netns');
  const ifname = optionalString(b, 'ifname');
  if (key === undefined) throw new WorkloadRequestError('key is required');
  if (netns === undefined) throw new WorkloadRequestError('netns is required');
  if (ifname === undefined) throw new WorkloadRequestError('ifname is required');
  const scope = optionalString(b, 'scope');
  const networkUuid = optionalString(b, 'network_uuid');
  const networkName = optionalString(b, 'network_name');
  const owner = optionalString(b, 'owner_uuid');
  const mac = optionalString(b, 'mac');
  const ip = optionalString(b, 'ip');
  const ips = b.ips === undefined || b.ips === null ? undefined : b.ips;
  const labels = b.labels === undefined || b.labels === null ? undefined : b.labels;
  const problem = firstProblem(
    keyProblem(key),
    scope === undefined ? undefined : scopeProblem(scope),
    labels === undefined ? undefined : labelsProblem(labels),
    netnsPathProblem(netns),
    ifnameProblem(ifname),
    networkUuid !== undefined && networkName !== undefined ? 'give network_uuid or network_name, not both' : undefined,
    networkUuid === undefined && networkName === undefined ? 'network_uuid or network_name (with owner_uuid) is required' : undefined,
    networkUuid !== undefined && !isUuid(networkUuid.toLowerCase()) ? `network_uuid is not a UUID: ${JSON.stringify(networkUuid).slice(0, 80)}` : undefined,
    networkName !== undefined && owner === undefined ? 'network_name needs owner_uuid' : undefined,
    networkName !== undefined && (networkName.length > 64 || hasControl(networkName)) ? 'network_name must be at most 64 printable characters' : undefined,
    owner !== undefined && !isUuid(owner.toLowerCase()) ? `owner_uuid is not a UUID: ${JSON.stringify(owner).slice(0, 80)}` : undefined,
    mac !== undefined && tryCanonicalMac(mac) === undefined ? `mac is not a MAC address: ${JSON.stringify(mac).slice(0, 80)}` : undefined,
    ip !== undefined && (!isIP(ip) || ip.includes('%')) ? `ip is not an IP address: ${JSON.stringify(ip).slice(0, 80)}` : undefined,
    ips === undefined ? undefined : ipsProblem(ips),
    ip !== undefined && ips !== undefined ? 'give ip or ips, not both' : undefined,
  );
  if (problem) throw new WorkloadRequestError(problem);
  return {
    key: key,
    ...(scope !== undefined ? { scope } : {}),
    ...(labels !== undefined ? { labels: { ...(labels as Record<string, string>) } } : {}),
    ...(networkUuid !== undefined ? { network_uuid: networkUuid.toLowerCase() } : {}),
    ...(networkName !== undefined ? { network_name: networkName } : {}),
    ...(owner !== undefined ? { owner_uuid: owner.toLowerCase() } : {}),
    netns,
    ifname,
    ...(mac !== undefined ? { mac: tryCanonicalMac(mac)! } : {}),
    ...(ip !== undefined ? { ip } : {}),
    ...(ips !== undefined ? { ips: [...(ips as string[])] } : {}),
  };
}

function ipsProblem(ips: unknown): string | undefined {
  if (!Array.isArray(ips) || ips.length === 0 || ips.length > MAX_REQUESTED_IPS) return `ips must be a list of 1-${MAX_REQUESTED_IPS} IP addresses`;
  const bad = ips.find((a) => typeof a !== 'string' || !isIP(a) || a.includes('%'));
  return bad === undefined ? undefined : `ips: not an IP address: ${JSON.stringify(bad).slice(0, 80)}`;
}

/**
 * The address a request asks for on a network of this subnet: `ip` as given, or the first
 * of `ips` of the network's family (a network is one family: the other family's addresses
 * are for the workload's other network). Throws WorkloadRequestError when `ips` has none
 * of the network's family.
 */
export function requestedIpOf(req: Pick<WorkloadAttachRequest, 'ip' | 'ips'>, network: { uuid: string; subnet: string }): string | undefined {
  if (req.ip !== undefined || req.ips === undefined) return req.ip;
  const family = isIP(network.subnet.split('/')[0]!) === 6 ? 6 : 4;
  const ip = req.ips.find((a) => isIP(a) === family);
  if (ip === undefined) {
    throw new WorkloadRequestError(
      `none of the requested addresses (${req.ips.join(', ')}) is IPv${family}, the family of network ${network.uuid}: a network is one family (dual stack is one attachment on each of two networks)`,
    );
  }
  return ip;
}
