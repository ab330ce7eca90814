/**
 * The node agent (rhumb's varpd): registers the node's underlay NIC, plumbs fabric NICs
 * into instance namespaces, answers data-plane misses by asking the controller over SVP
 * (cached, NOTFOUND briefly negatively cached, one lookup in flight per destination),
 * and applies shootdowns from the controller's log (LOG_REQ long-poll, LOG_RM).
 *
 * Restart-safe: at start it adopts the devices and entries already in the kernel and the
 * NICs the API places on this node; nothing that carries traffic is torn down. Which
 * namespace each NIC was plumbed into is kept in a state file (./state.ts), checked
 * against the kernel at start.
 *
 * Firewall: with `firewall` set it follows the controller's per-node ruleset feed and
 * applies each hosted instance's nftables table on the instance's ports in the node's
 * namespace, out of the instance's reach (./node-firewall.ts). Routers come through the
 * controller's router feed (./routers.ts).
 */
import ipaddr from 'ipaddr.js';
import type { Registry } from 'prom-client';
import { SvpStatus } from '../svp/codec.js';
import type { ClientLogEntry, LogResult, LogRmResult, QueryOptions, Vl2Result, Vl3Result } from '../svp/client.js';
import type { BackendMiss, DataplaneBackend, VnetEntries } from './backend.js';
import { type UnderlayRouting, repointEntries } from './underlay-routing.js';
import { UnderlayFollower, localIpv4Addresses } from './underlay-follow.js';
import { NodeFirewall, type NodeFirewallConfig } from './node-firewall.js';
import { step } from './step-times.js';
import { ResolvingCache, type Vl2Mapping, type Vl3Mapping, vl2Key, vl3Key } from './cache.js';
import { inNetns, ip as ipCmd, linkWithAddress } from './plumbing/iproute.js';
import { canonicalMac } from '../net/addr.js';
import { ifnameProblem, netnsPathProblem, sandboxPathProblem } from './plumbing/checks.js';
import { instanceNetnsProblem } from './plumbing/netns.js';
import { type NicPlumbing, PlumbingError, nicSettings, plumbingFor, stagedPlumbingFor } from './plumbing/nic.js';
import { stagedName } from './plumbing/names.js';
import { waitForInterface, waitForNetns } from './plumbing/sandbox.js';
import { type Logger, silentLogger } from '../log/index.js';
import { type AgentMetrics, createAgentMetrics } from './metrics.js';
import { type ApiNic, type NapiClient, NapiRequestError } from './napi-client.js';
import type { AttachmentRecord, AttachmentState } from './state.js';
import type { ExternalSide } from '../edge/plan.js';
import { RouterFollower } from './routers.js';
import type { IngressEntry } from '../fw/ingress.js';
import { type PortMapping, PublishedPorts, externalProblem, parseMappings, publishedAddress } from './published.js';
import type { StateFile } from './state-file.js';

/** The NAPI calls the agent makes (NapiClient implements it). */
/** (request: for following routers; a NAPI without it leaves the gateway without routers.) */
export type AgentNapi = Pick<NapiClient, 'getNic' | 'listNics' | 'listNetworks' | 'createNic'> & Partial<Pick<NapiClient, 'request'>>;

/** The SVP client calls the agent makes (SvpClient implements it). */
export interface SvpLookups {
  vl2(mac: string, vnetId: number, opts?: QueryOptions): Promise<Vl2Result>;
  vl3(ip: string, vnetId: number, opts?: QueryOptions): Promise<Vl3Result>;
  logReq(underlayIp: string, count?: number, opts?: QueryOptions): Promise<LogResult>;
  logRm(ids: readonly string[], opts?: QueryOptions): Promise<LogRmResult>;
}

export interface PeerProber {
  add(address: string, peer?: string): void;
}

export interface AgentOptions {
  nodeUuid: string;
  underlayIp: string;
  /** How often the node's own underlay address is checked for a change (ms, default 500). */
  underlayFollowMs?: number;
  /** Drops the connections to the controller (the underlay address in use is gone: they left from it). */
  renewControllerConnections?: () => void;
  underlayDev?: string;
  napi: AgentNapi;
  svp: SvpLookups;
  backend: DataplaneBackend;
  registry: Registry;
  prober?: PeerProber;
  /** Owner of the underlay NIC the agent registers. */
  adminUuid: string;
  underlayNicTag?: string;
  /** NOTFOUND answers are remembered this long. Default 2000 ms. */
  negativeTtlMs?: number;
  /** LOG_REQ query timeout; must exceed the controller's long-poll wait. Default 30000 ms. */
  logTimeoutMs?: number;
  /** Resolve a network's remote NICs when its vnet first appears here. Default true. */
  prefetch?: boolean;
  /** Where attachments (MAC -> namespace, interface, instance) survive a restart. */
  state?: AttachmentState;
  /**
   * Why a namespace path (of an accepted shape) is not an instance's, or undefined.
   * Default: it must be an existing network namespace other than the node's and the host's.
   */
  checkNetns?: (path: string) => Promise<string | undefined>;
  /** Apply the instances' firewall rulesets from the controller's feed (GET /fw/nodes/:node/rulesets), node-side. */
  firewall?: NodeFirewallConfig;
  /** Called for each shootdown applied, with the time (Unix ms) it took effect. */
  onShootdownApplied?: (entry: ClientLogEntry, appliedAt: number) => void;
  /** The agent's logger (pino; the CLI's root logger); none: silent. */
  logger?: Logger;
  /** The encrypted underlay (absent: VXLAN always between underlay addresses). */
  routing?: UnderlayRouting;
  /** The node's external side (egress NAT), resolved from `--external-iface`. */
  external?: ExternalSide;
  /**
   * Retry delay of the router feed after an error, and how often routers are read again
   * from a controller without the feed (ms). Default 5000.
   */
  routerPollMs?: number;
  /** Where published ports survive a restart (absent: memory only). */
  publishedState?: StateFile;
  /** Called after the data plane was handed changed published ports (the node's ingress report follows). */
  onPublishedChange?: () => void;
  /**
   * Docker -p reaches instances over publication links of their own (../docker/publish.ts),
   * routed beside their ports: node-side firewalls filter those links too.
   */
  publicationLinks?: boolean;
}

