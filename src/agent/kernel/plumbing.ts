/**
 * What the kernel backend does to plumb a NIC, as data: `ip -batch` lines for the node
 * namespace (the vnet's vxlan device and bridge, the host end of the veth) and for the
 * instance namespace (address, MTU, gateway and static routes). Pure, so the exact
 * commands are unit-tested; src/agent/kernel/backend.ts runs them.
 *
 * Fabric VLANs: the kernel backend carries fabric frames untagged, one vxlan device and
 * one bridge per vnet. Owners are isolated by VNI (each owner's fabric has its own vnet).
 * Linux vxlan's ARP proxy (arp_reduce, which is what keeps ARP off the wire and raises
 * l3miss) only recognises untagged ARP, and a second vxlan device with the same VNI and
 * port cannot exist, so per-(vnet, vlan) tagging would cost the proxy (and this test
 * kernel has neither 8021q nor bridge VLAN filtering). So on this backend:
 * - on a node, the port filter (./portfilter.ts) drops everything between local ports of
 *   one vnet on different VLANs;
 * - across nodes, ARP is answered by IP from VL3 (never flooded), and the VLANs' subnets
 *   never overlap (NAPI refuses overlapping fabric networks of one owner), so an instance
 *   only reaches another VLAN's instance on another node if it deliberately makes that
 *   subnet on-link — that case is not isolated here.
 * The 802.1Q inner tag of the spec is left to the userspace backend.
 */
import { isIPv4 } from 'node:net';
import type { ApiNic } from '../napi-client.js';
import { vnetFromNicTag } from '../napi-client.js';
import {
  MAX_MTU, MIN_MTU, firstProblem, ifnameProblem, intProblem, ipv4CidrProblem, ipv4Problem, macProblem, netnsPathProblem,
} from './checks.js';
import { bridgeName, hostVethName, normalizeMac, vxlanName } from './names.js';

export const VXLAN_DSTPORT = 4789;
export const VXLAN_OVERHEAD = 50;

export interface RouteSpec {
  dst: string;
  /** Next hop; undefined for an on-link route (NAPI's "linklocal" / macs[…]). */
  via?: string;
}

/** Everything needed to plumb one fabric NIC into an instance namespace. */
export interface NicPlumbing {
  mac: string;
  ip: string;
  prefix: number;
  mtu: number;
  gateway?: string;
  routes: RouteSpec[];
  vnet: number;
  vlan: number;
  allowMacSpoofing: boolean;
  allowIpSpoofing: boolean;
  /** Path of the instance's network namespace (/run/netns/NAME, /var/run/netns/NAME, /proc/PID/ns/net). */
  netns: string;
  ifname: string;
}

export class PlumbingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlumbingError';
  }
}

function prefixFromNetmask(mask: string): number {
  if (!isIPv4(mask)) throw new PlumbingError(`bad netmask ${mask}`);
  const n = mask.split('.').reduce((acc, o) => (acc << 8) | Number(o), 0) >>> 0;
  const bits = n.toString(2).replace(/0+$/, '');
  if (bits.includes('0')) throw new PlumbingError(`netmask ${mask} is not contiguous`);
  return n === 0 ? 0 : bits.length;
}

/** The NIC's own settings (what NAPI says), without where it goes. */
export type NicSettings = Omit<NicPlumbing, 'netns' | 'ifname'>;

