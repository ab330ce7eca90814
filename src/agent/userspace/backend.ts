/**
 * The userspace backend: the native fast path (src/dataplane/fastpath.ts) moves every
 * frame; this class plumbs NICs (the engine's TAP in the node's namespace, joined by a
 * bridge of its own to the host end of a veth whose other end is the instance's interface,
 * configured with the same address/route requests as on the kernel backend: ./port.ts),
 * writes the agent's answers into the engine's tables in batches and hands its misses to
 * the agent.
 *
 * Firewalls are node-side, as on the kernel backend: each NIC's host veth is named from
 * its MAC (rv<mac>) and its frames cross the NIC's bridge, where the instance's
 * bridge-family table filters them.
 *
 * Differences from the kernel backend the agent should know:
 * - TAP devices are persistent: they outlive the agent (traffic stops while no agent runs,
 *   TCP retransmits across a restart). What is plumbed is recorded in a state file
 *   (the agent's --state-dir, one file per underlay address), a NIC before its devices are
 *   made (so what an agent killed half-way made is removed by the next one); a restarted
 *   agent re-attaches to those TAPs and adopts their bridges and veths (a NIC whose veth is
 *   gone, its instance's namespace deleted meanwhile, is removed). The tables start empty
 *   and fill again on misses.
 * - Anti-spoofing and the 802.1Q inner tag (non-zero fabric VLANs) are done by the engine;
 *   its entries carry the fabric VLAN of the NIC they name (vlanAware), so ARP/ND answers
 *   and forwarding never cross VLANs.
 * - VXLAN is accepted only from the other nodes' underlay addresses (./peers.ts keeps the
 *   engine's set); datagrams from elsewhere are counted as drop_unknown_peer.
 * - Its files (the state file, the state directory it creates) are private: 0600 / 0700.
 * - Offloads: `rhumb agent --no-offload tso,gro,…` (setNoOffload()) switches them off;
 *   the engine's counters are exported on the agent's /metrics (registerMetrics()).
 */
import { isIPv4 } from 'node:net';
import { join } from 'node:path';
import { Gauge, type Registry } from 'prom-client';
import { FastPath, type NicSpec, type Offload, parseOffloadList } from '../../dataplane/fastpath.js';
import { SerialQueue } from '../serial.js';
import { StateFile } from '../state-file.js';
import { type BackendStartOptions, type DataplaneBackend, type UnderlayPath, type VnetEntries, registerBackend } from '../backend.js';
import { announceFrame } from '../plumbing/garp.js';
import { linkWithAddress } from '../plumbing/iproute.js';
import { applyNftables, deleteLink } from '../plumbing/run.js';
import { canonicalMac } from '../../net/addr.js';
import { type NicPlumbing, PlumbingError, type StagedPlumbing, VXLAN_OVERHEAD } from '../plumbing/nic.js';
import { PeerSet } from './peers.js';
import { type EdgePlan, type EdgeRouter, type PublishedPort, gatewayMac } from '../../edge/plan.js';
import { EdgeInputs } from '../edge-inputs.js';
import { EdgeApplier } from '../kernel/edge.js';
import type { PortOf } from '../kernel/edge-rules.js';
import { gatewayTapName, hostVethName, nicTapName } from '../plumbing/names.js';
import { activatePort, createPort, intactPorts, removePort, renderNicBridgeTables } from './port.js';
import { ip as ipCmd } from '../plumbing/iproute.js';
import { writeFile } from 'node:fs/promises';

/**
 * The distributed gateway on this backend: one TAP per (vnet, fabric VLAN) in the node's
 * namespace, a NIC of the engine with that VLAN's gateway MAC. The engine answers the
 * instances' ARP for the gateway addresses and delivers frames sent to the gateway MAC
 * to the TAP; the node's kernel routes them as on the kernel backend (../kernel/edge.ts)
 * and sends what goes into the vnet back through the TAP of the destination's VLAN.
 */
const gatewayPort: PortOf = (vnet, vlan) => ({ dev: gatewayTapName(vnet, vlan), mac: gatewayMac(vnet, vlan) });

interface PlumbedNic {
  /** The engine's NIC id. */
  id: number;
  vnet: number;
  ip: string;
  /** The engine's TAP (netns '', rt<mac>): what re-attaching after a restart needs. */
  spec: NicSpec;
  /** Staged: its host veth stays down (no carrier) until activate(). */
  staged?: boolean;
  /**
   * Plumbed by an agent from before the node-side port: its TAP is the instance's
   * interface, inside its namespace, where a firewall cannot be kept from the instance.
   * adopt() plumbs it again the current way.
   */
  legacy?: boolean;
}

