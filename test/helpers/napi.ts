/**
 * In-process NAPI for route tests: the real fastify app over a fresh store, driven with
 * app.inject (no sockets). `call` returns status, headers and parsed JSON body.
 */
import type { FastifyInstance } from 'fastify';
import { napiConfigFrom, DEFAULT_ADMIN_UUID } from '../../src/controller/index.js';
import { createRegistry } from '../../src/metrics/index.js';
import { buildRestApp } from '../../src/controller/rest-app.js';
import type { FwEngine } from '../../src/fw/push.js';
import type { FwApiOptions } from '../../src/fw/routes/index.js';
import { ensureInitialData } from '../../src/napi/bootstrap.js';
import type { NapiConfig } from '../../src/napi/context.js';
import { MemoryStore } from '../../src/store/memory.js';
import type { Store } from '../../src/store/types.js';
import type { RestAuthOptions } from '../../src/rest/auth.js';
import type { RestContext } from '../../src/rest/context.js';
import { registerConsole } from '../../src/console/server.js';
import { type WireguardRouteOptions, registerWireguardRoutes } from '../../src/napi/routes/wireguard.js';
import { WireguardDirectory } from '../../src/overlay/wireguard-directory.js';
import { RouterDirectory } from '../../src/napi/router-directory.js';
import { type RouterFeedOptions, registerRouterFeed } from '../../src/napi/routes/router-feed.js';

export interface TestNapi {
  app: FastifyInstance;
  /** The firewall engine behind the app's firewall routes. */
  fwEngine: FwEngine;
  store: Store;
  config: NapiConfig;
  call(method: string, url: string, body?: unknown, headers?: Record<string, string>): Promise<Reply>;
  close(): Promise<void>;
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | number | undefined>;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any -- test convenience
}

export const ADMIN_UUID = DEFAULT_ADMIN_UUID;

export async function startTestNapi(
  opts: {
    store?: Store;
    overlayMtu?: number;
    /** Tokens, metrics and limits (default: open, as NAPI). */
    auth?: RestAuthOptions;
    /** Also the console's routes (agents' reports, /ui): what the controller serves. */
    console?: boolean;
    /** The firewall routes' options (feed long-poll caps, nft -c verification). */
    fw?: FwApiOptions;
    /** Also the encrypted underlay's routes (/encryption, /wireguard/...) over a directory of this store. */
    wireguard?: WireguardRouteOptions;
    /** Also the router feed (/routers/feed) over a directory of this store. */
    routerFeed?: RouterFeedOptions;
  } = {},
): Promise<TestNapi> {
  const store = opts.store ?? new MemoryStore();
  const config = napiConfigFrom({
    store: { kind: 'memory' },
    listen: { host: '127.0.0.1', port: 0 },
    svpListen: { host: '127.0.0.1', port: 0 },
    adminUuid: ADMIN_UUID,
    overlayMtu: opts.overlayMtu ?? 1450,
  });
  await ensureInitialData({ store, config });
  const wireguard = opts.wireguard ? new WireguardDirectory(store) : undefined;
  await wireguard?.start();
  const routers = opts.routerFeed ? new RouterDirectory(store) : undefined;
  await routers?.start();
  const extraRoutes: NonNullable<Parameters<typeof buildRestApp>[1]>['extraRoutes'] = [
    ...(opts.console ? [(a: FastifyInstance, ctx: RestContext) => void registerConsole(a, ctx, { ui: true })] : []),
    ...(wireguard ? [(a: FastifyInstance, ctx: RestContext) => registerWireguardRoutes(a, ctx, wireguard, opts.wireguard)] : []),
    ...(routers ? [(a: FastifyInstance) => registerRouterFeed(a, routers, opts.routerFeed)] : []),
  ];
  const { app, fwEngine } = buildRestApp(
    { store, config, registry: createRegistry('test') },
    {
      ...(opts.auth ? { auth: opts.auth } : {}),
      ...(opts.fw ? { fw: opts.fw } : {}),
      ...(extraRoutes.length > 0 ? { extraRoutes } : {}),
    },
  );
  await app.ready();
  return {
    app,
    fwEngine,
    store,
    config,
    async call(method, url, body, headers = {}) {
      const res = await app.inject({
        method: method as 'GET',
        url,
        headers: body !== undefined && typeof body !== 'string' ? { 'content-type': 'application/json', ...headers } : headers,
        payload: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      let parsed: unknown = undefined;
      if (res.body.length > 0) {
        try {
          parsed = JSON.parse(res.body);
        } catch {
          parsed = res.body;
        }
      }
      return { status: res.statusCode, headers: res.headers, body: parsed };
    },
    async close() {
      wireguard?.stop();
      routers?.stop();
      await app.close();
      await store.close();
    },
  };
}
