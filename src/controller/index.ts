/**
 * The controller's composition root: opens the store, makes sure the initial data exists,
 * and starts the REST API (NAPI routes + /metrics) and the SVP mapping service.
 */
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { createRegistry } from '../metrics/index.js';
import { buildNapiApp } from '../napi/app.js';
import { ensureInitialData } from '../napi/bootstrap.js';
import { DEFAULT_MAC_OUI, type NapiConfig } from '../napi/context.js';
import { openStore, type StoreConfig } from '../store/index.js';
import type { Store } from '../store/types.js';
import { registerObjectGauges } from './gauges.js';

export interface HostPort {
  host: string;
  port: number;
}

export interface ControllerOptions {
  store: StoreConfig;
  listen: HostPort;
  svpListen: HostPort;
  adminUuid: string;
  overlayMtu: number;
  underlayMtu?: number;
  macOUI?: string;
  datacenter?: string;
  logLevel?: string;
  /** Longest a LOG_REQ is held open waiting for events. */
  svpLogWaitMs?: number;
}

export interface Controller {
  store: Store;
  registry: Registry;
  app: FastifyInstance;
  restAddress: HostPort;
  svpAddress: HostPort | null;
  close(): Promise<void>;
}

export const DEFAULT_ADMIN_UUID = '930896af-bf8c-48d4-885c-6573a94b1853';
export const VXLAN_OVERHEAD = 50;

export function napiConfigFrom(opts: ControllerOptions): NapiConfig {
  const underlay = opts.underlayMtu ?? opts.overlayMtu + VXLAN_OVERHEAD;
  return {
    datacenter: opts.datacenter ?? 'dc0',
    adminUuid: opts.adminUuid,
    macOUI: opts.macOUI ?? DEFAULT_MAC_OUI,
    allowLinklocal: true,
    overlay: {
      enabled: true,
      defaultOverlayMTU: opts.overlayMtu,
      defaultUnderlayMTU: underlay,
      overlayNicTag: 'sdc_overlay',
      underlayNicTag: 'sdc_underlay',
    },
  };
}

export async function startController(opts: ControllerOptions): Promise<Controller> {
  const store = await openStore(opts.store);
  const registry = createRegistry('controller');
  const config = napiConfigFrom(opts);
  const logger = { level: opts.logLevel ?? 'info' };
  let app: FastifyInstance | undefined;
  try {
    await ensureInitialData({ store, config });
    app = buildNapiApp({ store, config, registry }, { logger });
    registerObjectGauges(registry, store);
    await app.listen({ host: opts.listen.host, port: opts.listen.port });
    const addr = app.server.address();
    const restAddress =
      addr && typeof addr === 'object' ? { host: addr.address, port: addr.port } : { host: opts.listen.host, port: opts.listen.port };
    const started = app;
    return {
      store,
      registry,
      app: started,
      restAddress,
      svpAddress: null,
      async close() {
        await started.close();
        await store.close();
      },
    };
  } catch (err) {
    await app?.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw err;
  }
}
