/**
 * What the controller serves on its REST port: NAPI's app with the firewall API's routes
 * handed to it (napi and fw do not know each other). Tests build the same app.
 */
import type { FastifyInstance } from 'fastify';
import { type FwApiOptions, fwApi } from '../fw/routes/index.js';
import type { FwEngine } from '../fw/push.js';
import { type NapiAppOptions, buildNapiApp } from '../napi/app.js';
import type { NapiContext } from '../napi/context.js';

export interface RestAppOptions extends NapiAppOptions {
  fw?: FwApiOptions;
}

export interface RestApp {
  app: FastifyInstance;
  /** The firewall engine behind the app's firewall routes. */
  fwEngine: FwEngine;
}

export function buildRestApp(deps: Omit<NapiContext, 'log'>, opts: RestAppOptions = {}): RestApp {
  const { fw: fwOpts, ...napiOpts } = opts;
  const fw = fwApi({ store: deps.store, registry: deps.registry }, fwOpts);
  const app = buildNapiApp(deps, { ...napiOpts, extraRoutes: [fw.routes, ...(napiOpts.extraRoutes ?? [])] });
  return { app, fwEngine: fw.engine };
}