/** One NIC in the state file: its TAP's spec; pending while its devices are being made. */
type SavedNic = NicSpec & { staged?: boolean; pending?: boolean };

export class UserspaceBackend implements DataplaneBackend {
  readonly kind = 'userspace';
  readonly vlanAware = true;
  private fp: FastPath | undefined;
  private peers: PeerSet | undefined;
  private readonly nics = new Map<string, PlumbedNic>();
  /** NICs whose devices are being made (recorded first: see saveState). */
  private readonly pending = new Map<string, NicSpec>();
  private log: (msg: string) => void = () => {};
  /** Plumbing changes run one at a time. */
  private readonly serial = new SerialQueue();
  private disable: Offload[];

  private readonly port: number;
  private readonly stateDir: string;
  /** The distributed gateway: its inputs (each plumbed NIC's network, the external side, routers, published ports) and the gateway TAPs. */
  private readonly edgeInputs = new EdgeInputs();
  private readonly edge = new EdgeApplier(gatewayPort);
  private readonly gatewayTaps = new Map<string, { id: number; addresses: string[] }>();

  /** port: the underlay UDP port (4789; 0 in tests); stateDir: where the plumbed TAPs are recorded. */
  constructor(disable?: readonly Offload[], opts: { port?: number; stateDir?: string } = {}) {
    this.disable = disable ? [...disable] : parseOffloadList(process.env.RHUMB_NO_OFFLOAD ?? '');
    this.port = opts.port ?? 4789;
    this.stateDir = opts.stateDir ?? process.env.RHUMB_STATE_DIR ?? '/run/rhumb';
  }

  /** `--no-offload tso,gro`: before start(). */
  setNoOffload(list: readonly Offload[]): void {
    this.disable = [...list];
  }

  async start(opts: BackendStartOptions): Promise<void> {
    this.log = opts.log;
    this.edgeInputs.external = opts.external;
    const ul = await linkWithAddress(opts.underlayIp);
    if (!ul) throw new Error(`no interface in this network namespace has the underlay address ${opts.underlayIp}`);
    this.onMiss = opts.onMiss;
    this.path = opts.path ?? { local: opts.underlayIp, anyLocal: false, mtu: ul.mtu };
    this.openEngine();
    const list = opts.peerUnderlays;
    this.peers = new PeerSet({
      ...(list ? { list: async () => (await list()).filter((a) => isIPv4(a) && a !== opts.underlayIp && a !== this.path.local) } : {}),
      apply: (addresses) => this.fp?.setPeers(addresses.filter((a) => isIPv4(a))),
      log: this.log,
    });
    await this.peers.start();
    // Before any NIC bridge carries traffic (./port.ts: its conntrack zone, nothing to the node).
    await applyNftables(renderNicBridgeTables()).catch((err: Error) => this.log(`NIC bridges' node-wide tables: ${err.message}`));
    this.state = new StateFile(join(this.stateDir, `userspace-${opts.underlayIp}.json`));
    await this.reattach();
    const o = this.fp!.offloads();
    const on = (['tso', 'uso', 'gso', 'gro', 'coalesce', 'mmsg'] as const).filter((k) => o[k]);
    this.log(`userspace fast path on ${this.bindAddress}:${this.port} (path MTU ${this.path.mtu}); offloads: ${on.join(',') || 'none'}`);
  }

  private onMiss: BackendStartOptions['onMiss'] = () => {};
  private path: UnderlayPath = { local: '', anyLocal: false, mtu: 1500 };

  /** The address the engine's sockets bind: the path's source, or any (the tunnel address too). */
  private get bindAddress(): string {
    return this.path.anyLocal ? '0.0.0.0' : this.path.local;
  }

  private openEngine(): void {
    this.fp = FastPath.open({ underlayIp: this.bindAddress, underlayMtu: this.path.mtu, port: this.port, disable: this.disable }, (miss) => {
      if (miss.kind === 'peer') this.peers?.unknownSource();
      else this.onMiss(miss);
    });
  }

