/** `rhumb controller`: the controller process on the embedded (or etcd) store. */
import { resolve } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_ADMIN_UUID, startController } from '../controller/index.js';
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_PEER } from '../svp/server.js';
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
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
    .action(async (flags: ControllerFlags) => {
      let store: StoreConfig;
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
      const ctl = await startController({
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
      });
      const where = store.kind === 'leveldb' ? `leveldb at ${store.dir}` : `etcd at ${store.endpoints.join(',')} prefix ${store.prefix}`;
      // Machine-readable first lines: tests and operators read the bound addresses here.
      process.stdout.write(`rhumb controller: REST http://${formatHostPort(ctl.restAddress)}\n`);
      if (ctl.svpAddress) process.stdout.write(`rhumb controller: SVP ${formatHostPort(ctl.svpAddress)}\n`);
      process.stdout.write(`rhumb controller: store ${where}\n`);
      if (flags.ui) process.stdout.write(`rhumb controller: console http://${formatHostPort(ctl.restAddress)}/ui/\n`);
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
    });
}
