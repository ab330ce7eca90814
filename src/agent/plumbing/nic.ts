/**
 * A NIC to plumb, as data: its settings from the API record (checked: every field ends up
 * in a netlink request, or in root's `ip -batch` text on the fallback path), and what every
 * backend does for it, both as native requests (src/dataplane/links.ts: no process) and as
 * the `ip -batch` lines of the fallback when the native module is not built. Pure, so the
 * exact requests and commands are unit-tested; ./run.ts carries them out.
 *
 * - instanceConfig / instanceCommands: inside the instance namespace (address, MTU,
 *   gateway, static routes); the kernel and userspace backends share them.
 * - hostVeth / hostSideCommands: the node side of a bridge-based backend (a veth pair, the
 *   host end in the vnet's bridge).
 * - stagedHostVeth / stagedHostSideCommands: a NIC staged for a runtime
 *   that moves the interface itself (Docker), without carrier until it is activated.
 * - nicBridge / tapAddress: the userspace backend's node side (its TAP and the host veth in
 *   a bridge of their own, ../userspace/port.ts).
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { ApiNic } from '../napi-client.js';
import { vnetFromNicTag } from '../napi-client.js';
import {
  MAX_MTU, MIN_MTU, firstProblem, ifnameProblem, intProblem, ipv4CidrProblem, ipv4Problem, ipv6CidrProblem, ipv6Problem, macProblem,
  netnsPathProblem,
} from './checks.js';
import { bridgeName, hostVethName, nicBridgeName, vnetGroup } from './names.js';
import { canonicalMac, macToBytes } from '../../net/addr.js';
import type { LinkSpec, NetnsConfig } from '../../dataplane/links.js';

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
  /** The network's internet_nat (egress through the node's external address); default true. */
  internetNat?: boolean;
  networkUuid?: string;
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

/** The prefix length of an IPv6 NIC: its network's subnet (NAPI serializes no netmask for IPv6). */
function prefixFromSubnet(subnet: string | undefined, mac: string): number {
  const m = subnet === undefined ? null : /^[0-9a-fA-F:]+\/(\d{1,3})$/.exec(subnet);
  if (!m || Number(m[1]) > 128) throw new PlumbingError(`NIC ${mac} has no IPv6 subnet (got ${JSON.stringify(subnet)})`);
  return Number(m[1]);
}

/** The address family of a NIC's settings. */
export function isIpv6Nic(s: Pick<NicSettings, 'ip'>): boolean {
  return isIPv6(s.ip);
}

/** The NIC's own settings (what NAPI says), without where it goes. */
export type NicSettings = Omit<NicPlumbing, 'netns' | 'ifname'>;

