/**
 * What the node's WireGuard interface should hold, from the peer views the controller
 * serves, and the `wg set` arguments that get it there. Pure.
 *
 * Every peer view is checked again here (whatever the controller let through): a key
 * that is not a key, a missing or malformed endpoint, a tunnel address that is not the
 * one the underlay address derives to, a key or tunnel address claimed twice. Such a node
 * is left out (and reported): it is not reachable, and nothing goes to it in cleartext.
 *
 * A node rotating its key announces the next key first: it is configured beside the
 * current one with no allowed IPs, so the node's handshake with the new key is accepted
 * the moment it switches; once it publishes the new key as current, the tunnel address
 * moves to it and the old key goes.
 *
 * A node whose underlay address moves takes the tunnel address it derives to and
 * publishes its record again (ownRecord: the endpoint follows the address); its peers see
 * the move in the feed (movedPeers) and configure it from the new view like any other.
 */
import {
  type PeerView,
  type WireguardNodeRecord,
  endpointProblem,
  formatEndpoint,
  tunnelAddress,
  wireguardKeyProblem,
} from '../../overlay/wireguard.js';

export interface PeerConfig {
  publicKey: string;
  endpoint: string;
  /** Empty for an announced next key. */
  allowedIps: string[];
}

export interface PeerProblem {
  cn_uuid: string;
  /** A metric label: bad_record, no_key, no_endpoint, bad_tunnel, duplicate. */
  reason: string;
  problem: string;
}

export interface PeerPlan {
  /** public key -> configuration. */
  peers: Map<string, PeerConfig>;
  /** Nodes that are not configured, with why. */
  problems: PeerProblem[];
  /** cn -> tunnel address of the nodes configured. */
  tunnels: Map<string, string>;
}

function reasonOf(v: PeerView): { reason: string; problem: string } | undefined {
  if (v.public_key === undefined) return { reason: 'no_key', problem: v.problem ?? 'no WireGuard key published' };
  const key = wireguardKeyProblem(v.public_key);
  if (key) return { reason: 'bad_record', problem: `public_key: ${key}` };
  if (v.next_public_key !== undefined) {
    const next = wireguardKeyProblem(v.next_public_key);
    if (next) return { reason: 'bad_record', problem: `next_public_key: ${next}` };
  }
  const ep = endpointProblem(v.endpoint);
  if (ep) return { reason: v.endpoint === undefined || v.endpoint === '' ? 'no_endpoint' : 'bad_record', problem: ep };
  if (v.problem) return { reason: /tunnel address|also published/.test(v.problem) ? 'duplicate' : 'bad_record', problem: v.problem };
  return undefined;
}

/** The peers to configure for every node but self, and the nodes left out. */
export function planPeers(views: Iterable<PeerView>, self: string, subnet: string): PeerPlan {
  const problems: PeerProblem[] = [];
  const candidates: Array<{ v: PeerView; tunnel: string }> = [];
  for (const v of views) {
    if (v.cn_uuid === self) continue;
    const bad = reasonOf(v);
    if (bad) {
      problems.push({ cn_uuid: v.cn_uuid, ...bad });
      continue;
    }
    let tunnel: string;
    try {
      tunnel = tunnelAddress(v.underlay_ip, subnet);
    } catch (err) {
      problems.push({ cn_uuid: v.cn_uuid, reason: 'bad_tunnel', problem: (err as Error).message });
      continue;
    }
    if (v.tunnel_ip !== undefined && v.tunnel_ip !== tunnel) {
      problems.push({ cn_uuid: v.cn_uuid, reason: 'bad_tunnel', problem: `tunnel address ${v.tunnel_ip} is not ${tunnel}, which ${v.underlay_ip} derives to` });
      continue;
    }
    candidates.push({ v, tunnel });
  }
  // A key or tunnel address claimed by two nodes configures neither.
  const claims = new Map<string, string[]>();
  for (const { v, tunnel } of candidates) {
    for (const k of [v.public_key!, v.next_public_key, `tunnel:${tunnel}`]) if (k) claims.set(k, [...(claims.get(k) ?? []), v.cn_uuid]);
  }
  const peers = new Map<string, PeerConfig>();
  const tunnels = new Map<string, string>();
  for (const { v, tunnel } of candidates) {
    const clash = [v.public_key!, v.next_public_key, `tunnel:${tunnel}`].find((k) => k && new Set(claims.get(k)).size > 1);
    if (clash) {
      const others = [...new Set(claims.get(clash))].filter((c) => c !== v.cn_uuid);
      problems.push({ cn_uuid: v.cn_uuid, reason: 'duplicate', problem: `${clash.startsWith('tunnel:') ? 'tunnel address' : 'key'} also claimed by ${others.join(', ')}` });
      continue;
    }
    peers.set(v.public_key!, { publicKey: v.public_key!, endpoint: v.endpoint!, allowedIps: [`${tunnel}/32`] });
    if (v.next_public_key && v.next_public_key !== v.public_key) {
      peers.set(v.next_public_key, { publicKey: v.next_public_key, endpoint: v.endpoint!, allowedIps: [] });
    }
    tunnels.set(v.cn_uuid, tunnel);
  }
  problems.sort((a, b) => (a.cn_uuid < b.cn_uuid ? -1 : 1));
  return { peers, problems, tunnels };
}

