/**
 * A Docker network's fabric network in the controller: found (by owner and subnet: an
 * owner's fabric subnets never overlap, so that pair names one network), adopted, or
 * created with its fabric VLAN; joined by each node whose daemon has the Docker network
 * (the firewall's Docker network record, which also holds icc); and, when the last node
 * removes it, deleted again if Docker made it.
 *
 * Docker never tells a network driver the network's name while creating it (the daemon
 * stores the name after the driver said yes), so a network the plugin creates starts as
 * `docker-<id prefix>` and is renamed to the Docker name once the daemon reports it
 * (./watcher.ts); an adopted network keeps its name.
 *
 * planFabric is pure (what to do, or why not); FabricNetworks does it over REST.
 */
import ipaddr from 'ipaddr.js';
import { type NapiClient, NapiRequestError, isUnreachable, napiErrorText } from '../agent/napi-client.js';
import { type NetworkOptions, PluginRequestError, type Subnet } from './protocol.js';

/** A fabric network as NAPI's /fabrics routes serialize it (the fields used here). */
export interface FabricNetwork {
  uuid: string;
  name: string;
  subnet: string;
  vlan_id: number;
  gateway?: string;
  mtu?: number;
  owner_uuid?: string;
}

export interface FabricVlan {
  vlan_id: number;
  name?: string;
}

export type FabricPlan = { kind: 'adopt'; network: FabricNetwork } | { kind: 'create'; vlan: number; createVlan: boolean };

/** Lowest VLAN id the plugin picks by itself (0 and 1 are left to operators). */
const FIRST_AUTO_VLAN = 2;

function overlaps(a: string, b: string): boolean {
  try {
    const [x, xl] = ipaddr.IPv4.parseCIDR(a);
    const [y, yl] = ipaddr.IPv4.parseCIDR(b);
    const l = Math.min(xl, yl);
    return x.match(y, l);
  } catch {
    return false;
  }
}

/**
 * What a Docker network (owner, subnet, optional VLAN) maps to among the owner's fabric
 * VLANs and networks: the network with exactly that subnet (adopt), else a new one on the
 * given VLAN or a free one. Throws PluginRequestError naming the conflict.
 */
export function planFabric(req: { owner: string; subnet: Subnet; vlan?: number }, vlans: readonly FabricVlan[], networks: readonly FabricNetwork[]): FabricPlan {
  const exact = networks.find((n) => n.subnet === req.subnet.cidr);
  if (exact) {
    if (req.vlan !== undefined && exact.vlan_id !== req.vlan) {
      throw new PluginRequestError(`owner ${req.owner}'s fabric network ${exact.name} (${exact.subnet}) is on VLAN ${exact.vlan_id}, not VLAN ${req.vlan}`);
    }
    return { kind: 'adopt', network: exact };
  }
  const clash = networks.find((n) => overlaps(n.subnet, req.subnet.cidr));
  if (clash) throw new PluginRequestError(`subnet ${req.subnet.cidr} overlaps owner ${req.owner}'s fabric network ${clash.name} (${clash.subnet})`);
  if (req.vlan !== undefined) {
    const used = networks.find((n) => n.vlan_id === req.vlan);
    if (used) throw new PluginRequestError(`VLAN ${req.vlan} of owner ${req.owner} is in use with another subnet: ${used.subnet} (network ${used.name})`);
    return { kind: 'create', vlan: req.vlan, createVlan: !vlans.some((v) => v.vlan_id === req.vlan) };
  }
  const taken = new Set(vlans.map((v) => v.vlan_id));
  for (let id = FIRST_AUTO_VLAN; id <= 4094; id++) if (!taken.has(id)) return { kind: 'create', vlan: id, createVlan: true };
  throw new PluginRequestError(`owner ${req.owner} has no free fabric VLAN left; give one with -o vlan=N`);
}

/** The Docker network record of the firewall (fw/docker-networks.ts), as its route answers it. */
export interface DockerNetworkRecord {
  uuid: string;
  owner_uuid: string;
  icc: boolean;
  nodes: string[];
  docker_ids?: Record<string, string>;
  managed: boolean;
  vlan_created: boolean;
}