  /**
   * Encryption turned on or off: the engine's sockets bind elsewhere or its path MTU
   * changed, so it is opened again on the same (persistent) TAPs; its tables fill again
   * from misses, which the agent answers from its cache.
   */
  setPath(path: UnderlayPath): Promise<void> {
    return this.serial.run(async () => {
      const before = { bind: this.bindAddress, mtu: this.path.mtu };
      this.path = path;
      if (!this.fp || (before.bind === this.bindAddress && before.mtu === path.mtu)) return;
      this.fp.close();
      this.fp = undefined;
      this.openEngine();
      for (const [mac, n] of this.nics) {
        try {
          n.id = this.engine.addNic({ ...n.spec, persist: true, reattach: true });
        } catch (err) {
          this.nics.delete(mac);
          this.log(`NIC ${mac}: its TAP is gone (${(err as Error).message}); forgetting it`);
        }
      }
      await this.saveState();
      this.engine.setPeers((this.peers?.addresses() ?? []).filter((a) => isIPv4(a)));
      // The gateway TAPs went with the old engine.
      this.gatewayTaps.clear();
      await this.applyEdgeLogged();
      this.log(`fast path re-opened on ${this.bindAddress}:${this.port} (path MTU ${path.mtu})`);
    });
  }

  refreshPeers(): Promise<void> {
    return this.peers?.refresh() ?? Promise.resolve();
  }

  private state: StateFile | undefined;

  /**
   * TAPs a previous agent left (persistent devices): attach to them again, and adopt their
   * bridges and veths. What an attach that did not finish made is removed, and so is a NIC
   * whose veth is gone (its instance's namespace was deleted while no agent ran).
   */
  private async reattach(): Promise<void> {
    let saved: SavedNic[];
    try {
      await this.state!.secure();
      const text = await this.state!.read();
      if (text === undefined) return;
      saved = JSON.parse(text) as SavedNic[];
    } catch {
      return;
    }
    const intact = await intactPorts();
    for (const { staged, pending, ...spec } of saved) {
      const mac = canonicalMac(spec.mac);
      const legacy = spec.ifname !== nicTapName(mac);
      if (pending) {
        this.log(`NIC ${mac}: removing what an unfinished attach made`);
        await this.removeDevices(mac);
        continue;
      }
      if (legacy && staged) {
        // An older agent's staged TAP nobody reads: its runtime must stage the NIC again.
        this.log(`NIC ${mac}: removing the staged TAP ${spec.ifname} an older agent made`);
        await deleteLink(spec.ifname).catch(() => undefined);
        continue;
      }
      if (!legacy && !intact(mac)) {
        this.log(`NIC ${mac}: its veth is gone (its instance's namespace was deleted); removing its TAP and bridge`);
        await this.removeDevices(mac);
        continue;
      }
      try {
        const id = this.engine.addNic({ ...spec, persist: true, reattach: true });
        this.nics.set(mac, { id, vnet: spec.vnet, ip: spec.ip, spec, ...(staged ? { staged: true } : {}), ...(legacy ? { legacy: true } : {}) });
      } catch (err) {
        this.log(`NIC ${mac}: its TAP is gone (${(err as Error).message}); forgetting it`);
        if (!legacy) await removePort(mac);
      }
    }
    if (this.nics.size > 0) this.log(`re-attached ${this.nics.size} TAP(s) left by the previous agent`);
    await this.saveState();
  }

  /** A NIC's node-side devices, whatever of them exists: veth, bridge, TAP. */
  private async removeDevices(mac: string): Promise<void> {
    await removePort(mac);
    await deleteLink(nicTapName(mac)).catch(() => undefined);
  }

  /**
   * Records the plumbed NICs (namespace paths and policies: root's eyes only) and those
   * whose devices are being made; failures are logged.
   */
  private async saveState(): Promise<void> {
    if (!this.state) return;
    const entries: SavedNic[] = [
      ...[...this.nics.values()].map((n) => (n.staged ? { ...n.spec, staged: true } : n.spec)),
      ...[...this.pending.values()].map((spec) => ({ ...spec, pending: true })),
    ];
    try {
      if (entries.length === 0) await this.state.remove();
      else await this.state.write(JSON.stringify(entries));
    } catch (err) {
      this.log(`userspace state ${this.state.path}: ${(err as Error).message}`);
    }
  }

  private get engine(): FastPath {
    if (!this.fp) throw new Error('userspace backend not started');
    return this.fp;
  }

  vnets(): number[] {
    return [...new Set([...this.nics.values()].map((n) => n.vnet))].sort((a, b) => a - b);
  }

  plumbedMacs(): string[] {
    return [...this.nics.keys()].sort();
  }