function sameConfig(a: PeerConfig, b: PeerConfig): boolean {
  return a.endpoint === b.endpoint && [...a.allowedIps].sort().join(',') === [...b.allowedIps].sort().join(',');
}

/**
 * `wg set NAME …` arguments turning the interface's peers into the plan's, in batches of
 * at most batchSize peers: removals first, then the peers added or changed. An unchanged
 * peer is not touched (its session stays).
 */
export function peerCommands(current: ReadonlyMap<string, PeerConfig>, wanted: ReadonlyMap<string, PeerConfig>, batchSize = 256): string[][] {
  const ops: string[][] = [];
  for (const key of current.keys()) if (!wanted.has(key)) ops.push(['peer', key, 'remove']);
  for (const [key, p] of wanted) {
    const have = current.get(key);
    if (have && sameConfig(have, p)) continue;
    ops.push(['peer', key, 'endpoint', p.endpoint, 'allowed-ips', p.allowedIps.join(',')]);
  }
  const batches: string[][] = [];
  for (let i = 0; i < ops.length; i += batchSize) batches.push(ops.slice(i, i + batchSize).flat());
  return batches;
}

/** The node's own record as its peers need it: its keys, and its underlay address as endpoint. */
export function ownRecord(
  keys: { publicKey: string; nextPublicKey?: string },
  underlayIp: string,
  port: number,
): Omit<WireguardNodeRecord, 'cn_uuid' | 'updated'> {
  return {
    public_key: keys.publicKey,
    ...(keys.nextPublicKey ? { next_public_key: keys.nextPublicKey } : {}),
    endpoint: formatEndpoint(underlayIp, port),
  };
}

/**
 * The `ip addr` steps (without `dev NAME`) that leave the interface with exactly its
 * tunnel address (`address/prefix`). Stale addresses go first: a new address inside the
 * subnet of an old one would be added as its secondary, and deleting the (primary) old
 * one takes its secondaries along (net.ipv4.conf.*.promote_secondaries is 0 by default).
 */
export function interfaceAddressSteps(current: readonly string[], wanted: string): string[][] {
  const steps = current.filter((a) => a !== wanted).map((a) => ['addr', 'del', a]);
  if (!current.includes(wanted)) steps.push(['addr', 'replace', wanted]);
  return steps;
}

/** Other nodes whose tunnel address changed between two sets of views (their underlay address moved). */
export function movedPeers(
  before: ReadonlyMap<string, PeerView>,
  after: ReadonlyMap<string, PeerView>,
  self: string,
): Array<{ cn_uuid: string; from: string; to: string }> {
  const moved: Array<{ cn_uuid: string; from: string; to: string }> = [];
  for (const [cn, v] of after) {
    const was = before.get(cn)?.tunnel_ip;
    if (cn === self || was === undefined || v.tunnel_ip === undefined || was === v.tunnel_ip) continue;
    moved.push({ cn_uuid: cn, from: was, to: v.tunnel_ip });
  }
  return moved.sort((a, b) => (a.cn_uuid < b.cn_uuid ? -1 : 1));
}
