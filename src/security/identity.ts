/**
 * Who is calling: the principal a request or an SVP connection acts as, from a bearer
 * token (./tokens.ts) or a client certificate issued by rhumb's CA (./pki.ts). Pure.
 *
 *   admin   everything
 *   owner   its own objects only (those whose owner_uuid is its owner)
 *   node    what the agent of that compute node needs
 *   client  a certificate from the CA with no rhumb role in it: SVP lookups only
 *   anonymous  no credentials (with authentication on: only what is open to anyone)
 */

export type Principal =
  | { role: 'admin'; name: string }
  | { role: 'owner'; owner: string; name: string }
  | { role: 'node'; node: string; name: string }
  | { role: 'client'; name: string }
  | { role: 'anonymous'; name: 'anonymous' };

export type Role = Principal['role'];

/** The SAN URI of a node certificate: urn:rhumb:node:UUID. */
export const NODE_URI_PREFIX = 'urn:rhumb:node:';
/** The SAN URI of an operator certificate. */
export const ADMIN_URI = 'urn:rhumb:admin';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The fields of a verified peer certificate this module reads (node:tls's PeerCertificate). */
export interface PeerCertFields {
  subject?: { CN?: string | string[] } | null;
  subjectaltname?: string;
}

/**
 * The principal of a client certificate that the TLS layer has verified against the CA:
 * its SAN URIs say node (urn:rhumb:node:UUID) or admin (urn:rhumb:admin); a certificate
 * with both, two nodes, or a malformed node URI is only a `client`.
 */
export function principalFromCert(cert: PeerCertFields): Principal {
  const cn = cert.subject?.CN;
  const name = `cert:${(Array.isArray(cn) ? cn[0] : cn) ?? '?'}`;
  const uris = (cert.subjectaltname ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('URI:'))
    .map((s) => s.slice(4));
  const nodes = uris.filter((u) => u.startsWith(NODE_URI_PREFIX)).map((u) => u.slice(NODE_URI_PREFIX.length).toLowerCase());
  const admin = uris.includes(ADMIN_URI);
  if (admin && nodes.length === 0) return { role: 'admin', name };
  if (!admin && nodes.length === 1 && UUID.test(nodes[0]!)) return { role: 'node', node: nodes[0]!, name };
  return { role: 'client', name };
}

/** What anyone is when authentication is off: the REST API behaves as it always did. */
export const UNAUTHENTICATED_ADMIN: Principal = { role: 'admin', name: 'open' };

/** A caller without credentials while authentication is on. */
export const ANONYMOUS: Principal = { role: 'anonymous', name: 'anonymous' };
