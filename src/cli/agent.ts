/**
 * `rhumb agent`: the node agent, and `rhumb agent attach|detach` talking to a running one.
 * The agent prints its local API address first ("rhumb agent: API unix:/run/rhumb/agent.sock"
 * or "rhumb agent: API http://HOST:PORT"), then "rhumb agent: ready" once it serves.
 *
 * State: attachments (NIC MAC -> namespace path, interface, instance) are kept in
 * --state-dir (default /var/lib/rhumb/agent-<node>, file attachments.json, replaced
 * atomically), so a restarted agent knows where its NICs live. Firewall: on unless
 * --no-firewall; the agent applies its instances' rulesets from the controller.
 * Docker: `--docker-plugin ADDR` serves Docker's network and IPAM plugin protocol there
 * (src/docker), reading the daemon at --docker-host.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { isIP } from 'node:net';
import { Agent } from '../agent/agent.js';
import { type AgentAddress, DEFAULT_AGENT_SOCKET, describeAgentAddress, isUnixAddress, parseAgentAddress } from '../agent/address.js';
import { agentAddressArg, agentOption, callAgent } from './agent-address.js';
import { buildAgentApi, listenAgentApi } from '../agent/api.js';
import { type BackendFactory, type DataplaneBackend, backendFactory, backendNames } from '../agent/backend.js';
import '../agent/backends.js';
import { DEFAULT_FLOW_LOG } from './fw-log.js';
import { resolveExternal } from '../agent/external.js';
import { NapiClient } from '../agent/napi-client.js';
import { Prober } from '../agent/probes.js';
import { IngressReporter, ingressTable } from '../agent/ingress-report.js';
import { NodeReporter, ShootdownJournal, probeReport } from '../agent/report.js';
import { AttachmentState, defaultStateDir } from '../agent/state.js';
import { StateFile } from '../agent/state-file.js';
import { join } from 'node:path';
import { WorkloadState } from '../agent/workload-state.js';
import { WorkloadManager } from '../agent/workloads.js';
import { type RunningDockerPlugin, startDockerPlugin } from '../docker/index.js';
import { DEFAULT_DOCKER_HOST, parseDockerHost } from '../docker/engine.js';
import { type PluginAddress, parsePluginAddress } from '../docker/server.js';
import { DEFAULT_PLUGIN_NAME, pluginNameProblem } from '../docker/spec.js';
import { DEFAULT_ADMIN_UUID } from '../controller/index.js';
import { createRegistry } from '../metrics/index.js';
import type { Registry } from 'prom-client';
import { SvpClient } from '../svp/client.js';
import { parseIntArg } from './hostport.js';
import { type CredentialFlags, addCredentialOptions, tlsFrom, tokenFrom } from './credentials.js';
import { type Fetch, type RenewableFetch, renewableRestFetch } from '../security/http-client.js';
import type { ClientTls } from '../security/tls.js';
import { type Logger, createLogger } from '../log/index.js';
import { isUuid } from '../net/addr.js';
import { EncryptionManager } from '../agent/wireguard/manager.js';
import { DEFAULT_WIREGUARD_PORT } from '../overlay/wireguard.js';

interface AgentFlags extends CredentialFlags {
  node?: string;
  underlayIp?: string;
  underlayDev?: string;
  controller?: string;
  svp?: string;
  backend: string;
  externalIface?: string;
  routerPoll: number;
  api: AgentAddress;
  apiListen?: AgentAddress;
  adminUuid: string;
  negativeTtl: number;
  prefetch: boolean;
  probeInterval: number;
  stateDir?: string;
  /** `--no-offload LIST` gives the list; absent, commander leaves `true`. */
  offload: string | boolean;
  firewall: boolean;
  flowLog: string;
  flowLogMaxBytes: number;
  reportInterval: number;
  dockerPlugin?: PluginAddress;
  dockerHost: string;
  dockerPluginName: string;
  wireguardPort: number;
}

/** The agent's local API app. */
type AgentApi = ReturnType<typeof buildAgentApi>;

function need<T>(v: T | undefined, flag: string): T {
  if (v === undefined) throw new InvalidArgumentError(`${flag} is required`);
  return v;
}

