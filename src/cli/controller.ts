/** `rhumb controller`: the controller process on the embedded (or etcd) store. */
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { type Controller, type ControllerOptions, DEFAULT_ADMIN_UUID, startController } from '../controller/index.js';
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_CONNECTIONS_PER_PEER,
  DEFAULT_MAX_HELD_LOG_REQS_PER_NODE,
} from '../svp/server.js';
import { DEFAULT_REST_LIMITS } from '../rest/auth.js';
import { DEFAULT_REST_MAX_CONNECTIONS, DEFAULT_REST_TIMEOUTS } from '../rest/server.js';
import { DEFAULT_ETCD_PREFIX, type StoreConfig } from '../store/index.js';
import { formatHostPort, type HostPort, parseHostPort, parseIntArg } from './hostport.js';
import { isUuid } from '../net/addr.js';
import { WIREGUARD_OVERHEAD, tunnelSubnetProblem } from '../overlay/wireguard.js';

interface ControllerFlags {
  data: string;
  listen: HostPort;
  svpListen: HostPort;
  adminUuid: string;
  overlayMtu?: number;
  encryption?: 'none' | 'wireguard';
  wireguardSubnet?: string;
  store: 'leveldb' | 'etcd';
  etcd?: string;
  etcdPrefix: string;
  /** Accepted from older deployments and ignored. */
  etcdMaxTxnOps?: number;
  logLevel: string;
  logWait: number;
  svpMaxConns: number;
  svpMaxConnsPerPeer: number;
  ui: boolean;
  tlsDir?: string;
  authFile?: string;
  metricsOpen: boolean;
  svpPlaintextListen?: HostPort;
  svpHandshakeTimeout: number;
  svpIdleTimeout: number;
  svpMaxLogReqsPerNode: number;
  restMaxInflight: number;
  restRate: number;
  restBurst: number;
  restHeaderTimeout: number;
  restRequestTimeout: number;
  restKeepaliveTimeout: number;
  restIdleTimeout: number;
  restMaxConns: number;
  feedMaxWait: number;
  feedMaxPerNode: number;
  feedMaxWaiters: number;
}


