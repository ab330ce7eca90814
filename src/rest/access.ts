/**
 * Who may call which REST route, decided in one place: every route declares its access
 * in its route options (`app.get(path, access(ROUTE_ACCESS), handler)`), and one hook
 * (./auth.ts) enforces the declaration before the handler runs. A route that declares
 * nothing is for admins only, so a new route is safe until someone opens it.
 *
 * A declaration says who may call (`allow`) and, for the scoped roles, how their reach is
 * bounded: a list of scope checks, each given the principal's owner (or node) UUID. The
 * checks are generic, by owner_uuid (or cn_uuid) and the route's parameters:
 *
 *   pathIs(p)          the path parameter p is the principal's        (else 404)
 *   filterBy(f)        a list is filtered to the principal's objects   (f forced in the query)
 *   bodyIs(f)          a write names the principal in f, or f is set to it (another: 403)
 *   existing(load)     the object the path names is the principal's    (else 404, as if absent)
 *   refersToOwn(f, l)  an object the write refers to (f) is the principal's (else 404)
 *   forbidFields(...)  fields the role may not set                      (403)
 *
 * A future resource (routers, …) gets the same rules by declaring them.
 */
import type { FastifyRequest } from 'fastify';
import type { Principal } from '../security/identity.js';
import type { RestContext } from './context.js';
import { type NapiError, forbidden, invalidParam, notFound } from './errors.js';
import type { Params } from './validate.js';

/** A scope check: throws to refuse; may narrow the request (a forced filter). */
export type ScopeCheck = (req: FastifyRequest, who: string, ctx: RestContext) => void | Promise<void>;

export interface RouteAccess {
  /**
   * 'anyone': no identity needed (/ping, the console's static files).
   * 'metrics': any identity, or anyone with --metrics-open.
   * roles: admin always, plus these roles bounded by their checks.
   */
  allow: 'anyone' | 'metrics' | ReadonlyArray<'owner' | 'node'>;
  /** Checks bounding an owner (required when allow names 'owner'; [] = no bound). */
  owner?: readonly ScopeCheck[];
  /** Checks bounding a node (required when allow names 'node'; [] = no bound). */
  node?: readonly ScopeCheck[];
  /**
   * A long-poll or stream: held open by design, so it is not counted against the requests
   * in flight (it has its own caps).
   */
  longPoll?: boolean;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
  interface FastifyRequest {
    /** Who is calling (set by the auth hook before anything else runs). */
    principal: Principal;
  }
}

/** Route options carrying an access declaration. */
export function access(a: RouteAccess): { config: { access: RouteAccess } } {
  return { config: { access: a } };
}

/** Open to everyone, no identity needed. */
export const ANYONE: RouteAccess = { allow: 'anyone' };

// ---- the request's parameters, where requestParams() finds them ----

function pathParams(req: FastifyRequest): Params {
  return (req.params as Params | undefined) ?? {};
}

/** The body when it is an object (anything else is the handler's to refuse). */
function bodyObject(req: FastifyRequest): Params | undefined {
  const b = req.body;
  return b && typeof b === 'object' && !Array.isArray(b) ? (b as Params) : undefined;
}

/** What requestParams() will see for a field: path wins over body over query. */
export function effectiveParam(req: FastifyRequest, field: string): unknown {
  const p = pathParams(req);
  if (Object.hasOwn(p, field)) return p[field];
  const b = bodyObject(req);
  if (b && Object.hasOwn(b, field)) return b[field];
  const q = (req.query as Params | undefined) ?? {};
  return Object.hasOwn(q, field) ? q[field] : undefined;
}

/** Sets a field where requestParams() reads it first for a non-path field: the body (or the query of a bodyless request). */
function forceParam(req: FastifyRequest, field: string, value: unknown): void {
  const b = bodyObject(req);
  if (b) b[field] = value;
  else if (req.body === undefined || req.body === null) {
    const q = { ...((req.query as Params | undefined) ?? {}) };
    q[field] = value;
    req.query = q;
  }
}