/** The flags runAgent needs, checked before anything is started (InvalidArgumentError otherwise). */
function checkAgentFlags(flags: AgentFlags): { node: string; underlayIp: string; controller: string; svpServers: string; createBackend: BackendFactory } {
  const node = need(flags.node, '--node');
  if (!isUuid(node.toLowerCase())) throw new InvalidArgumentError('--node must be a UUID');
  const underlayIp = need(flags.underlayIp, '--underlay-ip');
  if (!isIP(underlayIp)) throw new InvalidArgumentError('--underlay-ip must be an IP address');
  const controller = need(flags.controller, '--controller');
  const svpServers = need(flags.svp, '--svp');
  if (flags.dockerPlugin) {
    parseDockerHost(flags.dockerHost);
    const problem = pluginNameProblem(flags.dockerPluginName);
    if (problem) throw new InvalidArgumentError(`--docker-plugin-name: ${problem}`);
  }
  const createBackend = backendFactory(flags.backend);
  if (!createBackend) throw new InvalidArgumentError(`--backend must be one of ${backendNames().join(', ')}`);
  return { node, underlayIp, controller, svpServers, createBackend };
}

/**
 * TLS towards the controller (REST and SVP), and the REST fetch carrying it and the token,
 * over a connection pool of its own (dropped when an address of the node goes).
 */
async function controllerCredentials(flags: AgentFlags, controller: string): Promise<{ tls: ClientTls | undefined; controllerConnections: RenewableFetch }> {
  const tls = await tlsFrom(flags);
  const token = await tokenFrom(flags);
  if (controller.startsWith('https:') !== (tls !== undefined)) {
    throw new InvalidArgumentError(tls ? '--controller must be an https:// URL with TLS' : 'an https:// --controller needs --tls-dir or --ca');
  }
  return { tls, controllerConnections: renewableRestFetch({ tls, token }) };
}

/** Drops the agent's connections to the controller, REST and SVP: the underlay address in use is gone, and they left from it. */
function connectionRenewer(rest: RenewableFetch, svp: SvpClient): () => void {
  return () => {
    rest.renew();
    svp.reconnect('the underlay address in use is gone');
  };
}

/** The node's data plane (--backend) and its underlay encryption, with the state directory both keep their files in. */
async function createDataplane(
  flags: AgentFlags,
  d: { node: string; underlayIp: string; controller: string; controllerFetch: Fetch; createBackend: BackendFactory; registry: Registry; log: Logger },
): Promise<{ stateDir: string; backend: DataplaneBackend; routing: EncryptionManager }> {
  const stateDir = flags.stateDir ?? defaultStateDir(d.node.toLowerCase());
  const backend = await d.createBackend({
    stateDir,
    registry: d.registry,
    noOffload: typeof flags.offload === 'string' ? flags.offload : '',
  });
  // Follows the deployment's underlay encryption (WireGuard), whatever it is now.
  const routing = new EncryptionManager({
    controllerUrl: d.controller,
    controllerFetch: d.controllerFetch,
    nodeUuid: d.node.toLowerCase(),
    underlayIp: d.underlayIp,
    stateDir,
    registry: d.registry,
    logger: d.log.child({ component: 'wireguard' }),
    listenPort: flags.wireguardPort,
  });
  return { stateDir, backend, routing };
}

