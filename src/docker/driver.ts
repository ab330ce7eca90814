/**
 * rhumb as a Docker network driver and IPAM driver, served by the node's agent. Each of
 * Docker's calls is translated into the agent's workload attachments, the controller's
 * fabric networks (./fabric.ts) and its Docker firewall records; nothing is kept here that
 * the agent, the controller or the daemon does not hold (the maps below are caches, read
 * again from those after a restart).
 *
 * A container's life, as Docker drives it:
 *   IPAM RequestAddress (PoolID, MAC)   the endpoint's NIC is created in the controller
 *                                       (address from NAPI) and staged on this node: its
 *                                       interface waits in the node's namespace, no carrier
 *   CreateEndpoint (endpoint id)        the endpoint id is written on the attachment; the
 *                                       container is registered with the firewall (owner,
 *                                       network, exposed and published ports) before any
 *                                       packet can flow
 *   Join (sandbox key)                  answered at once with the staged interface, the
 *                                       gateway and routes; meanwhile the agent waits for
 *                                       libnetwork to mount the namespace and move the
 *                                       interface, puts the firewall in place, and only then
 *                                       gives the interface its carrier
 *   ProgramExternalConnectivity         published ports (./publish.ts), once activated
 *   Leave / DeleteEndpoint / ReleaseAddress   all of it undone, NIC and address released
 *
 * Identities: the attachment key is `docker/<MAC>` (the MAC libnetwork generates for the
 * endpoint is the only thing the IPAM and network calls share), its NIC's belongs_to_uuid
 * (the agent derives it from node and key) is the container's instance in the firewall.
 * Docker's link, expose and publish semantics are refined from the containers themselves
 * by ./watcher.ts.
 *
 * A network's pool is known to the IPAM driver only by its PoolID: the subnet, plus the
 * owner when `--ipam-opt owner=UUID` gave it. Two rhumb networks with one subnet on one
 * daemon (two owners) therefore need the owner in the IPAM options of (at least) the
 * second; RequestPool refuses the ambiguous case and says so.
 */
import type { AttachedNic } from '../agent/agent.js';
import type { ApiNic, NapiClient } from '../agent/napi-client.js';
import type { WorkloadAttachment } from '../agent/workload-api.js';
import type { WorkloadManager } from '../agent/workloads.js';
import { nicSettings } from '../agent/plumbing/nic.js';
import { type Logger, silentLogger } from '../log/index.js';
import type { DockerEngine, DockerNetwork } from './engine.js';
import { type FabricNetwork, FabricNetworks, controllerFailure } from './fabric.js';
import {
  ADDRESS_SPACE, type PoolRef, type PortBinding, type PortOptions, PluginRequestError, type Subnet,
  joinResponse, parseCreateEndpoint, parseCreateNetwork, parseEndpointRef, parseExternalConnectivity, parseJoin, parseNetworkRef,
  parseReleaseAddress, parseRequestAddress, parseRequestPool, parseSubnet, poolId, portMapValue,
} from './protocol.js';
import type { Publisher } from './publish.js';
import type { PluginHandler } from './server.js';

/** What the driver needs of the agent (Agent implements it). */
export interface DriverAgent {
  readonly nodeUuid: string;
  readonly underlayIp: string;
  attachment(mac: string): AttachedNic | undefined;
  /** A publication link into the NIC's instance came or went: its firewall covers it first. */
  publicationLink?(mac: string, link: string | undefined): Promise<void>;
}

export interface DockerDriverOptions {
  agent: DriverAgent;
  workloads: WorkloadManager;
  /** The controller's REST API (NAPI and the firewall's Docker routes). */
  api: Pick<NapiClient, 'request' | 'getNic'>;
  engine: DockerEngine;
  publisher: Publisher;
  /** The name Docker knows the plugin by (`-d NAME`): which of the daemon's networks are ours. */
  pluginName: string;
  logger?: Logger;
  /** How long a Join may wait for libnetwork to move the interface (ms). Default 120000. */
  activateTimeoutMs?: number;
}

