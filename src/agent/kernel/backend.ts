/**
 * The kernel backend: per vnet a Linux vxlan device (nolearning proxy l2miss l3miss) in a
 * bridge with the instances' veths; misses arrive over rtnetlink (native addon) and the
 * agent answers them with permanent neighbour and FDB entries. Links, addresses, routes and
 * the port filter are made by the native module without starting a process (./links.ts;
 * iproute2 and nft when it is not built), entries with the addon. Everything it creates
 * is named after the vnet or the MAC (../plumbing/names.ts), which is how a restarted agent
 * adopts its predecessor's devices without touching them, and recognises what an attach
 * that did not finish left (removed at start).
 */
import { type MissEvent, Rtnetlink } from '../../dataplane/netlink.js';
import { SerialQueue } from '../serial.js';
import { step } from '../step-times.js';
import { type BackendStartOptions, type DataplaneBackend, type UnderlayPath, type UnplumbOptions, type VnetEntries, registerBackend } from '../backend.js';
import { sendGarp } from '../plumbing/garp.js';
import { type PortPolicy, renderPortFilter } from '../plumbing/portfilter.js';
import { bridgeName, hostVethName, parseDeviceName, vxlanName } from '../plumbing/names.js';
import { canonicalMac } from '../../net/addr.js';
import { type NicPlumbing, PlumbingError, type StagedPlumbing, VXLAN_OVERHEAD } from '../plumbing/nic.js';
import { applyNftables } from '../plumbing/run.js';
import { ip } from '../plumbing/iproute.js';
import { type KernelLink, type KernelLinks, kernelLinks, ndProxyIpv6 } from './links.js';
import type { EdgeRouter, PublishedPort } from '../../edge/plan.js';
import { EdgeInputs } from '../edge-inputs.js';
import { EdgeApplier } from './edge.js';

function policyOf(p: NicPlumbing | StagedPlumbing): PortPolicy {
  return { mac: canonicalMac(p.mac), ip: p.ip, vnet: p.vnet, vlan: p.vlan, allowMacSpoofing: p.allowMacSpoofing, allowIpSpoofing: p.allowIpSpoofing };
}

interface VnetDevices {
  vxIfindex: number;
}

export class KernelBackend implements DataplaneBackend {
  readonly kind = 'kernel';
  private rt: Rtnetlink | undefined;
  private readonly vnetDevs = new Map<number, VnetDevices>();
  private readonly vnetByIfindex = new Map<number, number>();
  /** Plumbed NICs: MAC -> vnet. */
  private readonly veths = new Map<string, number>();
  /** Staged NICs whose host end is still down (the kernel says so: adopted at start). */
  private readonly staged = new Set<string>();
  /** Anti-spoofing and VLAN policy of each plumbed NIC whose API record is known. */
  private readonly ports = new Map<string, PortPolicy>();
  private underlayIp = '';
  /** Source address of VXLAN: the underlay address, or the tunnel address when encrypted. */
  private local = '';
  private underlayDev: string | undefined;
  private vxMtu = 1500 - VXLAN_OVERHEAD;
  private log: (msg: string) => void = () => {};
  /** Link changes run one at a time (two attaches must not both create a vnet). */
  private readonly serial = new SerialQueue();
  private readonly links: KernelLinks = kernelLinks();
  /** The distributed gateway's inputs: each plumbed NIC's network, the node's external side, routers, published ports. */
  private readonly edgeInputs = new EdgeInputs();
  private readonly edge = new EdgeApplier();