async function runAgent(flags: AgentFlags): Promise<void> {
  const { node, underlayIp, controller, svpServers, createBackend } = checkAgentFlags(flags);
  // Before anything is touched: a bad external interface stops the start.
  const external = flags.externalIface === undefined ? undefined : await resolveExternal(flags.externalIface);
  // JSON lines on stderr (stdout carries the ready line scripts wait for).
  const log = createLogger({ fd: 2, base: { name: 'rhumb-agent' } });

  // Credentials: TLS verifies the controller (REST and SVP) and shows our node certificate.
  const { tls, controllerConnections } = await controllerCredentials(flags, controller);
  const controllerFetch = controllerConnections.fetch;
  const registry = createRegistry('agent');
  const svp = new SvpClient({ servers: svpServers.split(','), keepaliveMs: 10_000, tls });
  const prober = new Prober({ registry, intervalMs: flags.probeInterval });
  prober.on('error', (err) => log.warn(`probe: ${err.message}`));
  const { stateDir, backend, routing } = await createDataplane(flags, { node, underlayIp, controller, controllerFetch, createBackend, registry, log });
  const journal = new ShootdownJournal(registry);
  let reporter: NodeReporter | undefined;
  let docker: RunningDockerPlugin | undefined;
  // Both ways of publishing (the agent's published ports, Docker -p), for `fw explain`.
  const ingress = new IngressReporter({
    controllerUrl: controller,
    fetch: controllerFetch,
    nodeUuid: node.toLowerCase(),
    intervalMs: Math.max(flags.reportInterval, 1000) * 5,
    collect: () => ingressTable(agent.ingress(), docker?.ingress() ?? [], { firewall: flags.firewall }),
    logger: log.child({ component: 'ingress' }),
  });
  const napi = new NapiClient(controller, undefined, controllerFetch);
  const agent = new Agent({
    publicationLinks: Boolean(flags.dockerPlugin),
    nodeUuid: node.toLowerCase(),
    underlayIp,
    underlayDev: flags.underlayDev,
    renewControllerConnections: connectionRenewer(controllerConnections, svp),
    napi,
    svp,
    backend,
    registry,
    prober,
    adminUuid: flags.adminUuid,
    negativeTtlMs: flags.negativeTtl,
    prefetch: flags.prefetch,
    state: new AttachmentState(stateDir),
    ...(flags.firewall
      ? { firewall: { controllerUrl: controller, fetch: controllerFetch, flowLog: { path: flags.flowLog, maxBytes: flags.flowLogMaxBytes } } }
      : {}),
    onShootdownApplied: (entry, appliedAt) => {
      journal.record(entry, appliedAt);
      reporter?.poke();
    },
    logger: log,
    routing,
    ...(external ? { external } : {}),
    routerPollMs: flags.routerPoll,
    publishedState: new StateFile(join(stateDir, 'published-ports.json')),
    onPublishedChange: () => ingress.poke(),
  });
  await agent.start();
  // Workload attachments (CNI, Docker): after the agent's start, which adopts what is plumbed.
  const workloads = new WorkloadManager({ host: agent, napi, state: new WorkloadState(stateDir), logger: log.child({ component: 'workloads' }) });
  await workloads.start();
  prober.start();
  // Probe results and applied shootdowns, for the controller's web console.
  if (flags.reportInterval > 0) reporter = startNodeReporter(flags, { node, underlayIp, controller, controllerFetch, journal, agent, prober, log });
  if (flags.dockerPlugin) docker = await startAgentDockerPlugin(flags, flags.dockerPlugin, { agent, workloads, napi, log, ingress });
  ingress.start();
  const rotateKey = () => routing.rotateKey();
  const app = buildAgentApi(agent, registry, { workloads, rotateKey });
  await serveAgentApi(app, flags.apiListen ?? flags.api, log);
  process.stdout.write(`rhumb agent: ready node ${node} underlay ${underlayIp} backend ${flags.backend}\n`);
  stopOnSignals({ prober, reporter, ingress, workloads, app, docker, agent, svp }, log);
  rotateKeyOnSigusr2(rotateKey, log);
}

interface ReporterDeps {
  node: string;
  underlayIp: string;
  controller: string;
  controllerFetch: Fetch;
  journal: ShootdownJournal;
  agent: Agent;
  prober: Prober;
  log: Logger;
}

/** Reports probe results, applied shootdowns and a status snapshot to the controller. */
function startNodeReporter(flags: AgentFlags, { node, underlayIp, controller, controllerFetch, journal, agent, prober, log }: ReporterDeps): NodeReporter {
  const reporter = new NodeReporter({
    controllerUrl: controller,
    fetch: controllerFetch,
    nodeUuid: node.toLowerCase(),
    intervalMs: flags.reportInterval,
    journal,
    snapshot: () => {
      const s = agent.status() as { vnets: number[]; nics: unknown[] };
      return { node: node.toLowerCase(), underlay_ip: underlayIp, backend: flags.backend, vnets: s.vnets, nics: s.nics.length, probes: prober.results().map(probeReport) };
    },
    logger: log.child({ component: 'report' }),
  });
  reporter.start();
  return reporter;
}

