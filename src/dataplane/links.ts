/**
 * Typed face of the native plumbing (native/src/links.c): links, addresses and routes over
 * rtnetlink, no `ip` process. Every call is one or a few netlink requests on the libuv
 * thread pool; whatever happens inside an instance namespace runs on a helper thread that
 * entered it (by path), and a veth's instance end is created there directly
 * (IFLA_NET_NS_FD), never in the node's namespace. Names, paths and addresses are checked
 * in C as well: bad input rejects before anything is touched.
 *
 *   const vx = await Links.add({ kind: 'vxlan', name: 'rvx7', mtu: 1450, master: 'rbr7', up: true,
 *                                vxlan: { vni: 7, local: '198.18.0.1', dev: 'ul0' } });
 *   await Links.add({ kind: 'veth', name: 'rv0200…', mtu: 1450,
 *                     peer: { name: 'eth0', mac: '02:00:…', mtu: 1450, netns: '/run/netns/vm1' } });
 *   await Links.configureNetns('/run/netns/vm1', { ifname: 'eth0', address: { ip: '10.0.0.5', prefix: 24 }, gateway: '10.0.0.1' });
 */
import { isNativeError, nativeAddon, nativeHas } from './addon.js';

export interface VxlanOptions {
  vni: number;
  /** Default 4789. */
  port?: number;
  /** The node's underlay address. */
  local: string;
  /** The underlay device. */
  dev?: string;
  /** Defaults: learning off, proxy, l2miss and l3miss on (the kernel backend's device). */
  learning?: boolean;
  proxy?: boolean;
  l2miss?: boolean;
  l3miss?: boolean;
}

interface LinkBase {
  name: string;
  mtu?: number;
  mac?: string;
  /** Bridge to enslave the new link to (by name). */
  master?: string;
  up?: boolean;
  /** Device group (1 … 2³²−1): its links can be deleted at once (delGroup). */
  group?: number;
}

export type LinkSpec =
  | (LinkBase & { kind: 'bridge' })
  | (LinkBase & { kind: 'vxlan'; vxlan: VxlanOptions })
  | (LinkBase & { kind: 'veth'; peer: { name: string; mtu?: number; mac?: string; /** Created directly in this namespace. */ netns?: string } });

export interface LinkChanges {
  up?: boolean;
  /** A bridge's name, or null to leave the bridge. */
  master?: string | null;
  mtu?: number;
  mac?: string;
}

export interface LinkInfo {
  ifindex: number;
  name: string;
  mtu: number;
  up: boolean;
  mac?: string;
  /** 'vxlan', 'bridge', 'veth', …; undefined for devices without a kind (lo, physical). */
  kind?: string;
  /** vxlan devices. */
  vni?: number;
  /** A vxlan device's source address. */
  vxlanLocal?: string;
  masterIfindex?: number;
  /** The master's name (when it is in the same namespace). */
  master?: string;
}

export interface AddressInfo {
  ifindex: number;
  ifname?: string;
  address: string;
  prefix: number;
}

export interface NetnsConfig {
  ifname: string;
  address?: { ip: string; prefix: number };
  /** dst is a.b.c.d/n; without via the route is on-link. */
  routes?: ReadonlyArray<{ dst: string; via?: string }>;
  /** Default route. */
  gateway?: string;
}

/**
 * One change of the distributed gateway's kernel state (edgeApply): an address on a
 * device (noprefixroute; IPv6 nodad), a route in a table out of a device (scope link,
 * preferred source, route MTU), a rule sending a fwmark to a table.
 */
export type EdgeOp =
  | { op: 'addr'; add: boolean; dev: string; address: string; prefix: number }
  | { op: 'route'; add: boolean; dst: string; prefix: number; table: number; dev?: string; src?: string; mtu?: number }
  | { op: 'rule'; add: boolean; family: 4 | 6; pref: number; mark: number; mask: number; table: number };

interface NativeLinks {
  edgeApply(ops: readonly EdgeOp[]): Promise<void>;
  linkAdd(spec: Record<string, unknown>): Promise<number>;
  linkSet(name: string, changes: LinkChanges): Promise<void>;
  linkDel(name: string): Promise<boolean>;
  linkDelUnlisted(name: string): Promise<boolean>;
  linkDelGroup(group: number): Promise<boolean>;
  linkList(netns?: string): Promise<Array<Omit<LinkInfo, 'master' | 'masterIfindex'> & { master?: number }>>;
  addrList(): Promise<Array<{ ifindex: number; address: string; prefix: number }>>;
  netnsConfigure(netns: string, cfg: { ifname: string; address?: { ip: string; prefix: number }; routes?: Array<{ dst: string; prefix: number; via?: string }>; gateway?: string }): Promise<void>;
  bridgePort(name: string, flags: { learning?: boolean; flood?: boolean }): Promise<void>;
}

