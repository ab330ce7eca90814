/**
 * The HTTP side of Docker's plugin protocol: POST /<Interface>.<Method> with a JSON body,
 * served on a unix socket (mode 0600: Docker's plugin calls carry no credentials) or on
 * HOST:PORT. Handlers are looked up by path; an unknown path is a 404 (Docker takes that
 * as "not implemented"), a body that is not JSON a 400, and any failure of a handler is
 * answered 200 {"Err": message, "Error": message} (the network driver protocol reads the
 * first, the IPAM protocol the second), which Docker shows the user as the cause.
 */
import { mkdir, rm, stat } from 'node:fs/promises';
import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { PLUGIN_CONTENT_TYPE } from './protocol.js';

export type PluginAddress = { socketPath: string } | { host: string; port: number };

/** Where Docker looks for plugin sockets (a socket there is found without a spec file). */
export const DOCKER_PLUGIN_SOCKET_DIR = '/run/docker/plugins';

/** `--docker-plugin`: an absolute socket path (or unix:///path), or HOST:PORT. */
export function parsePluginAddress(text: string): PluginAddress {
  const path = text.startsWith('unix://') ? text.slice('unix://'.length) : text;
  if (path.startsWith('/')) {
    if (path.length > 100 || /[\s\0]/.test(path)) throw new Error(`--docker-plugin ${text}: a socket path of at most 100 characters, no spaces`);
    return { socketPath: path };
  }
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text.replace(/^tcp:\/\//, ''));
  if (m && Number(m[2]) < 65536) return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  throw new Error(`--docker-plugin ${text}: expected a unix socket path (/run/docker/plugins/rhumb.sock) or HOST:PORT`);
}

/** The URL a Docker plugin spec file holds for this address. */
export function pluginUrl(a: PluginAddress): string {
  return 'socketPath' in a ? `unix://${a.socketPath}` : `tcp://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

export type PluginHandler = (body: unknown) => Promise<unknown>;

export interface PluginServerOptions {
  /** One line per failed call (the cause Docker shows the user too). */
  onError?: (method: string, err: Error) => void;
  /** Every call, with its duration (metrics, debugging). */
  onCall?: (method: string, ms: number, ok: boolean) => void;
}

const MAX_BODY = 1 << 20;

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': PLUGIN_CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Is something listening on this unix socket? */
function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class PluginServer {
  private constructor(
    private readonly server: Server,
    readonly address: PluginAddress,
  ) {}

  get url(): string {
    return pluginUrl(this.address);
  }

  /** Listens at addr; a stale socket file (nobody listening) is replaced, a live one refused. */
  static async listen(addr: PluginAddress, handlers: ReadonlyMap<string, PluginHandler>, o: PluginServerOptions = {}): Promise<PluginServer> {
    const server = createServer((req, res) => {
      void (async () => {
        const method = (req.url ?? '').replace(/^\//, '').split('?')[0]!;
        const handler = req.method === 'POST' ? handlers.get(method) : undefined;
        if (!handler) {
          req.resume();
          return send(res, 404, { Err: `${req.method} ${req.url}: not implemented` });
        }
        let body: unknown;
        try {
          const text = await readBody(req);
          body = text.trim() === '' ? {} : JSON.parse(text);
        } catch (err) {
          return send(res, 400, { Err: `${method}: the request is not JSON (${(err as Error).message})` });
        }
        const started = Date.now();
        try {
          const out = await handler(body);
          o.onCall?.(method, Date.now() - started, true);
          send(res, 200, out ?? {});
        } catch (err) {
          o.onCall?.(method, Date.now() - started, false);
          o.onError?.(method, err as Error);
          // Network driver answers carry "Err", IPAM answers "Error" (libnetwork reads one each).
          send(res, 200, { Err: (err as Error).message, Error: (err as Error).message });
        }
      })();
    });
    let bound = addr;
    if ('socketPath' in addr) {
      await mkdir(dirname(addr.socketPath), { recursive: true, mode: 0o755 });
      const st = await stat(addr.socketPath).catch(() => undefined);
      if (st) {
        if (!st.isSocket()) throw new Error(`--docker-plugin ${addr.socketPath} exists and is not a socket`);
        if (await socketInUse(addr.socketPath)) throw new Error(`--docker-plugin ${addr.socketPath}: another process serves it`);
        await rm(addr.socketPath, { force: true });
      }
      // Created 0600 (umask) rather than chmod'ed after: no moment where others may connect.
      const old = process.umask(0o177);
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(addr.socketPath, () => resolve());
        });
      } finally {
        process.umask(old);
      }
    } else {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(addr.port, addr.host, () => resolve());
      });
      const a = server.address();
      if (a && typeof a === 'object') bound = { host: addr.host, port: a.port };
    }
    return new PluginServer(server, bound);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    if ('socketPath' in this.address) await rm(this.address.socketPath, { force: true });
  }
}
