/**
 * The controller's composition root: opens the store, makes sure the initial data exists,
 * and starts the REST API (NAPI routes + /metrics) and the SVP mapping service.
 */
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { type Logger, createLogger } from '../log/index.js';
import { createRegistry } from '../metrics/index.js';
import type { FwEngine } from '../fw/push.js';
import { ensureInitialData } from '../napi/bootstrap.js';
import { DEFAULT_MAC_OUI, type NapiConfig } from '../napi/context.js';
import { openStore, type StoreConfig } from '../store/index.js';
import type { Store } from '../store/types.js';
import { MappingIndex } from '../mapping/index.js';
import { type LogSweep, startLogSweep } from '../overlay/gc.js';
import { OVERLAY_PREFIX, VNODE_PREFIX } from '../overlay/keys.js';
import { IP_PREFIX as NAPI_IP_PREFIX, NETWORK_PREFIX, NIC_PREFIX } from '../napi/keys.js';
import type { CommitRecord } from '../store/txn.js';
import { SvpServer } from '../svp/server.js';
import { registerConsole } from '../console/server.js';
import { registerIndexGauges, registerObjectGauges } from './gauges.js';
import { type RestApp, buildRestApp } from './rest-app.js';
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
  const { serverTls, tokens, tokenLoad } = await loadCredentials(opts);
  const store = await openControllerStore(opts.store);
  const registry = createRegistry('controller');
  const config = napiConfigFrom(opts);
  const logger = createLogger({ level: opts.logLevel ?? 'info' });
  for (const w of tokenLoad?.warnings ?? []) logger.warn(w);
  const authMetrics = tokens ? registerAuthMetrics(registry, tokens) : undefined;
  let app: FastifyInstance | undefined;
  const directories = createDirectories(store, logger);
  const { index, wireguard, routers } = directories;
  let svp: SvpServer | undefined;
  try {
    await ensureInitialData({ store, config });
    await startDirectories(directories, opts, logger);
    const rest = buildControllerRest(opts, { store, config, registry, logger, index, wireguard, routers, tokens, serverTls });
    app = rest.app;
    registerObjectGauges(registry, store);
    registerIndexGauges(registry, index);
    svp = createSvpServer(opts, { store, index, registry, logger, serverTls });
    const svpBound = await svp.listen();
    const eventGc = startEventSweep(store, index, logger);
    const restAddress = await listenRest(app, opts.listen);
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
      reload: credentialReloader({ tokens, authMetrics, serverTls, app: started, svp: svpServer, logger }),
      close: () => shutdown({ eventGc, svp: svpServer, app: started, directories, store }),
    };
  } catch (err) {
    await abortStart({ svp, app, directories, store });
    throw err;
  }
}

interface Credentials {
  serverTls: ServerTls | undefined;
  tokens: TokenBook | undefined;
  tokenLoad: Awaited<ReturnType<TokenBook['load']>> | undefined;
}

/** The TLS material and the auth file's tokens, when configured; throws on a bad one. */
async function loadCredentials(opts: ControllerOptions): Promise<Credentials> {
  const serverTls = opts.tlsDir ? await loadServerTls(opts.tlsDir) : undefined;
  const tokens = opts.authFile ? new TokenBook(opts.authFile) : undefined;
  const tokenLoad = tokens ? await tokens.load() : undefined;
  return { serverTls, tokens, tokenLoad };
}

/** The store, an etcd one mirroring what NIC writes read unless told otherwise. */
function openControllerStore(config: StoreConfig): Promise<Store> {
  return openStore(config.kind === 'etcd' ? { ...config, mirrorPrefixes: config.mirrorPrefixes ?? MIRRORED_PREFIXES } : config);
}

/** The in-memory views of the store the controller serves from. */
interface Directories {
  index: MappingIndex;
  wireguard: WireguardDirectory;
  routers: RouterDirectory;
}

function createDirectories(store: Store, logger: Logger): Directories {
  const index = new MappingIndex({ store, logger: logger.child({ component: 'mapping' }) });
  const wgLog = logger.child({ component: 'wireguard' });
  const wireguard = new WireguardDirectory(store, { onError: (err) => wgLog.warn({ err: err.message }, 'peer directory') });
  const routerLog = logger.child({ component: 'routers' });
  const routers = new RouterDirectory(store, { onError: (err) => routerLog.warn({ err: err.message }, 'router directory') });
  return { index, wireguard, routers };
}

/** Catches the directories up with the store, then writes the encryption options given. */
async function startDirectories({ index, wireguard, routers }: Directories, opts: ControllerOptions, logger: Logger): Promise<void> {
  // The index answers SVP from memory; it must be caught up before SVP opens.
  await index.start();
  await wireguard.start();
  await routers.start();
  if (opts.encryption !== undefined || opts.tunnelSubnet !== undefined) {
    const set = await wireguard.request(opts.encryption ?? wireguard.encryption.target ?? wireguard.encryption.mode, opts.tunnelSubnet ? { tunnelSubnet: opts.tunnelSubnet } : {});
    logger
      .child({ component: 'wireguard' })
      .info(`underlay encryption: ${set.mode}${set.target ? ` (until every node is ready, then ${set.target})` : ''}, tunnel subnet ${set.tunnel_subnet}`);
  }
}

interface RestDeps extends Directories {
  store: Store;
  config: NapiConfig;
  registry: Registry;
  logger: Logger;
  tokens: TokenBook | undefined;
  serverTls: ServerTls | undefined;
}