/** A Docker network of this daemon and its fabric network. */
export interface NetInfo {
  dockerId: string;
  owner: string;
  subnet: Subnet;
  /** Owner given to the IPAM driver (--ipam-opt owner=UUID), if any. */
  ipamOwner?: string;
  fabric: FabricNetwork;
}

interface EndpointState {
  key: string;
  mac: string;
  networkId: string;
  bindings: PortBinding[];
  abort?: AbortController;
  /** The sandbox key once the NIC carries traffic there. */
  netns?: string;
}

export const KEY_PREFIX = 'docker/';
export const LABEL_NETWORK = 'docker.network';
export const LABEL_ENDPOINT = 'docker.endpoint';

export function attachmentKey(mac: string): string {
  return `${KEY_PREFIX}${mac}`;
}

export function scopeOf(networkId: string): string {
  return `${KEY_PREFIX}${networkId}`;
}

const enc = encodeURIComponent;

/** A Docker network's subnet and the owners it names, read from the daemon. */
export function networkFacts(n: DockerNetwork): { owner?: string; subnet?: string; ipamOwner?: string } {
  const subnet = n.IPAM?.Config?.[0]?.Subnet;
  return {
    ...(n.Options?.owner ? { owner: n.Options.owner.toLowerCase() } : {}),
    ...(subnet ? { subnet } : {}),
    ...(n.IPAM?.Options?.owner ? { ipamOwner: n.IPAM.Options.owner.toLowerCase() } : {}),
  };
}

export class DockerDriver {
  readonly fabric: FabricNetworks;
  private readonly log: Logger;
  private readonly nets = new Map<string, NetInfo>();
  private readonly endpoints = new Map<string, EndpointState>();
  /** Stage answers by MAC (gateway and routes for Join). */
  private readonly staged = new Map<string, WorkloadAttachment>();

  constructor(private readonly o: DockerDriverOptions) {
    this.fabric = new FabricNetworks(o.api, o.agent.nodeUuid);
    this.log = o.logger ?? silentLogger();
  }

  /** Docker's method names -> handlers, for ./server.ts. */
  handlers(): Map<string, PluginHandler> {
    const h = new Map<string, PluginHandler>();
    const reply = (v: unknown) => async () => v;
    h.set('Plugin.Activate', reply({ Implements: ['NetworkDriver', 'IpamDriver'] }));
    h.set('NetworkDriver.GetCapabilities', reply({ Scope: 'local', ConnectivityScope: 'global' }));
    h.set('IpamDriver.GetCapabilities', reply({ RequiresMACAddress: true, RequiresRequestReplay: false }));
    h.set('IpamDriver.GetDefaultAddressSpaces', reply({ LocalDefaultAddressSpace: ADDRESS_SPACE, GlobalDefaultAddressSpace: ADDRESS_SPACE }));
    h.set('IpamDriver.RequestPool', (b) => this.requestPool(b));
    h.set('IpamDriver.ReleasePool', reply({}));
    h.set('IpamDriver.RequestAddress', (b) => this.requestAddress(b));
    h.set('IpamDriver.ReleaseAddress', (b) => this.releaseAddress(b));
    h.set('NetworkDriver.CreateNetwork', (b) => this.createNetwork(b));
    h.set('NetworkDriver.DeleteNetwork', (b) => this.deleteNetwork(b));
    h.set('NetworkDriver.AllocateNetwork', async () => {
      throw new PluginRequestError('rhumb networks are local-scope (one per daemon, joined through the controller), not swarm networks');
    });
    h.set('NetworkDriver.FreeNetwork', reply({}));
    h.set('NetworkDriver.CreateEndpoint', (b) => this.createEndpoint(b));
    h.set('NetworkDriver.EndpointOperInfo', (b) => this.endpointOperInfo(b));
    h.set('NetworkDriver.DeleteEndpoint', (b) => this.deleteEndpoint(b));
    h.set('NetworkDriver.Join', (b) => this.join(b));
    h.set('NetworkDriver.Leave', (b) => this.leave(b));
    h.set('NetworkDriver.ProgramExternalConnectivity', (b) => this.programExternal(b));
    h.set('NetworkDriver.RevokeExternalConnectivity', (b) => this.revokeExternal(b));
    h.set('NetworkDriver.DiscoverNew', reply({}));
    h.set('NetworkDriver.DiscoverDelete', reply({}));
    return h;
  }