/** A NAPI NIC (as GET /nics/:mac serializes it) -> its settings; throws PlumbingError. */
export function nicSettings(nic: ApiNic): NicSettings {
  if (!nic.fabric) throw new PlumbingError(`NIC ${nic.mac} is not on a fabric network`);
  const vnet = vnetFromNicTag(nic.nic_tag);
  if (vnet === undefined) throw new PlumbingError(`NIC ${nic.mac} has no vnet in its nic_tag (${nic.nic_tag ?? 'none'})`);
  if (!nic.ip || !isIPv4(nic.ip)) throw new PlumbingError(`NIC ${nic.mac} has no IPv4 address`);
  if (!nic.netmask) throw new PlumbingError(`NIC ${nic.mac} has no netmask`);
  const routes: RouteSpec[] = [];
  for (const [dst, hop] of Object.entries(nic.routes ?? {})) {
    const target = dst.includes('/') ? dst : `${dst}/32`;
    if (/^macs\[/.test(hop) || hop === 'linklocal') routes.push({ dst: target });
    else if (isIPv4(hop)) routes.push({ dst: target, via: hop });
    else throw new PlumbingError(`NIC ${nic.mac}: route ${dst} has an unusable next hop ${hop}`);
  }
  let mac: string;
  try {
    mac = normalizeMac(nic.mac);
  } catch (err) {
    throw new PlumbingError((err as Error).message);
  }
  const settings: NicSettings = {
    mac,
    ip: nic.ip,
    prefix: prefixFromNetmask(nic.netmask),
    mtu: nic.mtu ?? 1500 - VXLAN_OVERHEAD,
    gateway: nic.gateway && nic.gateway !== nic.ip ? nic.gateway : undefined,
    routes,
    vnet,
    vlan: nic.vlan_id ?? 0,
    allowMacSpoofing: nic.allow_mac_spoofing === true,
    allowIpSpoofing: nic.allow_ip_spoofing === true,
  };
  const problem = settingsProblem(settings);
  if (problem) throw new PlumbingError(`NIC ${mac}: ${problem}`);
  return settings;
}

/** A NAPI NIC placed in the namespace at netns as ifname -> what to plumb; throws PlumbingError. */
export function plumbingFor(nic: ApiNic, netns: string, ifname = 'eth0'): NicPlumbing {
  const problem = firstProblem(ifnameProblem(ifname), netnsPathProblem(netns));
  if (problem) throw new PlumbingError(problem);
  return { ...nicSettings(nic), netns, ifname };
}

/** Every field of a NIC's settings that ends up in ip or nft text, checked. */
function settingsProblem(s: NicSettings): string | undefined {
  return firstProblem(
    macProblem(s.mac),
    ipv4Problem('ip', s.ip),
    intProblem('prefix', s.prefix, 0, 32),
    intProblem('mtu', s.mtu, MIN_MTU, MAX_MTU),
    s.gateway === undefined ? undefined : ipv4Problem('gateway', s.gateway),
    ...s.routes.flatMap((r) => [ipv4CidrProblem('route destination', r.dst), r.via === undefined ? undefined : ipv4Problem('route next hop', r.via)]),
    intProblem('vnet', s.vnet, 0, 0xffffff),
    intProblem('vlan', s.vlan, 0, 4095),
  );
}

/**
 * Defence in depth: the command builders below refuse a plumbing whose fields could
 * carry anything but their own value into the batch text, whoever built it.
 */
function assertSafe(p: NicPlumbing): void {
  const problem = firstProblem(settingsProblem(p), ifnameProblem(p.ifname), netnsPathProblem(p.netns));
  if (problem) throw new PlumbingError(problem);
}

export interface VnetDeviceSpec {
  vnet: number;
  underlayIp: string;
  /** The underlay device (vxlan `dev`), when known. */
  underlayDev?: string;
  /** MTU of the vxlan device: underlay MTU − 50. */
  mtu: number;
  dstport?: number;
}

/** `ip -batch` lines creating a vnet's vxlan device and bridge. */
export function vnetCommands(spec: VnetDeviceSpec): string[] {
  const problem = firstProblem(
    ipv4Problem('underlay address', spec.underlayIp),
    spec.underlayDev === undefined ? undefined : ifnameProblem(spec.underlayDev),
    intProblem('vxlan MTU', spec.mtu, MIN_MTU, MAX_MTU),
    intProblem('VXLAN port', spec.dstport ?? VXLAN_DSTPORT, 1, 65535),
  );
  if (problem) throw new PlumbingError(problem);
  const vx = vxlanName(spec.vnet);
  const br = bridgeName(spec.vnet);
  const dev = spec.underlayDev ? ` dev ${spec.underlayDev}` : '';
  return [
    `link add ${vx} mtu ${spec.mtu} type vxlan id ${spec.vnet} dstport ${spec.dstport ?? VXLAN_DSTPORT} local ${spec.underlayIp}${dev} nolearning proxy l2miss l3miss`,
    `link add name ${br} mtu ${spec.mtu} type bridge`,
    `link set ${vx} master ${br}`,
    `link set ${vx} up`,
    `link set ${br} up`,
  ];
}

/**
 * `ip -batch` lines for the node side: the veth pair (the instance end created directly
 * in its namespace, with the NIC's MAC and MTU), the host end into the vnet's bridge, up.
 */
export function hostSideCommands(p: NicPlumbing): string[] {
  assertSafe(p);
  const host = hostVethName(p.mac);
  return [
    `link add ${host} mtu ${p.mtu} type veth peer name ${p.ifname} mtu ${p.mtu} address ${p.mac} netns ${p.netns}`,
    `link set ${host} master ${bridgeName(p.vnet)}`,
    `link set ${host} up`,
  ];
}

/** `ip -batch` lines run inside the instance namespace. */
export function instanceCommands(p: NicPlumbing): string[] {
  assertSafe(p);
  const lines = [`link set lo up`, `addr add ${p.ip}/${p.prefix} dev ${p.ifname}`, `link set ${p.ifname} up`];
  for (const r of p.routes) lines.push(r.via ? `route replace ${r.dst} via ${r.via} dev ${p.ifname}` : `route replace ${r.dst} dev ${p.ifname} scope link`);
  if (p.gateway) lines.push(`route replace default via ${p.gateway} dev ${p.ifname}`);
  return lines;
}