const native = (): NativeLinks => nativeAddon<NativeLinks>();

/** Whether the native plumbing is built (else callers fall back to iproute2). */
export function nativeLinksAvailable(): boolean {
  return nativeHas('linkAdd', 'linkSet', 'linkDel', 'linkDelUnlisted', 'linkDelGroup', 'linkList', 'addrList', 'netnsConfigure', 'bridgePort', 'edgeApply');
}

/** A failure the kernel reported for a device that is not there. */
export function isNoDevice(err: unknown): boolean {
  return isNativeError(err) && err.code === 'ENODEV';
}

function splitCidr(dst: string): { dst: string; prefix: number } {
  const slash = dst.indexOf('/');
  if (slash < 0) return { dst, prefix: 32 };
  const prefix = dst.slice(slash + 1);
  if (!/^(0|[1-9][0-9]?)$/.test(prefix)) throw new TypeError(`route destination ${JSON.stringify(dst)} is not a.b.c.d/n`);
  return { dst: dst.slice(0, slash), prefix: Number(prefix) };
}

export const Links = {
  /** Creates a link (an existing name is EEXIST); resolves its ifindex. */
  add(spec: LinkSpec): Promise<number> {
    return native().linkAdd({ ...spec });
  },

  set(name: string, changes: LinkChanges): Promise<void> {
    return native().linkSet(name, changes);
  },

  /** Deletes a link (a veth takes its peer along); false when there was none. */
  del(name: string): Promise<boolean> {
    return native().linkDel(name);
  },

  /**
   * Deletes a link and resolves as soon as the kernel has unlisted it (its name, and a
   * veth peer's, free; nothing reaches it), not after the rest of its teardown (an RCU
   * barrier and the wait for its last references: tens of milliseconds on a busy node),
   * which finishes on a thread of its own. For veths: a vxlan device's UDP port may stay
   * bound until that teardown ends. False when there was none.
   */
  delUnlisted(name: string): Promise<boolean> {
    return native().linkDelUnlisted(name);
  },

  /**
   * Deletes every link of a device group in one request: the kernel waits once for all of
   * them (a grace period, tens of milliseconds under load), not once per link. False when
   * the group had none.
   */
  delGroup(group: number): Promise<boolean> {
    return native().linkDelGroup(group);
  },

  /** Every link of this namespace, or of the one at netns. */
  async list(netns?: string): Promise<LinkInfo[]> {
    const raw = await (netns === undefined ? native().linkList() : native().linkList(netns));
    const byIndex = new Map(raw.map((l) => [l.ifindex, l.name]));
    return raw.map(({ master, ...l }) => (master === undefined ? l : { ...l, masterIfindex: master, master: byIndex.get(master) }));
  },

  /** IPv4 addresses of this namespace, with their interface names. */
  async addresses(): Promise<AddressInfo[]> {
    const [addrs, links] = await Promise.all([native().addrList(), native().linkList()]);
    const byIndex = new Map(links.map((l) => [l.ifindex, l.name]));
    return addrs.map((a) => ({ ...a, ifname: byIndex.get(a.ifindex) }));
  },

  /** Inside the namespace at netns: lo up, the address, the interface up, routes, default route. */
  configureNetns(netns: string, cfg: NetnsConfig): Promise<void> {
    const routes = (cfg.routes ?? []).map((r) => ({ ...splitCidr(r.dst), ...(r.via === undefined ? {} : { via: r.via }) }));
    return native().netnsConfigure(netns, { ...cfg, routes });
  },

  /**
   * The gateway's addresses, table routes and rules, in order, one request each, stopping
   * at the first the kernel refuses (those before it stay). Deleting what is already gone
   * and adding a rule that is already there are no failures.
   */
  edgeApply(ops: readonly EdgeOp[]): Promise<void> {
    return native().edgeApply(ops);
  },

  /** Bridge port flags of a port. */
  bridgePort(name: string, flags: { learning?: boolean; flood?: boolean }): Promise<void> {
    return native().bridgePort(name, flags);
  },
};
