/**
 * `rhumb pki`: a certificate authority and the certificates of a deployment, made by the
 * system's `openssl` (Debian's openssl package; no ASN.1 here). One directory holds it:
 *
 *   ca.pem, ca-key.pem              the CA (P-256, 10 years); the key never leaves DIR
 *   server.pem, server-key.pem      the controller (serverAuth; SANs from --san)
 *   NAME.pem, NAME-key.pem          a client (clientAuth): a node agent (--node UUID puts
 *                                   URI:urn:rhumb:node:UUID in its SANs) or an operator
 *                                   (URI:urn:rhumb:admin)
 *
 * Keys are 0600, the directory 0700. Nothing is overwritten: every file is made in a
 * scratch directory and moved in only when all of them exist, so a failure leaves DIR as
 * it was. Names and SANs are checked before openssl runs (they become its arguments; no
 * shell is involved).
 */
import { execFile } from 'node:child_process';
import { chmod, link, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { NODE_URI_PREFIX, ADMIN_URI } from './identity.js';

const run = promisify(execFile);

export const CA_CERT = 'ca.pem';
export const CA_KEY = 'ca-key.pem';
export const SERVER_CERT = 'server.pem';
export const SERVER_KEY = 'server-key.pem';

export const CA_DAYS = 3650;
/** Leaf certificates: 825 days, the longest most TLS clients accept. */
export const LEAF_DAYS = 825;

export class PkiError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PkiError';
  }
}

/** A client certificate's name: it becomes two file names and the subject's CN. */
export function clientNameProblem(name: unknown): string | undefined {
  if (typeof name === 'string' && /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name) && !/^(ca|server)$/.test(name)) return undefined;
  return `--name must be 1-64 letters, digits, '_', '.' or '-' (not starting with '.' or '-', not "ca" or "server"), got ${JSON.stringify(name)}`;
}

const DNS_NAME = /^(?=.{1,253}$)(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** `IP:a.b.c.d` / `DNS:name` entries of subjectAltName from addresses and host names. */
export function sanEntries(values: readonly string[]): string[] {
  const out: string[] = [];
  for (const raw of values.flatMap((v) => v.split(',')).map((v) => v.trim()).filter((v) => v !== '')) {
    const v = raw.replace(/^(IP|DNS):/i, '');
    if (isIP(v)) out.push(`IP:${v}`);
    else if (DNS_NAME.test(v)) out.push(`DNS:${v.toLowerCase()}`);
    else throw new PkiError(`--san takes IP addresses and DNS names, got ${JSON.stringify(raw)}`);
  }
  return [...new Set(out)];
}

/** The controller's default SANs: loopback and this host's name. */
export function defaultSans(): string[] {
  const h = hostname();
  return ['localhost', '127.0.0.1', '::1', ...(DNS_NAME.test(h) ? [h] : [])];
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 60_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new PkiError('openssl is not installed (Debian: apt-get install openssl)');
    throw new PkiError(`openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim().split('\n').slice(-3).join(' ')}`);
  }
}

const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** openssl arguments for a self-signed CA. */
export function caArgs(certFile: string, keyFile: string, subject = 'rhumb CA'): string[] {
  return [
    'req', '-x509', '-new', ...newKey, '-keyout', keyFile, '-out', certFile, '-days', String(CA_DAYS),
    '-subj', `/CN=${subject}`,
    '-addext', 'basicConstraints=critical,CA:TRUE,pathlen:0',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ];
}

/** openssl arguments for a leaf certificate signed by the CA in `dir`. */
export function leafArgs(
  dir: string,
  out: { cert: string; key: string },
  leaf: { cn: string; sans: string[]; usage: 'serverAuth' | 'clientAuth' },
): string[] {
  return [
    'req', '-new', ...newKey, '-keyout', out.key, '-out', out.cert, '-days', String(LEAF_DAYS),
    '-subj', `/CN=${leaf.cn}`,
    '-CA', join(dir, CA_CERT), '-CAkey', join(dir, CA_KEY),
    ...(leaf.sans.length > 0 ? ['-addext', `subjectAltName=${leaf.sans.join(',')}`] : []),
    '-addext', `extendedKeyUsage=${leaf.usage}`,
    '-addext', 'basicConstraints=critical,CA:FALSE',
    '-addext', 'keyUsage=critical,digitalSignature',
  ];
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Makes files in a scratch directory next to `dir`, then links each into `dir` (link
 * fails rather than replace an existing file); on any failure the ones linked are removed.
 */
async function atomically(dir: string, names: string[], make: (scratch: string) => Promise<void>): Promise<string[]> {
  for (const n of names) if (await exists(join(dir, n))) throw new PkiError(`${join(dir, n)} exists already: nothing was changed`);
  const scratch = await mkdtemp(join(dir, '.pki-'));
  const placed: string[] = [];
  try {
    await chmod(scratch, 0o700);
    await make(scratch);
    for (const n of names) {
      await chmod(join(scratch, n), n.endsWith('-key.pem') ? 0o600 : 0o644);
      await link(join(scratch, n), join(dir, n));
      placed.push(join(dir, n));
    }
    return placed;
  } catch (err) {
    for (const p of placed) await rm(p, { force: true });
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new PkiError(`a file appeared in ${dir} meanwhile: nothing was changed`);
    throw err;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** `pki init DIR`: the CA and the controller's certificate. Returns the files made. */
export async function pkiInit(dir: string, opts: { sans?: readonly string[] } = {}): Promise<string[]> {
  const sans = sanEntries(opts.sans && opts.sans.length > 0 ? opts.sans : defaultSans());
  await mkdir(dir, { recursive: true, mode: 0o700 });
  return atomically(dir, [CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY], async (s) => {
    await openssl(caArgs(join(s, CA_CERT), join(s, CA_KEY)));
    await openssl(leafArgs(s, { cert: join(s, SERVER_CERT), key: join(s, SERVER_KEY) }, { cn: 'rhumb-controller', sans, usage: 'serverAuth' }));
  });
}

/** `pki issue DIR --name NAME [--node UUID]`: a client certificate signed by DIR's CA. */
export async function pkiIssue(dir: string, opts: { name: string; node?: string }): Promise<string[]> {
  const problem = clientNameProblem(opts.name);
  if (problem) throw new PkiError(problem);
  const node = opts.node?.toLowerCase();
  if (node !== undefined && !UUID.test(node)) throw new PkiError(`--node must be a UUID, got ${JSON.stringify(opts.node)}`);
  for (const f of [CA_CERT, CA_KEY]) if (!(await exists(join(dir, f)))) throw new PkiError(`${join(dir, f)} is missing: run \`rhumb pki init ${dir}\` first`);
  const sans = node ? [`URI:${NODE_URI_PREFIX}${node}`] : [`URI:${ADMIN_URI}`];
  const cert = `${opts.name}.pem`;
  const key = `${opts.name}-key.pem`;
  return atomically(dir, [cert, key], async (s) => {
    // The CA stays in DIR; openssl reads it from there.
    await openssl(leafArgs(dir, { cert: join(s, cert), key: join(s, key) }, { cn: opts.name, sans, usage: 'clientAuth' }));
  });
}

/** Reads a PEM file, saying which one is missing or unreadable. */
export async function readPem(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new PkiError(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