  isPlumbed(mac: string): boolean {
    return this.nics.has(canonicalMac(mac));
  }

  vnetOf(mac: string): number | undefined {
    return this.nics.get(canonicalMac(mac))?.vnet;
  }

  plumb(p: NicPlumbing): Promise<{ firstOnVnet: boolean }> {
    return this.serial.run(async () => {
      const mac = canonicalMac(p.mac);
      if (this.nics.has(mac)) throw new PlumbingError(`NIC ${mac} is already plumbed on this node`);
      const firstOnVnet = !this.vnets().includes(p.vnet);
      await this.addPort(p, 'plumb');
      this.edgeInputs.addNic(p);
      await this.applyEdgeLogged();
      // A node that joined since the last listing may be about to send here.
      await this.peers?.refresh();
      return { firstOnVnet };
    });
  }

  /**
   * The engine's TAP, then the NIC's bridge and veth (./port.ts); all or nothing. The NIC
   * is recorded as pending before anything is made, as plumbed once everything is.
   */
  private async addPort(p: NicPlumbing | StagedPlumbing, how: 'plumb' | 'stage'): Promise<void> {
    const mac = canonicalMac(p.mac);
    const spec: NicSpec = {
      netns: '',
      ifname: nicTapName(mac),
      mac,
      ip: p.ip,
      vnet: p.vnet,
      vlan: p.vlan,
      mtu: p.mtu,
      allowMacSpoofing: p.allowMacSpoofing,
      allowIpSpoofing: p.allowIpSpoofing,
    };
    this.pending.set(mac, spec);
    await this.saveState();
    let id = -1;
    try {
      try {
        id = this.engine.addNic({ ...spec, persist: true });
      } catch (err) {
        throw new PlumbingError(`TAP for ${mac}: ${(err as Error).message}`);
      }
      await createPort(p, spec.ifname, how);
    } catch (err) {
      if (id >= 0) this.engine.removeNic(id);
      this.pending.delete(mac);
      await this.saveState();
      throw err;
    }
    this.pending.delete(mac);
    this.nics.set(mac, { id, vnet: p.vnet, ip: p.ip, spec, ...(how === 'stage' ? { staged: true } : {}) });
    await this.saveState();
  }

  adopt(nics: readonly NicPlumbing[]): Promise<void> {
    // Re-attached TAPs kept their policy (anti-spoofing, VLAN) from the state file; the
    // API's records give their networks (the gateway).
    return this.serial.run(async () => {
      for (const p of nics) {
        const n = this.nics.get(canonicalMac(p.mac));
        if (!n) continue;
        if (n.legacy && !(await this.migrate(p, n))) continue;
        this.edgeInputs.addNic(p);
      }
      await this.applyEdgeLogged();
    });
  }

  /**
   * A NIC an older agent plumbed (its TAP inside the instance's namespace) plumbed again
   * the current way: its TAP goes (the instance's interface with it, a moment), a veth
   * with the same name, MAC, address and routes comes. False when it is not plumbed any more.
   */
  private async migrate(p: NicPlumbing, n: PlumbedNic): Promise<boolean> {
    const mac = canonicalMac(p.mac);
    if (p.netns === '') {
      this.log(`NIC ${mac}: plumbed by an older agent in an unknown namespace; its firewall cannot be node-side until it is attached again`);
      return true;
    }
    this.engine.removeNic(n.id);
    this.nics.delete(mac);
    try {
      await this.addPort(p, 'plumb');
      this.log(`NIC ${mac}: moved from a TAP in its namespace to a node-side port`);
      return true;
    } catch (err) {
      this.log(`NIC ${mac}: plumbing it node-side failed (${(err as Error).message}); it is not plumbed now`);
      await this.saveState();
      return false;
    }
  }

  setPublished(ports: readonly PublishedPort[]): Promise<void> {
    return this.serial.run(async () => {
      this.edgeInputs.published = [...ports];
      await this.applyEdge();
    });
  }

  setRouters(routers: readonly EdgeRouter[]): Promise<void> {
    return this.serial.run(async () => {
      this.edgeInputs.routers = [...routers];
      await this.applyEdge();
    });
  }

  private async applyEdgeLogged(): Promise<void> {
    await this.applyEdge().catch((err: Error) => this.log(`distributed gateway: ${err.message}`));
  }