export function registerControllerCommand(program: Command): void {
  program
    .command('controller')
    .description('run the controller: NAPI-compatible REST API, SVP mapping service, /metrics')
    .option('--data <dir>', 'LevelDB data directory (embedded store)', './data')
    .option('--listen <host:port>', 'REST API address', (v) => parseHostPort(v), parseHostPort('127.0.0.1:8080'))
    .option('--svp-listen <host:port>', 'SVP (portolan protocol) address', (v) => parseHostPort(v), parseHostPort('127.0.0.1:1296'))
    .option('--admin-uuid <uuid>', 'operator UUID, owner of every network and pool', (v) => {
      if (!isUuid(v)) throw new InvalidArgumentError('expected a lower-case UUID');
      return v;
    }, DEFAULT_ADMIN_UUID)
    .option('--overlay-mtu <n>', 'MTU of fabric networks (underlay MTU is this + 50; default 1450, 1390 with --encryption wireguard)', parseIntArg(576, 9000 - 50))
    .addOption(
      new Option('--encryption <kind>', "the deployment's underlay encryption (absent: as stored, none on a new deployment)").choices(['none', 'wireguard']),
    )
    .option('--wireguard-subnet <cidr>', 'tunnel addresses of the nodes (absent: as stored, 100.64.0.0/10 on a new deployment)', (v) => {
      const problem = tunnelSubnetProblem(v);
      if (problem) throw new InvalidArgumentError(problem);
      return v;
    })
    .addOption(new Option('--store <kind>', 'store backend').choices(['leveldb', 'etcd']).default('leveldb'))
    .option('--etcd <urls>', 'etcd endpoints, comma separated (with --store etcd)')
    .option('--etcd-prefix <prefix>', 'key prefix of this deployment in etcd (replicas of one deployment share it)', DEFAULT_ETCD_PREFIX)
    // NIC writes are a constant number of operations now: a stock etcd needs no setting.
    .addOption(new Option('--etcd-max-txn-ops <n>', 'no longer needed (ignored)').argParser(parseIntArg(1, 1_000_000)).hideHelp())
    .option('--log-wait <ms>', 'longest a LOG_REQ long-poll is held', parseIntArg(0, 600000), 10000)
    .option('--svp-max-conns <n>', 'open SVP connections allowed in total; more are closed at once', parseIntArg(1, 1_000_000), DEFAULT_MAX_CONNECTIONS)
    .option(
      '--svp-max-conns-per-peer <n>',
      'open SVP connections allowed from one peer address; more are closed at once',
      parseIntArg(1, 1_000_000),
      DEFAULT_MAX_CONNECTIONS_PER_PEER,
    )
    .option('--no-ui', "don't serve the web console at /ui")
    // Security: TLS, tokens (README "Security").
    .option('--tls-dir <dir>', 'serve REST over HTTPS and SVP over TLS with DIR/ca.pem, server.pem, server-key.pem (rhumb pki init)')
    .option('--auth-file <file>', 'bearer tokens for REST, JSON {"tokens": [...]}; re-read on SIGHUP')
    .option('--metrics-open', '/metrics without credentials (with --auth-file)', false)
    .option('--svp-plaintext-listen <host:port>', 'also a plaintext SVP listener answering lookups only (varpd-compatible clients)', (v) => parseHostPort(v))
    // Limits: each refusal is counted in rhumb_rest_refused_total / rhumb_svp_*_refused_total.
    .option('--svp-handshake-timeout <ms>', 'an SVP TLS handshake must finish within this', parseIntArg(100, 600_000), DEFAULT_HANDSHAKE_TIMEOUT_MS)
    .option('--svp-idle-timeout <ms>', 'close SVP connections silent for this long (0: never)', parseIntArg(0, 86_400_000), DEFAULT_IDLE_TIMEOUT_MS)
    .option('--svp-max-log-reqs-per-node <n>', 'LOG_REQ long-polls held per node over all its connections', parseIntArg(1, 100_000), DEFAULT_MAX_HELD_LOG_REQS_PER_NODE)
    .option('--rest-max-inflight <n>', 'REST requests handled at once (long-polls aside); more get 503', parseIntArg(1, 1_000_000), DEFAULT_REST_LIMITS.maxInFlight)
    .option('--rest-rate <n>', 'REST requests per second per client (its token, certificate or address); more get 429 (0: no limit)', parseIntArg(0, 1_000_000), DEFAULT_REST_LIMITS.rate!.perSecond)
    .option('--rest-burst <n>', 'REST requests a quiet client may send at once', parseIntArg(1, 10_000_000), DEFAULT_REST_LIMITS.rate!.burst)
    .option('--rest-header-timeout <ms>', "a REST request's headers must arrive within this", parseIntArg(100, 600_000), DEFAULT_REST_TIMEOUTS.headersMs)
    .option('--rest-request-timeout <ms>', 'a whole REST request, body included, must arrive within this', parseIntArg(100, 3_600_000), DEFAULT_REST_TIMEOUTS.requestMs)
    .option('--rest-keepalive-timeout <ms>', 'close an idle kept-alive REST connection after this', parseIntArg(100, 600_000), DEFAULT_REST_TIMEOUTS.keepAliveMs)
    .option('--rest-idle-timeout <ms>', 'close a REST connection with no traffic for this long (above the longest long-poll)', parseIntArg(1000, 86_400_000), DEFAULT_REST_TIMEOUTS.idleMs)
    .option('--rest-max-conns <n>', 'open REST connections; more are closed at once', parseIntArg(1, 1_000_000), DEFAULT_REST_MAX_CONNECTIONS)
    .option('--feed-max-wait <ms>', 'longest a ruleset feed long-poll is held', parseIntArg(0, 600_000), 60_000)
    .option('--feed-max-per-node <n>', 'long-polls held at once per node on each feed (rulesets, WireGuard peers); more get 429', parseIntArg(1, 10_000), 4)
    .option('--feed-max-waiters <n>', 'ruleset feed long-polls held at once in all; more get 429', parseIntArg(1, 1_000_000), 1024)
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
    .action(runController);
}

async function runController(flags: ControllerFlags): Promise<void> {
  const store = storeConfigFrom(flags);
  const ctl = await startController(controllerOptionsFrom(flags, store));
  announceStart(ctl, store, flags);
  stopOnSignals(ctl);
}

/** The stores the command offers (the memory store is for tests). */
type CommandStore = Extract<StoreConfig, { kind: 'leveldb' | 'etcd' }>;

