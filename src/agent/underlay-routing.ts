/**
 * Where VXLAN for another node goes: its underlay address, or its WireGuard tunnel address
 * when the deployment encrypts (./wireguard/manager.ts implements UnderlayRouting). SVP
 * answers name underlay addresses; the agent maps them before anything reaches the data
 * plane, and re-points the data plane when the mapping changes.
 */
import type { DataplaneBackend, UnderlayPath } from './backend.js';

export interface UnderlayRouting {
  /** Learns the deployment's setting and brings the node in line (before the data plane starts). */
  init(): Promise<void>;
  /** Follows the controller; onChange re-points the data plane when where VXLAN goes changes. */
  start(onChange: () => Promise<void>): void;
  stop(): Promise<void>;
  path(): UnderlayPath;
  /** The largest instance MTU that fits the path (undefined: no limit beyond the network's). */
  instanceMtu(): number | undefined;
  /** The data-plane destination for the node at this underlay address; undefined: none it may use. */
  destination(underlay: string): string | undefined;
  /** The underlay address a data-plane destination stands for. */
  underlayOf(dst: string): string;
  /** Addresses VXLAN from the nodes at these underlay addresses may arrive from. */
  sources(underlays: readonly string[]): string[];
  status(): Record<string, unknown>;
  /** The node's underlay address moved (its tunnel follows); the data plane is re-pointed after. */
  moveUnderlay(ip: string, mtu: number): Promise<void>;
}

/**
 * The data plane after a change of path (encryption turned on or off, the node's underlay
 * address moved, a peer's tunnel address moved): the backend's
 * path first, then every remote entry again with its new destination (entries with none
 * removed), then whom VXLAN may come from. vlanOf: the fabric VLAN of a remote MAC (for
 * VLAN-aware backends). Returns how many entries moved.
 */
export async function repointEntries(
  backend: DataplaneBackend,
  routing: UnderlayRouting,
  vlanOf: (vnet: number, mac: string) => number | undefined,
): Promise<number> {
  await backend.setPath?.(routing.path());
  let moved = 0;
  for (const vnet of backend.vnets()) {
    for (const f of backend.entries(vnet).fdb) {
      const dst = routing.destination(routing.underlayOf(f.underlay));
      if (dst === f.underlay) continue;
      if (dst === undefined) await backend.removeMac(vnet, f.mac);
      else backend.installL2(vnet, f.mac, dst, vlanOf(vnet, f.mac));
      moved++;
    }
  }
  await backend.refreshPeers?.();
  return moved;
}
