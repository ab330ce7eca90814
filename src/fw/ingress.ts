/**
 * Ingress for `fw explain` (pure): which instance port a packet arriving on a node's
 * address and port is DNATed to.
 *
 * The truth about published ports stays on the node that publishes them: a host port is
 * that node's resource, the agent checks conflicts and applies the DNAT, and it must keep
 * publishing while the controller is away. The controller only needs to *know* them, to
 * explain: every agent reports its node's whole ingress table (both ways of publishing:
 * the agent's REST published ports on the external address, and Docker `-p` on the
 * node's address) to `PUT /fw/nodes/:cn_uuid/ingress`, which keeps the latest in the
 * store, so every controller replica answers the same.
 */
import { isIP } from 'node:net';
import { canonicalAddress } from './addr.js';
import { isValidUuid } from './lang/index.js';

/** How a port is published (what DNATs it). */
export type IngressVia = 'published' | 'docker';

/** One published port of a node. */
export interface IngressEntry {
  /** Where the packet arrives: the node's external address, or a Docker -p host address. */
  address: string;
  protocol: 'tcp' | 'udp';
  host_port: number;
  /** The instance the NIC belongs to, its MAC and fabric address. */
  instance: string;
  mac: string;
  ip: string;
  /** The instance's port. */
  port: number;
  via: IngressVia;
  /** The source address the instance sees when the node masquerades (Docker -p); absent: the client's own. */
  seen_from?: string;
  /** Why the instance's firewall does not see this traffic on that node; absent: it does. */
  unfiltered?: string;
}

/** A node's report: every port published on it. */
export interface NodeIngress {
  node: string;
  entries: IngressEntry[];
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

function portProblem(what: string, v: unknown): string | undefined {
  return Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535 ? undefined : `${what} must be an integer in 1..65535`;
}

function addressProblem(what: string, v: unknown): string | undefined {
  return typeof v === 'string' && isIP(v) !== 0 ? undefined : `${what} must be an IP address`;
}

/** Why one reported entry is not valid, or undefined. */
function entryProblem(e: Record<string, unknown>): string | undefined {
  return (
    addressProblem('address', e.address) ??
    (e.protocol === 'tcp' || e.protocol === 'udp' ? undefined : 'protocol must be tcp or udp') ??
    portProblem('host_port', e.host_port) ??
    (typeof e.instance === 'string' && isValidUuid(e.instance) ? undefined : 'instance must be a UUID') ??
    (typeof e.mac === 'string' && MAC.test(e.mac) ? undefined : 'mac must be a MAC address (aa:bb:cc:dd:ee:ff)') ??
    addressProblem('ip', e.ip) ??
    portProblem('port', e.port) ??
    (e.via === 'published' || e.via === 'docker' ? undefined : 'via must be published or docker') ??
    (e.seen_from === undefined ? undefined : addressProblem('seen_from', e.seen_from)) ??
    (e.unfiltered === undefined || (typeof e.unfiltered === 'string' && e.unfiltered.length <= 500) ? undefined : 'unfiltered must be a reason (text)')
  );
}

/**
 * A node's ingress report checked and in canonical form (addresses canonical, entries
 * sorted), or the reason it is not one (naming the entry). An address and port published
 * twice for one protocol is refused: the node could not DNAT it to both.
 */
export function parseNodeIngress(node: string, body: unknown): NodeIngress | string {
  const list = body && typeof body === 'object' ? (body as { entries?: unknown }).entries : undefined;
  if (!Array.isArray(list)) return 'entries must be a list of published ports';
  const entries: IngressEntry[] = [];
  const seen = new Set<string>();
  for (const [i, raw] of list.entries()) {
    if (!raw || typeof raw !== 'object') return `entries[${i}] must be an object`;
    const e = raw as Record<string, unknown>;
    const problem = entryProblem(e);
    if (problem) return `entries[${i}]: ${problem}`;
    const entry: IngressEntry = {
      address: canonicalAddress(e.address as string)!,
      protocol: e.protocol as 'tcp' | 'udp',
      host_port: e.host_port as number,
      instance: (e.instance as string).toLowerCase(),
      mac: e.mac as string,
      ip: canonicalAddress(e.ip as string)!,
      port: e.port as number,
      via: e.via as IngressVia,
      ...(e.seen_from !== undefined ? { seen_from: canonicalAddress(e.seen_from as string)! } : {}),
      ...(e.unfiltered !== undefined ? { unfiltered: e.unfiltered as string } : {}),
    };
    const key = `${entry.address} ${entry.protocol}/${entry.host_port}`;
    if (seen.has(key)) return `entries[${i}]: ${entry.protocol} port ${entry.host_port} on ${entry.address} is published twice`;
    seen.add(key);
    entries.push(entry);
  }
  entries.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.host_port - b.host_port || (a.protocol < b.protocol ? -1 : 1)));
  return { node, entries };
}

export interface IngressMatch {
  node: string;
  entry: IngressEntry;
}

/** The published ports matching a packet to address:hostPort (every node's, or one node's). */
export function resolveIngress(
  nodes: readonly NodeIngress[],
  q: { address: string; protocol: string; hostPort: number; node?: string },
): IngressMatch[] {
  const address = canonicalAddress(q.address) ?? q.address;
  const out: IngressMatch[] = [];
  for (const n of nodes) {
    if (q.node !== undefined && n.node !== q.node) continue;
    for (const entry of n.entries) {
      if (entry.address === address && entry.protocol === q.protocol && entry.host_port === q.hostPort) out.push({ node: n.node, entry });
    }
  }
  return out.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
}

/** One line saying where a published port leads. */
export function describeIngress(m: IngressMatch): string {
  const e = m.entry;
  const how = e.via === 'docker' ? 'Docker -p' : 'a published port';
  const seen = e.seen_from ? `; the instance sees it coming from ${e.seen_from}` : '';
  return `${e.protocol} ${e.address}:${e.host_port} on node ${m.node} is DNATed to instance ${e.instance} at ${e.ip}:${e.port} (${how})${seen}`;
}
