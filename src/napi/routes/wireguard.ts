/**
 * The encrypted underlay's REST face (not part of NAPI):
 *
 *   GET    /encryption                  the deployment's setting, and which nodes are ready
 *   PUT    /encryption                  {mode: none|prepare|wireguard, force?, tunnel_subnet?}
 *   GET    /wireguard/peers             ?since=REV&wait=MS: every node's view (full), or what
 *                                       changed after since (long-poll; agents follow this;
 *                                       at most maxWaitersPerNode held per node, 429 beyond)
 *   GET    /wireguard/nodes/:cn_uuid    a node's published record
 *   PUT    /wireguard/nodes/:cn_uuid    {public_key, next_public_key?, endpoint}: an agent publishes
 *   DELETE /wireguard/nodes/:cn_uuid
 *
 * Records are checked here (a malformed key or endpoint is a 422 naming the field), and
 * again by every agent that receives them.
 *
 * Access (with --auth-file or TLS): the setting is an admin's; a node follows the peers
 * feed (every node's public key and endpoint: what its WireGuard interface needs) and
 * reads, publishes or withdraws only its own record; owners none of it.
 */
import type { FastifyInstance } from 'fastify';
import { isUuid } from '../../net/addr.js';
import type { WireguardDirectory } from '../../overlay/wireguard-directory.js';
import {
  type WireguardNodeRecord,
  endpointProblem,
  isEncryptionMode,
  tunnelSubnetProblem,
  wgNodeKey,
  wireguardKeyProblem,
} from '../../overlay/wireguard.js';
import { transact } from '../../store/txn.js';
import { type FieldError, invalidParam, invalidParams, notFound } from '../../rest/errors.js';
import { WaiterCaps } from '../../rest/long-poll.js';
import type { RestContext } from '../../rest/context.js';
import { requestParams } from '../../rest/http.js';
import type { Params } from '../../rest/validate.js';
import { type RouteAccess, access, pathIs } from '../../rest/access.js';

export interface WireguardRouteOptions {
  /** Longest a peers request is held (ms). Default 60000. */
  maxWaitMs?: number;
  /** Peers requests that may wait at once (more get 429). Default 8192. */
  maxWaiters?: number;
  /** Peers requests one node (a node token or certificate) may have waiting at once. Default 4. */
  maxWaitersPerNode?: number;
}

/** A node's own record only; another node's is answered as absent. */
const OWN_RECORD: RouteAccess = { allow: ['node'], node: [pathIs('cn_uuid', () => notFound('node not found'))] };

function nodeUuid(raw: unknown): string {
  const cn = typeof raw === 'string' ? raw.toLowerCase() : '';
  if (!isUuid(cn)) throw invalidParams([invalidParam('cn_uuid', 'Invalid node UUID')]);
  return cn;
}

function nonNegativeInt(raw: unknown, field: string, dflt: number, errors: FieldError[]): number {
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) errors.push(invalidParam(field, `${field} must be an integer >= 0`));
  return n;
}

/** The record a node publishes, from PUT's parameters (400 naming every bad field). */
function wireguardRecord(cn: string, p: Params): WireguardNodeRecord {
  const errors: FieldError[] = [];
  const key = wireguardKeyProblem(p.public_key);
  if (key) errors.push(invalidParam('public_key', key));
  if (p.next_public_key !== undefined && p.next_public_key !== null) {
    const next = wireguardKeyProblem(p.next_public_key);
    if (next) errors.push(invalidParam('next_public_key', next));
    else if (next === undefined && p.next_public_key === p.public_key) errors.push(invalidParam('next_public_key', 'next_public_key must differ from public_key'));
  }
  const ep = endpointProblem(p.endpoint);
  if (ep) errors.push(invalidParam('endpoint', ep));
  if (errors.length > 0) throw invalidParams(errors, `invalid WireGuard record for node ${cn}: ${errors.map((e) => `${e.field}: ${e.message}`).join('; ')}`);
  return {
    cn_uuid: cn,
    public_key: p.public_key as string,
    ...(typeof p.next_public_key === 'string' ? { next_public_key: p.next_public_key } : {}),
    endpoint: p.endpoint as string,
    updated: new Date().toISOString(),
  };
}

