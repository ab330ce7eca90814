/**
 * Per-request helpers for route groups: NAPI's merged parameters (path wins over body
 * over query), ETags derived from the store's modRevision, If-Match handling.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { paramsNotObject, preconditionFailed } from './errors.js';
import type { Params } from './validate.js';

/** Path, query and body merged into one flat set; a path parameter always wins. */
export function requestParams(req: FastifyRequest): Params {
  const body = req.body;
  if (body !== undefined && body !== null && (typeof body !== 'object' || Array.isArray(body))) {
    throw paramsNotObject();
  }
  return {
    ...((req.query as Params | undefined) ?? {}),
    ...((body as Params | undefined) ?? {}),
    ...((req.params as Params | undefined) ?? {}),
  };
}

/** The ETag of an object last written at this store revision. */
export function etagFor(modRevision: number): string {
  return `"${modRevision.toString(36)}"`;
}

export function setEtag(reply: FastifyReply, modRevision: number): void {
  reply.header('etag', etagFor(modRevision));
}

/**
 * Honours If-Match against the object's current ETag (null when it does not exist;
 * `If-Match: ""` then matches, as NAPI allows for creating an IP only if absent).
 */
export function checkIfMatch(req: FastifyRequest, modRevision: number | null): void {
  const header = req.headers['if-match'];
  if (header === undefined) return;
  const current = modRevision === null ? null : etagFor(modRevision);
  const wanted = String(header)
    .split(',')
    .map((s) => s.trim());
  const ok = wanted.some((w) => w === '*' ? current !== null : (w === '""' || w === '') ? current === null : w === current || `"${w}"` === current);
  if (!ok) throw preconditionFailed(String(header), current);
}
