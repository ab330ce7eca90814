/**
 * The controller's composition root: opens the store, makes sure the initial data exists,
 * and starts the REST API (NAPI routes + /metrics) and the SVP mapping service.
 */
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { createLogger } from '../log/index.js';
import { createRegistry } from '../metrics/index.js';
import type { FwEngine } from '../fw/push.js';
import { ensureInitialData } from '../napi/bootstrap.js';
import { DEFAULT_MAC_OUI, type NapiConfig } from '../napi/context.js';
import { openStore, type StoreConfig } from '../store/index.js';
import type { Store } from '../store/types.js';
import { MappingIndex } from '../mapping/index.js';
import { startLogSweep } from '../overlay/gc.js';
import { OVERLAY_PREFIX, VNODE_PREFIX } from '../overlay/keys.js';
import { IP_PREFIX as NAPI_IP_PREFIX, NETWORK_PREFIX, NIC_PREFIX } from '../napi/keys.js';
import type { CommitRecord } from '../store/txn.js';
import { SvpServer } from '../svp/server.js';
import { registerConsole } from '../console/server.js';
import { registerIndexGauges, registerObjectGauges } from './gauges.js';
import { buildRestApp } from './rest-app.js';
import type { FwApiOptions } from '../fw/routes/index.js';
import type { RestLimits } from '../rest/auth.js';
import type { RestTimeouts } from '../rest/server.js';
import { type ServerTls, loadServerTls } from '../security/tls.js';
import { TokenBook } from '../security/tokens.js';
import { Counter, Gauge } from 'prom-client';
import { startupWarnings } from './warnings.js';
import { WireguardDirectory } from '../overlay/wireguard-directory.js';
import type { EncryptionMode } from '../overlay/wireguard.js';
import { registerWireguardRoutes } from '../napi/routes/wireguard.js';
import { RouterDirectory } from '../napi/router-directory.js';
import { registerRouterFeed } from '../napi/routes/router-feed.js';

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
  /** Open SVP connections allowed in total (default DEFAULT_MAX_CONNECTIONS). */
  svpMaxConnections?: number;
  /** Open SVP connections allowed from one peer address (default DEFAULT_MAX_CONNECTIONS_PER_PEER). */
  svpMaxConnectionsPerPeer?: number;
  /** Serve the web console at /ui (default true). Agents' reports are accepted either way. */
  ui?: boolean;
  /** TLS on REST and SVP from this directory (ca.pem, server.pem, server-key.pem). */
  tlsDir?: string | undefined;
  /** Bearer tokens for REST (reloaded by reload()). Absent: REST is open, as NAPI. */
  authFile?: string | undefined;
  /** /metrics without credentials. */
  metricsOpen?: boolean | undefined;
  /** A plaintext SVP listener answering lookups only (for varpd-compatible clients). */
  svpPlaintextListen?: HostPort | undefined;
  svpHandshakeTimeoutMs?: number | undefined;
  svpIdleTimeoutMs?: number | undefined;
  /** Long-polled LOG_REQs held at once per node, over all its connections. */
  svpMaxLogReqsPerNode?: number | undefined;
  restLimits?: RestLimits | undefined;
  restTimeouts?: Partial<RestTimeouts> | undefined;
  restMaxConnections?: number | undefined;
  /** The ruleset feed's long-poll caps. */
  feed?: Pick<FwApiOptions, 'maxWaitMs' | 'maxWaitersPerNode' | 'maxWaiters'> | undefined;
  /**
   * The deployment's underlay encryption, written at start (absent: what the store has,
   * none on a new deployment). wireguard while some node is not ready goes through prepare.
   */
  encryption?: Exclude<EncryptionMode, 'prepare'>;
  /** The WireGuard tunnel subnet (absent: what the store has, 100.64.0.0/10 on a new deployment). */
  tunnelSubnet?: string;
}

export interface Controller {
  store: Store;
  registry: Registry;
  app: FastifyInstance;
  /** The firewall engine behind the REST app's firewall routes. */
  fwEngine: FwEngine;
  index: MappingIndex;
  svp: SvpServer;
  wireguard: WireguardDirectory;
  restAddress: HostPort;
  svpAddress: HostPort;
  /** The plaintext read-only SVP listener, when asked for. */
  svpPlaintextAddress: HostPort | null;
  /** Whether REST and SVP speak TLS. */
  tls: boolean;
  /** Things an operator should know about this configuration (also logged at start). */
  warnings: string[];
  /** SIGHUP: re-reads the auth file and the TLS material; a bad file keeps what is in force. */
  reload(): Promise<void>;
  close(): Promise<void>;
}