export function registerWireguardRoutes(app: FastifyInstance, ctx: RestContext, dir: WireguardDirectory, opts: WireguardRouteOptions = {}): void {
  const maxWait = opts.maxWaitMs ?? 60_000;
  const caps = new WaiterCaps({ max: opts.maxWaiters ?? 8192, maxPerNode: opts.maxWaitersPerNode ?? 4, what: 'peers' });

  app.get('/encryption', async () => ({ ...dir.encryption, ...dir.readiness() }));

  app.put('/encryption', async (req) => {
    const p = requestParams(req);
    const errors: FieldError[] = [];
    if (!isEncryptionMode(p.mode)) errors.push(invalidParam('mode', 'mode must be none, prepare or wireguard'));
    if (p.force !== undefined && typeof p.force !== 'boolean' && p.force !== 'true' && p.force !== 'false') {
      errors.push(invalidParam('force', 'force must be a boolean'));
    }
    const subnetProblem = p.tunnel_subnet === undefined ? undefined : tunnelSubnetProblem(p.tunnel_subnet);
    if (subnetProblem) errors.push(invalidParam('tunnel_subnet', subnetProblem));
    if (errors.length > 0) throw invalidParams(errors);
    const setting = await dir.request(p.mode as 'none' | 'prepare' | 'wireguard', {
      force: p.force === true || p.force === 'true',
      ...(p.tunnel_subnet !== undefined ? { tunnelSubnet: p.tunnel_subnet as string } : {}),
    });
    return { ...setting, ...dir.readiness() };
  });

  // Held open by design (capped by maxWaiters, not by the requests in flight).
  app.get('/wireguard/peers', access({ allow: ['node'], node: [], longPoll: true }), async (req) => {
    const p = requestParams(req);
    const errors: FieldError[] = [];
    const since = nonNegativeInt(p.since, 'since', 0, errors);
    const wait = nonNegativeInt(p.wait, 'wait', 0, errors);
    if (errors.length > 0) throw invalidParams(errors);
    const waitMs = Math.min(wait, maxWait);
    if (waitMs === 0) return dir.feed(since, 0);
    return caps.hold(req, () => dir.feed(since, waitMs));
  });

  app.get('/wireguard/nodes/:cn_uuid', access(OWN_RECORD), async (req) => {
    const cn = nodeUuid((req.params as { cn_uuid?: string }).cn_uuid);
    const kv = await ctx.store.get(wgNodeKey(cn));
    if (!kv) throw notFound(`node ${cn} has published no WireGuard key`);
    return JSON.parse(kv.value) as WireguardNodeRecord;
  });

  app.put('/wireguard/nodes/:cn_uuid', access(OWN_RECORD), async (req) => {
    const p = requestParams(req);
    const cn = nodeUuid(p.cn_uuid);
    const rec = wireguardRecord(cn, p);
    const { revision } = await transact(ctx.store, async (tx) => {
      tx.putJson(wgNodeKey(cn), rec);
    });
    // The publisher's next feed answer reflects its own write.
    await dir.waitForRevision(revision);
    return rec;
  });

  app.delete('/wireguard/nodes/:cn_uuid', access(OWN_RECORD), async (req, reply) => {
    const cn = nodeUuid((req.params as { cn_uuid?: string }).cn_uuid);
    await transact(ctx.store, async (tx) => {
      if (!(await tx.get(wgNodeKey(cn)))) throw notFound(`node ${cn} has published no WireGuard key`);
      tx.del(wgNodeKey(cn));
    });
    reply.status(204);
    return reply.send();
  });
}
