/**
 * What every REST route group gets: the store and the shared services. NAPI's routes get
 * more (its configuration, src/napi/context.ts); the firewall routes need only this.
 */
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Store } from '../store/types.js';

export interface RestContext {
  store: Store;
  log: FastifyBaseLogger;
  registry: Registry;
}

/** A group of routes; it registers them (and any hooks it needs) on the app. */
export type RouteModule<C extends RestContext = RestContext> = (app: FastifyInstance, ctx: C) => void;
