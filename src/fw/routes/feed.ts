/**
 * The agents' ruleset feed:
 *
 *   GET /fw/nodes/:cn_uuid/rulesets   ?since=REV&wait=MS long-poll
 *
 * `wait` is capped, and so are the requests held at once, per node and in all (→ 429):
 * each held request keeps a socket and listeners.
 */
import type { FastifyInstance } from 'fastify';
import { type FieldError, invalidParam, invalidParams, tooManyRequests } from '../../rest/errors.js';
import { requestParams } from '../../rest/http.js';
import { requireUuid } from '../api-params.js';
import { access } from '../../rest/access.js';
import type { FwRouteDeps } from './common.js';

export interface FeedLimits {
  /** Longest a feed request is held open (ms). */
  maxWaitMs: number;
  /** Feed requests that may wait at once for one node. */
  maxWaitersPerNode: number;
  /** Feed requests that may wait at once in all. */
  maxWaiters: number;
}

export function registerFeedRoutes(app: FastifyInstance, deps: FwRouteDeps, limits: FeedLimits): void {
  const { engine } = deps;
  const { maxWaitMs, maxWaitersPerNode, maxWaiters } = limits;
  const waiters = new Map<string, number>();
  let totalWaiters = 0;

  app.get('/fw/nodes/:cn_uuid/rulesets', access(deps.access.feed), async (req) => {
    const params = requestParams(req);
    const cn = requireUuid('cn_uuid', params.cn_uuid, 'Invalid node UUID');
    const errors: FieldError[] = [];
    const since = params.since === undefined ? 0 : Number(params.since);
    if (!Number.isInteger(since) || since < 0) errors.push(invalidParam('since', 'since must be a revision (integer >= 0)'));
    const wait = params.wait === undefined ? 30_000 : Number(params.wait);
    if (!Number.isInteger(wait) || wait < 0) errors.push(invalidParam('wait', 'wait must be milliseconds (integer >= 0)'));
    if (errors.length > 0) throw invalidParams(errors);
    const waitMs = Math.min(wait, maxWaitMs);
    if (waitMs === 0) return engine.feed(cn, since, 0);
    const mine = waiters.get(cn) ?? 0;
    if (mine >= maxWaitersPerNode || totalWaiters >= maxWaiters) {
      throw tooManyRequests(
        `too many requests are waiting on rulesets (at most ${maxWaitersPerNode} per node, ${maxWaiters} in all); retry later`,
      );
    }
    waiters.set(cn, mine + 1);
    totalWaiters++;
    engine.metrics.feedWaiting.inc();
    try {
      return await engine.feed(cn, since, waitMs);
    } finally {
      totalWaiters--;
      engine.metrics.feedWaiting.dec();
      const left = (waiters.get(cn) ?? 1) - 1;
      if (left > 0) waiters.set(cn, left);
      else waiters.delete(cn);
    }
  });
}
