/**
 * Bearer tokens for the REST API, from the controller's --auth-file:
 *
 *   {"tokens": [{"token": "…", "role": "admin" | "node" | "owner",
 *                "node_uuid"?: UUID, "owner_uuid"?: UUID, "name"?: "for logs"}]}
 *
 * `node` needs node_uuid, `owner` needs owner_uuid, `admin` takes neither. A file with any
 * mistake is refused as a whole (the tokens in force stay). Tokens are kept only as their
 * SHA-256 digests and looked up by digest, so a lookup's time does not depend on how much
 * of a guess matches.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { Principal } from './identity.js';

export class AuthFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthFileError';
  }
}

/** Shortest token accepted: a guessable token is no authentication. */
export const MIN_TOKEN_LENGTH = 16;
export const MAX_TOKEN_LENGTH = 512;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** What an HTTP Authorization header carries after "Bearer ": visible ASCII, no spaces. */
const TOKEN_CHARS = /^[\x21-\x7e]+$/;
const ENTRY_KEYS = new Set(['token', 'role', 'node_uuid', 'owner_uuid', 'name']);

function digest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

function entryPrincipal(e: unknown, i: number): { token: string; principal: Principal } {
  const at = `tokens[${i}]`;
  if (!e || typeof e !== 'object' || Array.isArray(e)) throw new AuthFileError(`${at} must be an object`);
  const o = e as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !ENTRY_KEYS.has(k));
  if (unknown.length > 0) throw new AuthFileError(`${at}: unknown field(s) ${unknown.join(', ')}`);
  const { token, role } = o;
  if (typeof token !== 'string' || token.length < MIN_TOKEN_LENGTH || token.length > MAX_TOKEN_LENGTH || !TOKEN_CHARS.test(token)) {
    throw new AuthFileError(`${at}.token must be ${MIN_TOKEN_LENGTH}-${MAX_TOKEN_LENGTH} visible ASCII characters without spaces`);
  }
  if (o.name !== undefined && (typeof o.name !== 'string' || o.name.length > 64)) throw new AuthFileError(`${at}.name must be a string of at most 64 characters`);
  const name = `token:${typeof o.name === 'string' ? o.name : i}`;
  const uuid = (field: 'node_uuid' | 'owner_uuid'): string => {
    const v = o[field];
    if (typeof v !== 'string' || !UUID.test(v.toLowerCase())) throw new AuthFileError(`${at}: role ${String(role)} needs ${field} (a UUID)`);
    return v.toLowerCase();
  };
  const forbid = (...fields: string[]) => {
    for (const f of fields) if (o[f] !== undefined) throw new AuthFileError(`${at}: role ${String(role)} takes no ${f}`);
  };
  switch (role) {
    case 'admin':
      forbid('node_uuid', 'owner_uuid');
      return { token, principal: { role: 'admin', name } };
    case 'node':
      forbid('owner_uuid');
      return { token, principal: { role: 'node', node: uuid('node_uuid'), name } };
    case 'owner':
      forbid('node_uuid');
      return { token, principal: { role: 'owner', owner: uuid('owner_uuid'), name } };
    default:
      throw new AuthFileError(`${at}.role must be admin, node or owner, got ${JSON.stringify(role)}`);
  }
}

/** Parses an auth file's text into digest -> principal; throws AuthFileError on any mistake. */
export function parseAuthFile(text: string): Map<string, Principal> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new AuthFileError(`not JSON: ${(err as Error).message}`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc) || !Array.isArray((doc as { tokens?: unknown }).tokens)) {
    throw new AuthFileError('expected {"tokens": [...]}');
  }
  const out = new Map<string, Principal>();
  (doc as { tokens: unknown[] }).tokens.forEach((e, i) => {
    const { token, principal } = entryPrincipal(e, i);
    const d = digest(token);
    if (out.has(d)) throw new AuthFileError(`tokens[${i}]: the same token is listed twice`);
    out.set(d, principal);
  });
  return out;
}

/** The token of an `Authorization: Bearer …` header, or undefined. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  const h = Array.isArray(header) ? header[0] : header;
  if (typeof h !== 'string') return undefined;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(h);
  return m ? m[1] : undefined;
}

/** The tokens in force, reloadable from their file. */
export class TokenBook {
  private tokens = new Map<string, Principal>();

  constructor(readonly path: string) {}

  /**
   * (Re)reads the file. On any error the tokens in force stay and the error is thrown.
   * Returns warnings (a file others can read).
   */
  async load(): Promise<{ count: number; warnings: string[] }> {
    let text: string;
    let mode: number;
    try {
      [text, mode] = await Promise.all([readFile(this.path, 'utf8'), stat(this.path).then((s) => s.mode)]);
    } catch (err) {
      throw new AuthFileError(`cannot read ${this.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    let next: Map<string, Principal>;
    try {
      next = parseAuthFile(text);
    } catch (err) {
      throw new AuthFileError(`${this.path}: ${(err as Error).message}`);
    }
    this.tokens = next;
    const warnings = (mode & 0o077) !== 0 ? [`${this.path} is readable by others (mode ${(mode & 0o777).toString(8)}): chmod 600 it`] : [];
    return { count: next.size, warnings };
  }

  lookup(token: string): Principal | undefined {
    return this.tokens.get(digest(token));
  }

  get size(): number {
    return this.tokens.size;
  }
}
