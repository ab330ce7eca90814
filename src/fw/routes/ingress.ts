/**
 * The published ports of each node, as its agent reports them (../ingress.ts), so that
 * `fw explain` can follow a packet from a node's address and port to an instance:
 *
 *   PUT /fw/nodes/:cn_uuid/ingress   {entries: [IngressEntry…]}: the node's whole table (→ 204)
 *   GET /fw/nodes/:cn_uuid/ingress   the table last reported
 *
 * A node writes and reads only its own (admins any); the table replaces the previous one
 * in one store write.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { type FieldError, invalidParam, invalidParams, notFound } from '../../rest/errors.js';
import type { Params } from '../../rest/validate.js';
import { canonicalAddress } from '../addr.js';
import { isValidUuid } from '../lang/index.js';
import { access } from '../../rest/access.js';
import type { Store } from '../../store/types.js';
import { parseProbe, requireUuid } from '../api-params.js';
import { type IngressMatch, type NodeIngress, parseNodeIngress, resolveIngress } from '../ingress.js';
import { FW_PREFIX } from '../registry.js';
import type { FwRouteDeps } from './common.js';

export const INGRESS_PREFIX = `${FW_PREFIX}ingress/`;
const ingressKey = (cn: string): string => INGRESS_PREFIX + cn;

/** Every node's last report (a value that does not parse is skipped). */
export async function loadIngress(store: Store): Promise<NodeIngress[]> {
  const out: NodeIngress[] = [];
  for (const kv of (await store.range({ prefix: INGRESS_PREFIX })).kvs) {
    try {
      out.push(JSON.parse(kv.value) as NodeIngress);
    } catch {
      /* unparseable record: skipped */
    }
  }
  return out;
}

/**
 * The one published port a packet to address:hostPort reaches (on `node`, or on whichever
 * node publishes it), or a NAPI error saying why there is none or more than one.
 */
export async function findIngress(store: Store, q: { address: string; protocol: string; hostPort: number; node?: string }): Promise<IngressMatch> {
  const matches = resolveIngress(await loadIngress(store), q);
  const what = `${q.protocol} port ${q.hostPort} on ${q.address}`;
  if (matches.length === 0) throw notFound(`nothing is published at ${what}${q.node ? ` on node ${q.node}` : ''}`);
  if (matches.length > 1) {
    throw invalidParams([invalidParam('node', `${what} is published on ${matches.length} nodes: name one with node`)]);
  }
  return matches[0]!;
}

/**
 * explain's question about a published port — `to` an address, `port` the port on it,
 * `proto`, and optionally `node` — or undefined when `to` is not an address (an instance).
 */
export function explainIngressQuery(params: Params): { address: string; protocol: string; hostPort: number; node?: string } | undefined {
  const address = typeof params.to === 'string' ? canonicalAddress(params.to) : undefined;
  if (!address) return undefined;
  const errors: FieldError[] = [];
  const probe = parseProbe(params, errors);
  const node = params.node === undefined ? undefined : typeof params.node === 'string' && isValidUuid(params.node) ? params.node.toLowerCase() : null;
  if (node === null) errors.push(invalidParam('node', 'node must be a node UUID'));
  if (probe.protocol !== 'tcp' && probe.protocol !== 'udp') errors.push(invalidParam('proto', 'only tcp and udp ports are published'));
  if (errors.length > 0) throw invalidParams(errors);
  return { address, protocol: probe.protocol, hostPort: probe.port!, ...(node ? { node } : {}) };
}

function nodeOf(req: FastifyRequest): string {
  return requireUuid('cn_uuid', (req.params as { cn_uuid?: unknown }).cn_uuid, 'Invalid node UUID');
}

export function registerIngressRoutes(app: FastifyInstance, deps: FwRouteDeps): void {
  const { store } = deps;

  app.put('/fw/nodes/:cn_uuid/ingress', access(deps.access.nodeIngress), async (req, reply) => {
    const cn = nodeOf(req);
    const parsed = parseNodeIngress(cn, req.body);
    if (typeof parsed === 'string') throw invalidParams([invalidParam('entries', parsed)], parsed);
    const value = JSON.stringify(parsed);
    const current = await store.get(ingressKey(cn));
    if (current?.value !== value) await store.commit({ ops: [{ type: 'put', key: ingressKey(cn), value }] });
    reply.status(204);
    return reply.send();
  });

  app.get('/fw/nodes/:cn_uuid/ingress', access(deps.access.nodeIngress), async (req) => {
    const cn = nodeOf(req);
    const kv = await store.get(ingressKey(cn));
    return kv ? (JSON.parse(kv.value) as NodeIngress) : { node: cn, entries: [] };
  });
}