/** A NAPI NIC (as GET /nics/:mac serializes it) -> its settings; throws PlumbingError. */
export function nicSettings(nic: ApiNic): NicSettings {
  if (!nic.fabric) throw new PlumbingError(`NIC ${nic.mac} is not on a fabric network`);
  const vnet = vnetFromNicTag(nic.nic_tag);
  if (vnet === undefined) throw new PlumbingError(`NIC ${nic.mac} has no vnet in its nic_tag (${nic.nic_tag ?? 'none'})`);
  if (!nic.ip || !(isIPv4(nic.ip) || isIPv6(nic.ip))) throw new PlumbingError(`NIC ${nic.mac} has no IP address`);
  const v6 = isIPv6(nic.ip);
  if (!v6 && !nic.netmask) throw new PlumbingError(`NIC ${nic.mac} has no netmask`);
  const routes: RouteSpec[] = [];
  for (const [dst, hop] of Object.entries(nic.routes ?? {})) {
    const target = dst.includes('/') ? dst : `${dst}/${v6 ? 128 : 32}`;
    if (/^macs\[/.test(hop) || hop === 'linklocal') routes.push({ dst: target });
    else if (v6 ? isIPv6(hop) : isIPv4(hop)) routes.push({ dst: target, via: hop });
    else throw new PlumbingError(`NIC ${nic.mac}: route ${dst} has an unusable next hop ${hop}`);
  }
  let mac: string;
  try {
    mac = canonicalMac(nic.mac);
  } catch (err) {
    throw new PlumbingError((err as Error).message);
  }
  const settings: NicSettings = {
    mac,
    ip: nic.ip,
    prefix: v6 ? prefixFromSubnet(nic.subnet, mac) : prefixFromNetmask(nic.netmask!),
    mtu: nic.mtu ?? 1500 - VXLAN_OVERHEAD,
    gateway: nic.gateway && nic.gateway !== nic.ip ? nic.gateway : undefined,
    routes,
    vnet,
    vlan: nic.vlan_id ?? 0,
    allowMacSpoofing: nic.allow_mac_spoofing === true,
    allowIpSpoofing: nic.allow_ip_spoofing === true,
    internetNat: nic.internet_nat !== false,
    ...(nic.network_uuid ? { networkUuid: nic.network_uuid } : {}),
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
  // Every address of a NIC is of its own family (a dual-stack instance has a NIC per family).
  const v6 = typeof s.ip === 'string' && isIPv6(s.ip);
  const addr = v6 ? ipv6Problem : ipv4Problem;
  const cidr = v6 ? ipv6CidrProblem : ipv4CidrProblem;
  return firstProblem(
    macProblem(s.mac),
    addr('ip', s.ip),
    intProblem('prefix', s.prefix, 0, v6 ? 128 : 32),
    intProblem('mtu', s.mtu, v6 ? 1280 : MIN_MTU, MAX_MTU),
    s.gateway === undefined ? undefined : addr('gateway', s.gateway),
    ...s.routes.flatMap((r) => [cidr('route destination', r.dst), r.via === undefined ? undefined : addr('route next hop', r.via)]),
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
  // IPv6: no duplicate address detection (NAPI gave the address to this NIC alone; DAD
  // would hold it tentative for a second while its probes go nowhere).
  const nodad = isIpv6Nic(p) ? ' nodad' : '';
  const lines = [`link set lo up`, `addr add ${p.ip}/${p.prefix} dev ${p.ifname}${nodad}`, `link set ${p.ifname} up`];
  for (const r of p.routes) lines.push(r.via ? `route replace ${r.dst} via ${r.via} dev ${p.ifname}` : `route replace ${r.dst} dev ${p.ifname} scope link`);
  if (p.gateway) lines.push(`route replace default via ${p.gateway} dev ${p.ifname}`);
  return lines;
}

/**
 * The veth of a NIC as one native request: the host end (down, in no bridge yet) in the
 * node namespace, the instance end created directly in the instance namespace with the
 * NIC's MAC and MTU. The host end joins the bridge last (see ../kernel/links.ts).
 */
export function hostVeth(p: NicPlumbing): LinkSpec {
  assertSafe(p);
  return {
    kind: 'veth', name: hostVethName(p.mac), mtu: p.mtu, group: vnetGroup(p.vnet),
    peer: { name: p.ifname, mtu: p.mtu, mac: p.mac, netns: p.netns },
  };
}

/** What instanceCommands does, as one native call inside the instance namespace. */
export function instanceConfig(p: NicPlumbing): NetnsConfig {
  assertSafe(p);
  return {
    ifname: p.ifname,
    address: { ip: p.ip, prefix: p.prefix },
    routes: p.routes.map((r) => (r.via ? { dst: r.dst, via: r.via } : { dst: r.dst })),
    ...(p.gateway ? { gateway: p.gateway } : {}),
  };
}

/**
 * A NIC plumbed for a runtime that moves the interface into the workload itself (Docker's
 * libnetwork): its settings, and the name its instance end has meanwhile in the node's
 * namespace (../plumbing/names.ts stagedName).
 */
export type StagedPlumbing = NicSettings & { ifname: string };

function assertStagedSafe(p: StagedPlumbing): void {
  const problem = firstProblem(settingsProblem(p), ifnameProblem(p.ifname));
  if (problem) throw new PlumbingError(problem);
}

/** A NAPI NIC staged under ifname -> what to plumb; throws PlumbingError. */
export function stagedPlumbingFor(nic: ApiNic, ifname: string): StagedPlumbing {
  const p = { ...nicSettings(nic), ifname };
  assertStagedSafe(p);
  return p;
}

/**
 * `ip -batch` lines staging a NIC on a bridge-based backend: the veth pair with both ends
 * in the node's namespace, the instance end named ifname with the NIC's MAC and MTU (its
 * runtime moves it and sets its address), the host end in the vnet's bridge but left
 * down. A veth whose peer is down has no carrier: nothing passes until activation brings
 * the host end up, once the workload's firewall is in place.
 */
export function stagedHostSideCommands(p: StagedPlumbing): string[] {
  assertStagedSafe(p);
  const host = hostVethName(p.mac);
  return [
    `link add ${host} mtu ${p.mtu} type veth peer name ${p.ifname} mtu ${p.mtu} address ${p.mac}`,
    `link set ${host} master ${bridgeName(p.vnet)}`,
  ];
}

/**
 * The staged veth as one native request: both ends in the node's namespace (the instance
 * end as ifname, with the NIC's MAC and MTU), the host end down and in the vnet's device
 * group; ../kernel/links.ts then puts it in the bridge, still down.
 */
export function stagedHostVeth(p: StagedPlumbing): LinkSpec {
  assertStagedSafe(p);
  return { kind: 'veth', name: hostVethName(p.mac), mtu: p.mtu, group: vnetGroup(p.vnet), peer: { name: p.ifname, mtu: p.mtu, mac: p.mac } };
}

/**
 * The userspace backend's bridge of a NIC, joining its TAP (the fast path's side) and its
 * host veth (the instance's side): MTU of the NIC, in the vnet's device group like the
 * kernel backend's bridges (the firewall's state table recognises the overlay's traffic by
 * it), up.
 */
export function nicBridge(p: NicSettings): LinkSpec {
  const problem = settingsProblem(p);
  if (problem) throw new PlumbingError(problem);
  return { kind: 'bridge', name: nicBridgeName(p.mac), mtu: p.mtu, group: vnetGroup(p.vnet), up: true };
}

/**
 * The MAC of a NIC's TAP on the userspace backend: not the NIC's own (a bridge keeps its
 * ports' MACs for itself and would not forward frames for the instance to its veth), but
 * derived from it, locally administered: the first byte 0xfe (0xfa if the NIC's is 0xfe).
 */
export function tapAddress(mac: string): string {
  const b = macToBytes(mac);
  b[0] = b[0] === 0xfe ? 0xfa : 0xfe;
  return canonicalMac(b.toString('hex'));
}