/** The REST app: NAPI and firewall routes, the console, the WireGuard and router feeds. */
function buildControllerRest(opts: ControllerOptions, deps: RestDeps): RestApp {
  const { store, config, registry, logger, index, wireguard, routers } = deps;
  return buildRestApp(
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
      auth: { tokens: deps.tokens, metricsOpen: opts.metricsOpen, limits: opts.restLimits },
      server: { tls: deps.serverTls, timeouts: opts.restTimeouts, maxConnections: opts.restMaxConnections },
      ...(opts.feed ? { fw: opts.feed } : {}),
    },
  );
}

interface SvpDeps {
  store: Store;
  index: MappingIndex;
  registry: Registry;
  logger: Logger;
  serverTls: ServerTls | undefined;
}

/** The SVP server (not yet listening), with the limits the options set. */
function createSvpServer(opts: ControllerOptions, deps: SvpDeps): SvpServer {
  return new SvpServer({
    store: deps.store,
    index: deps.index,
    registry: deps.registry,
    host: opts.svpListen.host,
    port: opts.svpListen.port,
    logWaitMs: opts.svpLogWaitMs ?? 10_000,
    ...(opts.svpMaxConnections !== undefined ? { maxConnections: opts.svpMaxConnections } : {}),
    ...(opts.svpMaxConnectionsPerPeer !== undefined ? { maxConnectionsPerPeer: opts.svpMaxConnectionsPerPeer } : {}),
    ...(opts.svpHandshakeTimeoutMs !== undefined ? { handshakeTimeoutMs: opts.svpHandshakeTimeoutMs } : {}),
    ...(opts.svpIdleTimeoutMs !== undefined ? { idleTimeoutMs: opts.svpIdleTimeoutMs } : {}),
    ...(opts.svpMaxLogReqsPerNode !== undefined ? { maxHeldLogReqsPerNode: opts.svpMaxLogReqsPerNode } : {}),
    tls: deps.serverTls,
    plaintextReadOnly: opts.svpPlaintextListen,
    logger: deps.logger.child({ component: 'svp' }),
  });
}

function startEventSweep(store: Store, index: MappingIndex, logger: Logger): LogSweep {
  // Log entries every recipient has removed go; events a node never consumes (it died,
  // or was removed) are dropped after a day or beyond 10,000 per node.
  const gcLog = logger.child({ component: 'log-sweep' });
  return startLogSweep(store, index, { onError: (err) => gcLog.warn({ err: err.message }, 'log sweep failed') });
}

/** Opens the REST listener; the address it bound (the one asked for if unknown). */
async function listenRest(app: FastifyInstance, listen: HostPort): Promise<HostPort> {
  await app.listen({ host: listen.host, port: listen.port });
  const addr = app.server.address();
  return addr && typeof addr === 'object' ? { host: addr.address, port: addr.port } : { host: listen.host, port: listen.port };
}

interface ReloadDeps {
  tokens: TokenBook | undefined;
  authMetrics: ReturnType<typeof registerAuthMetrics> | undefined;
  serverTls: ServerTls | undefined;
  app: FastifyInstance;
  svp: SvpServer;
  logger: Logger;
}

/** Controller.reload: the auth file, then the TLS material; a bad file keeps what is in force. */
function credentialReloader(deps: ReloadDeps): () => Promise<void> {
  const { tokens, authMetrics, app, svp, logger } = deps;
  let tlsInForce: ServerTls | undefined = deps.serverTls;
  return async () => {
    if (tokens) await reloadTokens(tokens, authMetrics, logger);
    if (tlsInForce) tlsInForce = await reloadTls(tlsInForce, app, svp, logger);
  };
}

async function reloadTokens(tokens: TokenBook, authMetrics: ReturnType<typeof registerAuthMetrics> | undefined, logger: Logger): Promise<void> {
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

/** The TLS material now in force: the directory's new one, or the old one when it does not load. */
async function reloadTls(inForce: ServerTls, app: FastifyInstance, svp: SvpServer, logger: Logger): Promise<ServerTls> {
  try {
    const next = await loadServerTls(inForce.dir);
    (app.server as unknown as { setSecureContext(o: object): void }).setSecureContext({ ca: next.ca, cert: next.cert, key: next.key });
    svp.setTls(next);
    logger.info('TLS certificates reloaded');
    return next;
  } catch (err) {
    logger.error({ err: (err as Error).message }, 'TLS certificates not reloaded: the ones in force stay');
    return inForce;
  }
}

interface Running {
  eventGc: LogSweep;
  svp: SvpServer;
  app: FastifyInstance;
  directories: Directories;
  store: Store;
}

/** Controller.close: listeners first, then the views, the store last. */
async function shutdown({ eventGc, svp, app, directories, store }: Running): Promise<void> {
  await eventGc.stop();
  await svp.close();
  await app.close();
  directories.wireguard.stop();
  directories.routers.stop();
  directories.index.close();
  await store.close();
}

/** Undoes a start that failed part way: closes whatever was opened, ignoring further errors. */
async function abortStart(partial: { svp: SvpServer | undefined; app: FastifyInstance | undefined; directories: Directories; store: Store }): Promise<void> {
  await partial.svp?.close().catch(() => undefined);
  await partial.app?.close().catch(() => undefined);
  partial.directories.wireguard.stop();
  partial.directories.routers.stop();
  partial.directories.index.close();
  await partial.store.close().catch(() => undefined);
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
