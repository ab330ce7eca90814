/**
 * The NAPI-compatible REST server: fastify with NAPI's parameter merging, error bodies,
 * headers and 404s. NAPI's route groups live in ./routes; the controller adds others
 * (the firewall API) through `extraRoutes`.
 */
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { instrumentHttp } from '../metrics/index.js';
import { StoreClosedError } from '../store/types.js';
import type { RouteModule } from '../rest/context.js';
import { type RestAuthOptions, installRestGate } from '../rest/auth.js';
import { type RestServerOptions, fastifyServerOptions, guardRestServer } from '../rest/server.js';
import type { NapiContext } from './context.js';
import {
  NapiError,
  internalError,
  invalidContent,
  requestTooLarge,
  serviceUnavailable,
  unsupportedMediaType,
} from '../rest/errors.js';
import { routeModules } from './routes/index.js';
import { type CommitRecord, TxConflictError, commitTracker } from '../store/txn.js';

export interface NapiAppOptions {
  /** The process's logger (fastify logs requests through a child of it); none: silent. */
  logger?: FastifyBaseLogger;
  /** Route groups of other APIs served on the same port (the controller adds the firewall's). */
  extraRoutes?: RouteModule[];
  /**
   * Called before a successful write's response is sent, so a client that got its answer
   * can rely on every reader (the SVP mapping index) already reflecting the write.
   */
  beforeWriteReply?: (revision: number, commits: CommitRecord) => Promise<void>;
  /** Who may call what (tokens, certificates), and the request limits. Default: open, as NAPI. */
  auth?: RestAuthOptions;
  /** HTTPS, timeouts, connection cap. */
  server?: RestServerOptions;
}

const SERVER_NAME = 'rhumb Networking API';

/** Builds the app; the context's logger is the app's own pino logger. */
export function buildNapiApp(deps: Omit<NapiContext, 'log'>, opts: NapiAppOptions = {}): FastifyInstance {
  const app = Fastify({
    ...fastifyServerOptions(opts.server),
    ...(opts.logger ? { loggerInstance: opts.logger } : { logger: false }),
    bodyLimit: 1024 * 1024,
    genReqId: () => randomUUID(),
    // NAPI's IDs contain no characters that need this, and `admin` must route as a uuid.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
  });
  const serverName = hostname();
  const ctx: NapiContext = { ...deps, log: app.log };
  // First of all hooks: who calls, and whether they may, before anything else is done.
  const gate = installRestGate(app, ctx, opts.auth ?? {});
  guardRestServer(app.server, gate.refused, opts.server?.maxConnections);

  // restify answers 400 InvalidContent for a JSON body that does not parse; an empty body is {}.
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = String(body);
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(invalidContent(`Invalid JSON: ${(err as Error).message}`), undefined);
    }
  });
  // Form-encoded bodies are accepted by restify's bodyParser too.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(String(body))));
  });

  const beforeWriteReply = opts.beforeWriteReply;
  const commits = new WeakMap<object, CommitRecord>();
  // Callback-style hooks: no promise per request where there is nothing to wait for.
  app.addHook('onRequest', (req, reply, done) => {
    reply.header('server', SERVER_NAME);
    reply.header('x-request-id', req.id);
    reply.header('x-server-name', serverName);
    // Every transaction of this request reports its commit revision here.
    const rec: CommitRecord = { revision: 0, commits: [] };
    commits.set(req, rec);
    commitTracker.run(rec, done);
  });
  app.addHook('onSend', (req, reply, payload, done) => {
    const rec = commits.get(req);
    const committed = rec?.revision ?? 0;
    const send = (): void => {
      reply.header('x-response-time', Math.round(reply.elapsedTime));
      done(null, payload);
    };
    if (beforeWriteReply && rec && committed > 0 && reply.statusCode < 300) beforeWriteReply(committed, rec).then(send, (err: Error) => done(err));
    else send();
  });

  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => {
    let e: NapiError;
    if (err instanceof NapiError) e = err;
    else if (err instanceof TxConflictError) e = internalError(err.message);
    else if (err instanceof StoreClosedError) e = serviceUnavailable('Store is unavailable');
    else if ((err as { code?: string }).code === 'StoreUnavailable') {
      // etcd lost quorum or the connection mid-request: the client must re-read before retrying.
      e = serviceUnavailable(`Store is unavailable: ${err.message}`);
    }
    else if ((err as { statusCode?: number }).statusCode === 413) e = requestTooLarge(err.message);
    else if ((err as { statusCode?: number }).statusCode === 415) e = unsupportedMediaType(err.message);
    else if ((err as { statusCode?: number }).statusCode === 400) e = invalidContent(err.message);
    else {
      req.log.error({ err }, 'unhandled error');
      e = internalError(err.message || 'Internal error');
    }
    reply.status(e.statusCode).send(e.body());
  });
  app.setNotFoundHandler((req, reply) => {
    reply.status(404).send({ code: 'ResourceNotFound', message: `${req.url.split('?')[0]} does not exist` });
  });

  instrumentHttp(app, ctx.registry);
  for (const register of routeModules) register(app, ctx);
  for (const register of opts.extraRoutes ?? []) register(app, ctx);
  return app;
}