/** An error with the HTTP status the local API answers with. */
export class AgentError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** Machine-readable reason for API clients (default 'AgentError'), e.g. 'SubnetFull'. */
    readonly code = 'AgentError',
  ) {
    super(message);
    this.name = 'AgentError';
  }
}

export interface AttachedNic {
  mac: string;
  ip: string;
  vnet: number;
  vlan: number;
  network_uuid?: string;
  /** The instance the NIC belongs to (NAPI belongs_to_uuid). */
  belongs_to_uuid?: string;
  /** Its owner (flow log records name it). */
  owner_uuid?: string;
  /** Unknown only for a NIC adopted at restart without a (valid) state record. */
  netns?: string;
  ifname?: string;
  /** The MTU it was plumbed with (the network's, or less while the underlay is encrypted); unknown for adopted NICs. */
  mtu?: number;
}

export interface AttachRequest {
  mac: string;
  netns: string;
  ifname?: string;
}

/** A NIC staged for a runtime that moves the interface itself: its name meanwhile, in the node's namespace. */
export interface StageRequest {
  mac: string;
  ifname: string;
}

export interface ActivateOptions {
  /** How long to wait for the runtime to mount the namespace and move the interface (default 60000 ms). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** True when the namespace at this path has an interface with this MAC. */
async function netnsHoldsMac(netns: string, mac: string): Promise<boolean> {
  try {
    const links = JSON.parse(await ipCmd(['-j', 'link', 'show'], inNetns(netns))) as Array<{ address?: string }>;
    return links.some((l) => l.address !== undefined && canonicalMac(l.address) === mac);
  } catch {
    return false;
  }
}

function inSubnet(ip: string, subnet: string): boolean {
  try {
    const addr = ipaddr.parse(ip);
    const [net, bits] = ipaddr.parseCIDR(subnet);
    return addr.kind() === net.kind() && addr.match(net, bits);
  } catch {
    return false;
  }
}

/** IPv6 link-local and multicast addresses are never in the mapping: don't ask. */
function unmappable(ip: string): boolean {
  try {
    const range = ipaddr.parse(ip).range();
    return range === 'linkLocal' || range === 'multicast' || range === 'unspecified' || range === 'loopback';
  } catch {
    return true;
  }
}

export class Agent {
  readonly vl3: ResolvingCache<Vl3Mapping>;
  readonly vl2: ResolvingCache<Vl2Mapping>;
  readonly metrics: AgentMetrics;
  private readonly nics = new Map<string, AttachedNic>();
  /** MAC -> the node's end of its publication link (Docker -p), for the firewall. */
  private readonly publicationLinks = new Map<string, string>();
  private readonly log: Logger;
  private closed = false;
  private logLoop: Promise<void> | undefined;
  /** State records of NICs plumbed here (also those placed elsewhere awaiting detach). */
  private readonly records = new Map<string, AttachmentRecord>();
  private fw: NodeFirewall | undefined;
  private routers: RouterFollower | undefined;
  private readonly published: PublishedPorts;
  shootdownsApplied = 0;
  /** The underlay address in use (follows the node's when it changes: ./underlay-follow.ts). */
  private ownUnderlay: string;
  private follower: UnderlayFollower | undefined;

  constructor(private readonly o: AgentOptions) {
    this.ownUnderlay = o.underlayIp;
    this.log = o.logger ?? silentLogger();
    this.published = new PublishedPorts(o.publishedState);
    this.vl3 = new ResolvingCache<Vl3Mapping>({ negativeTtlMs: o.negativeTtlMs });
    this.vl2 = new ResolvingCache<Vl2Mapping>({ negativeTtlMs: o.negativeTtlMs });
    this.metrics = createAgentMetrics(
      o.registry,
      () => [
        { kind: 'vl3', ...this.vl3.sizes() },
        { kind: 'vl2', ...this.vl2.sizes() },
      ],
      () => ({ nics: this.nics.size, vnets: o.backend.vnets().length }),
    );
  }

  get nodeUuid(): string {
    return this.o.nodeUuid;
  }

  get underlayIp(): string {
    return this.ownUnderlay;
  }

  // ---- start-up ------------------------------------------------------------------------

