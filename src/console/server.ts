/**
 * The web console on the controller's REST port, and the agents' report route:
 *
 *   POST /nodes/:cn_uuid/report   an agent's NodeReport (probes, applied shootdowns) → 204
 *   GET  /ui                      the console (static HTML/JS/CSS from ./static, no build step)
 *   GET  /ui/api/snapshot         the current ConsoleSnapshot (JSON)
 *   GET  /ui/api/events           server-sent events: `snapshot` with a ConsoleSnapshot
 *                                 on connect and after every change
 *
 * The explain form calls the firewall's own GET /fw/explain. The pages are served with a
 * strict Content-Security-Policy (scripts and styles from /ui only, no inline code), and
 * the script writes tenant data as text only.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { RestContext } from '../rest/context.js';
import { access, pathIs } from '../rest/access.js';
import { invalidParam, invalidParams, notFound } from '../rest/errors.js';
import { ConsoleFeed } from './feed.js';
import { HealthBook, parseNodeReport } from './health.js';

export interface ConsoleOptions {
  /** Serve /ui (off: only the report route). */
  ui: boolean;
  health?: HealthBook;
  /** Heartbeat comment on idle event streams. Default 15 s. */
  heartbeatMs?: number;
}

/** Unsent bytes an event stream may hold before it is dropped. */
const MAX_BUFFERED_BYTES = 16 * 1024 * 1024;

const STATIC_FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'render.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/** src/console/static, whether running from src (tsx) or from dist/src (compiled). */
export function staticDir(): string {
  const candidates = [new URL('./static/', import.meta.url), new URL('../../../src/console/static/', import.meta.url)];
  for (const c of candidates) {
    const p = fileURLToPath(c);
    if (existsSync(join(p, 'index.html'))) return p;
  }
  throw new Error('the console\'s static files (src/console/static) are missing');
}

function loadStatic(): Map<string, Buffer> {
  const dir = staticDir();
  return new Map(Object.keys(STATIC_FILES).map((f) => [f, readFileSync(join(dir, f))]));
}

export function registerConsole(app: FastifyInstance, ctx: RestContext, opts: ConsoleOptions): { health: HealthBook; feed: ConsoleFeed } {
  const health = opts.health ?? new HealthBook();
  const feed = new ConsoleFeed({ store: ctx.store, health, onError: (err) => ctx.log.warn({ err: err.message }, 'console feed') });

  // A node reports for itself; the console's data (snapshot, event stream) is operators'
  // (admins') when auth is on: a browser shows an admin client certificate, or the page
  // asks for an admin token. The pages themselves hold no data: anyone may load them.
  app.post('/nodes/:cn_uuid/report', access({ allow: ['node'], node: [pathIs('cn_uuid', () => notFound('node not found'))] }), async (req, reply) => {
    let report;
    try {
      report = parseNodeReport((req.params as { cn_uuid: string }).cn_uuid, req.body);
    } catch (err) {
      throw invalidParams([invalidParam('report', (err as Error).message)], (err as Error).message);
    }
    health.accept(report, Date.now());
    feed.changed();
    reply.status(204);
    return reply.send();
  });

  app.addHook('onClose', async () => feed.close());
  if (!opts.ui) return { health, feed };

  const files = loadStatic();
  serveEvents(app, feed, opts.heartbeatMs ?? 15_000);

  // One route for /ui and /ui/ (the app ignores trailing slashes); the page's relative
  // URLs need the slash.
  const PAGE = access({ allow: 'anyone' });
  app.get('/ui/', PAGE, async (req, reply) => {
    if (!req.url.split('?')[0]!.endsWith('/')) return reply.redirect('/ui/');
    return reply.headers(SECURITY_HEADERS).type(STATIC_FILES['index.html']!).send(files.get('index.html'));
  });
  app.get('/ui/:file', PAGE, async (req, reply) => {
    const file = (req.params as { file: string }).file;
    const body = Object.hasOwn(STATIC_FILES, file) ? files.get(file) : undefined;
    if (!body) return reply.status(404).send({ code: 'ResourceNotFound', message: `/ui/${file} does not exist` });
    return reply.headers(SECURITY_HEADERS).type(STATIC_FILES[file]!).send(body);
  });
  app.get('/ui/api/snapshot', async (_req, reply) => reply.header('cache-control', 'no-store').send(await feed.snapshot()));

  return { health, feed };
}

/** GET /ui/api/events: a `snapshot` event now and after every change, until the browser leaves. */
function serveEvents(app: FastifyInstance, feed: ConsoleFeed, heartbeatMs: number): void {
  const streams = new Set<{ end(): void; socket(): { destroy(): void } | null }>();
  // Open event streams would hold the server's close: end them and their connections
  // first (EventSource reconnects by itself, to another replica if there is one).
  app.addHook('preClose', async () => {
    for (const s of [...streams]) {
      const socket = s.socket();
      s.end();
      socket?.destroy();
    }
    feed.close();
  });

  app.get('/ui/api/events', access({ allow: [], longPoll: true }), (_req, reply) => {
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-content-type-options': 'nosniff',
    });
    res.write('retry: 1000\n\n');
    const send = (s: unknown) => {
      // A browser that does not read gets cut off (it reconnects to a fresh snapshot)
      // rather than the controller buffering snapshots for it.
      if (res.writableLength > MAX_BUFFERED_BYTES) return stream.end();
      res.write(`event: snapshot\ndata: ${JSON.stringify(s)}\n\n`);
    };
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), heartbeatMs);
    let unsubscribe = () => {};
    const stream = {
      end: () => {
        clearInterval(heartbeat);
        unsubscribe();
        streams.delete(stream);
        if (!res.writableEnded) res.end();
      },
      socket: () => res.socket,
    };
    streams.add(stream);
    unsubscribe = feed.subscribe(send);
    // The response's close: the browser went away (the request's own close fires earlier).
    res.once('close', () => stream.end());
  });

}
