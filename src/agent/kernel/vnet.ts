/**
 * The kernel backend's per-vnet devices: a Linux vxlan device (nolearning proxy l2miss
 * l3miss) in a bridge, as native requests (vnetLinks) and as the `ip -batch` lines of the
 * fallback (vnetCommands). Pure; ./links.ts carries them out.
 *
 * Fabric VLANs: the kernel backend carries fabric frames untagged, one vxlan device and
 * one bridge per vnet. Owners are isolated by VNI (each owner's fabric has its own vnet).
 * Linux vxlan's ARP proxy (arp_reduce, which is what keeps ARP off the wire and raises
 * l3miss) only recognises untagged ARP, and a second vxlan device with the same VNI and
 * port cannot exist, so per-(vnet, vlan) tagging would cost the proxy (and this test
 * kernel has neither 8021q nor bridge VLAN filtering). So on this backend:
 * - on a node, the port filter (../plumbing/portfilter.ts) drops everything between local
 *   ports of one vnet on different VLANs;
 * - across nodes, ARP is answered by IP from VL3 (never flooded), and the VLANs' subnets
 *   never overlap (NAPI refuses overlapping fabric networks of one owner), so an instance
 *   only reaches another VLAN's instance on another node if it deliberately makes that
 *   subnet on-link — that case is not isolated here.
 * The 802.1Q inner tag of the dataplane contract is left to the userspace backend.
 */
import { MAX_MTU, MIN_MTU, firstProblem, ifnameProblem, intProblem, ipv4Problem } from '../plumbing/checks.js';
import { bridgeName, vnetGroup, vxlanName } from '../plumbing/names.js';
import { gatewayMac } from '../../edge/plan.js';
import { PlumbingError } from '../plumbing/nic.js';
import type { LinkSpec } from '../../dataplane/links.js';

export const VXLAN_DSTPORT = 4789;

export interface VnetDeviceSpec {
  vnet: number;
  /** VXLAN source address: the underlay address, or the node's tunnel address when encrypted. */
  underlayIp: string;
  /** The underlay device (vxlan `dev`), when known. */
  underlayDev?: string;
  /** MTU of the vxlan device: underlay MTU − 50. */
  mtu: number;
  dstport?: number;
}

function assertSpec(spec: VnetDeviceSpec): void {
  const problem = firstProblem(
    ipv4Problem('underlay address', spec.underlayIp),
    spec.underlayDev === undefined ? undefined : ifnameProblem(spec.underlayDev),
    intProblem('vxlan MTU', spec.mtu, MIN_MTU, MAX_MTU),
    intProblem('VXLAN port', spec.dstport ?? VXLAN_DSTPORT, 1, 65535),
  );
  if (problem) throw new PlumbingError(problem);
}

/**
 * The vnet's bridge, then its vxlan device created inside it and up, as two native
 * requests: a vxlan device of ours never exists outside its bridge.
 */
export function vnetLinks(spec: VnetDeviceSpec): [LinkSpec, LinkSpec] {
  assertSpec(spec);
  const vxlan = { vni: spec.vnet, port: spec.dstport ?? VXLAN_DSTPORT, local: spec.underlayIp, learning: false, proxy: true, l2miss: true, l3miss: true };
  const group = vnetGroup(spec.vnet);
  return [
    // The bridge carries the vnet's gateway MAC (the distributed gateway, ../../edge/plan.ts).
    { kind: 'bridge', name: bridgeName(spec.vnet), mtu: spec.mtu, mac: gatewayMac(spec.vnet), up: true, group },
    {
      kind: 'vxlan', name: vxlanName(spec.vnet), mtu: spec.mtu, master: bridgeName(spec.vnet), up: true, group,
      vxlan: spec.underlayDev ? { ...vxlan, dev: spec.underlayDev } : vxlan,
    },
  ];
}

/** `ip -batch` lines creating a vnet's vxlan device and bridge. */
export function vnetCommands(spec: VnetDeviceSpec): string[] {
  assertSpec(spec);
  const vx = vxlanName(spec.vnet);
  const br = bridgeName(spec.vnet);
  const dev = spec.underlayDev ? ` dev ${spec.underlayDev}` : '';
  // In the vnet's device group, as natively: the firewall's state table matches on it.
  const group = `0x${vnetGroup(spec.vnet).toString(16)}`;
  return [
    `link add ${vx} mtu ${spec.mtu} type vxlan id ${spec.vnet} dstport ${spec.dstport ?? VXLAN_DSTPORT} local ${spec.underlayIp}${dev} nolearning proxy l2miss l3miss`,
    `link add name ${br} mtu ${spec.mtu} address ${gatewayMac(spec.vnet)} group ${group} type bridge`,
    `link set ${vx} master ${br}`,
    `link set ${vx} up`,
    `link set ${br} up`,
  ];
}