  async start(opts: BackendStartOptions): Promise<void> {
    this.underlayIp = opts.underlayIp;
    this.local = opts.path?.local ?? opts.underlayIp;
    this.log = opts.log;
    this.edgeInputs.external = opts.external;
    const ul = await this.links.underlay(opts.underlayIp);
    if (!ul) throw new Error(`no interface in this network namespace has the underlay address ${opts.underlayIp}`);
    this.underlayDev = opts.underlayDev ?? ul.name;
    this.vxMtu = ul.mtu - VXLAN_OVERHEAD;
    const links = await this.removeLeftovers(await this.links.list());
    const bridgeVnet = new Map<string, number>();
    for (const l of links) {
      const own = parseDeviceName(l.name);
      if (own?.kind === 'vxlan' && l.kind === 'vxlan') {
        this.vnetDevs.set(own.vnet, { vxIfindex: l.ifindex });
        this.vnetByIfindex.set(l.ifindex, own.vnet);
        // Encryption turned on or off while no agent ran.
        if (l.vxlanLocal !== undefined && l.vxlanLocal !== this.local) await this.setLocal(own.vnet);
        // Made by an agent that turned IPv6 off on it: IPv6 neighbours need it on.
        await ndProxyIpv6(l.name);
      } else if (own?.kind === 'bridge') bridgeVnet.set(l.name, own.vnet);
    }
    for (const l of links) {
      const own = parseDeviceName(l.name);
      if (own?.kind !== 'veth' || l.kind !== 'veth' || !l.master) continue;
      const vnet = bridgeVnet.get(l.master);
      if (vnet === undefined) continue;
      this.veths.set(own.mac, vnet);
      if (!l.up) this.staged.add(own.mac);
    }
    if (this.vnetDevs.size > 0 || this.veths.size > 0) {
      this.log(`adopted ${this.vnetDevs.size} vnet(s) and ${this.veths.size} NIC(s) already in the kernel`);
    }
    this.rt = Rtnetlink.open((ev: MissEvent) => this.onKernelMiss(ev, opts), {
      ifindexes: [...this.vnetByIfindex.keys()],
      onOverflow: () => this.log('rtnetlink overflow: some misses were lost (the kernel asks again on retransmit)'),
      onError: (err) => this.log(`rtnetlink error: ${err.message}`),
    });
  }

  private onKernelMiss(ev: MissEvent, opts: BackendStartOptions): void {
    const vnet = this.vnetByIfindex.get(ev.ifindex);
    if (vnet === undefined) return;
    if (ev.kind === 'l3') opts.onMiss({ kind: 'l3', vnet, ip: ev.ip });
    else opts.onMiss({ kind: 'l2', vnet, mac: canonicalMac(ev.mac) });
  }

  private get netlink(): Rtnetlink {
    if (!this.rt) throw new Error('kernel backend not started');
    return this.rt;
  }

  vnets(): number[] {
    return [...this.vnetDevs.keys()].sort((a, b) => a - b);
  }

  plumbedMacs(): string[] {
    return [...this.veths.keys()].sort();
  }

  isPlumbed(mac: string): boolean {
    return this.veths.has(canonicalMac(mac));
  }

  vnetOf(mac: string): number | undefined {
    return this.veths.get(canonicalMac(mac));
  }

  hostInterface(mac: string): string | undefined {
    const m = canonicalMac(mac);
    return this.veths.has(m) ? hostVethName(m) : undefined;
  }

  /**
   * What an attach that did not finish left (see ./links.ts): veths of ours in no bridge
   * (their instance ends go with them), and bridges of ours without their vxlan device
   * and without ports. And what a detach that answered before removing its vnet's devices
   * left (unplumb's deferTeardown): a vnet whose bridge has no NIC's veth, its vxlan
   * device and bridge. Returns the links that remain.
   */
  private async removeLeftovers(links: KernelLink[]): Promise<KernelLink[]> {
    const names = new Set(links.map((l) => l.name));
    const ported = new Set(links.map((l) => l.master).filter((m) => m !== undefined));
    const withNic = new Set(links.filter((l) => l.kind === 'veth' && parseDeviceName(l.name)?.kind === 'veth').map((l) => l.master));
    const empty = (vnet: number) => !withNic.has(bridgeName(vnet));
    const leftovers = links.filter((l) => {
      const own = parseDeviceName(l.name);
      if (own?.kind === 'veth' && l.kind === 'veth') return !l.master;
      if (own?.kind === 'bridge' && l.kind === 'bridge') return (!names.has(vxlanName(own.vnet)) && !ported.has(l.name)) || empty(own.vnet);
      if (own?.kind === 'vxlan' && l.kind === 'vxlan') return l.master === bridgeName(own.vnet) && empty(own.vnet);
      return false;
    });
    if (leftovers.length === 0) return links;
    this.log(`removing what an unfinished attach left: ${leftovers.map((l) => l.name).join(', ')}`);
    await this.links.deleteLinks(leftovers.map((l) => l.name));
    const gone = new Set(leftovers.map((l) => l.name));
    return links.filter((l) => !gone.has(l.name));
  }