export type ControllerRest = Pick<NapiClient, 'request'>;

/** A controller failure as the user should read it. */
export function controllerFailure(err: unknown, what: string): Error {
  if (err instanceof PluginRequestError) return err;
  if (isUnreachable(err)) return new PluginRequestError(`${what}: the rhumb controller is unreachable (${(err as Error).message})`);
  if (err instanceof NapiRequestError) return new PluginRequestError(`${what}: ${napiErrorText(err)}`);
  return err as Error;
}

const enc = encodeURIComponent;

export class FabricNetworks {
  constructor(
    private readonly api: ControllerRest,
    private readonly nodeUuid: string,
  ) {}

  async vlans(owner: string): Promise<FabricVlan[]> {
    return this.api.request<FabricVlan[]>('GET', `/fabrics/${enc(owner)}/vlans`);
  }

  /** Every fabric network of the owner, across its VLANs (given, or read). */
  async networks(owner: string, vlans?: readonly FabricVlan[]): Promise<FabricNetwork[]> {
    const all = await Promise.all(
      (vlans ?? (await this.vlans(owner))).map(async (v) =>
        (await this.api.request<FabricNetwork[]>('GET', `/fabrics/${enc(owner)}/vlans/${v.vlan_id}/networks?limit=1000`)).map((n) => ({ ...n, vlan_id: n.vlan_id ?? v.vlan_id })),
      ),
    );
    return all.flat();
  }

  /** The owner's fabric network with exactly this subnet, if any. */
  async find(owner: string, subnet: Subnet): Promise<FabricNetwork | undefined> {
    try {
      return (await this.networks(owner)).find((n) => n.subnet === subnet.cidr);
    } catch (err) {
      throw controllerFailure(err, 'fabric network lookup');
    }
  }

  /**
   * Creates or adopts the fabric network of a Docker network and records this node in
   * its Docker network record (icc must agree with the other nodes'). Nothing is left
   * behind when it fails.
   */
  async ensure(req: { dockerId: string; options: NetworkOptions; subnet: Subnet; gateway?: string }): Promise<{ network: FabricNetwork; record: DockerNetworkRecord }> {
    const owner = req.options.owner;
    for (let attempt = 0; ; attempt++) {
      let plan: FabricPlan;
      let created: { network: FabricNetwork; vlanCreated: boolean } | undefined;
      try {
        const vlans = await this.vlans(owner);
        plan = planFabric({ owner, subnet: req.subnet, ...(req.options.vlan !== undefined ? { vlan: req.options.vlan } : {}) }, vlans, await this.networks(owner, vlans));
        if (plan.kind === 'create') created = await this.create(owner, plan, req);
      } catch (err) {
        // Another node may have created it at the same moment: look again (adopt it).
        if (attempt < 2 && err instanceof NapiRequestError && err.status === 422) continue;
        throw controllerFailure(err, `fabric network ${req.subnet.cidr} of owner ${owner}`);
      }
      const network = created?.network ?? (plan as { network: FabricNetwork }).network;
      try {
        const record = await this.api.request<DockerNetworkRecord>('PUT', `/fw/docker/networks/${enc(network.uuid)}`, {
          owner_uuid: owner,
          node: this.nodeUuid,
          docker_id: req.dockerId,
          icc: req.options.icc,
          managed: created !== undefined,
          vlan_created: created?.vlanCreated ?? false,
        });
        return { network, record };
      } catch (err) {
        if (created) await this.remove(owner, network, created.vlanCreated).catch(() => undefined);
        throw controllerFailure(err, `Docker network record of ${network.name}`);
      }
    }
  }

  private async create(owner: string, plan: { vlan: number; createVlan: boolean }, req: { dockerId: string; subnet: Subnet; gateway?: string }) {
    if (plan.createVlan) await this.api.request('POST', `/fabrics/${enc(owner)}/vlans`, { vlan_id: plan.vlan, name: `docker-${plan.vlan}`, description: 'created by the rhumb Docker plugin' });
    try {
      const gateway = req.gateway ?? req.subnet.first;
      const network = await this.api.request<FabricNetwork>('POST', `/fabrics/${enc(owner)}/vlans/${plan.vlan}/networks`, {
        name: `docker-${req.dockerId.slice(0, 12)}`,
        subnet: req.subnet.cidr,
        gateway,
        provision_start_ip: req.subnet.first,
        provision_end_ip: req.subnet.last,
        description: 'created by the rhumb Docker plugin',
      });
      return { network: { ...network, vlan_id: network.vlan_id ?? plan.vlan }, vlanCreated: plan.createVlan };
    } catch (err) {
      if (plan.createVlan) await this.api.request('DELETE', `/fabrics/${enc(owner)}/vlans/${plan.vlan}`).catch(() => undefined);
      throw err;
    }
  }

