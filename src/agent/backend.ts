/**
 * What the agent needs from a data plane, and the registry of data planes. Two implement
 * it: kernel/ (Linux vxlan + bridge + rtnetlink) and userspace/ (the native fast path).
 * Each backend module registers itself by name as it loads (flannel's backend.Register);
 * ./backends.ts is the list of modules compiled in. This module imports no backend.
 */
import type { Registry } from 'prom-client';
import type { NicPlumbing, StagedPlumbing } from './plumbing/nic.js';
import type { EdgeRouter, ExternalSide, PublishedPort } from '../edge/plan.js';


/** A data-plane miss, already mapped to its vnet. */
export type BackendMiss = { kind: 'l3'; vnet: number; ip: string } | { kind: 'l2'; vnet: number; mac: string };

/** Entries the data plane holds for a vnet (rebuilt into the cache after a restart). */
export interface VnetEntries {
  vnet: number;
  /** IP -> MAC. */
  neighbours: Array<{ ip: string; mac: string }>;
  /** MAC -> remote underlay address. */
  fdb: Array<{ mac: string; underlay: string }>;
}

/**
 * Where VXLAN leaves from and how much room the path below it leaves: the underlay itself,
 * or (encrypted underlay) the node's WireGuard tunnel. Destinations come with each entry.
 */
export interface UnderlayPath {
  /** Source address of VXLAN: the underlay address, or the node's tunnel address. */
  local: string;
  /** Also take VXLAN addressed to the node's other addresses (its tunnel address while the deployment changes over). */
  anyLocal: boolean;
  /** MTU of the path below VXLAN: the underlay's, less WireGuard's overhead when encrypted. */
  mtu: number;
}

export interface BackendStartOptions {
  underlayIp: string;
  underlayDev?: string;
  /** Where VXLAN goes from (default: the underlay address, its interface's MTU). */
  path?: UnderlayPath;
  onMiss: (miss: BackendMiss) => void;
  /** One line for the agent's log (the agent hands it to a child of its pino logger). */
  log: (msg: string) => void;
  /** The underlay addresses of the nodes (the API's underlay NICs): whom VXLAN may come from. */
  peerUnderlays?: () => Promise<string[]>;
  /** The node's external side (`--external-iface`): egress NAT goes out there, from its address. */
  external?: ExternalSide;
}

export interface DataplaneBackend {
  /** The name it registered under. */
  readonly kind: string;
  /**
   * installL3/installL2 want the fabric VLAN of the NIC an answer names (the agent then
   * looks it up) and use an entry only for NICs on that VLAN.
   */
  readonly vlanAware?: boolean;
  /** Adopts what a previous agent left in the kernel (nothing is torn down). */
  start(opts: BackendStartOptions): Promise<void>;
  /** vnets with devices on this node. */
  vnets(): number[];
  /** MACs whose NIC is plumbed on this node. */
  plumbedMacs(): string[];
  isPlumbed(mac: string): boolean;
  /** The vnet a plumbed NIC is on. */
  vnetOf(mac: string): number | undefined;
  /**
   * Creates the vnet's devices if needed, then the NIC's; all or nothing. The NIC's frames
   * cross a node-side port named hostPortName(mac) (../net/ports.ts) on a bridge: the
   * instance's firewall filters there, out of its reach.
   */
  plumb(p: NicPlumbing): Promise<{ firstOnVnet: boolean }>;
  /**
   * Like plumb, for a runtime that moves the interface into the workload itself (Docker):
   * the instance end stays in the node's namespace as p.ifname, and the NIC carries
   * nothing (no carrier) until activate(). unplumb removes a staged NIC too.
   */
  stage(p: StagedPlumbing): Promise<{ firstOnVnet: boolean }>;
  /**
   * A staged NIC's interface is now in the workload's namespace (netns, as ifname), whose
   * firewall is in place: let it carry traffic. Idempotent.
   */
  activate(mac: string, netns: string, ifname: string): Promise<void>;
  /** True for a staged NIC not activated yet. */
  isStaged(mac: string): boolean;
  /**
   * NICs the API places here that are already plumbed (found at start): record their
   * policies (anti-spoofing, VLAN) without touching their devices.
   */
  adopt(nics: readonly NicPlumbing[]): Promise<void>;
  /** Removes the NIC's devices, and the vnet's when this was its last NIC. */
  unplumb(mac: string, vnet: number): Promise<{ vnetRemoved: boolean }>;
  /** IP -> MAC on the vnet, and MAC -> underlay; vlan: the MAC's fabric VLAN (when vlanAware). */
  installL3(vnet: number, ip: string, mac: string, underlay: string, vlan?: number): void;
  /** MAC -> underlay; vlan: the MAC's fabric VLAN (when vlanAware). */
  installL2(vnet: number, mac: string, underlay: string, vlan?: number): void;
  /** Drops the MAC's forwarding entries (also what the bridge learned) and every neighbour entry pointing at it. */
  removeMac(vnet: number, mac: string): Promise<void>;
  /** Drops the IP's neighbour entry. */
  removeIp(vnet: number, ip: string): void;
  /** Tells the vnet's local instances that ip now lives at mac (gratuitous ARP). */
  announce(vnet: number, ip: string, mac: string): Promise<void>;
  entries(vnet: number): VnetEntries;
  /**
   * The path changed (encryption turned on or off): VXLAN leaves from path.local from now
   * on. Entries are re-installed by the agent afterwards (with their new destinations).
   */
  setPath?(path: UnderlayPath): Promise<void>;
  /** Asks the agent again whom VXLAN may come from (peerUnderlays changed). */
  refreshPeers?(): Promise<void>;
  /**
   * The node-side interface of a plumbed NIC, if the data plane has one (the kernel
   * backend's host veth); CNI results list it so chained plugins (bandwidth) find it.
   */
  hostInterface?(mac: string): string | undefined;
  /**
   * The routers connecting fabric networks (each with every network it connects): the
   * distributed gateway routes between them. Backends without a gateway ignore it.
   */
  setRouters?(routers: readonly EdgeRouter[]): Promise<void>;
  /** Instance ports published on the external address (DNAT). Backends without a gateway ignore it. */
  setPublished?(ports: readonly PublishedPort[]): Promise<void>;
  /** Stops listening; leaves every device and entry in place so traffic keeps flowing. */
  close(): void;
}

/** What the agent hands a data plane when it builds it. */
export interface BackendOptions {
  /** The agent's state directory (a backend may keep its own records there). */
  stateDir: string;
  /** The agent's metrics registry (a backend may export its counters). */
  registry: Registry;
  /** Offloads to leave off (`--no-offload tso,gro,…`); backends without offloads ignore it. */
  noOffload: string;
}

export type BackendFactory = (opts: BackendOptions) => Promise<DataplaneBackend>;

const registry = new Map<string, BackendFactory>();

/** Makes a data plane available to `rhumb agent --backend NAME`; each backend module calls it once. */
export function registerBackend(name: string, factory: BackendFactory): void {
  if (registry.has(name)) throw new Error(`data plane backend ${name} is registered twice`);
  registry.set(name, factory);
}

/** Registered names, in registration order. */
export function backendNames(): string[] {
  return [...registry.keys()];
}

/** The factory registered under name, or undefined. */
export function backendFactory(name: string): BackendFactory | undefined {
  return registry.get(name);
}