interface DockerPluginDeps {
  agent: Agent;
  workloads: WorkloadManager;
  napi: NapiClient;
  log: Logger;
  ingress: IngressReporter;
}

/** Serves Docker's network and IPAM plugin at --docker-plugin, and says where. */
async function startAgentDockerPlugin(flags: AgentFlags, address: PluginAddress, { agent, workloads, napi, log, ingress }: DockerPluginDeps): Promise<RunningDockerPlugin> {
  const docker = await startDockerPlugin({
    address,
    dockerHost: flags.dockerHost,
    pluginName: flags.dockerPluginName,
    agent,
    workloads,
    api: napi,
    logger: log.child({ component: 'docker' }),
    onPublishedChange: () => ingress.poke(),
  });
  if ('host' in address && !isLoopback(address.host)) {
    log.warn(`the Docker plugin listens on ${docker.url} without authentication: anyone who reaches it can create fabric networks and NICs with the agent's credentials`);
  }
  process.stdout.write(`rhumb agent: Docker plugin ${docker.url} (driver ${flags.dockerPluginName}, Docker ${flags.dockerHost})\n`);
  return docker;
}

/** Opens the local API and prints its address (the line scripts read before "ready"). */
async function serveAgentApi(app: AgentApi, address: AgentAddress, log: Logger): Promise<void> {
  const bound = await listenAgentApi(app, address);
  if (!isUnixAddress(bound) && !isLoopback(bound.host)) {
    log.warn(`the agent API listens on ${describeAgentAddress(bound)} over TCP without authentication: anyone who reaches it can plumb NICs as root`);
  }
  process.stdout.write(`rhumb agent: API ${isUnixAddress(bound) ? describeAgentAddress(bound) : `http://${describeAgentAddress(bound)}`}\n`);
}

interface Running {
  prober: Prober;
  reporter: NodeReporter | undefined;
  ingress: IngressReporter;
  workloads: WorkloadManager;
  app: AgentApi;
  docker: RunningDockerPlugin | undefined;
  agent: Agent;
  svp: SvpClient;
}

/** SIGINT/SIGTERM: stops everything once, then exits 0 (devices and entries stay in place). */
function stopOnSignals(running: Running, log: Logger): void {
  const { prober, reporter, ingress, workloads, app, docker, agent, svp } = running;
  let closing = false;
  const stop = (sig: string) => {
    if (closing) return;
    closing = true;
    log.info(`${sig}, stopping (devices and entries stay in place)`);
    prober.stop();
    reporter?.stop();
    ingress.stop();
    workloads.stop();
    Promise.allSettled([app.close(), docker?.close(), agent.close()]).finally(() => {
      svp.close();
      process.exit(0);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

/** SIGUSR2: rotate the node's WireGuard key (as `rhumb node rotate-key` does). */
function rotateKeyOnSigusr2(rotateKey: () => Promise<{ public_key: string }>, log: Logger): void {
  process.on('SIGUSR2', () => {
    rotateKey().then(
      (r) => log.info(`SIGUSR2: WireGuard key rotated to ${r.public_key}`),
      (err: Error) => log.error(`SIGUSR2: key rotation failed: ${err.message}`),
    );
  });
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

export function registerAgentCommands(program: Command): void {
  const agent = program
    .command('agent')
    .description('run the node agent, or attach/detach NICs through a running one')
    .enablePositionalOptions()
    .option('--node <uuid>', "this compute node's UUID (cn_uuid)")
    .option('--underlay-ip <ip>', "this node's underlay address (VXLAN source)")
    .option('--underlay-dev <ifname>', 'underlay interface (default: the one holding --underlay-ip)')
    .option('--controller <url>', 'controller REST API, e.g. http://10.0.0.1:8080')
    .option('--svp <host:port,...>', 'SVP servers (portolan), comma separated')
    .option('--backend <kind>', `data plane: ${backendNames().join(', ')}`, 'kernel')
    .addOption(
      new Option('--api <path|host:port>', 'local API: a unix socket (mode 0600) or HOST:PORT (port 0: any free port)')
        .argParser(agentAddressArg(true))
        .default(parseAgentAddress(DEFAULT_AGENT_SOCKET), DEFAULT_AGENT_SOCKET),
    )
    .addOption(new Option('--api-listen <host:port>', 'serve the local API over TCP instead of the unix socket').argParser(agentAddressArg(true)))
    .option('--admin-uuid <uuid>', 'owner of the underlay NIC the agent registers', DEFAULT_ADMIN_UUID)
    .option('--negative-ttl <ms>', 'how long NOTFOUND answers are cached', parseIntArg(0, 600_000), 2000)
    .option('--no-prefetch', "don't resolve a network's remote NICs when its vnet first appears here")
    .option('--probe-interval <ms>', 'underlay ICMP probe interval', parseIntArg(100, 600_000), 2000)
    .option('--state-dir <dir>', 'where attachments survive restarts (default /var/lib/rhumb/agent-<node>)')
    .option('--no-offload <list>', 'userspace backend: offloads to leave off (tso,uso,gso,gro,coalesce,mmsg)')
    .option('--external-iface <ifname>', "the node's external interface: fabric networks with internet_nat reach beyond the overlay through SNAT to its address")
    .option('--router-poll <ms>', "retry delay of the router feed after an error (and how often routers are read from a controller without the feed)", parseIntArg(100, 600_000), 5000)
    .option('--no-firewall', "don't apply the instances' firewall rulesets from the controller")
    .option('--flow-log <path>', 'where connections of logged firewall rules are written (JSON lines; kernel backend)', DEFAULT_FLOW_LOG)
    .option('--flow-log-max-bytes <n>', 'rotate the flow log past this size (keeps 3 older files)', parseIntArg(4096, 2 ** 40), 16 * 1024 * 1024)
    .option('--report-interval <ms>', 'how often probe results and applied shootdowns are reported to the controller (0: never)', parseIntArg(0, 600_000), 2000)
    .addOption(
      new Option('--docker-plugin <addr>', 'serve Docker\'s network + IPAM plugin protocol on a unix socket path (e.g. /run/docker/plugins/rhumb.sock) or HOST:PORT').argParser(
        (v) => {
          try {
            return parsePluginAddress(v);
          } catch (err) {
            throw new InvalidArgumentError((err as Error).message);
          }
        },
      ),
    )
    .option('--docker-host <url>', 'the Docker Engine API the plugin reads (unix:///path or tcp://HOST:PORT)', DEFAULT_DOCKER_HOST)
    .option('--docker-plugin-name <name>', 'the name Docker knows the plugin by (docker network create -d NAME)', DEFAULT_PLUGIN_NAME)
    .option('--wireguard-port <port>', 'UDP port of the WireGuard interface (encrypted underlay)', parseIntArg(1, 65535), DEFAULT_WIREGUARD_PORT);
  // TLS towards the controller (a node certificate: `rhumb pki issue DIR --name N --node UUID`) and a token.
  addCredentialOptions(agent).action(runAgent);

  agent
    .command('attach')
    .description('plumb a NIC placed on this node into a network namespace')
    .addOption(agentOption())
    .requiredOption('--mac <mac>', "the NIC's MAC")
    .requiredOption('--netns <path>', 'network namespace path, e.g. /run/netns/NAME')
    .option('--ifname <name>', 'interface name inside the namespace', 'eth0')
    .action(async (f: { agent: AgentAddress; mac: string; netns: string; ifname: string }) => {
      const r = await callAgent(f.agent, '/attach', { mac: f.mac, netns: f.netns, ifname: f.ifname });
      process.stdout.write(`${JSON.stringify(r)}\n`);
    });

  agent
    .command('detach')
    .description('remove a NIC plumbed by the agent')
    .addOption(agentOption())
    .requiredOption('--mac <mac>', "the NIC's MAC")
    .action(async (f: { agent: AgentAddress; mac: string }) => {
      const r = await callAgent(f.agent, '/detach', { mac: f.mac });
      process.stdout.write(`${JSON.stringify(r)}\n`);
    });
}
