/**
 * The node-side name of a NIC's port (the host end of its veth on a bridge-based backend),
 * derived from the MAC alone: the agent that plumbs it and the firewall compiler that
 * filters on it agree without asking each other. Linux limits names to 15 characters.
 */
import { macHex } from './addr.js';

const PORT_PREFIX = 'rv';

/** rv<mac hex> (14 characters). */
export function hostPortName(mac: string): string {
  return `${PORT_PREFIX}${macHex(mac)}`;
}

/**
 * A vnet's devices on a bridge-based backend (bridge, vxlan device, host ports) are in
 * device group VNET_GROUP_BASE + vnet: one request deletes them all, and the firewall's
 * node-wide table recognises the overlay's traffic by it.
 */
export const VNET_GROUP_BASE = 0x72000000;
export const VNET_GROUP_LAST = VNET_GROUP_BASE + 0xffffff;

/**
 * The conntrack zone (both directions) of what crosses a NIC's bridge on the userspace
 * backend (its TAP and its host veth): there the node sees an instance's packets a second
 * time, beside the edge's pass through the gateway port (zones 1 … 65534, ../edge/plan.ts),
 * so those entries must be their own or the edge's NAT would find them already decided.
 */
export const PORT_BRIDGE_ZONE = 65535;
