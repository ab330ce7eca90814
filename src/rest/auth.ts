/**
 * The REST app's gate, in front of every route, in this order:
 *
 *   onRequest   who is calling (bearer token, else a verified client certificate; with
 *               authentication off everyone is admin, as before), the per-client rate, the
 *               requests in flight, and whether the route admits the caller's role at all
 *               (401/403/429/503 before the body is read);
 *   preHandler  the route's scope checks for owner and node principals (./access.ts),
 *               once the body is parsed.
 *
 * Every refusal is counted in rhumb_rest_refused_total{reason}.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Counter, Gauge, type Registry } from 'prom-client';
import { ANONYMOUS, type Principal, UNAUTHENTICATED_ADMIN } from '../security/identity.js';
import { InFlight, type RateLimit, RateLimiter } from '../security/limits.js';
import { tlsPeerPrincipal } from '../security/tls.js';
import { type TokenBook, bearerToken } from '../security/tokens.js';
import type { RouteAccess } from './access.js';
import type { RestContext } from './context.js';
import { forbidden, serviceUnavailable, tooManyRequests, unauthorized } from './errors.js';

export interface RestLimits {
  /** Requests being handled at once (long-polls and streams aside); more get 503. */
  maxInFlight: number;
  /** Per client (its identity, or its address when it has none); over it: 429. null: no limit. */
  rate: RateLimit | null;
}

export const DEFAULT_REST_LIMITS: RestLimits = { maxInFlight: 512, rate: { perSecond: 1000, burst: 2000 } };

export interface RestAuthOptions {
  /** Bearer tokens; absent: authentication is off and every caller is admin. */
  tokens?: TokenBook | undefined;
  /** /metrics without credentials. */
  metricsOpen?: boolean | undefined;
  limits?: RestLimits | undefined;
}

export type RefusalReason = 'unauthenticated' | 'forbidden' | 'rate_limited' | 'in_flight' | 'connections' | 'timeout' | 'bad_request' | 'tls';

/** A route that declares nothing: admins only. */
const ADMIN_ONLY: RouteAccess = { allow: [] };

export interface RestGate {
  refused: Counter<'reason'>;
}

/** A route as registered, with what it declared about access (undefined: admins only). */
export interface RouteRecord {
  method: string;
  url: string;
  access: RouteAccess | undefined;
}

const routeTables = new WeakMap<FastifyInstance, RouteRecord[]>();

/** Every route of an app built with the gate, in registration order (tests walk them all). */
export function registeredRoutes(app: FastifyInstance): readonly RouteRecord[] {
  return routeTables.get(app) ?? [];
}

function isTlsSocket(s: Socket): s is TLSSocket {
  return (s as TLSSocket).encrypted === true;
}

export function installRestGate(app: FastifyInstance, ctx: RestContext, opts: RestAuthOptions): RestGate {
  const registers = [ctx.registry];
  const refused = registerRefusals(registers);
  const limits = opts.limits ?? DEFAULT_REST_LIMITS;
  const inFlight = new InFlight(limits.maxInFlight);
  registerInFlightGauge(registers, inFlight);
  const rate = limits.rate ? new RateLimiter(limits.rate) : undefined;
  // Set on every request by the first hook (a decorator's initial value must not be an object).
  app.decorateRequest('principal');
  recordRoutes(app);
  installAdmission(app, {
    identify: identifier(opts.tokens, refused),
    rate,
    inFlight,
    metricsOpen: opts.metricsOpen,
    refused,
  });
  installScopeChecks(app, ctx, refused);
  return { refused };
}

/** rhumb_rest_refused_total: the gate's refusals, and the server's (connections, timeouts, TLS) through RestGate.refused. */
function registerRefusals(registers: Registry[]): Counter<'reason'> {
  return new Counter({
    name: 'rhumb_rest_refused_total',
    help: 'REST requests and connections refused, by reason (unauthenticated, forbidden, rate_limited, in_flight, connections, timeout, bad_request, tls)',
    labelNames: ['reason'] as const,
    registers,
  });
}

function registerInFlightGauge(registers: Registry[], inFlight: InFlight): void {
  new Gauge({
    name: 'rhumb_rest_in_flight',
    help: 'REST requests being handled (long-polls and streams aside)',
    registers,
    collect() {
      this.set(inFlight.current);
    },
  });
}

/** Keeps the app's route table for registeredRoutes(). */
function recordRoutes(app: FastifyInstance): void {
  const table: RouteRecord[] = [];
  routeTables.set(app, table);
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) if (method !== 'HEAD') table.push({ method, url: r.url, access: r.config?.access });
  });
}

type Identify = (req: FastifyRequest) => { principal: Principal; credentialed: boolean };