  /** Gateway TAPs for the plan's (vnet, VLAN)s, the gateway addresses in the engine, then the node's routing. */
  private async applyEdge(): Promise<void> {
    if (!this.fp) return;
    const vnets = new Set(this.vnets());
    const plan = this.edgeInputs.plan((vnet) => vnets.has(vnet));
    const wanted = this.gatewayPorts(plan);
    let made = false;
    for (const [name, want] of wanted) {
      let tap = this.gatewayTaps.get(name);
      if (!tap) {
        made = true;
        const id = this.engine.addNic({
          netns: '', ifname: name, mac: gatewayMac(want.vnet, want.vlan), ip: want.addresses[0] ?? '0.0.0.0', vnet: want.vnet, vlan: want.vlan,
          mtu: this.path.mtu - VXLAN_OVERHEAD, allowMacSpoofing: false, allowIpSpoofing: true, sharedMac: true, persist: false,
        });
        tap = { id, addresses: [] };
        this.gatewayTaps.set(name, tap);
        await writeFile(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, '1').catch(() => undefined);
        await ipCmd(['link', 'set', name, 'up']);
      }
      const mac = gatewayMac(want.vnet, want.vlan);
      const gone = tap.addresses.filter((a) => !want.addresses.includes(a));
      this.engine.update([
        ...want.addresses.map((a) => ({ op: 'l3set' as const, vnet: want.vnet, ip: a, mac, vlan: want.vlan })),
        ...gone.map((a) => ({ op: 'l3del' as const, vnet: want.vnet, ip: a })),
      ]);
      tap.addresses = want.addresses;
    }
    await this.edge.apply(plan, { force: made });
    for (const [name, tap] of this.gatewayTaps) {
      if (wanted.has(name)) continue;
      const vnet = parseGatewayVnet(name);
      if (vnet !== undefined) this.engine.update(tap.addresses.map((a) => ({ op: 'l3del' as const, vnet, ip: a })));
      this.engine.removeNic(tap.id);
      this.gatewayTaps.delete(name);
    }
  }

  /** The gateway TAPs a plan needs: per (vnet, VLAN) of its gateways and routes, with the gateway addresses on it. */
  private gatewayPorts(plan: EdgePlan): Map<string, { vnet: number; vlan: number; addresses: string[] }> {
    const out = new Map<string, { vnet: number; vlan: number; addresses: string[] }>();
    for (const v of plan.vnets) {
      for (const vlan of new Set([...v.gateways.map((g) => g.vlan), ...v.routes.map((r) => r.vlan)])) {
        out.set(gatewayTapName(v.vnet, vlan), { vnet: v.vnet, vlan, addresses: v.gateways.filter((g) => g.vlan === vlan).map((g) => g.address) });
      }
    }
    return out;
  }

  /**
   * The TAP, bridge and veth as for plumb, both veth ends in the node's namespace (the
   * instance end as p.ifname, its runtime moves it) and the host end down: the instance
   * end has no carrier until activate().
   */
  stage(p: StagedPlumbing): Promise<{ firstOnVnet: boolean }> {
    return this.serial.run(async () => {
      const mac = canonicalMac(p.mac);
      if (this.nics.has(mac)) throw new PlumbingError(`NIC ${mac} is already plumbed on this node`);
      const firstOnVnet = !this.vnets().includes(p.vnet);
      await this.addPort(p, 'stage');
      return { firstOnVnet };
    });
  }

  activate(mac: string): Promise<void> {
    return this.serial.run(async () => {
      const m = canonicalMac(mac);
      const n = this.nics.get(m);
      if (!n) throw new PlumbingError(`NIC ${m} is not plumbed on this node`);
      if (!n.staged) return;
      await activatePort(m);
      delete n.staged;
      await this.saveState();
      await this.peers?.refresh();
    });
  }

  isStaged(mac: string): boolean {
    return this.nics.get(canonicalMac(mac))?.staged === true;
  }

  hostInterface(mac: string): string | undefined {
    const n = this.nics.get(canonicalMac(mac));
    return n && !n.legacy ? hostVethName(mac) : undefined;
  }