  // ---- networks --------------------------------------------------------------------------

  /** The daemon's networks that use this plugin. */
  async dockerNetworks(): Promise<DockerNetwork[]> {
    return (await this.o.engine.networks({ driver: [this.o.pluginName] })).filter((n) => n.Driver === this.o.pluginName);
  }

  /** What a Docker network of this daemon maps to (cached; read from the daemon and the controller). */
  async netInfo(idOrNetwork: string | DockerNetwork): Promise<NetInfo> {
    const id = typeof idOrNetwork === 'string' ? idOrNetwork : idOrNetwork.Id;
    const cached = this.nets.get(id);
    if (cached) return cached;
    const n = typeof idOrNetwork === 'string' ? await this.o.engine.network(id) : idOrNetwork;
    const facts = networkFacts(n);
    if (!facts.owner || !facts.subnet) throw new PluginRequestError(`Docker network ${n.Name} has no owner or subnet: it is not a rhumb network`);
    const subnet = parseSubnet(facts.subnet);
    const fabric = await this.fabric.find(facts.owner, subnet);
    if (!fabric) throw new PluginRequestError(`Docker network ${n.Name}: owner ${facts.owner} has no fabric network ${subnet.cidr} any more (removed from the controller?)`);
    const info: NetInfo = { dockerId: id, owner: facts.owner, subnet, ...(facts.ipamOwner ? { ipamOwner: facts.ipamOwner } : {}), fabric };
    this.nets.set(id, info);
    return info;
  }

  private async requestPool(body: unknown): Promise<unknown> {
    const pool = parseRequestPool(body);
    if (!pool.owner) {
      const same = (await this.dockerNetworks()).filter((n) => {
        const f = networkFacts(n);
        return f.subnet === pool.subnet.cidr && !f.ipamOwner;
      });
      if (same.length > 0) {
        throw new PluginRequestError(
          `this daemon already has rhumb network ${same.map((n) => n.Name).join(', ')} on ${pool.subnet.cidr}; Docker does not tell an IPAM ` +
            `driver which network an address is for, so give this one its owner for the IPAM driver too: --ipam-opt owner=UUID (same as -o owner)`,
        );
      }
    }
    return { PoolID: poolId(pool), Pool: pool.subnet.cidr, Data: {} };
  }

  /** The one Docker network of this daemon a pool's addresses are for. */
  private async networkForPool(pool: PoolRef): Promise<NetInfo> {
    const matches = (await this.dockerNetworks()).filter((n) => {
      const f = networkFacts(n);
      return f.subnet === pool.subnet.cidr && f.ipamOwner === pool.owner && (!pool.owner || f.owner === pool.owner);
    });
    if (matches.length !== 1) {
      throw new PluginRequestError(
        matches.length === 0
          ? `no ${this.o.pluginName} network on this daemon has pool ${poolId(pool)}`
          : `several ${this.o.pluginName} networks on this daemon share ${pool.subnet.cidr}: ${matches.map((n) => n.Name).join(', ')}`,
      );
    }
    return this.netInfo(matches[0]!);
  }

  private async createNetwork(body: unknown): Promise<unknown> {
    const req = parseCreateNetwork(body);
    const { network, record } = await this.fabric.ensure({
      dockerId: req.networkId,
      options: req.options,
      subnet: req.subnet,
      ...(req.gateway ? { gateway: req.gateway } : {}),
    });
    this.nets.set(req.networkId, { dockerId: req.networkId, owner: req.options.owner, subnet: req.subnet, fabric: network });
    const how = record.managed && record.nodes.length === 1 ? 'created' : 'joined';
    this.log.info(`Docker network ${req.networkId.slice(0, 12)} -> fabric network ${network.name} ${network.uuid} (${how}, icc ${record.icc}, nodes ${record.nodes.length})`);
    return {};
  }

