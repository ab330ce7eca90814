/**
 * Device names the kernel backend gives what it creates, derived from the vnet id or the
 * NIC's MAC alone so that a restarted agent recognises its own devices (and nobody
 * else's) without any state file. Linux limits names to 15 characters.
 *
 *   rvx<vnet>   the vnet's vxlan device      (vnet ≤ 16777215 → at most 11 characters)
 *   rbr<vnet>   the vnet's bridge
 *   rv<mac hex> the host end of a NIC's veth (14 characters)
 *   rg<vnet>v<vlan>  the userspace backend's gateway TAP of a fabric VLAN (at most 15)
 *   rs<mac hex> a staged NIC's instance end while it waits in the node's namespace for
 *               its runtime to move it (Docker's libnetwork; 14 characters)
 *   rt<mac hex> the userspace backend's TAP of a NIC (the fast path reads it; 14 characters)
 *   rn<mac hex> the userspace backend's bridge joining a NIC's TAP and its host veth
 *               (14 characters; the firewall's bridge-family table sees the NIC's frames
 *               there, and ../userspace/port.ts gives its traffic a conntrack zone of its own)
 *
 * A vnet's devices (bridge, vxlan device, host veths, staged ones too) are also in one
 * device group, 0x72000000 + vnet, so that the last NIC's veth and the vnet's devices go
 * in one request.
 */
import { canonicalMac, macHex } from '../../net/addr.js';
import { VNET_GROUP_BASE, hostPortName } from '../../net/ports.js';

const VXLAN_PREFIX = 'rvx';
const BRIDGE_PREFIX = 'rbr';
const STAGED_PREFIX = 'rs';
const NIC_TAP_PREFIX = 'rt';
export const NIC_BRIDGE_PREFIX = 'rn';

export function assertVnet(vnet: number): void {
  if (!Number.isInteger(vnet) || vnet < 0 || vnet > 0xffffff) throw new RangeError(`vnet id must be a 24-bit integer, got ${vnet}`);
}

/** The device group of a vnet's bridge, vxlan device and host veths. */
export function vnetGroup(vnet: number): number {
  assertVnet(vnet);
  return VNET_GROUP_BASE + vnet;
}

export function vxlanName(vnet: number): string {
  assertVnet(vnet);
  return `${VXLAN_PREFIX}${vnet}`;
}

export function bridgeName(vnet: number): string {
  assertVnet(vnet);
  return `${BRIDGE_PREFIX}${vnet}`;
}

/** The host end of a NIC's veth (named in src/net: the firewall filters on it too). */
export function hostVethName(mac: string): string {
  return hostPortName(mac);
}

/** The userspace backend's gateway port of a vnet's fabric VLAN (a TAP in the node's namespace). */
export function gatewayTapName(vnet: number, vlan: number): string {
  assertVnet(vnet);
  if (!Number.isInteger(vlan) || vlan < 0 || vlan > 4095) throw new RangeError(`vlan must be 0..4095, got ${vlan}`);
  return `rg${vnet}v${vlan}`;
}

/** The instance end of a staged NIC while it is in the node's namespace. */
export function stagedName(mac: string): string {
  return `${STAGED_PREFIX}${macHex(mac)}`;
}

/** The userspace backend's TAP of a NIC, in the node's namespace. */
export function nicTapName(mac: string): string {
  return `${NIC_TAP_PREFIX}${macHex(mac)}`;
}

/** The userspace backend's bridge of a NIC (its TAP and its host veth are the two ports). */
export function nicBridgeName(mac: string): string {
  return `${NIC_BRIDGE_PREFIX}${macHex(mac)}`;
}

export type OwnDevice =
  | { kind: 'vxlan'; vnet: number }
  | { kind: 'bridge'; vnet: number }
  | { kind: 'veth'; mac: string }
  | { kind: 'gateway'; vnet: number; vlan: number };

/** Which of our devices a name is, or undefined for anything else. */
export function parseDeviceName(name: string): OwnDevice | undefined {
  let m = /^rvx(\d{1,8})$/.exec(name);
  if (m && Number(m[1]) <= 0xffffff && String(Number(m[1])) === m[1]) return { kind: 'vxlan', vnet: Number(m[1]) };
  m = /^rbr(\d{1,8})$/.exec(name);
  if (m && Number(m[1]) <= 0xffffff && String(Number(m[1])) === m[1]) return { kind: 'bridge', vnet: Number(m[1]) };
  m = /^rg(\d{1,8})v(\d{1,4})$/.exec(name);
  if (m && Number(m[1]) <= 0xffffff && Number(m[2]) <= 4095 && String(Number(m[1])) === m[1] && String(Number(m[2])) === m[2]) {
    return { kind: 'gateway', vnet: Number(m[1]), vlan: Number(m[2]) };
  }
  m = /^rv([0-9a-f]{12})$/.exec(name);
  if (m) return { kind: 'veth', mac: canonicalMac(m[1]) };
  return undefined;
}