  async start(): Promise<void> {
    // The controller may come up after the agent: retry while it cannot be reached.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.registerUnderlay();
        break;
      } catch (err) {
        const unreachable = err instanceof TypeError || (err as Error).name === 'TimeoutError';
        if (!unreachable || attempt >= 30) throw err;
        this.log.warn(`controller unreachable (${(err as Error).message}); retrying`);
        await sleep(1000);
      }
    }
    await this.o.routing?.init();
    const backendLog = this.log.child({ component: `backend-${this.o.backend.kind}` });
    await this.o.backend.start({
      underlayIp: this.ownUnderlay,
      underlayDev: this.o.underlayDev,
      ...(this.o.routing ? { path: this.o.routing.path() } : {}),
      onMiss: (m) => this.onMiss(m),
      log: (msg) => backendLog.info(msg),
      peerUnderlays: () => this.peerUnderlays(),
      ...(this.o.external ? { external: this.o.external } : {}),
    });
    await this.rebuild();
    await this.published.load().catch((err: Error) => this.log.warn(`published ports: ${err.message}`));
    await this.applyPublished();
    const setRouters = this.o.backend.setRouters?.bind(this.o.backend);
    const request = this.o.napi.request?.bind(this.o.napi);
    if (setRouters && request) {
      this.routers = new RouterFollower({
        napi: { request },
        owners: () => [...this.nics.values()].flatMap((n) => (n.owner_uuid ? [n.owner_uuid] : [])),
        apply: setRouters,
        intervalMs: this.o.routerPollMs ?? 5000,
        log: this.log.child({ component: 'routers' }),
      });
      await this.refreshRouters();
      this.routers.start();
    }
    // Entries adopted from before a change of path (encryption turned on or off meanwhile).
    if (this.o.routing) await this.repoint();
    this.o.routing?.start(() => this.repoint());
    this.logLoop = this.runShootdowns();
    this.follower = new UnderlayFollower({
      localAddresses: localIpv4Addresses,
      recorded: async () =>
        (await this.o.napi.listNics({ belongs_to_uuid: this.o.nodeUuid, belongs_to_type: 'server' }, { timeoutMs: 1500 })).flatMap((n) => (n.underlay === true && n.ip ? [n.ip] : [])),
      current: () => this.ownUnderlay,
      move: (to) => this.moveUnderlay(to),
      ...(this.o.renewControllerConnections ? { addressGone: this.o.renewControllerConnections } : {}),
      log: (msg) => this.log.info(msg),
    });
    this.follower.start(this.o.underlayFollowMs);
    if (this.o.firewall) {
      this.fw = new NodeFirewall({
        ...this.o.firewall,
        nodeUuid: this.o.nodeUuid,
        nics: () => this.nics.values(),
        isStaged: (mac) => this.o.backend.isStaged(mac),
        ...(this.o.publicationLinks ? { publicationLinkOf: (mac: string) => this.publicationLinks.get(mac) } : {}),
        registry: this.o.registry,
        log: this.log,
      });
      await this.fw.start();
    }
  }

  /** Hands the data plane the published ports of the NICs attached here. */
  private async applyPublished(): Promise<void> {
    if (!this.o.backend.setPublished) return;
    try {
      await this.o.backend.setPublished(this.published.resolve((mac) => this.nics.get(mac)));
    } finally {
      this.o.onPublishedChange?.();
    }
  }

  /**
   * A publication link (Docker -p) into this NIC's instance came (its node-side name) or
   * went (undefined): the instance's firewall covers it before anything is published
   * through it. Throws when the firewall could not be put in place.
   */
  async publicationLink(mac: string, link: string | undefined): Promise<void> {
    const m = canonicalMac(mac);
    if (link === undefined) this.publicationLinks.delete(m);
    else this.publicationLinks.set(m, link);
    const uuid = this.nics.get(m)?.belongs_to_uuid;
    if (this.fw && uuid) await this.fw.relink(uuid);
  }

  /** The published ports in force here, for the controller's `fw explain` (../fw/ingress.ts). */
  ingress(): IngressEntry[] {
    const external = this.o.external;
    if (!external || !this.o.backend.setPublished) return [];
    return this.published.ingress((mac) => this.nics.get(mac)).flatMap((p) => {
      const address = publishedAddress(p.ip, external);
      return address ? [{ address, ...p }] : [];
    });
  }

  /** The published ports of every NIC (MAC -> mappings). */
  publishedPorts(): Record<string, PortMapping[]> {
    return this.published.all();
  }

  /**
   * Publishes a NIC's ports on the node's external address (an empty list withdraws them).
   * The NIC must be attached here, the host ports free; nothing changes on a refusal.
   */
  async publish(macInput: string, body: unknown): Promise<PortMapping[]> {
    let mac: string;
    try {
      mac = canonicalMac(macInput);
    } catch (err) {
      throw new AgentError(400, (err as Error).message);
    }
    const ports = parseMappings(body && typeof body === 'object' ? (body as { ports?: unknown }).ports : undefined);
    if (typeof ports === 'string') throw new AgentError(400, ports);
    if (!this.nics.has(mac) || !this.o.backend.isPlumbed(mac)) throw new AgentError(404, `NIC ${mac} is not attached on this node`);
    const noExternal = ports.length > 0 ? externalProblem(this.nics.get(mac)!.ip, this.o.external) : undefined;
    if (noExternal) throw new AgentError(422, noExternal);
    if (ports.length > 0 && !this.o.backend.setPublished) throw new AgentError(422, `the ${this.o.backend.kind} backend cannot publish ports`);
    const conflict = this.published.conflict(mac, ports, (m) => this.nics.get(m)?.ip);
    if (conflict) throw new AgentError(409, conflict);
    const before = this.published.get(mac);
    await this.published.set(mac, ports);
    try {
      await this.applyPublished();
    } catch (err) {
      await this.published.set(mac, before);
      await this.applyPublished().catch(() => undefined);
      throw err;
    }
    return ports;
  }

  /**
   * True when no NIC here belongs to this owner. Routers are read at once only when an
   * owner arrives on the node or leaves it (an attach or detach pays for no REST round
   * trips otherwise); changes to an owner's routers come through the router feed.
   */
  private isNewOwner(owner: string | undefined): boolean {
    if (owner === undefined) return false;
    for (const n of this.nics.values()) if (n.owner_uuid === owner) return false;
    return true;
  }

  /** Reads the routers of this node's owners again (after an owner came or went). */
  private async refreshRouters(): Promise<void> {
    await this.routers?.refresh().catch((err: Error) => this.log.warn(`routers: ${err.message}`));
  }

  private async saveState(): Promise<void> {
    if (!this.o.state) return;
    await this.o.state.save(this.records).catch((err: Error) => this.log.warn(`state file: ${err.message}`));
  }

  /** Registers the node's underlay NIC on the underlay network holding its address, if missing. */
  async registerUnderlay(): Promise<'present' | 'created'> {
    const tag = this.o.underlayNicTag ?? 'sdc_underlay';
    const mine = await this.o.napi.listNics({ belongs_to_uuid: this.o.nodeUuid, belongs_to_type: 'server' });
    if (mine.some((n) => n.underlay === true && n.ip === this.ownUnderlay)) return 'present';
    const nets = await this.o.napi.listNetworks({ nic_tag: tag });
    const net = nets.find((n) => inSubnet(this.ownUnderlay, n.subnet));
    if (!net) throw new Error(`no network with nic_tag ${tag} contains the underlay address ${this.ownUnderlay}`);
    const link = await linkWithAddress(this.ownUnderlay);
    if (!link?.address) throw new Error(`no interface here has the underlay address ${this.ownUnderlay}`);
    await this.o.napi.createNic({
      mac: link.address,
      owner_uuid: this.o.adminUuid,
      belongs_to_uuid: this.o.nodeUuid,
      belongs_to_type: 'server',
      network_uuid: net.uuid,
      ip: this.ownUnderlay,
      cn_uuid: this.o.nodeUuid,
      underlay: true,
    });
    this.log.info(`registered underlay NIC ${link.address} ${this.ownUnderlay} on ${net.name}`);
    return 'created';
  }

  /** The underlay addresses of the other nodes: their underlay NICs in the API. */
  private async peerUnderlays(): Promise<string[]> {
    const tag = this.o.underlayNicTag ?? 'sdc_underlay';
    const nics = await this.o.napi.listNics({ underlay: true, belongs_to_type: 'server' });
    const underlays = nics.filter((n) => n.ip && n.ip !== this.ownUnderlay && (n.nic_tag === undefined || n.nic_tag === tag)).map((n) => n.ip!);
    return this.o.routing ? this.o.routing.sources(underlays) : underlays;
  }

  /**
   * The node's underlay address changed (the API and its interface agree): VXLAN leaves
   * from the new one (encrypting: the tunnel address it derives to, which the WireGuard
   * interface takes) and LOG_REQ names it. Peers' entries follow the controller's
   * shootdowns; their WireGuard peers, the feed.
   */
  private async moveUnderlay(to: string): Promise<void> {
    const mtu = (await linkWithAddress(to))?.mtu ?? 1500;
    if (!this.o.routing) {
      await this.o.backend.setPath?.({ local: to, anyLocal: false, mtu });
      this.ownUnderlay = to;
      return;
    }
    await this.o.routing.moveUnderlay(to, mtu);
    this.ownUnderlay = to;
    await this.repoint();
  }

  /** Where VXLAN for the node at this underlay address goes (undefined: nowhere it may). */
  private dst(underlay: string): string | undefined {
    if (!this.o.routing) return underlay;
    const d = this.o.routing.destination(underlay);
    if (d === undefined) this.log.warn(`node at ${underlay} has no tunnel address: nothing is sent to it`);
    return d;
  }

  /** Where VXLAN goes changed (encryption turned on or off, an underlay address moved): the data plane follows. */
  private async repoint(): Promise<void> {
    const moved = await repointEntries(this.o.backend, this.o.routing!, (vnet, mac) => this.vl2.peek(vl2Key(vnet, mac))?.vlan);
    if (moved > 0) this.log.info(`${moved} remote entries re-pointed (VXLAN from ${this.o.routing!.path().local})`);
  }

  /** Adopts NICs the API places here that are plumbed, and the kernel's entries. */
  private async rebuild(): Promise<void> {
    const apiNics = await this.o.napi.listNics({ cn_uuid: this.o.nodeUuid, belongs_to_type: 'zone' });
    const byMac = new Map(apiNics.map((n) => [canonicalMac(n.mac), n]));
    // A record counts only if its NIC is still plumbed and its namespace still holds the NIC.
    // An unreadable file costs only the namespace paths, not the start.
    const saved = this.o.state
      ? await this.o.state.load().catch((err: Error) => {
          this.log.warn(`state file: ${err.message}; namespaces of adopted NICs are unknown`);
          return new Map<string, AttachmentRecord>();
        })
      : new Map<string, AttachmentRecord>();
    for (const mac of this.o.backend.plumbedMacs()) {
      const r = saved.get(mac);
      if (!r) continue;
      if (await netnsHoldsMac(r.netns, mac)) this.records.set(mac, r);
      else this.log.warn(`NIC ${mac}: recorded namespace ${r.netns} no longer holds it; its namespace is unknown`);
    }
    const adopted: NicPlumbing[] = [];
    const orphans: string[] = [];
    for (const mac of this.o.backend.plumbedMacs()) {
      const n = byMac.get(mac);
      if (!n) {
        orphans.push(mac);
        continue;
      }
      try {
        const r = this.records.get(mac);
        // Adoption touches no device: the namespace is only carried along (unknown: empty).
        const p: NicPlumbing = { ...nicSettings(n), netns: r?.netns ?? '', ifname: r?.ifname ?? '' };
        adopted.push(p);
        if (r) this.records.set(mac, { ...r, belongs_to_uuid: n.belongs_to_uuid });
        this.nics.set(mac, {
          mac,
          ip: p.ip,
          vnet: p.vnet,
          vlan: p.vlan,
          network_uuid: n.network_uuid,
          belongs_to_uuid: n.belongs_to_uuid,
          owner_uuid: n.owner_uuid,
          ...(r ? { netns: r.netns, ifname: r.ifname } : {}),
        });
      } catch (err) {
        this.log.warn(`NIC ${mac}: ${(err as Error).message}`);
      }
    }
    await this.o.backend.adopt(adopted);
    for (const mac of orphans) await this.reconcileOrphan(mac);
    for (const mac of [...this.records.keys()]) if (!this.o.backend.isPlumbed(mac)) this.records.delete(mac);
    await this.saveState();
    let entries = 0;
    for (const vnet of this.o.backend.vnets()) {
      const e = this.o.backend.entries(vnet);
      // Entries name tunnel addresses when encrypted; the caches hold underlay addresses.
      const underlayOf = (dst: string) => this.o.routing?.underlayOf(dst) ?? dst;
      const where = new Map(e.fdb.map((f) => [f.mac, underlayOf(f.underlay)]));
      for (const f of e.fdb) {
        this.vl2.set(vl2Key(vnet, f.mac), { underlay: underlayOf(f.underlay), port: 4789 });
        this.o.prober?.add(underlayOf(f.underlay));
      }
      for (const n of e.neighbours) {
        const underlay = where.get(n.mac);
        if (underlay) this.vl3.set(vl3Key(vnet, n.ip), { mac: n.mac, underlay, port: 4789 });
      }
      entries += e.fdb.length + e.neighbours.length;
    }
    if (this.nics.size > 0 || entries > 0) this.log.info(`rebuilt: ${this.nics.size} NIC(s), ${entries} kernel entries`);
  }

  /**
   * A NIC plumbed here that the API does not place here: deleted while the agent was
   * down (unplumb it), or moved elsewhere (left for the orchestrator's detach).
   */
  private async reconcileOrphan(mac: string): Promise<void> {
    try {
      await this.o.napi.getNic(mac);
      this.log.warn(`NIC ${mac} is plumbed here but placed on another node; left until it is detached`);
    } catch (err) {
      if (!(err instanceof NapiRequestError && err.status === 404)) throw err;
      const vnet = this.o.backend.vnetOf(mac);
      if (vnet === undefined) return;
      this.log.info(`NIC ${mac} was deleted while the agent was down: unplumbing it`);
      await this.o.backend.unplumb(mac, vnet);
    }
  }

  // ---- lookups -------------------------------------------------------------------------

  private isLocal(underlay: string): boolean {
    return underlay === this.ownUnderlay;
  }

  private async lookupVl3(vnet: number, ip: string): Promise<Vl3Mapping | null> {
    const end = this.metrics.lookupSeconds.startTimer({ kind: 'vl3' });
    const r = await this.o.svp.vl3(ip, vnet).finally(end);
    if (r.status === SvpStatus.OK && r.mac && r.ip) return this.withVlan({ mac: canonicalMac(r.mac), underlay: r.ip, port: r.port }, r.mac);
    if (r.status === SvpStatus.NOTFOUND) return null;
    throw new Error(`VL3 ${ip} vnet ${vnet}: ${r.statusName}`);
  }

  private async lookupVl2(vnet: number, mac: string): Promise<Vl2Mapping | null> {
    const end = this.metrics.lookupSeconds.startTimer({ kind: 'vl2' });
    const r = await this.o.svp.vl2(mac, vnet).finally(end);
    if (r.status === SvpStatus.OK && r.ip) return this.withVlan({ underlay: r.ip, port: r.port }, mac);
    if (r.status === SvpStatus.NOTFOUND) return null;
    throw new Error(`VL2 ${mac} vnet ${vnet}: ${r.statusName}`);
  }

  /**
   * For a VLAN-aware data plane, the answer with the fabric VLAN of the MAC's NIC (SVP does
   * not carry it; the API does). A NIC the API no longer has is NOTFOUND.
   */
  private async withVlan<T extends Vl2Mapping>(m: T, mac: string): Promise<T | null> {
    if (!this.o.backend.vlanAware) return m;
    try {
      return { ...m, vlan: (await this.o.napi.getNic(canonicalMac(mac))).vlan_id ?? 0 };
    } catch (err) {
      if (err instanceof NapiRequestError && err.status === 404) return null;
      throw err;
    }
  }

  /**
   * Resolves an IP on a vnet and installs the answer (remote only). With announce (a
   * kernel miss: an instance is waiting on ARP, whose request the proxy consumed), the
   * answer is also sent into the bridge as a gratuitous ARP, which completes the waiting
   * neighbour entry at once instead of at the instance's ARP retransmit (1 s).
   */
  async resolveIp(vnet: number, ip: string, opts: { announce?: boolean } = {}): Promise<Vl3Mapping | null> {
    let result: 'ok' | 'local' | 'notfound' | 'error' = 'error';
    let source = 'lookup';
    try {
      const r = await this.vl3.resolve(vl3Key(vnet, ip), () => this.lookupVl3(vnet, ip));
      source = r.source;
      result = r.value === null ? 'notfound' : this.isLocal(r.value.underlay) ? 'local' : 'ok';
      // A coalesced caller leaves the install to the first; a stale answer (a shootdown
      // arrived meanwhile) is not installed: the kernel asks again if it still needs it.
      if (r.value && result === 'ok' && r.source !== 'coalesced' && !r.stale) {
        this.installIp(vnet, ip, r.value);
        if (opts.announce) void this.o.backend.announce(vnet, ip, r.value.mac).catch((err: Error) => this.log.warn(`gratuitous ARP ${ip}: ${err.message}`));
      }
      return r.value;
    } finally {
      this.metrics.lookups.inc({ kind: 'vl3', result, source });
    }
  }

  async resolveMac(vnet: number, mac: string): Promise<Vl2Mapping | null> {
    let result: 'ok' | 'local' | 'notfound' | 'error' = 'error';
    let source = 'lookup';
    try {
      const r = await this.vl2.resolve(vl2Key(vnet, mac), () => this.lookupVl2(vnet, mac));
      source = r.source;
      result = r.value === null ? 'notfound' : this.isLocal(r.value.underlay) ? 'local' : 'ok';
      if (r.value && result === 'ok' && r.source !== 'coalesced' && !r.stale) {
        const dst = this.dst(r.value.underlay);
        if (dst !== undefined) this.o.backend.installL2(vnet, mac, dst, r.value.vlan);
        this.o.prober?.add(r.value.underlay);
      }
      return r.value;
    } finally {
      this.metrics.lookups.inc({ kind: 'vl2', result, source });
    }
  }

  private installIp(vnet: number, ip: string, m: Vl3Mapping): void {
    const dst = this.dst(m.underlay);
    if (dst === undefined) return;
    this.o.backend.installL3(vnet, ip, m.mac, dst, m.vlan);
    // The FDB entry came with the answer: the VL2 cache knows it too.
    this.vl2.set(vl2Key(vnet, m.mac), { underlay: m.underlay, port: m.port, ...(m.vlan === undefined ? {} : { vlan: m.vlan }) });
    this.o.prober?.add(m.underlay);
  }

  private onMiss(m: BackendMiss): void {
    if (this.closed) return;
    if (m.kind === 'l3' && unmappable(m.ip)) {
      // IPv6 link-local neighbour solicitations and the like: never in the mapping.
      this.metrics.misses.inc({ kind: 'l3_unmapped' });
      return;
    }
    this.metrics.misses.inc({ kind: m.kind });
    const p = m.kind === 'l3' ? this.resolveIp(m.vnet, m.ip, { announce: true }) : this.resolveMac(m.vnet, m.mac);
    p.catch((err: Error) => this.log.warn(`${m.kind} miss on vnet ${m.vnet}: ${err.message}`));
  }

  // ---- shootdowns ----------------------------------------------------------------------

  private async runShootdowns(): Promise<void> {
    let backoff = 250;
    while (!this.closed) {
      try {
        const r = await this.o.svp.logReq(this.ownUnderlay, 16 * 1024, { timeoutMs: this.o.logTimeoutMs ?? 30_000 });
        if (this.closed) return;
        if (r.status !== SvpStatus.OK) {
          // FATAL: the controller does not know this underlay address (yet).
          await sleep(1000);
          continue;
        }
        backoff = 250;
        if (r.entries.length === 0) continue;
        const done = await this.applyShootdowns(r.entries);
        if (done.length > 0) await this.o.svp.logRm(done);
      } catch (err) {
        if (this.closed) return;
        this.log.warn(`shootdown log: ${(err as Error).message}`);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 8000);
      }
    }
  }

  /** Applies log entries in order; returns the ids applied (the rest are retried). */
  async applyShootdowns(entries: readonly ClientLogEntry[]): Promise<string[]> {
    const done: string[] = [];
    for (const e of entries) {
      try {
        if (e.type === 'vl2') await this.applyVl2(e.vnetId, e.mac);
        else await this.applyVl3(e.vnetId, e.ip);
        this.metrics.shootdowns.inc({ type: e.type });
        this.shootdownsApplied++;
        this.o.onShootdownApplied?.(e, Date.now());
        done.push(e.id);
      } catch (err) {
        this.metrics.shootdownErrors.inc({ type: e.type });
        this.log.warn(`shootdown ${e.type} ${e.type === 'vl2' ? e.mac : e.ip} vnet ${e.vnetId}: ${(err as Error).message}`);
      }
    }
    return done;
  }

  private async applyVl2(vnet: number, macText: string): Promise<void> {
    const mac = canonicalMac(macText);
    this.vl2.invalidate(vl2Key(vnet, mac));
    const prefix = `${vnet}/`;
    this.vl3.invalidateWhere((k, v) => k.startsWith(prefix) && v.mac === mac);
    // Which IP a lookup in flight will name is unknown yet: none of this vnet's may install.
    this.vl3.invalidateInflight((k) => k.startsWith(prefix));
    if (!this.nics.has(mac)) {
      await this.o.backend.removeMac(vnet, mac);
      return;
    }
    // One of ours: a deleted NIC is unplumbed here (a moved one waits for its detach).
    try {
      await this.o.napi.getNic(mac);
    } catch (err) {
      if (!(err instanceof NapiRequestError && err.status === 404)) throw err;
      this.log.info(`NIC ${mac} was deleted: unplumbing it`);
      await this.detach(mac);
    }
  }

  private async applyVl3(vnet: number, ip: string): Promise<void> {
    const key = vl3Key(vnet, ip);
    const before = this.vl3.peek(key);
    if (!this.o.backend.vnets().includes(vnet)) {
      this.vl3.invalidate(key);
      return;
    }
    const { value: now, stale } = await this.vl3.refresh(key, () => this.lookupVl3(vnet, ip));
    // A later shootdown for this IP arrived meanwhile: it will do the work.
    if (stale) return;
    if (now && !this.isLocal(now.underlay)) {
      this.installIp(vnet, ip, now);
      // Not awaited: the next shootdown need not wait for the announcement to go out.
      void this.o.backend.announce(vnet, ip, now.mac).catch((err: Error) => this.log.warn(`gratuitous ARP ${ip}: ${err.message}`));
      return;
    }
    this.o.backend.removeIp(vnet, ip);
    if (before && before.mac !== now?.mac && !this.nics.has(before.mac)) await this.o.backend.removeMac(vnet, before.mac);
  }

  // ---- attach / detach -----------------------------------------------------------------

  async attach(req: AttachRequest): Promise<AttachedNic> {
    let macText: string;
    try {
      macText = canonicalMac(req.mac);
    } catch (err) {
      throw new AgentError(400, (err as Error).message);
    }
    const shape = netnsPathProblem(req.netns) ?? (req.ifname === undefined ? undefined : ifnameProblem(req.ifname));
    if (shape) throw new AgentError(400, shape);
    if (this.o.backend.isPlumbed(macText)) throw new AgentError(409, `NIC ${macText} is already attached on this node`);
    let nic: ApiNic;
    try {
      nic = await step('getNic', () => this.o.napi.getNic(macText));
    } catch (err) {
      if (err instanceof NapiRequestError && err.status === 404) throw new AgentError(404, `NIC ${macText} does not exist`);
      throw err;
    }
    return this.attachNic(nic, req);
  }

  /**
   * attach() for a caller that has just read (or created) the NIC's API record, e.g. the
   * workload attachments: the same checks and plumbing without reading it again.
   */
  async attachNic(nic: ApiNic, req: AttachRequest): Promise<AttachedNic> {
    let macText: string;
    try {
      macText = canonicalMac(nic.mac);
    } catch (err) {
      throw new AgentError(400, (err as Error).message);
    }
    const shape = netnsPathProblem(req.netns) ?? (req.ifname === undefined ? undefined : ifnameProblem(req.ifname));
    if (shape) throw new AgentError(400, shape);
    this.assertPlumbableHere(nic, macText);
    const where = await step('checkNetns', () => (this.o.checkNetns ?? instanceNetnsProblem)(req.netns));
    if (where) throw new AgentError(422, where);
    const { p, firstOnVnet } = await this.plumbOnBackend(
      () => plumbingFor(nic, req.netns, req.ifname),
      (spec) => step('backend.plumb', () => this.o.backend.plumb(spec)),
    );
    const attached: AttachedNic = {
      mac: macText,
      ip: p.ip,
      vnet: p.vnet,
      vlan: p.vlan,
      network_uuid: nic.network_uuid,
      belongs_to_uuid: nic.belongs_to_uuid,
      owner_uuid: nic.owner_uuid,
      netns: p.netns,
      ifname: p.ifname,
      mtu: p.mtu,
    };
    const newOwner = this.isNewOwner(nic.owner_uuid);
    this.nics.set(macText, attached);
    this.records.set(macText, { netns: p.netns, ifname: p.ifname, belongs_to_uuid: nic.belongs_to_uuid });
    await step('saveState', () => this.saveState());
    // Answers that placed this NIC elsewhere are stale now.
    this.vl3.invalidate(vl3Key(p.vnet, p.ip));
    this.vl2.invalidate(vl2Key(p.vnet, macText));
    if (newOwner) await step('refreshRouters', () => this.refreshRouters());
    if (this.published.get(macText).length > 0) await this.applyPublished().catch((err: Error) => this.log.warn(`published ports: ${err.message}`));
    if (firstOnVnet && (this.o.prefetch ?? true) && nic.network_uuid) {
      await step('prefetch', () => this.prefetch(p.vnet, nic.network_uuid!)).catch((err: Error) => this.log.warn(`prefetch vnet ${p.vnet}: ${err.message}`));
    }
    return attached;
  }

  /** 409 unless the NIC is placed on this node and not plumbed here yet. */
  private assertPlumbableHere(nic: ApiNic, macText: string): void {
    if (this.o.backend.isPlumbed(macText)) throw new AgentError(409, `NIC ${macText} is already attached on this node`);
    if (nic.cn_uuid !== this.o.nodeUuid) {
      throw new AgentError(409, `NIC ${macText} is placed on node ${nic.cn_uuid ?? '(none)'}, not this node (${this.o.nodeUuid})`);
    }
  }

  /**
   * The plumbing spec from the NIC's record (400 when the record cannot be plumbed),
   * capped to what fits inside WireGuard when the path is encrypted, handed to the
   * backend (422 when it refuses).
   */
  private async plumbOnBackend<P extends { mtu: number }>(
    spec: () => P,
    run: (p: P) => Promise<{ firstOnVnet: boolean }>,
  ): Promise<{ p: P; firstOnVnet: boolean }> {
    let p: P;
    try {
      p = spec();
    } catch (err) {
      throw new AgentError(400, (err as Error).message);
    }
    const limit = this.o.routing?.instanceMtu();
    if (limit !== undefined && p.mtu > limit) p = { ...p, mtu: limit };
    try {
      return { p, ...(await run(p)) };
    } catch (err) {
      if (err instanceof PlumbingError) throw new AgentError(422, err.message);
      throw err;
    }
  }

  /**
   * Plumbs a NIC placed here for a runtime that moves the interface into the workload
   * itself (Docker): the instance end waits in this namespace as req.ifname, carrying
   * nothing until activate().
   */
  async stage(req: StageRequest): Promise<AttachedNic> {
    return this.stageNic(await this.placedNic(req.mac), req);
  }

  /** stage() for a caller holding the NIC's API record (the workload attachments). */
  async stageNic(nic: ApiNic, req: StageRequest): Promise<AttachedNic> {
    const macText = this.macParam(nic.mac);
    this.assertPlumbableHere(nic, macText);
    const { p, firstOnVnet } = await this.plumbOnBackend(
      () => stagedPlumbingFor(nic, req.ifname),
      (spec) => this.o.backend.stage(spec),
    );
    const attached: AttachedNic = {
      mac: macText, ip: p.ip, vnet: p.vnet, vlan: p.vlan, network_uuid: nic.network_uuid, belongs_to_uuid: nic.belongs_to_uuid, owner_uuid: nic.owner_uuid, mtu: p.mtu,
    };
    const newOwner = this.isNewOwner(nic.owner_uuid);
    this.nics.set(macText, attached);
    this.vl3.invalidate(vl3Key(p.vnet, p.ip));
    this.vl2.invalidate(vl2Key(p.vnet, macText));
    if (newOwner) await this.refreshRouters();
    if (firstOnVnet && (this.o.prefetch ?? true) && nic.network_uuid) {
      await this.prefetch(p.vnet, nic.network_uuid).catch((err: Error) => this.log.warn(`prefetch vnet ${p.vnet}: ${err.message}`));
    }
    return attached;
  }

  /**
   * A staged NIC's workload namespace is (about to be) at netns, a Docker sandbox key:
   * waits for the namespace and for the interface to be moved in, puts the workload's
   * firewall in place (its compiled ruleset if the agent has it, else the default policy:
   * inbound blocked; node-side on the NIC's port or inside the namespace, as the backend
   * places firewalls), and only then lets the NIC carry traffic.
   */
  async activate(macInput: string, netns: string, opts: ActivateOptions = {}): Promise<AttachedNic> {
    const mac = this.macParam(macInput);
    if (netnsPathProblem(netns) && sandboxPathProblem(netns)) throw new AgentError(400, sandboxPathProblem(netns)!);
    const known = this.nics.get(mac);
    if (!known || !this.o.backend.isPlumbed(mac)) throw new AgentError(404, `NIC ${mac} is not attached on this node`);
    if (!this.o.backend.isStaged(mac)) return { ...known };
    const wait = { timeoutMs: opts.timeoutMs ?? 60_000, ...(opts.signal ? { signal: opts.signal } : {}) };
    await waitForNetns(netns, wait);
    // The namespace is the workload's from here on: its firewall goes in while the runtime
    // moves the interface, so that carrier follows the move as closely as it can (the
    // workload's process may start right after the move; its first packets are lost
    // until then).
    const uuid = known.belongs_to_uuid;
    const [moved, protectedFw] = await Promise.allSettled([
      waitForInterface(netns, mac, stagedName(mac), wait),
      this.fw && uuid ? this.fw.protect(uuid) : Promise.resolve(),
    ]);
    if (protectedFw.status === 'rejected') throw protectedFw.reason;
    if (moved.status === 'rejected') throw moved.reason;
    const ifname = moved.value;
    const attached: AttachedNic = { ...known, netns, ifname };
    this.nics.set(mac, attached);
    try {
      await this.o.backend.activate(mac, netns, ifname);
    } catch (err) {
      if (err instanceof PlumbingError) throw new AgentError(422, err.message);
      throw err;
    }
    this.records.set(mac, { netns, ifname, ...(known.belongs_to_uuid ? { belongs_to_uuid: known.belongs_to_uuid } : {}) });
    await this.saveState();
    return { ...attached };
  }

  private macParam(input: string): string {
    try {
      return canonicalMac(input);
    } catch (err) {
      throw new AgentError(400, (err as Error).message);
    }
  }

  /** The API's record of a NIC (404 when it does not exist). */
  private async placedNic(input: string): Promise<ApiNic> {
    const mac = this.macParam(input);
    try {
      return await this.o.napi.getNic(mac);
    } catch (err) {
      if (err instanceof NapiRequestError && err.status === 404) throw new AgentError(404, `NIC ${mac} does not exist`);
      throw err;
    }
  }

  /** Resolves the network's NICs on other nodes, so first contact does not wait on a miss. */
  async prefetch(vnet: number, networkUuid: string): Promise<number> {
    const peers = (await this.o.napi.listNics({ network_uuid: networkUuid })).filter(
      (n) => n.ip && n.cn_uuid && n.cn_uuid !== this.o.nodeUuid && n.belongs_to_type === 'zone',
    );
    const results = await Promise.allSettled(peers.slice(0, 1024).map((n) => this.resolveIp(vnet, n.ip!)));
    return results.filter((r) => r.status === 'fulfilled' && r.value && !this.isLocal(r.value.underlay)).length;
  }

  /**
   * Unplumbs a NIC attached here. deferTeardown (the API's detach, the move path): answer
   * once its interface is gone; its filter rules, the vnet's devices and the gateway follow
   * (the backend's queue), and so do the state file's save (a record of a NIC no longer
   * plumbed is dropped at start, so losing that save to a crash is harmless) and, for an
   * owner's last NIC here, the re-read of the node's routers.
   */
  async detach(macInput: string, opts: { deferTeardown?: boolean } = {}): Promise<{ mac: string; vnetRemoved: boolean }> {
    let mac: string;
    try {
      mac = canonicalMac(macInput);
    } catch (err) {
      throw new AgentError(400, (err as Error).message);
    }
    const known = this.nics.get(mac);
    if (!this.o.backend.isPlumbed(mac) || !known) throw new AgentError(404, `NIC ${mac} is not attached on this node`);
    const defer = opts.deferTeardown === true;
    const { vnetRemoved } = await step('backend.unplumb', () => this.o.backend.unplumb(mac, known.vnet, { deferTeardown: defer }));
    this.nics.delete(mac);
    this.records.delete(mac);
    if (defer) void this.saveState();
    else await step('saveState', () => this.saveState());
    this.vl3.invalidate(vl3Key(known.vnet, known.ip));
    this.vl2.invalidate(vl2Key(known.vnet, mac));
    // The owner's last NIC here: its routers are no longer this node's (after the answer when deferred).
    if (this.isNewOwner(known.owner_uuid)) {
      if (defer) void this.refreshRouters();
      else await step('refreshRouters', () => this.refreshRouters());
    }
    // A detached NIC's ports go with it.
    if (this.published.get(mac).length > 0) {
      await this.published.set(mac, []);
      await this.applyPublished().catch((err: Error) => this.log.warn(`published ports: ${err.message}`));
    }
    if (vnetRemoved) {
      const prefix = `${known.vnet}/`;
      this.vl3.invalidateWhere((k) => k.startsWith(prefix));
      this.vl2.invalidateWhere((k) => k.startsWith(prefix));
    }
    return { mac, vnetRemoved };
  }

  /** The attachment of a NIC plumbed here (and known to the agent), or undefined. */
  attachment(macInput: string): AttachedNic | undefined {
    const mac = canonicalMac(macInput);
    const n = this.nics.get(mac);
    return n && this.o.backend.isPlumbed(mac) ? { ...n } : undefined;
  }

  /** The node-side interface of a plumbed NIC, when the data plane has one (kernel: the host veth). */
  hostInterfaceOf(mac: string): string | undefined {
    return this.o.backend.hostInterface?.(canonicalMac(mac));
  }

  /** The data plane's entries for a vnet (empty when the vnet has no devices here). */
  entries(vnet: number): VnetEntries {
    return this.o.backend.entries(vnet);
  }

  status(): Record<string, unknown> {
    return {
      node: this.o.nodeUuid,
      underlay_ip: this.ownUnderlay,
      backend: this.o.backend.kind,
      vnets: this.o.backend.vnets(),
      nics: [...this.nics.values()],
      cache: { vl3: this.vl3.sizes(), vl2: this.vl2.sizes() },
      shootdowns_applied: this.shootdownsApplied,
      ...(this.o.routing ? { encryption: this.o.routing.status() } : {}),
      firewall: this.fw ? this.fw.status() : { enabled: false },
    };
  }

  /** Stops listening and polling; devices and entries stay (traffic keeps flowing). */
  async close(): Promise<void> {
    this.closed = true;
    await this.routers?.stop();
    await this.follower?.stop();
    // Tables stay in the namespaces: the instances stay protected while the agent is down.
    await this.fw?.stop();
    await this.o.routing?.stop();
    this.o.backend.close();
    await Promise.race([this.logLoop, sleep(100)]);
  }
}