  private async deleteNetwork(body: unknown): Promise<unknown> {
    const { networkId } = parseNetworkRef(body);
    // The daemon no longer shows the network by now: the cache, else the controller's records.
    const cached = this.nets.get(networkId);
    const found = cached ? { owner: cached.owner, network: cached.fabric } : await this.fabric.byDockerId(networkId);
    this.nets.delete(networkId);
    if (!found) {
      this.log.warn(`Docker network ${networkId.slice(0, 12)} removed; no fabric network is recorded for it on this node`);
      return {};
    }
    this.log.info(await this.fabric.leave(found.owner, found.network));
    return {};
  }

  // ---- addresses ---------------------------------------------------------------------------

  private async requestAddress(body: unknown): Promise<unknown> {
    const req = parseRequestAddress(body);
    const prefix = req.pool.subnet.prefix;
    if (req.gateway) {
      // The fabric network's own gateway when there is one already (adopting it).
      let gw = req.address;
      if (!gw && req.pool.owner) gw = (await this.fabric.find(req.pool.owner, req.pool.subnet))?.gateway;
      return { Address: `${gw ?? req.pool.subnet.first}/${prefix}`, Data: {} };
    }
    if (!req.mac) throw new PluginRequestError('no endpoint MAC in the address request: is the network using rhumb as its network driver too?');
    const net = await this.networkForPool(req.pool);
    const w = await this.o.workloads.stage({
      key: attachmentKey(req.mac),
      scope: scopeOf(net.dockerId),
      labels: { [LABEL_NETWORK]: net.dockerId },
      network_uuid: net.fabric.uuid,
      owner_uuid: net.owner,
      mac: req.mac,
      ...(req.address ? { ip: req.address } : {}),
    }).catch((err: Error) => {
      throw new PluginRequestError(`no address on ${net.fabric.name} (${net.subnet.cidr}): ${err.message}`);
    });
    this.staged.set(req.mac, w);
    const addr = w.ips?.[0]?.address;
    if (!addr) throw new PluginRequestError(`the NIC for ${req.mac} has no IPv4 address`);
    return { Address: addr, Data: {} };
  }

  private async releaseAddress(body: unknown): Promise<unknown> {
    const { pool, address } = parseReleaseAddress(body);
    for (const w of this.dockerWorkloads()) {
      if (!w.mac || this.o.agent.attachment(w.mac)?.ip !== address) continue;
      // Two owners' networks may share a subnet (and so an address) on one node: the pool decides.
      const net = await this.netInfo(w.labels?.[LABEL_NETWORK] ?? '').catch(() => undefined);
      if (!net || net.subnet.cidr !== pool.subnet.cidr || net.ipamOwner !== pool.owner) continue;
      await this.release(w);
    }
    return {};
  }

  // ---- endpoints -------------------------------------------------------------------------

  /** This node's Docker attachments (every phase). */
  dockerWorkloads(): WorkloadAttachment[] {
    return this.o.workloads.list().filter((w) => w.key.startsWith(KEY_PREFIX));
  }

  private byEndpoint(endpointId: string): WorkloadAttachment | undefined {
    return this.dockerWorkloads().find((w) => w.labels?.[LABEL_ENDPOINT] === endpointId);
  }

  private endpoint(endpointId: string, w: WorkloadAttachment): EndpointState {
    let ep = this.endpoints.get(endpointId);
    if (!ep) {
      ep = { key: w.key, mac: w.mac!, networkId: w.labels?.[LABEL_NETWORK] ?? '', bindings: [] };
      this.endpoints.set(endpointId, ep);
    }
    return ep;
  }

