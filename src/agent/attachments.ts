/**
 * The NICs attached on this node: attach (plumb a NIC the API places here into an
 * instance's namespace), stage and activate (for a runtime that moves the interface into
 * the workload itself), detach; the state records that say which namespace each one is in
 * (./state.ts), saved on each change.
 */
import { step } from './step-times.js';
import { canonicalMac } from '../net/addr.js';
import { ifnameProblem, netnsPathProblem, sandboxPathProblem } from './plumbing/checks.js';
import { instanceNetnsProblem } from './plumbing/netns.js';
import { PlumbingError, plumbingFor, stagedPlumbingFor } from './plumbing/nic.js';
import { stagedName } from './plumbing/names.js';
import { waitForInterface, waitForNetns } from './plumbing/sandbox.js';
import type { Logger } from '../log/index.js';
import { type ApiNic, NapiRequestError } from './napi-client.js';
import type { AttachmentRecord } from './state.js';
import type { NodeFirewall } from './node-firewall.js';
import type { PublishedPorts } from './published.js';
import type { AgentOptions } from './agent-options.js';
import { AgentError, macParam } from './agent-error.js';
import type { Resolver } from './resolver.js';

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

export interface AttachmentsDeps {
  o: Pick<AgentOptions, 'nodeUuid' | 'napi' | 'backend' | 'routing' | 'checkNetns' | 'state' | 'prefetch'>;
  log: Logger;
  resolver: Resolver;
  published: PublishedPorts;
  /** Hands the data plane the published ports of the NICs attached here. */
  applyPublished: () => Promise<void>;
  /** Reads the routers of this node's owners again (an owner came or went). */
  refreshRouters: () => Promise<void>;
  /** The node-side firewall, once started (absent: none). */
  firewall: () => NodeFirewall | undefined;
}

export class Attachments {
  /** MAC -> the NIC attached here (also staged ones, and those adopted at start). */
  readonly nics = new Map<string, AttachedNic>();
  /** State records of NICs plumbed here (also those placed elsewhere awaiting detach). */
  readonly records = new Map<string, AttachmentRecord>();
  private readonly o: AttachmentsDeps['o'];
  private readonly log: Logger;

  constructor(private readonly d: AttachmentsDeps) {
    this.o = d.o;
    this.log = d.log;
  }

  /** Saves the state records (a failure is logged: the file is only a restart's hint). */
  async saveState(): Promise<void> {
    if (!this.o.state) return;
    await this.o.state.save(this.records).catch((err: Error) => this.log.warn(`state file: ${err.message}`));
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

  async attach(req: AttachRequest): Promise<AttachedNic> {
    const macText = macParam(req.mac);
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
    const macText = macParam(nic.mac);
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
    this.d.resolver.forgetNic(p.vnet, p.ip, macText);
    if (newOwner) await step('refreshRouters', () => this.d.refreshRouters());
    if (this.d.published.get(macText).length > 0) await this.d.applyPublished().catch((err: Error) => this.log.warn(`published ports: ${err.message}`));
    if (firstOnVnet && (this.o.prefetch ?? true) && nic.network_uuid) {
      await step('prefetch', () => this.d.resolver.prefetch(p.vnet, nic.network_uuid!)).catch((err: Error) => this.log.warn(`prefetch vnet ${p.vnet}: ${err.message}`));
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
    const macText = macParam(nic.mac);
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
    this.d.resolver.forgetNic(p.vnet, p.ip, macText);
    if (newOwner) await this.d.refreshRouters();
    if (firstOnVnet && (this.o.prefetch ?? true) && nic.network_uuid) {
      await this.d.resolver.prefetch(p.vnet, nic.network_uuid).catch((err: Error) => this.log.warn(`prefetch vnet ${p.vnet}: ${err.message}`));
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
    const mac = macParam(macInput);
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
    const fw = this.d.firewall();
    const [moved, protectedFw] = await Promise.allSettled([
      waitForInterface(netns, mac, stagedName(mac), wait),
      fw && uuid ? fw.protect(uuid) : Promise.resolve(),
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

  /** The API's record of a NIC (404 when it does not exist). */
  private async placedNic(input: string): Promise<ApiNic> {
    const mac = macParam(input);
    try {
      return await this.o.napi.getNic(mac);
    } catch (err) {
      if (err instanceof NapiRequestError && err.status === 404) throw new AgentError(404, `NIC ${mac} does not exist`);
      throw err;
    }
  }

  /**
   * Unplumbs a NIC attached here. deferTeardown (the API's detach, the move path): answer
   * once its interface is gone; its filter rules, the vnet's devices and the gateway follow
   * (the backend's queue), and so do the state file's save (a record of a NIC no longer
   * plumbed is dropped at start, so losing that save to a crash is harmless) and, for an
   * owner's last NIC here, the re-read of the node's routers.
   */
  async detach(macInput: string, opts: { deferTeardown?: boolean } = {}): Promise<{ mac: string; vnetRemoved: boolean }> {
    const mac = macParam(macInput);
    const known = this.nics.get(mac);
    if (!this.o.backend.isPlumbed(mac) || !known) throw new AgentError(404, `NIC ${mac} is not attached on this node`);
    const defer = opts.deferTeardown === true;
    const { vnetRemoved } = await step('backend.unplumb', () => this.o.backend.unplumb(mac, known.vnet, { deferTeardown: defer }));
    this.nics.delete(mac);
    this.records.delete(mac);
    if (defer) void this.saveState();
    else await step('saveState', () => this.saveState());
    this.d.resolver.forgetNic(known.vnet, known.ip, mac);
    // The owner's last NIC here: its routers are no longer this node's (after the answer when deferred).
    if (this.isNewOwner(known.owner_uuid)) {
      if (defer) void this.d.refreshRouters();
      else await step('refreshRouters', () => this.d.refreshRouters());
    }
    // A detached NIC's ports go with it.
    if (this.d.published.get(mac).length > 0) {
      await this.d.published.set(mac, []);
      await this.d.applyPublished().catch((err: Error) => this.log.warn(`published ports: ${err.message}`));
    }
    if (vnetRemoved) this.d.resolver.forgetVnet(known.vnet);
    return { mac, vnetRemoved };
  }

  /** The attachment of a NIC plumbed here (and known to the agent), or undefined. */
  attachment(macInput: string): AttachedNic | undefined {
    const mac = canonicalMac(macInput);
    const n = this.nics.get(mac);
    return n && this.o.backend.isPlumbed(mac) ? { ...n } : undefined;
  }
}