/**
 * What an etcd replica keeps a watch-fed copy of (EtcdStoreOptions.mirrorPrefixes): the keys
 * NIC writes read, so that a write's reads cost no etcd round trip (its commit still checks them).
 */
const MIRRORED_PREFIXES = [NIC_PREFIX, NETWORK_PREFIX, NAPI_IP_PREFIX, VNODE_PREFIX];

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
  // Credentials first: a missing certificate or a bad auth file stops the start before
  // anything is opened.
  const serverTls = opts.tlsDir ? await loadServerTls(opts.tlsDir) : undefined;
  const tokens = opts.authFile ? new TokenBook(opts.authFile) : undefined;
  const tokenLoad = tokens ? await tokens.load() : undefined;
  const store = await openStore(opts.store.kind === 'etcd' ? { ...opts.store, mirrorPrefixes: opts.store.mirrorPrefixes ?? MIRRORED_PREFIXES } : opts.store);
  const registry = createRegistry('controller');
  const config = napiConfigFrom(opts);
  const logger = createLogger({ level: opts.logLevel ?? 'info' });
  for (const w of tokenLoad?.warnings ?? []) logger.warn(w);
  const authMetrics = tokens ? registerAuthMetrics(registry, tokens) : undefined;
  let app: FastifyInstance | undefined;
  const index = new MappingIndex({ store, logger: logger.child({ component: 'mapping' }) });
  let svp: SvpServer | undefined;
  const wgLog = logger.child({ component: 'wireguard' });
  const wireguard = new WireguardDirectory(store, { onError: (err) => wgLog.warn({ err: err.message }, 'peer directory') });
  const routerLog = logger.child({ component: 'routers' });
  const routers = new RouterDirectory(store, { onError: (err) => routerLog.warn({ err: err.message }, 'router directory') });
  try {
    await ensureInitialData({ store, config });
    // The index answers SVP from memory; it must be caught up before SVP opens.
    await index.start();
    await wireguard.start();
    await routers.start();
    if (opts.encryption !== undefined || opts.tunnelSubnet !== undefined) {
      const set = await wireguard.request(opts.encryption ?? wireguard.encryption.target ?? wireguard.encryption.mode, opts.tunnelSubnet ? { tunnelSubnet: opts.tunnelSubnet } : {});
      wgLog.info(`underlay encryption: ${set.mode}${set.target ? ` (until every node is ready, then ${set.target})` : ''}, tunnel subnet ${set.tunnel_subnet}`);
    }
    const rest = buildRestApp(
      { store, config, registry },
      {
        logger,
        // Read-your-writes across protocols: a REST write is acknowledged only once SVP
        // lookups on this controller reflect it (no stale answer after a commit).
        // The index follows only ovl/: it waits for the last commit that wrote there.
        beforeWriteReply: async (_revision, rec) => {
          const rev = latestRevisionUnder(rec, OVERLAY_PREFIX);
          if (rev > 0) await index.waitForRevision(rev, 5000);
        },
        extraRoutes: [
          (a, ctx) => void registerConsole(a, ctx, { ui: opts.ui ?? true }),
          (a, ctx) => registerWireguardRoutes(a, ctx, wireguard, { maxWaitersPerNode: opts.feed?.maxWaitersPerNode }),
          (a) => registerRouterFeed(a, routers, { maxWaitersPerNode: opts.feed?.maxWaitersPerNode }),
        ],
        auth: { tokens, metricsOpen: opts.metricsOpen, limits: opts.restLimits },
        server: { tls: serverTls, timeouts: opts.restTimeouts, maxConnections: opts.restMaxConnections },
        ...(opts.feed ? { fw: opts.feed } : {}),
      },
    );
    app = rest.app;
    registerObjectGauges(registry, store);
    registerIndexGauges(registry, index);
    svp = new SvpServer({
      store,
      index,
      registry,
      host: opts.svpListen.host,
      port: opts.svpListen.port,
      logWaitMs: opts.svpLogWaitMs ?? 10_000,
      ...(opts.svpMaxConnections !== undefined ? { maxConnections: opts.svpMaxConnections } : {}),
      ...(opts.svpMaxConnectionsPerPeer !== undefined ? { maxConnectionsPerPeer: opts.svpMaxConnectionsPerPeer } : {}),
      ...(opts.svpHandshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: opts.svpHandshakeTimeoutMs } : {}),
      ...(opts.svpIdleTimeoutMs !== undefined ? { idleTimeoutMs: opts.svpIdleTimeoutMs } : {}),
      ...(opts.svpMaxLogReqsPerNode !== undefined ? { maxHeldLogReqsPerNode: opts.svpMaxLogReqsPerNode } : {}),
      tls: serverTls,
      plaintextReadOnly: opts.svpPlaintextListen,
      logger: logger.child({ component: 'svp' }),
    });
    const svpBound = await svp.listen();
    // Log entries every recipient has removed go; events a node never consumes (it died,
    // or was removed) are dropped after a day or beyond 10,000 per node.
    const gcLog = logger.child({ component: 'log-sweep' });
    const eventGc = startLogSweep(store, index, { onError: (err) => gcLog.warn({ err: err.message }, 'log sweep failed') });
    await app.listen({ host: opts.listen.host, port: opts.listen.port });
    const addr = app.server.address();
    const restAddress =
      addr && typeof addr === 'object' ? { host: addr.address, port: addr.port } : { host: opts.listen.host, port: opts.listen.port };
    const started = app;
    const svpServer = svp;
    const plain = svpServer.plaintextAddress();
    const warnings = startupWarnings({
      rest: restAddress,
      svp: svpBound.address,
      svpPlaintext: plain?.address,
      tls: serverTls !== undefined,
      tokens: tokens !== undefined,
      metricsOpen: opts.metricsOpen === true,
    });
    for (const w of warnings) logger.warn(w);
    let tlsInForce: ServerTls | undefined = serverTls;
    return {
      store,
      registry,
      app: started,
      fwEngine: rest.fwEngine,
      index,
      svp: svpServer,
      wireguard,
      restAddress,
      svpAddress: { host: svpBound.address, port: svpBound.port },
      svpPlaintextAddress: plain ? { host: plain.address, port: plain.port } : null,
      tls: serverTls !== undefined,
      warnings,
      async reload() {
        if (tokens) {
          try {
            const r = await tokens.load();
            authMetrics?.reloads.inc({ result: 'ok' });
            logger.info({ tokens: r.count }, 'auth file reloaded');
            for (const w of r.warnings) logger.warn(w);
          } catch (err) {
            authMetrics?.reloads.inc({ result: 'error' });
            logger.error({ err: (err as Error).message }, 'auth file not reloaded: the tokens in force stay');
          }
        }
        if (tlsInForce) {
          try {
            const next = await loadServerTls(tlsInForce.dir);
            (started.server as unknown as { setSecureContext(o: object): void }).setSecureContext({ ca: next.ca, cert: next.cert, key: next.key });
            svpServer.setTls(next);
            tlsInForce = next;
            logger.info('TLS certificates reloaded');
          } catch (err) {
            logger.error({ err: (err as Error).message }, 'TLS certificates not reloaded: the ones in force stay');
          }
        }
      },
      async close() {
        await eventGc.stop();
        await svpServer.close();
        await started.close();
        wireguard.stop();
        routers.stop();
        index.close();
        await store.close();
      },
    };
  } catch (err) {
    await svp?.close().catch(() => undefined);
    await app?.close().catch(() => undefined);
    wireguard.stop();
    routers.stop();
    index.close();
    await store.close().catch(() => undefined);
    throw err;
  }
}

function registerAuthMetrics(registry: Registry, tokens: TokenBook) {
  new Gauge({
    name: 'rhumb_auth_tokens',
    help: 'Bearer tokens in force (from --auth-file)',
    registers: [registry],
    collect() {
      this.set(tokens.size);
    },
  });
  const reloads = new Counter({
    name: 'rhumb_auth_reloads_total',
    help: 'Auth file reloads (SIGHUP), by result (ok, error: the tokens in force stayed)',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  return { reloads };
}

/** The revision of the request's last commit that wrote a key under prefix (0: none). */
export function latestRevisionUnder(rec: CommitRecord, prefix: string): number {
  let rev = 0;
  for (const c of rec.commits ?? []) if (c.revision > rev && c.keys.some((k) => k.startsWith(prefix))) rev = c.revision;
  return rev;
}