  private async ensureVnet(vnet: number): Promise<boolean> {
    if (this.vnetDevs.has(vnet)) return false;
    // A bridge of an unfinished vnet creation may be there (no vxlan device, no port): start afresh.
    await step('delete stale bridge', () => this.links.deleteLinks([bridgeName(vnet)]));
    // Over the tunnel the route picks the WireGuard interface: no underlay device then.
    const dev = this.local === this.underlayIp ? this.underlayDev : undefined;
    const vxIfindex = await step('createVnet', () => this.links.createVnet({ vnet, underlayIp: this.local, underlayDev: dev, mtu: this.vxMtu }));
    this.vnetDevs.set(vnet, { vxIfindex });
    this.vnetByIfindex.set(vxIfindex, vnet);
    this.netlink.watch([...this.vnetByIfindex.keys()]);
    return true;
  }

  /** Points the vnet's vxlan device's source address at this.local. */
  private async setLocal(vnet: number): Promise<void> {
    // Rare (the encryption setting changed): iproute2 rather than a native request for it.
    await ip(['link', 'set', vxlanName(vnet), 'type', 'vxlan', 'local', this.local]);
  }

  setPath(path: UnderlayPath): Promise<void> {
    return this.serial.run(async () => {
      if (path.local === this.local) return;
      this.local = path.local;
      for (const vnet of this.vnetDevs.keys()) await this.setLocal(vnet);
      this.log(`VXLAN now leaves from ${path.local}`);
    });
  }

  plumb(p: NicPlumbing): Promise<{ firstOnVnet: boolean }> {
    return this.serial.run(async () => {
      const firstOnVnet = await this.addPort(p, (filtered) => this.links.createNic(p, filtered));
      this.edgeInputs.addNic(p);
      await step('edge', () => this.applyEdgeLogged());
      return { firstOnVnet };
    });
  }

  stage(p: StagedPlumbing): Promise<{ firstOnVnet: boolean }> {
    return this.serial.run(async () => {
      const firstOnVnet = await this.addPort(p, (filtered) => this.links.stageNic(p, filtered));
      this.staged.add(canonicalMac(p.mac));
      return { firstOnVnet };
    });
  }

  /**
   * A NIC's veth in its vnet's bridge (made by `create`), behind the port filter; all or
   * nothing: a failure removes the veth, and the vnet's devices when this NIC brought them.
   * The port filter with the NIC's rules loads while the links are made (nftables and
   * rtnetlink do not wait on each other); `create` waits for it (`filtered`) before the
   * veth joins the bridge, so the port carries nothing unfiltered.
   * The NIC may have lived elsewhere before: entries pointing away from here are dropped.
   */
  private async addPort(p: NicPlumbing | StagedPlumbing, create: (filtered: Promise<void>) => Promise<void>): Promise<boolean> {
    const mac = canonicalMac(p.mac);
    if (this.veths.has(mac)) throw new PlumbingError(`NIC ${mac} is already plumbed on this node`);
    const firstOnVnet = await step('ensureVnet', () => this.ensureVnet(p.vnet));
    this.ports.set(mac, policyOf(p));
    const filtered = step('portFilter', () => this.applyPortFilter()).catch((err: unknown) => {
      throw err instanceof PlumbingError ? new PlumbingError(`port filter: ${err.message}`) : err;
    });
    try {
      await step('createNic', () => create(filtered));
    } catch (err) {
      this.ports.delete(mac);
      // The filter may have gone in with this port's rules: once it has, load it without them.
      const loaded = await filtered.then(() => true, () => false);
      if (loaded) await this.applyPortFilter().catch((e: Error) => this.log(`port filter: ${e.message}`));
      if (firstOnVnet) await this.removeVnet(p.vnet);
      throw err;
    }
    this.veths.set(mac, p.vnet);
    const dev = this.vnetDevs.get(p.vnet)!;
    this.netlink.fdbDel(dev.vxIfindex, mac);
    this.netlink.neighDel(dev.vxIfindex, p.ip);
    return firstOnVnet;
  }