  private async createEndpoint(body: unknown): Promise<unknown> {
    const req = parseCreateEndpoint(body);
    if (!req.mac) throw new PluginRequestError('Docker gave the endpoint no MAC: use rhumb as the IPAM driver too (--ipam-driver)');
    const w = this.o.workloads.get(attachmentKey(req.mac));
    if (!w || w.phase !== 'attached') {
      throw new PluginRequestError(`no rhumb address was reserved for ${req.mac}: create the network with --ipam-driver ${this.o.pluginName} as well`);
    }
    if (w.labels?.[LABEL_NETWORK] !== req.networkId) throw new PluginRequestError(`${req.mac} was reserved on another network`);
    const clash = this.o.publisher.taken(req.mac, this.o.agent.underlayIp, req.ports.bindings);
    if (clash) throw new PluginRequestError(`port ${clash} is already published on this node`);
    const net = await this.netInfo(req.networkId);
    await this.o.workloads.label(w.key, { [LABEL_ENDPOINT]: req.endpointId });
    await this.registerContainer(w.belongs_to_uuid, net, `ep-${req.endpointId.slice(0, 12)}`, req.ports);
    this.endpoint(req.endpointId, w).bindings = req.ports.bindings;
    return {};
  }

  /** The firewall's record of the container (before its first packet): its network, exposed and published ports. */
  private async registerContainer(uuid: string, net: NetInfo, name: string, ports: PortOptions): Promise<void> {
    try {
      await this.o.api.request('POST', `/fw/docker/containers/${enc(uuid)}`, {
        owner_uuid: net.owner,
        name,
        network: net.fabric.uuid,
        exposed_ports: ports.exposed.map((p) => `${p.port}/${p.proto}`),
        published_ports: ports.bindings.map((b) => `${b.port}/${b.proto}`),
      });
    } catch (err) {
      throw controllerFailure(err, 'registering the container with the firewall');
    }
  }

  private async endpointOperInfo(body: unknown): Promise<unknown> {
    const { endpointId } = parseEndpointRef(body);
    const ep = this.endpoints.get(endpointId);
    return { Value: ep && ep.bindings.length > 0 ? { 'com.docker.network.portmap': portMapValue(ep.bindings) } : {} };
  }

  private async join(body: unknown): Promise<unknown> {
    const req = parseJoin(body);
    const w = this.byEndpoint(req.endpointId);
    if (!w?.mac) throw new PluginRequestError(`endpoint ${req.endpointId.slice(0, 12)} has no rhumb NIC on this node`);
    const route = await this.routesOf(w.mac);
    const ep = this.endpoint(req.endpointId, w);
    ep.abort?.abort();
    const ac = new AbortController();
    ep.abort = ac;
    // Not awaited: libnetwork mounts the namespace only after this answer.
    void this.o.workloads
      .activate(w.key, req.sandboxKey, { signal: ac.signal, timeoutMs: this.o.activateTimeoutMs ?? 120_000 })
      .then(async () => {
        ep.netns = req.sandboxKey;
        if (ep.bindings.length > 0) await this.o.publisher.publish(ep.mac, req.sandboxKey, this.o.agent.underlayIp, ep.bindings);
      })
      .catch((err: Error) => {
        if (!ac.signal.aborted) this.log.warn(`endpoint ${req.endpointId.slice(0, 12)}: not activated: ${err.message}`);
      });
    return joinResponse({ srcName: w.ifname, ...route });
  }

  /** Gateway and routes of the NIC (from its stage answer, or the controller). */
  private async routesOf(mac: string): Promise<{ gateway?: string; routes: Array<{ dst: string; via?: string }> }> {
    let routes = this.staged.get(mac)?.routes;
    if (!routes) {
      let nic: ApiNic;
      try {
        nic = await this.o.api.getNic(mac);
      } catch (err) {
        throw controllerFailure(err, `NIC ${mac}`);
      }
      const s = nicSettings(nic);
      routes = [...(s.gateway ? [{ dst: '0.0.0.0/0', gw: s.gateway }] : []), ...s.routes.map((r) => ({ dst: r.dst, ...(r.via ? { gw: r.via } : {}) }))];
    }
    const gateway = routes.find((r) => r.dst === '0.0.0.0/0')?.gw;
    return {
      ...(gateway ? { gateway } : {}),
      routes: routes.filter((r) => r.dst !== '0.0.0.0/0').map((r) => ({ dst: r.dst, ...(r.gw ? { via: r.gw } : {}) })),
    };
  }

