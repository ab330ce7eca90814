/**
 * The REST server under the app: HTTPS when the controller has TLS material (clients'
 * certificates are asked for, not required: a token may authenticate instead), and the
 * limits that keep slow or numerous clients from holding sockets forever.
 *
 *   headersMs    a request's headers must arrive within this (slowloris)
 *   requestMs    the whole request, body included, within this
 *   keepAliveMs  an idle kept-alive connection is closed after this
 *   idleMs       a connection with no traffic at all is closed after this (above the
 *                longest long-poll, so held requests are not cut)
 *   maxConnections  open connections; more are closed at once
 */
import type { Server } from 'node:http';
import type { Counter } from 'prom-client';
import { type ServerTls, serverTlsOptions } from '../security/tls.js';

export interface RestTimeouts {
  headersMs: number;
  requestMs: number;
  keepAliveMs: number;
  idleMs: number;
}

export const DEFAULT_REST_TIMEOUTS: RestTimeouts = { headersMs: 10_000, requestMs: 30_000, keepAliveMs: 5_000, idleMs: 120_000 };
export const DEFAULT_REST_MAX_CONNECTIONS = 4096;

export interface RestServerOptions {
  tls?: ServerTls | undefined;
  timeouts?: Partial<RestTimeouts> | undefined;
  maxConnections?: number | undefined;
}

/** Fastify's server options for these settings. */
export function fastifyServerOptions(o: RestServerOptions = {}) {
  const t = { ...DEFAULT_REST_TIMEOUTS, ...o.timeouts };
  // Node checks the header and request deadlines every connectionsCheckingInterval ms.
  const checkEvery = Math.max(250, Math.min(1000, Math.floor(Math.min(t.headersMs, t.requestMs) / 4)));
  const node = { headersTimeout: t.headersMs, requestTimeout: t.requestMs, connectionsCheckingInterval: checkEvery };
  return {
    ...(o.tls ? { https: { ...serverTlsOptions(o.tls, false), ...node } } : { http: node }),
    requestTimeout: t.requestMs,
    keepAliveTimeout: t.keepAliveMs,
    connectionTimeout: t.idleMs,
  };
}

/** Caps the connections and counts what the server turns away. */
export function guardRestServer(server: Server, refused: Counter<'reason'>, maxConnections = DEFAULT_REST_MAX_CONNECTIONS): void {
  server.maxConnections = maxConnections;
  server.on('drop', () => refused.inc({ reason: 'connections' }));
  server.on('clientError', (err: NodeJS.ErrnoException) => {
    if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return; // the client left
    refused.inc({ reason: err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'timeout' : 'bad_request' });
  });
  // HTTPS: a handshake that fails (plaintext on the TLS port, an unknown CA, a timeout).
  server.on('tlsClientError', () => refused.inc({ reason: 'tls' }));
}
