/**
 * The node agent (rhumb's varpd): registers the node's underlay NIC (./underlay-nic.ts),
 * plumbs fabric NICs into instance namespaces (./attachments.ts), answers data-plane
 * misses by asking the controller over SVP (./resolver.ts: cached, NOTFOUND briefly
 * negatively cached, one lookup in flight per destination), and applies shootdowns from
 * the controller's log (./shootdowns.ts: LOG_REQ long-poll, LOG_RM). This file wires
 * them together, starts and stops them, and publishes the NICs' ports.
 *
 * Restart-safe: at start it adopts the devices and entries already in the kernel and the
 * NICs the API places on this node; nothing that carries traffic is torn down
 * (./adoption.ts). Which namespace each NIC was plumbed into is kept in a state file
 * (./state.ts), checked against the kernel at start.
 *
 * Firewall: with `firewall` set it follows the controller's per-node ruleset feed and
 * applies each hosted instance's nftables table on the instance's ports in the node's
 * namespace, out of the instance's reach (./node-firewall.ts). Routers come through the
 * controller's router feed (./routers.ts).
 */
import type { ClientLogEntry } from '../svp/client.js';
import type { VnetEntries } from './backend.js';
import { repointEntries } from './underlay-routing.js';
import { UnderlayFollower, localIpv4Addresses } from './underlay-follow.js';
import { NodeFirewall } from './node-firewall.js';
import { ResolvingCache, type Vl2Mapping, type Vl3Mapping, vl2Key } from './cache.js';
import { linkWithAddress } from './plumbing/iproute.js';
import { canonicalMac } from '../net/addr.js';
import { type Logger, silentLogger } from '../log/index.js';
import { type AgentMetrics, createAgentMetrics } from './metrics.js';
import type { ApiNic } from './napi-client.js';
import { RouterFollower } from './routers.js';
import type { IngressEntry } from '../fw/ingress.js';
import { type PortMapping, PublishedPorts, externalProblem, parseMappings, publishedAddress } from './published.js';
import type { AgentOptions } from './agent-options.js';
import { AgentError, macParam } from './agent-error.js';
import { type ActivateOptions, type AttachRequest, type AttachedNic, Attachments, type StageRequest } from './attachments.js';
import { Resolver } from './resolver.js';
import { Shootdowns } from './shootdowns.js';
import { rebuild } from './adoption.js';
import { peerUnderlays, registerUnderlayNic } from './underlay-nic.js';