  unplumb(mac: string, vnet: number): Promise<{ vnetRemoved: boolean }> {
    return this.serial.run(async () => {
      const m = canonicalMac(mac);
      const n = this.nics.get(m);
      if (n) {
        // The instance's link first (a staged instance end goes with its peer), then the TAP.
        if (!n.legacy) await removePort(m);
        this.engine.removeNic(n.id);
        this.nics.delete(m);
        await this.saveState();
      }
      if (this.edgeInputs.removeNic(m)) await this.applyEdgeLogged();
      const removed = !this.vnets().includes(vnet);
      if (removed && this.fp) {
        // The vnet's remote entries go with its last NIC.
        const e = this.fp.entries(vnet);
        this.fp.update([
          ...e.fdb.map((f) => ({ op: 'l2del' as const, vnet, mac: f.mac })),
          ...e.neighbours.map((x) => ({ op: 'l3del' as const, vnet, ip: x.ip })),
        ]);
      }
      return { vnetRemoved: removed && n !== undefined };
    });
  }

  installL3(vnet: number, ip: string, mac: string, underlay: string, vlan = 0): void {
    this.engine.update([
      { op: 'l2set', vnet, mac: canonicalMac(mac), underlay, vlan },
      { op: 'l3set', vnet, ip, mac: canonicalMac(mac), vlan },
    ]);
    this.peers?.learn(underlay);
  }

  installL2(vnet: number, mac: string, underlay: string, vlan = 0): void {
    this.engine.update([{ op: 'l2set', vnet, mac: canonicalMac(mac), underlay, vlan }]);
    this.peers?.learn(underlay);
  }

  async removeMac(vnet: number, mac: string): Promise<void> {
    const m = canonicalMac(mac);
    const local = this.nics.get(m);
    const stale = this.engine
      .entries(vnet)
      .neighbours.filter((n) => n.mac === m && !(local && local.ip === n.ip))
      .map((n) => ({ op: 'l3del' as const, vnet, ip: n.ip }));
    // One batch: the forwarding thread never sees the IP without its MAC or the reverse.
    this.engine.update([...stale, { op: 'l2del', vnet, mac: m }]);
  }

  removeIp(vnet: number, ip: string): void {
    if ([...this.nics.values()].some((n) => n.vnet === vnet && n.ip === ip)) return;
    this.engine.update([{ op: 'l3del', vnet, ip }]);
  }

  async announce(vnet: number, ip: string, mac: string): Promise<void> {
    this.engine.inject(vnet, announceFrame(ip, canonicalMac(mac)));
  }

  entries(vnet: number): VnetEntries {
    if (!this.fp) return { vnet, neighbours: [], fdb: [] };
    const e = this.fp.entries(vnet);
    const localIps = new Set([...this.nics.values()].filter((n) => n.vnet === vnet).map((n) => n.ip));
    return { vnet, fdb: e.fdb, neighbours: e.neighbours.filter((n) => !localIps.has(n.ip)) };
  }

  /** Per-NIC and engine counters as Prometheus metrics on registry. */
  registerMetrics(registry: Registry): void {
    const nicCounters = new Gauge({
      name: 'rhumb_fastpath_nic_total',
      help: 'Userspace fast path counters per NIC (frames, bytes, misses, parked, drops by reason); monotonic',
      labelNames: ['mac', 'vnet', 'counter'] as const,
      registers: [registry],
      collect: () => {
        if (!this.fp) return;
        for (const [mac, n] of this.nics) {
          const c = this.fp.counters(n.id);
          for (const [name, v] of Object.entries(c)) nicCounters.set({ mac, vnet: String(n.vnet), counter: name }, v);
        }
      },
    });
    const engine = new Gauge({
      name: 'rhumb_fastpath_engine_total',
      help: 'Userspace fast path counters not tied to a NIC (underlay drops: bad VXLAN, unknown VNI, no NIC); monotonic',
      labelNames: ['counter'] as const,
      registers: [registry],
      collect: () => {
        if (!this.fp) return;
        for (const [name, v] of Object.entries(this.fp.counters())) engine.set({ counter: name }, v);
      },
    });
  }

  /** Stops forwarding; the persistent TAPs stay for the next agent. */
  close(): void {
    this.peers?.close();
    this.peers = undefined;
    this.fp?.close();
    this.fp = undefined;
    this.nics.clear();
    this.pending.clear();
    // Gateway TAPs are not persistent: they went with the engine (the next agent makes them again).
    this.gatewayTaps.clear();
  }
}

function parseGatewayVnet(name: string): number | undefined {
  const m = /^rg(\d+)v\d+$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

registerBackend('userspace', async (o) => {
  const backend = new UserspaceBackend(parseOffloadList(o.noOffload), { stateDir: o.stateDir });
  backend.registerMetrics(o.registry);
  return backend;
});