  /** Deletes a fabric network the plugin made (and its VLAN); NAPI refuses while NICs remain. */
  private async remove(owner: string, network: FabricNetwork, vlanToo: boolean): Promise<void> {
    await this.api.request('DELETE', `/fabrics/${enc(owner)}/vlans/${network.vlan_id}/networks/${enc(network.uuid)}`);
    if (vlanToo) await this.api.request('DELETE', `/fabrics/${enc(owner)}/vlans/${network.vlan_id}`).catch(() => undefined);
  }

  /**
   * This node's daemon removed the Docker network: leave its record; with the last node
   * gone, a network the plugin made goes too. Returns what happened, for the log.
   */
  async leave(owner: string, network: FabricNetwork): Promise<string> {
    let rec: DockerNetworkRecord;
    try {
      rec = await this.api.request<DockerNetworkRecord>('DELETE', `/fw/docker/networks/${enc(network.uuid)}/nodes/${enc(this.nodeUuid)}`);
    } catch (err) {
      if (err instanceof NapiRequestError && err.status === 404) return `network ${network.name}: no Docker network record (already left)`;
      throw controllerFailure(err, `leaving Docker network ${network.name}`);
    }
    if (rec.nodes.length > 0) return `network ${network.name} stays: still used on ${rec.nodes.length} other node(s)`;
    if (!rec.managed) return `network ${network.name} stays: it was not created by Docker`;
    try {
      await this.remove(owner, network, rec.vlan_created);
    } catch (err) {
      return `network ${network.name}: not deleted (${controllerFailure(err, 'delete').message})`;
    }
    return `network ${network.name} (${network.subnet}) deleted with its last Docker network`;
  }

  /**
   * The fabric network this node's daemon knows by a Docker id, from the controller's
   * records (what a daemon removing a network, or a restarted agent, has to go by).
   */
  async byDockerId(dockerId: string): Promise<{ owner: string; network: FabricNetwork } | undefined> {
    let recs: DockerNetworkRecord[];
    try {
      recs = await this.api.request<DockerNetworkRecord[]>('GET', `/fw/docker/networks?${new URLSearchParams({ node: this.nodeUuid })}`);
    } catch (err) {
      throw controllerFailure(err, 'Docker network records');
    }
    const rec = recs.find((r) => r.docker_ids?.[this.nodeUuid] === dockerId);
    if (!rec) return undefined;
    try {
      const n = await this.api.request<FabricNetwork & { owner_uuids?: string[] }>('GET', `/networks/${enc(rec.uuid)}`);
      return { owner: rec.owner_uuid, network: { uuid: n.uuid, name: n.name, subnet: n.subnet, vlan_id: n.vlan_id, ...(n.gateway ? { gateway: n.gateway } : {}) } };
    } catch (err) {
      // The fabric network is gone (deleted by hand): leave the record all the same.
      if (err instanceof NapiRequestError && err.status === 404) return { owner: rec.owner_uuid, network: { uuid: rec.uuid, name: rec.uuid, subnet: '', vlan_id: -1 } };
      throw controllerFailure(err, 'fabric network lookup');
    }
  }

  /** Renames a network the plugin created to its Docker name (when the owner has no other network of that name). */
  async rename(owner: string, network: FabricNetwork, name: string): Promise<boolean> {
    if (network.name === name || !network.name.startsWith('docker-')) return false;
    try {
      await this.api.request('PUT', `/fabrics/${enc(owner)}/vlans/${network.vlan_id}/networks/${enc(network.uuid)}`, { name });
      return true;
    } catch {
      return false;
    }
  }
}
