/**
 * The firewall's REST API, served on the controller's API port next to NAPI's routes:
 * the FWAPI-compatible rules API (./rules.ts), the instance registry (./instances.ts), the
 * agents' per-node ruleset feed (./feed.ts), explain (./explain.ts), the nodes' published
 * ports explain follows (./ingress.ts) and Docker containers
 * (./docker.ts). List routes take limit (1..1000, default 1000) and offset, with NAPI's
 * messages.
 *
 * fwApi() makes the engine and the routes over it; the controller hands the routes to the
 * REST app (buildNapiApp's extraRoutes) and keeps the engine.
 */
import type { Registry } from 'prom-client';
import type { RouteModule } from '../../rest/context.js';
import type { Store } from '../../store/types.js';
import { type CheckResult, checkRuleset } from '../nft-check.js';
import { FwEngine } from '../push.js';
import { fwAccess } from './access.js';
import { registerDockerRoutes } from './docker.js';
import { registerExplainRoute } from './explain.js';
import { registerFeedRoutes } from './feed.js';
import { registerIngressRoutes } from './ingress.js';
import { registerInstanceRoutes } from './instances.js';
import { registerRuleRoutes } from './rules.js';

export interface FwApiOptions {
  /**
   * Check rulesets with nft -c before storing a rule and before publishing a compiled
   * ruleset. Default: only when running as root (nft -c needs CAP_NET_ADMIN).
   */
  verify?: boolean | ((text: string) => Promise<CheckResult>);
  /** Longest a feed request is held open (ms). Default 60000. */
  maxWaitMs?: number;
  /** Feed requests that may wait at once for one node (more get 429). Default 4. */
  maxWaitersPerNode?: number;
  /** Feed requests that may wait at once in all (more get 429). Default 1024. */
  maxWaiters?: number;
}

export interface FwApi {
  /** Follows the store and compiles; started when the app is ready, stopped when it closes. */
  engine: FwEngine;
  /** Registers every firewall route on one app. */
  routes: RouteModule;
}

export function fwApi(deps: { store: Store; registry: Registry }, opts: FwApiOptions = {}): FwApi {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const verify = typeof opts.verify === 'function' ? opts.verify : (opts.verify ?? isRoot) ? checkRuleset : undefined;
  const engine = new FwEngine(deps.store, deps.registry, verify ? { verify } : {});
  const routes: RouteModule = (app) => {
    app.addHook('onReady', async () => {
      await engine.start();
    });
    app.addHook('onClose', async () => {
      engine.stop();
    });
    const shared = { store: deps.store, engine, access: fwAccess(deps.store, engine) };
    registerRuleRoutes(app, { ...shared, verify });
    registerInstanceRoutes(app, shared);
    registerFeedRoutes(app, shared, {
      maxWaitMs: opts.maxWaitMs ?? 60_000,
      maxWaitersPerNode: opts.maxWaitersPerNode ?? 4,
      maxWaiters: opts.maxWaiters ?? 1024,
    });
    registerExplainRoute(app, shared);
    registerIngressRoutes(app, shared);
    registerDockerRoutes(app, shared);
  };
  return { engine, routes };
}
