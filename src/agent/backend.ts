/**
 * What the agent needs from a data plane. The kernel backend (Linux vxlan + bridge +
 * rtnetlink) implements it now; a userspace backend (native fast path) plugs in by adding
 * one entry to BACKENDS.
 */
import type { Registry } from 'prom-client';
import type { NicPlumbing } from './kernel/plumbing.js';


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

export interface BackendStartOptions {
  underlayIp: string;
  underlayDev?: string;
  onMiss: (miss: BackendMiss) => void;
  log: (msg: string) => void;
  /** The underlay addresses of the nodes (the API's underlay NICs): whom VXLAN may come from. */
  peerUnderlays?: () => Promise<string[]>;
}

export interface DataplaneBackend {
  /** Its name in BACKENDS. */
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
  /** Creates the vnet's devices if needed, then the NIC's; all or nothing. */
  plumb(p: NicPlumbing): Promise<{ firstOnVnet: boolean }>;
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

/** The data planes `rhumb agent --backend` accepts. */
export const BACKENDS = {
  kernel: async () => new (await import('./kernel/backend.js')).KernelBackend(),
  userspace: async (o) => {
    const { UserspaceBackend } = await import('./userspace/backend.js');
    const { parseOffloadList } = await import('../dataplane/fastpath.js');
    const backend = new UserspaceBackend(parseOffloadList(o.noOffload), { stateDir: o.stateDir });
    backend.registerMetrics(o.registry);
    return backend;
  },
} satisfies Record<string, BackendFactory>;

export type BackendKind = keyof typeof BACKENDS;

export function isBackendKind(s: string): s is BackendKind {
  return Object.hasOwn(BACKENDS, s);
}