  /** The host end comes up: the peer (in the workload now) gets its carrier. */
  activate(mac: string): Promise<void> {
    return this.serial.run(async () => {
      const m = canonicalMac(mac);
      if (!this.veths.has(m)) throw new PlumbingError(`NIC ${m} is not plumbed on this node`);
      await this.links.activateNic(m);
      this.staged.delete(m);
    });
  }

  isStaged(mac: string): boolean {
    return this.staged.has(canonicalMac(mac));
  }

  unplumb(mac: string, vnet: number, opts: UnplumbOptions = {}): Promise<{ vnetRemoved: boolean }> {
    // The answer may come before the job ends (deferTeardown): the teardown stays in the
    // queue, so a later attach to the vnet waits for it.
    let answer!: (r: { vnetRemoved: boolean }) => void;
    let refuse!: (err: unknown) => void;
    const answered = new Promise<{ vnetRemoved: boolean }>((res, rej) => ((answer = res), (refuse = rej)));
    void this.serial.run(async () => {
      let teardown: (() => Promise<void>) | undefined;
      try {
        teardown = await this.removePort(canonicalMac(mac), vnet, opts.deferTeardown === true, answer);
      } catch (err) {
        refuse(err);
        return;
      }
      await teardown?.().catch((err: Error) => this.log(`after unplumbing ${mac}: ${err.message}`));
    });
    return answered;
  }

  /**
   * Unplumbs a NIC and answers; returns what is left to do after the answer (deferred:
   * the port filter without the NIC, the vnet's devices, the gateway; the vnet forgotten
   * already). The NIC's veth is gone before the answer either way.
   */
  private async removePort(m: string, vnet: number, defer: boolean, answer: (r: { vnetRemoved: boolean }) => void): Promise<(() => Promise<void>) | undefined> {
    const last = this.vnetDevs.has(vnet) && ![...this.veths].some(([other, v]) => v === vnet && other !== m);
    const filterChanged = this.ports.delete(m);
    const reloadFilter = () => step('portFilter', () => this.applyPortFilter()).catch((err: Error) => this.log(`port filter: ${err.message}`));
    if (defer && last) this.forgetVnet(vnet);
    const deleteNic = () => step('deleteNic', () => this.links.deleteNic(m));
    if (defer) {
      await deleteNic();
    } else {
      // The port filter and the links change at once (nftables and rtnetlink do not wait on
      // each other); the last NIC of a vnet goes with the vnet's devices in one request.
      const links = last ? step('removeVnet', () => this.removeVnet(vnet)).then(deleteNic) : deleteNic();
      await Promise.all([links, filterChanged ? reloadFilter() : undefined]);
    }
    // A staged instance end still in this namespace goes with its peer.
    this.staged.delete(m);
    this.veths.delete(m);
    const edgeChanged = this.edgeInputs.removeNic(m);
    if (!defer) {
      if (edgeChanged) await step('edge', () => this.applyEdgeLogged());
      answer({ vnetRemoved: last });
      return undefined;
    }
    answer({ vnetRemoved: last });
    return async () => {
      // The filter's rules for a port that is gone match nothing: it is reloaded beside the vnet's removal.
      await Promise.all([filterChanged ? reloadFilter() : undefined, last ? this.links.teardownVnet(vnet) : undefined]);
      if (edgeChanged) await this.applyEdgeLogged();
    };
  }

  adopt(nics: readonly NicPlumbing[]): Promise<void> {
    return this.serial.run(async () => {
      for (const p of nics) {
        if (!this.veths.has(canonicalMac(p.mac))) continue;
        this.ports.set(canonicalMac(p.mac), policyOf(p));
        this.edgeInputs.addNic(p);
      }
      await this.applyPortFilter();
      await this.applyEdgeLogged();
    });
  }

  setPublished(ports: readonly PublishedPort[]): Promise<void> {
    return this.serial.run(async () => {
      this.edgeInputs.published = [...ports];
      await this.applyEdge();
    });
  }