/** Who is calling: a bearer token, else a verified client certificate (looked at once per connection). */
function identifier(tokens: TokenBook | undefined, refused: Counter<'reason'>): Identify {
  const peerPrincipals = new WeakMap<Socket, Principal | undefined>();
  return (req) => {
    const token = bearerToken(req.headers.authorization);
    if (!tokens) return { principal: UNAUTHENTICATED_ADMIN, credentialed: false };
    if (token !== undefined) {
      const p = tokens.lookup(token);
      if (!p) {
        refused.inc({ reason: 'unauthenticated' });
        throw unauthorized('unknown bearer token');
      }
      return { principal: p, credentialed: true };
    }
    const socket = req.raw.socket;
    if (socket && isTlsSocket(socket)) {
      if (!peerPrincipals.has(socket)) peerPrincipals.set(socket, tlsPeerPrincipal(socket));
      const p = peerPrincipals.get(socket);
      if (p) return { principal: p, credentialed: true };
    }
    return { principal: ANONYMOUS, credentialed: false };
  };
}

/** 401/403 unless the route admits this principal's role (its scope is checked later). */
function admit(a: RouteAccess, p: Principal, metricsOpen: boolean | undefined, refused: Counter<'reason'>): void {
  if (a.allow === 'anyone') return;
  if (a.allow === 'metrics' && (metricsOpen || p.role !== 'anonymous')) return;
  if (p.role === 'anonymous') {
    refused.inc({ reason: 'unauthenticated' });
    throw unauthorized();
  }
  if (p.role === 'admin') return;
  if ((p.role === 'owner' || p.role === 'node') && a.allow !== 'metrics' && a.allow.includes(p.role)) return;
  refused.inc({ reason: 'forbidden' });
  throw forbidden(p.role === 'client' ? 'this certificate carries no rhumb role' : `${p.role === 'owner' ? 'an owner' : 'a node'} may not call ${routeLabel(a)}`);
}

interface Admission {
  identify: Identify;
  rate: RateLimiter | undefined;
  inFlight: InFlight;
  metricsOpen: boolean | undefined;
  refused: Counter<'reason'>;
}

/** onRequest: identity, the per-client rate, the role, then a place in flight (401/403/429/503 before the body is read). */
function installAdmission(app: FastifyInstance, { identify, rate, inFlight, metricsOpen, refused }: Admission): void {
  /** Requests counted in flight, each left exactly once (response sent or aborted). */
  const entered = new WeakSet<FastifyRequest>();
  app.addHook('onRequest', async (req, reply) => {
    const { principal, credentialed } = identify(req);
    req.principal = principal;
    const a = req.routeOptions.config.access ?? ADMIN_ONLY;
    // A client is whoever its credentials say, or its address.
    if (rate && !rate.take(credentialed ? principal.name : `ip:${req.ip}`, Date.now())) {
      refused.inc({ reason: 'rate_limited' });
      reply.header('retry-after', '1');
      throw tooManyRequests('too many requests from this client; slow down');
    }
    admit(a, principal, metricsOpen, refused);
    if (a.longPoll) return;
    if (!inFlight.tryEnter()) {
      refused.inc({ reason: 'in_flight' });
      reply.header('retry-after', '1');
      throw serviceUnavailable(`too many requests in progress (at most ${inFlight.max}); retry later`);
    }
    entered.add(req);
  });
  const leave = async (req: FastifyRequest) => {
    if (entered.delete(req)) inFlight.leave();
  };
  app.addHook('onResponse', leave);
  app.addHook('onRequestAbort', leave);
}

/** preHandler: the route's scope checks for owner and node principals, once the body is parsed. */
function installScopeChecks(app: FastifyInstance, ctx: RestContext, refused: Counter<'reason'>): void {
  app.addHook('preHandler', async (req) => {
    const a = req.routeOptions.config.access;
    const p = req.principal;
    if (!a || a.allow === 'anyone' || a.allow === 'metrics') return;
    const checks = p.role === 'owner' ? a.owner : p.role === 'node' ? a.node : undefined;
    if (p.role !== 'owner' && p.role !== 'node') return;
    if (!checks) {
      // Declared for the role without saying how it is bounded: a mistake; refuse.
      refused.inc({ reason: 'forbidden' });
      throw forbidden(`no ${p.role} scope is declared for this route`);
    }
    const who = p.role === 'owner' ? p.owner : p.node;
    try {
      for (const check of checks) await check(req, who, ctx);
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      if (status === 403 || status === 404) refused.inc({ reason: 'forbidden' });
      throw err;
    }
  });
}

function routeLabel(a: RouteAccess): string {
  return a.allow === 'anyone' || a.allow === 'metrics' ? a.allow : a.allow.length === 0 ? 'an admin route' : 'this route';
}
