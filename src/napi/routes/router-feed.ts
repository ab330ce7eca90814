/**
 * The router feed agents follow (not part of NAPI):
 *
 *   GET /routers/feed?owner_uuids=A,B&since=VERSION&wait=MS
 *       {version, routers: [{uuid, owner_uuid, networks: [{uuid, subnet, gateway,
 *       vnet_id, vlan_id, mtu, internet_nat, fabric}]}]}: the routers of these owners
 *       (those with instances on the node) with the networks each connects. With since
 *       (the version the agent has) and wait, held until the answer changes or wait
 *       (at most maxWaitMs) ends; at most maxWaitersPerNode held per node, 429 beyond.
 *
 * Access (with --auth-file or TLS): nodes and admins; owners read their routers through
 * /fabrics/:owner_uuid/routers.
 */
import type { FastifyInstance } from 'fastify';
import { isUuid } from '../../net/addr.js';
import { type FieldError, invalidParam, invalidParams } from '../../rest/errors.js';
import { access } from '../../rest/access.js';
import { requestParams } from '../../rest/http.js';
import { WaiterCaps } from '../../rest/long-poll.js';
import type { RouterDirectory } from '../router-directory.js';

/** Owners one request may name (a node's owners). */
export const MAX_FEED_OWNERS = 1000;

export interface RouterFeedOptions {
  /** Longest a request is held (ms). Default 60000. */
  maxWaitMs?: number;
  /** Requests that may wait at once (more get 429). Default 8192. */
  maxWaiters?: number;
  /** Requests one node may have waiting at once. Default 4. */
  maxWaitersPerNode?: number;
}

export function registerRouterFeed(app: FastifyInstance, dir: RouterDirectory, opts: RouterFeedOptions = {}): void {
  const maxWait = opts.maxWaitMs ?? 60_000;
  const caps = new WaiterCaps({ max: opts.maxWaiters ?? 8192, maxPerNode: opts.maxWaitersPerNode ?? 4, what: 'routers' });

  // Held polls must not hold up the server's close: they are answered as it begins.
  app.addHook('preClose', async () => dir.stop());

  app.get('/routers/feed', access({ allow: ['node'], node: [], longPoll: true }), async (req) => {
    const p = requestParams(req);
    const errors: FieldError[] = [];
    const owners = typeof p.owner_uuids === 'string' && p.owner_uuids !== '' ? p.owner_uuids.toLowerCase().split(',') : [];
    if (owners.length === 0) errors.push(invalidParam('owner_uuids', 'owner_uuids must list at least one owner UUID, comma-separated'));
    else if (owners.length > MAX_FEED_OWNERS) errors.push(invalidParam('owner_uuids', `at most ${MAX_FEED_OWNERS} owners`));
    else if (!owners.every(isUuid)) errors.push(invalidParam('owner_uuids', 'owner_uuids must be UUIDs, comma-separated'));
    const since = p.since;
    if (since !== undefined && (typeof since !== 'string' || !/^[0-9a-f]{1,64}$/.test(since))) errors.push(invalidParam('since', 'since must be a version this feed returned'));
    const wait = p.wait === undefined ? 0 : Number(p.wait);
    if (!Number.isInteger(wait) || wait < 0) errors.push(invalidParam('wait', 'wait must be an integer >= 0 (ms)'));
    if (errors.length > 0) throw invalidParams(errors);
    const waitMs = Math.min(wait, maxWait);
    if (waitMs === 0 || since === undefined) return dir.answer(owners);
    return caps.hold(req, () => dir.feed(owners, since as string, waitMs));
  });
}