  /** Routers connecting fabric networks (the agent follows them): routes between connected networks. */
  setRouters(routers: readonly EdgeRouter[]): Promise<void> {
    return this.serial.run(async () => {
      this.edgeInputs.routers = [...routers];
      await this.applyEdge();
    });
  }

  /** The distributed gateway for the networks of the NICs plumbed here (../../edge/plan.ts). */
  private async applyEdge(): Promise<void> {
    await this.edge.apply(this.edgeInputs.plan((vnet) => this.vnetDevs.has(vnet)));
  }

  /** The NIC itself is plumbed either way: a gateway that could not follow is logged, and fixed by the next change. */
  private async applyEdgeLogged(): Promise<void> {
    await this.applyEdge().catch((err: Error) => this.log(`distributed gateway: ${err.message}`));
  }

  /** Replaces the node's port filter table in one nftables transaction. */
  private async applyPortFilter(): Promise<void> {
    await applyNftables(renderPortFilter([...this.ports.values()]));
  }

  private async removeVnet(vnet: number): Promise<void> {
    // Forgotten first: answers arriving while the kernel deletes are not installed on a dying device.
    this.forgetVnet(vnet);
    await this.links.deleteVnet(vnet);
  }

  private forgetVnet(vnet: number): void {
    // The bridge's gateway addresses and routes go with it.
    this.edge.portGone(bridgeName(vnet));
    const dev = this.vnetDevs.get(vnet);
    this.vnetDevs.delete(vnet);
    if (dev) this.vnetByIfindex.delete(dev.vxIfindex);
    this.rt?.watch([...this.vnetByIfindex.keys()]);
  }

  private vx(vnet: number): number | undefined {
    return this.vnetDevs.get(vnet)?.vxIfindex;
  }

  installL3(vnet: number, ip: string, mac: string, underlay: string): void {
    const ifindex = this.vx(vnet);
    if (ifindex === undefined) return;
    this.netlink.fdbSet(ifindex, mac, underlay);
    this.netlink.neighSet(ifindex, ip, mac);
  }

  installL2(vnet: number, mac: string, underlay: string): void {
    const ifindex = this.vx(vnet);
    if (ifindex === undefined) return;
    this.netlink.fdbSet(ifindex, mac, underlay);
  }

  async removeMac(vnet: number, mac: string): Promise<void> {
    const ifindex = this.vx(vnet);
    if (ifindex === undefined) return;
    const m = canonicalMac(mac);
    for (const e of this.netlink.neighList(ifindex)) if (e.mac && canonicalMac(e.mac) === m) this.netlink.neighDel(ifindex, e.ip);
    this.netlink.fdbDel(ifindex, m);
    // The bridge learned the MAC behind the vxlan port from its frames: forget that too.
    if (this.netlink.fdbList(ifindex).some((e) => !e.self && canonicalMac(e.mac) === m)) {
      this.netlink.fdbDel(ifindex, m, undefined, { master: true });
    }
  }

  removeIp(vnet: number, ip: string): void {
    const ifindex = this.vx(vnet);
    if (ifindex === undefined) return;
    this.netlink.neighDel(ifindex, ip);
  }

  async announce(vnet: number, ip: string, mac: string): Promise<void> {
    if (!this.vnetDevs.has(vnet)) return;
    sendGarp(bridgeName(vnet), ip, mac);
  }

  entries(vnet: number): VnetEntries {
    const ifindex = this.vx(vnet);
    if (ifindex === undefined) return { vnet, neighbours: [], fdb: [] };
    const neighbours = this.netlink
      .neighList(ifindex)
      .filter((e) => e.mac && e.state === 'permanent')
      .map((e) => ({ ip: e.ip, mac: canonicalMac(e.mac!) }));
    const fdb = this.netlink
      .fdbList(ifindex)
      .filter((e) => e.self && e.dst && e.mac !== '00:00:00:00:00:00')
      .map((e) => ({ mac: canonicalMac(e.mac), underlay: e.dst! }));
    return { vnet, neighbours, fdb };
  }

  close(): void {
    this.rt?.close();
    this.rt = undefined;
  }
}

registerBackend('kernel', async () => new KernelBackend());