  private async leave(body: unknown): Promise<unknown> {
    const { endpointId } = parseEndpointRef(body);
    const ep = this.endpoints.get(endpointId);
    ep?.abort?.abort();
    if (ep) delete ep.netns;
    return {};
  }

  private async programExternal(body: unknown): Promise<unknown> {
    const req = parseExternalConnectivity(body);
    const w = this.byEndpoint(req.endpointId);
    if (!w?.mac) return {};
    const ep = this.endpoint(req.endpointId, w);
    ep.bindings = req.ports.bindings;
    const clash = this.o.publisher.taken(w.mac, this.o.agent.underlayIp, ep.bindings);
    if (clash) throw new PluginRequestError(`port ${clash} is already published on this node`);
    // Before activation the namespace is not there yet: Join's task publishes then.
    if (ep.netns && ep.bindings.length > 0) await this.o.publisher.publish(w.mac, ep.netns, this.o.agent.underlayIp, ep.bindings);
    return {};
  }

  private async revokeExternal(body: unknown): Promise<unknown> {
    const { endpointId } = parseEndpointRef(body);
    const w = this.byEndpoint(endpointId);
    if (w?.mac) await this.o.publisher.unpublish(w.mac);
    return {};
  }

  private async deleteEndpoint(body: unknown): Promise<unknown> {
    const { endpointId } = parseEndpointRef(body);
    const ep = this.endpoints.get(endpointId);
    ep?.abort?.abort();
    this.endpoints.delete(endpointId);
    const w = this.byEndpoint(endpointId);
    if (w) await this.release(w);
    return {};
  }

  /** Undoes an attachment: publications, the firewall's record, the NIC and its plumbing. */
  async release(w: WorkloadAttachment): Promise<void> {
    if (w.mac) {
      await this.o.publisher.unpublish(w.mac);
      this.staged.delete(w.mac);
    }
    try {
      await this.o.api.request('DELETE', `/fw/docker/containers/${enc(w.belongs_to_uuid)}`);
    } catch (err) {
      if (!((err as { status?: number }).status === 404)) throw controllerFailure(err, 'removing the container from the firewall');
    }
    const r = await this.o.workloads.release(w.key);
    if (r.deferred) this.log.warn(`attachment ${w.key}: NIC deletion deferred until the controller answers`);
  }

  /** Forgets what it knows of a Docker network (the daemon destroyed it). */
  forgetNetwork(dockerId: string): void {
    this.nets.delete(dockerId);
  }

  /** The fabric network of a Docker network took a new name. */
  renamed(dockerId: string, name: string): void {
    const info = this.nets.get(dockerId);
    if (info) info.fabric = { ...info.fabric, name };
  }

  /** The endpoint state for recovery (./maintenance.ts). */
  endpointOf(endpointId: string): { netns?: string } | undefined {
    return this.endpoints.get(endpointId);
  }

  /** Re-activates a staged attachment after an agent restart, and republishes. */
  resume(w: WorkloadAttachment, endpointId: string, sandboxKey: string, bindings: PortBinding[]): Promise<void> {
    const ep = this.endpoint(endpointId, w);
    ep.bindings = bindings;
    return this.o.workloads.activate(w.key, sandboxKey, { timeoutMs: 10_000 }).then(async () => {
      ep.netns = sandboxKey;
      if (bindings.length > 0) await this.o.publisher.publish(w.mac!, sandboxKey, this.o.agent.underlayIp, bindings);
    });
  }
}