export type { AgentNapi, AgentOptions, PeerProber, SvpLookups } from './agent-options.js';
export { AgentError } from './agent-error.js';
export type { ActivateOptions, AttachRequest, AttachedNic, StageRequest } from './attachments.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export class Agent {
  readonly vl3: ResolvingCache<Vl3Mapping>;
  readonly vl2: ResolvingCache<Vl2Mapping>;
  readonly metrics: AgentMetrics;
  private readonly resolver: Resolver;
  private readonly attachments: Attachments;
  private readonly shootdowns: Shootdowns;
  /** The NICs attached here (the attachments' table). */
  private readonly nics: ReadonlyMap<string, AttachedNic>;
  /** MAC -> the node's end of its publication link (Docker -p), for the firewall. */
  private readonly publicationLinks = new Map<string, string>();
  private readonly log: Logger;
  private closed = false;
  private fw: NodeFirewall | undefined;
  private routers: RouterFollower | undefined;
  private readonly published: PublishedPorts;
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
    const shared = { vl3: this.vl3, vl2: this.vl2, metrics: this.metrics, log: this.log, underlay: () => this.ownUnderlay };
    this.resolver = new Resolver({ ...shared, nodeUuid: o.nodeUuid, svp: o.svp, napi: o.napi, backend: o.backend, routing: o.routing, prober: o.prober });
    this.attachments = new Attachments({
      o,
      log: this.log,
      resolver: this.resolver,
      published: this.published,
      applyPublished: () => this.applyPublished(),
      refreshRouters: () => this.refreshRouters(),
      firewall: () => this.fw,
    });
    this.nics = this.attachments.nics;
    this.shootdowns = new Shootdowns({
      ...shared,
      svp: o.svp,
      napi: o.napi,
      backend: o.backend,
      resolver: this.resolver,
      logTimeoutMs: o.logTimeoutMs,
      isAttached: (mac) => this.nics.has(mac),
      detach: (mac) => this.detach(mac),
      onApplied: o.onShootdownApplied,
    });
  }

  get nodeUuid(): string {
    return this.o.nodeUuid;
  }

  get underlayIp(): string {
    return this.ownUnderlay;
  }

  /** How many shootdowns were applied. */
  get shootdownsApplied(): number {
    return this.shootdowns.applied;
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
      onMiss: (m) => {
        if (!this.closed) this.resolver.onMiss(m);
      },
      log: (msg) => backendLog.info(msg),
      peerUnderlays: () => peerUnderlays(this.o, this.ownUnderlay),
      ...(this.o.external ? { external: this.o.external } : {}),
    });
    await rebuild({
      o: this.o,
      log: this.log,
      nics: this.attachments.nics,
      records: this.attachments.records,
      saveState: () => this.attachments.saveState(),
      vl3: this.vl3,
      vl2: this.vl2,
    });
    await this.published.load().catch((err: Error) => this.log.warn(`published ports: ${err.message}`));
    await this.applyPublished();
    await this.startRouters();
    // Entries adopted from before a change of path (encryption turned on or off meanwhile).
    if (this.o.routing) await this.repoint();
    this.o.routing?.start(() => this.repoint());
    this.shootdowns.start();
    this.startUnderlayFollower();
    await this.startFirewall();
  }

  /** Follows the routers of this node's owners, when the data plane and the NAPI client can. */
  private async startRouters(): Promise<void> {
    const setRouters = this.o.backend.setRouters?.bind(this.o.backend);
    const request = this.o.napi.request?.bind(this.o.napi);
    if (!setRouters || !request) return;
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

  /** Follows the node's own underlay address (./underlay-follow.ts). */
  private startUnderlayFollower(): void {
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
  }

  /** Applies the instances' rulesets node-side, when asked to (`firewall`). */
  private async startFirewall(): Promise<void> {
    if (!this.o.firewall) return;
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

  /** Registers the node's underlay NIC on the underlay network holding its address, if missing. */
  async registerUnderlay(): Promise<'present' | 'created'> {
    return registerUnderlayNic(this.o, this.ownUnderlay, this.log);
  }

  /** Reads the routers of this node's owners again (after an owner came or went). */
  private async refreshRouters(): Promise<void> {
    await this.routers?.refresh().catch((err: Error) => this.log.warn(`routers: ${err.message}`));
  }

  // ---- the underlay --------------------------------------------------------------------

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

  /** Where VXLAN goes changed (encryption turned on or off, an underlay address moved): the data plane follows. */
  private async repoint(): Promise<void> {
    const moved = await repointEntries(this.o.backend, this.o.routing!, (vnet, mac) => this.vl2.peek(vl2Key(vnet, mac))?.vlan);
    if (moved > 0) this.log.info(`${moved} remote entries re-pointed (VXLAN from ${this.o.routing!.path().local})`);
  }

  // ---- published ports -----------------------------------------------------------------

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
    const mac = macParam(macInput);
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

  // ---- lookups and shootdowns (./resolver.ts, ./shootdowns.ts) --------------------------

  /** Resolves an IP on a vnet and installs the answer (remote only); announce: also a gratuitous ARP. */
  resolveIp(vnet: number, ip: string, opts: { announce?: boolean } = {}): Promise<Vl3Mapping | null> {
    return this.resolver.resolveIp(vnet, ip, opts);
  }

  resolveMac(vnet: number, mac: string): Promise<Vl2Mapping | null> {
    return this.resolver.resolveMac(vnet, mac);
  }

  /** Resolves the network's NICs on other nodes, so first contact does not wait on a miss. */
  prefetch(vnet: number, networkUuid: string): Promise<number> {
    return this.resolver.prefetch(vnet, networkUuid);
  }

  /** Applies log entries in order; returns the ids applied (the rest are retried). */
  applyShootdowns(entries: readonly ClientLogEntry[]): Promise<string[]> {
    return this.shootdowns.apply(entries);
  }

  // ---- attach / detach (./attachments.ts) ----------------------------------------------

  attach(req: AttachRequest): Promise<AttachedNic> {
    return this.attachments.attach(req);
  }

  /** attach() for a caller that has just read (or created) the NIC's API record (the workload attachments). */
  attachNic(nic: ApiNic, req: AttachRequest): Promise<AttachedNic> {
    return this.attachments.attachNic(nic, req);
  }

  /** Plumbs a NIC for a runtime that moves the interface into the workload itself (Docker). */
  stage(req: StageRequest): Promise<AttachedNic> {
    return this.attachments.stage(req);
  }

  /** stage() for a caller holding the NIC's API record (the workload attachments). */
  stageNic(nic: ApiNic, req: StageRequest): Promise<AttachedNic> {
    return this.attachments.stageNic(nic, req);
  }

  /** A staged NIC's workload namespace is at netns: the NIC carries traffic once it is moved in and protected. */
  activate(macInput: string, netns: string, opts: ActivateOptions = {}): Promise<AttachedNic> {
    return this.attachments.activate(macInput, netns, opts);
  }

  /** Unplumbs a NIC attached here (deferTeardown: answer once its interface is gone). */
  detach(macInput: string, opts: { deferTeardown?: boolean } = {}): Promise<{ mac: string; vnetRemoved: boolean }> {
    return this.attachments.detach(macInput, opts);
  }

  /** The attachment of a NIC plumbed here (and known to the agent), or undefined. */
  attachment(macInput: string): AttachedNic | undefined {
    return this.attachments.attachment(macInput);
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
    this.shootdowns.stop();
    await this.routers?.stop();
    await this.follower?.stop();
    // Tables stay in the namespaces: the instances stay protected while the agent is down.
    await this.fw?.stop();
    await this.o.routing?.stop();
    this.o.backend.close();
    await this.shootdowns.ended();
  }
}
