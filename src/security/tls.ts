/**
 * TLS material of the controller and its clients, and the principal a verified client
 * certificate stands for.
 *
 *   controller  --tls-dir DIR: DIR/ca.pem (clients' certificates must chain to it),
 *               DIR/server.pem, DIR/server-key.pem
 *   clients     --tls-dir DIR (DIR/ca.pem verifies the controller; DIR/client.pem and
 *               DIR/client-key.pem are the client's own when present), or --ca, --cert,
 *               --key (relative paths are taken in --tls-dir)
 */
import { access } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { type Principal, principalFromCert } from './identity.js';
import { CA_CERT, PkiError, SERVER_CERT, SERVER_KEY, readPem } from './pki.js';

export interface ServerTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  /** Where it was read from (reloaded from there). */
  dir: string;
}

export async function loadServerTls(dir: string): Promise<ServerTls> {
  const [ca, cert, key] = await Promise.all([
    readPem(join(dir, CA_CERT), 'the CA certificate'),
    readPem(join(dir, SERVER_CERT), "the controller's certificate"),
    readPem(join(dir, SERVER_KEY), "the controller's key"),
  ]);
  return { ca, cert, key, dir };
}

/** node:tls server options: clients' certificates are asked for and checked against the CA. */
export function serverTlsOptions(t: ServerTls, requireClientCert: boolean) {
  return { ca: t.ca, cert: t.cert, key: t.key, requestCert: true, rejectUnauthorized: requireClientCert, minVersion: 'TLSv1.2' as const };
}

/** What a client's flags say about TLS; all optional (no field set: plaintext). */
export interface ClientTlsFlags {
  tlsDir?: string | undefined;
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

export interface ClientTls {
  ca: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

export const CLIENT_CERT = 'client.pem';
export const CLIENT_KEY = 'client-key.pem';

async function present(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/**
 * The client's TLS material, or undefined when no TLS flag is set. --cert without --key
 * (or the reverse) is an error; without a CA there is nothing to verify the controller
 * with, also an error.
 */
export async function loadClientTls(f: ClientTlsFlags): Promise<ClientTls | undefined> {
  if (!f.tlsDir && !f.ca && !f.cert && !f.key) return undefined;
  const at = (p: string) => (isAbsolute(p) || !f.tlsDir ? p : join(f.tlsDir, p));
  const caPath = f.ca ? at(f.ca) : f.tlsDir ? join(f.tlsDir, CA_CERT) : undefined;
  if (!caPath) throw new PkiError('--cert/--key need --ca or --tls-dir (the CA that verifies the controller)');
  let certPath = f.cert ? at(f.cert) : undefined;
  let keyPath = f.key ? at(f.key) : undefined;
  if (!certPath !== !keyPath) throw new PkiError('--cert and --key go together');
  if (!certPath && f.tlsDir && (await present(join(f.tlsDir, CLIENT_CERT)))) {
    certPath = join(f.tlsDir, CLIENT_CERT);
    keyPath = join(f.tlsDir, CLIENT_KEY);
  }
  const ca = await readPem(caPath, 'the CA certificate');
  if (!certPath || !keyPath) return { ca };
  const [cert, key] = await Promise.all([readPem(certPath, 'the client certificate'), readPem(keyPath, 'the client key')]);
  return { ca, cert, key };
}

/** node:tls connect options for a client (the controller's name or address is checked). */
export function clientTlsOptions(t: ClientTls) {
  return { ca: t.ca, ...(t.cert && t.key ? { cert: t.cert, key: t.key } : {}), minVersion: 'TLSv1.2' as const };
}

/** The principal of a TLS peer whose certificate the CA vouches for; undefined otherwise. */
export function tlsPeerPrincipal(socket: TLSSocket): Principal | undefined {
  if (!socket.authorized) return undefined;
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return undefined;
  return principalFromCert(cert);
}