const sameUuid = (v: unknown, who: string): boolean => typeof v === 'string' && v.toLowerCase() === who;

// ---- the checks ----

/** The path parameter names the principal (a fabric's owner, a feed's node); else 404. */
export function pathIs(param: string, notFoundError: () => NapiError = () => notFound('not found')): ScopeCheck {
  return (req, who) => {
    if (!sameUuid(pathParams(req)[param], who)) throw notFoundError();
  };
}

/** A list is filtered to the principal's objects: `field` forced to it; `drop`ped fields removed. */
export function filterBy(field: string, drop: readonly string[] = []): ScopeCheck {
  return (req, who) => {
    const q = { ...((req.query as Params | undefined) ?? {}) };
    q[field] = who;
    for (const d of drop) delete q[d];
    req.query = q;
    const b = bodyObject(req);
    if (b) for (const f of [field, ...drop]) delete b[f];
  };
}

/**
 * A write names the principal in `field`: absent, it is set (when `fill`), otherwise it
 * must be the principal (403: the caller may not act for someone else).
 */
export function bodyIs(field: string, opts: { fill: boolean } = { fill: true }): ScopeCheck {
  return (req, who) => {
    const v = effectiveParam(req, field);
    if (v === undefined || v === null) {
      if (opts.fill) forceParam(req, field, who);
      else throw forbidden(`${field} must be given and be yours`, [invalidParam(field, `${field} must be yours`)]);
      return;
    }
    if (!sameUuid(v, who)) throw forbidden(`${field} must be yours`, [invalidParam(field, `${field} must be yours`)]);
  };
}

/** Fields this role may not set at all (e.g. an owner making a rule global). */
export function forbidFields(...fields: string[]): ScopeCheck {
  return (req) => {
    const set = fields.filter((f) => {
      const v = effectiveParam(req, f);
      return v !== undefined && v !== null && v !== false && v !== 'false';
    });
    if (set.length > 0) throw forbidden(`you may not set ${set.join(', ')}`, set.map((f) => invalidParam(f, `${f} may not be set`)));
  };
}

/**
 * Who owns the object a request names: the owner UUID(s), `null` when no such object
 * exists (the handler then answers as it does for a missing object), or `undefined` for
 * an object without an owner (nobody's: refused).
 */
export type OwnerLoader = (req: FastifyRequest, ctx: RestContext) => Promise<string | readonly string[] | null | undefined>;

function owns(owner: string | readonly string[] | undefined, who: string): boolean {
  if (owner === undefined) return false;
  return typeof owner === 'string' ? owner === who : owner.includes(who);
}

/** The object the path names is the principal's; another's answers as a missing one would (404). */
export function existing(load: OwnerLoader, notFoundError: () => NapiError): ScopeCheck {
  return async (req, who, ctx) => {
    const owner = await load(req, ctx);
    if (owner !== null && !owns(owner, who)) throw notFoundError();
  };
}

/** An object a write refers to by `field` (a network for a NIC) must be the principal's (404 otherwise). */
export function refersToOwn(field: string, load: (id: string, ctx: RestContext) => Promise<string | readonly string[] | null | undefined>, notFoundError: () => NapiError): ScopeCheck {
  return async (req, who, ctx) => {
    const id = effectiveParam(req, field);
    if (id === undefined || id === null) return;
    if (typeof id !== 'string') return; // the handler's validation refuses it
    const owner = await load(id, ctx);
    if (owner !== null && !owns(owner, who)) throw notFoundError();
  };
}

/** A condition on the request that must hold for this role (403 with the reason otherwise). */
export function requireThat(ok: (req: FastifyRequest, who: string) => boolean, field: string, message: string): ScopeCheck {
  return (req, who) => {
    if (!ok(req, who)) throw forbidden(message, [invalidParam(field, message)]);
  };
}

/** Reads a request field, for requireThat conditions. */
export const param = effectiveParam;