/** --store and its flags as a store configuration (InvalidArgumentError on a bad combination). */
function storeConfigFrom(flags: ControllerFlags): CommandStore {
  let store: CommandStore;
  if (flags.store === 'etcd') {
    if (!flags.etcd) throw new InvalidArgumentError('--store etcd needs --etcd URL[,URL…]');
    if (flags.etcdPrefix === '') throw new InvalidArgumentError('--etcd-prefix must not be empty');
    store = {
      kind: 'etcd',
      endpoints: flags.etcd.split(',').map((s) => s.trim()).filter(Boolean),
      prefix: flags.etcdPrefix,
    };
    if (flags.etcdMaxTxnOps !== undefined) {
      process.stderr.write('rhumb controller: --etcd-max-txn-ops is no longer needed and is ignored (any etcd 3.4/3.5 with its default limits works)\n');
    }
  } else {
    store = { kind: 'leveldb', dir: resolve(flags.data) };
  }
  return store;
}

function controllerOptionsFrom(flags: ControllerFlags, store: StoreConfig): ControllerOptions {
  return {
    store,
    listen: flags.listen,
    svpListen: flags.svpListen,
    adminUuid: flags.adminUuid,
    // VXLAN (50) inside WireGuard (60 over an IPv4 underlay) inside a 1500-byte underlay.
    overlayMtu: flags.overlayMtu ?? (flags.encryption === 'wireguard' ? 1500 - 50 - WIREGUARD_OVERHEAD.ipv4 : 1450),
    ...(flags.encryption !== undefined ? { encryption: flags.encryption } : {}),
    ...(flags.wireguardSubnet !== undefined ? { tunnelSubnet: flags.wireguardSubnet } : {}),
    logLevel: flags.logLevel,
    svpLogWaitMs: flags.logWait,
    svpMaxConnections: flags.svpMaxConns,
    svpMaxConnectionsPerPeer: flags.svpMaxConnsPerPeer,
    ui: flags.ui,
    tlsDir: flags.tlsDir ? resolve(flags.tlsDir) : undefined,
    authFile: flags.authFile ? resolve(flags.authFile) : undefined,
    metricsOpen: flags.metricsOpen,
    svpPlaintextListen: flags.svpPlaintextListen,
    svpHandshakeTimeoutMs: flags.svpHandshakeTimeout,
    svpIdleTimeoutMs: flags.svpIdleTimeout,
    svpMaxLogReqsPerNode: flags.svpMaxLogReqsPerNode,
    restLimits: {
      maxInFlight: flags.restMaxInflight,
      rate: flags.restRate > 0 ? { perSecond: flags.restRate, burst: Math.max(flags.restBurst, 1) } : null,
    },
    restTimeouts: {
      headersMs: flags.restHeaderTimeout,
      requestMs: flags.restRequestTimeout,
      keepAliveMs: flags.restKeepaliveTimeout,
      idleMs: Math.max(flags.restIdleTimeout, flags.feedMaxWait + 10_000),
    },
    restMaxConnections: flags.restMaxConns,
    feed: { maxWaitMs: flags.feedMaxWait, maxWaitersPerNode: flags.feedMaxPerNode, maxWaiters: flags.feedMaxWaiters },
  };
}

function announceStart(ctl: Controller, store: CommandStore, flags: ControllerFlags): void {
  const where = store.kind === 'leveldb' ? `leveldb at ${store.dir}` : `etcd at ${store.endpoints.join(',')} prefix ${store.prefix}`;
  // Machine-readable first lines: tests and operators read the bound addresses here.
  const scheme = ctl.tls ? 'https' : 'http';
  process.stdout.write(`rhumb controller: REST ${scheme}://${formatHostPort(ctl.restAddress)}\n`);
  if (ctl.svpAddress) process.stdout.write(`rhumb controller: SVP ${formatHostPort(ctl.svpAddress)}\n`);
  if (ctl.tls) process.stdout.write(`rhumb controller: TLS on REST and SVP, client certificates from ${resolve(flags.tlsDir!)}/ca.pem\n`);
  if (ctl.svpPlaintextAddress) process.stdout.write(`rhumb controller: SVP plaintext read-only ${formatHostPort(ctl.svpPlaintextAddress)}\n`);
  process.stdout.write(`rhumb controller: store ${where}\n`);
  if (flags.ui) process.stdout.write(`rhumb controller: console ${scheme}://${formatHostPort(ctl.restAddress)}/ui/\n`);
}

/** SIGINT/SIGTERM close the controller and exit; SIGHUP reloads its credentials. */
function stopOnSignals(ctl: Controller): void {
  let closing = false;
  const stop = (sig: string) => {
    if (closing) return;
    closing = true;
    process.stdout.write(`rhumb controller: ${sig}, shutting down\n`);
    ctl.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // SIGHUP: the auth file and the TLS certificates are read again.
  process.on('SIGHUP', () => {
    void ctl.reload().then(() => process.stdout.write('rhumb controller: SIGHUP, credentials reloaded\n'));
  });
}
