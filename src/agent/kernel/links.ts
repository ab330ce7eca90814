/**
 * How the kernel backend makes and removes its devices: natively (rtnetlink requests from
 * this process, src/dataplane/links.ts) or, when the native module is not built, with
 * iproute2. The order makes every step's leftovers recognisable: a vnet's vxlan device is
 * created inside its bridge in one request (the vnet exists once it does), and a NIC's
 * host veth joins the bridge only after the instance side is configured — so a veth of
 * ours outside any bridge, or a bridge without its vxlan device, is what an attach that
 * did not finish (an error, or the agent killed half-way) left, and is removed. A staged
 * NIC (Docker) has both veth ends here and its host end in the bridge from the start,
 * down until it is activated.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { Links } from '../../dataplane/links.js';
import { step } from '../step-times.js';
import { IpCommandError, inNetns, ip, ipBatch, linkWithAddress, listLinks } from '../plumbing/iproute.js';
import { bridgeName, hostVethName, vnetGroup, vxlanName } from '../plumbing/names.js';
import {
  type NicPlumbing, type StagedPlumbing, hostSideCommands, hostVeth, instanceCommands, stagedHostSideCommands, stagedHostVeth,
} from '../plumbing/nic.js';
import { asPlumbingError, configureInstance, nativePlumbing, quietIpv6 } from '../plumbing/run.js';
import { type VnetDeviceSpec, vnetCommands, vnetLinks } from './vnet.js';

export interface KernelLink {
  ifindex: number;
  name: string;
  kind?: string;
  master?: string;
  /** A vxlan device's source address. */
  vxlanLocal?: string;
  /** Administratively up (a staged NIC's host end is not). */
  up: boolean;
}

export interface KernelLinks {
  /** The interface holding the underlay address, and its MTU. */
  underlay(address: string): Promise<{ name: string; mtu: number } | undefined>;
  list(): Promise<KernelLink[]>;
  /** The vnet's bridge and vxlan device (all or nothing); resolves the vxlan ifindex. */
  createVnet(spec: VnetDeviceSpec): Promise<number>;
  /**
   * A NIC's veth with its instance side configured, in the vnet's bridge (all or nothing).
   * The host end joins the bridge once `ready` (the port filter) resolves; its rejection
   * undoes the veth and is thrown.
   */
  createNic(p: NicPlumbing, ready?: Promise<void>): Promise<void>;
  /** A staged NIC's veth, both ends here, the host end in the vnet's bridge (after `ready`) but down (all or nothing). */
  stageNic(p: StagedPlumbing, ready?: Promise<void>): Promise<void>;
  /** Brings a NIC's host end up: its peer gets its carrier. */
  activateNic(mac: string): Promise<void>;
  /** Deletes links by name; absent ones are fine. */
  deleteLinks(names: readonly string[]): Promise<void>;
  /** Deletes the vnet's devices and the veths still in it, at once where the kernel can (for a caller that waits). */
  deleteVnet(vnet: number): Promise<void>;
  /**
   * Deletes the vnet's devices for a teardown nobody waits for: the vxlan device, then the
   * bridge, then what else is in the vnet's group, each its own request. A bridge's and
   * its port's removal each wait for an RCU grace period inside the kernel's RTNL lock;
   * in one request that lock is held through both (~30 ms on a busy host), and every other
   * link change on the host — an attach by the next agent on a shared kernel, anything
   * else — waits that long. Split, the lock is free between them. Killed in between, it
   * leaves a bridge without its vxlan device: an unfinished vnet, removed at the next start.
   */
  teardownVnet(vnet: number): Promise<void>;
  /** Deletes a NIC's veth; false when there was none. */
  deleteNic(mac: string): Promise<boolean>;
}

/**
 * The vxlan device answers IPv6 neighbour solicitations from its neighbour table, which
 * the kernel keeps only while IPv6 is on: on, but with no address of its own (no
 * link-local, so no DAD, MLD or router solicitations) and no router adverts taken.
 */
export async function ndProxyIpv6(dev: string): Promise<void> {
  const conf = `/proc/sys/net/ipv6/conf/${dev}`;
  // Already on (made so by an agent): leave it, its neighbour entries with it.
  if ((await readFile(`${conf}/disable_ipv6`, 'utf8').catch(() => '1')).trim() === '0') return;
  // Off first: that drops a link-local address made while it was up.
  for (const [key, value] of [['disable_ipv6', '1'], ['addr_gen_mode', '1'], ['accept_ra', '0'], ['accept_dad', '0'], ['disable_ipv6', '0']] as const) {
    await writeFile(`${conf}/${key}`, value).catch(() => undefined);
  }
}

const native: KernelLinks = {
  async underlay(address) {
    const addr = (await Links.addresses()).find((a) => a.address === address);
    const link = addr && (await Links.list()).find((l) => l.ifindex === addr.ifindex);
    return link ? { name: link.name, mtu: link.mtu } : undefined;
  },

  async list() {
    return (await Links.list()).map(({ ifindex, name, kind, master, vxlanLocal, up }) => ({ ifindex, name, kind, master, vxlanLocal, up }));
  },

  async createVnet(spec) {
    const [bridge, vxlan] = vnetLinks(spec);
    try {
      await step('add bridge', () => Links.add(bridge));
      const ifindex = await step('add vxlan', () => Links.add(vxlan));
      await step('ndProxyIpv6', () => ndProxyIpv6(vxlan.name));
      await step('quietIpv6 bridge', () => quietIpv6(bridge.name));
      return ifindex;
    } catch (err) {
      await native.deleteLinks([vxlan.name, bridge.name]);
      throw asPlumbingError(err, `vnet ${spec.vnet}`);
    }
  },

  async createNic(p, ready) {
    const veth = hostVeth(p);
    try {
      await step('add veth', () => Links.add(veth));
    } catch (err) {
      throw asPlumbingError(err);
    }
    try {
      await step('quietIpv6 veth', () => quietIpv6(veth.name));
      await step('configureInstance', () => configureInstance(p));
      await step('wait port filter', async () => ready);
      await step('veth master+up', () => Links.set(veth.name, { master: bridgeName(p.vnet), up: true }));
    } catch (err) {
      await Links.del(veth.name).catch(() => undefined);
      throw asPlumbingError(err);
    }
  },

  async stageNic(p, ready) {
    const veth = stagedHostVeth(p);
    try {
      await Links.add(veth);
    } catch (err) {
      throw asPlumbingError(err);
    }
    try {
      await quietIpv6(veth.name);
      await ready;
      await Links.set(veth.name, { master: bridgeName(p.vnet) });
    } catch (err) {
      await Links.del(veth.name).catch(() => undefined);
      throw asPlumbingError(err);
    }
  },

  async activateNic(mac) {
    try {
      await Links.set(hostVethName(mac), { up: true });
    } catch (err) {
      throw asPlumbingError(err);
    }
  },

  async deleteLinks(names) {
    for (const n of names) await Links.del(n).catch(() => undefined);
  },

  async deleteVnet(vnet) {
    // One request for the group; then by name what an older agent made outside it.
    await step('delGroup', () => Links.delGroup(vnetGroup(vnet))).catch(() => undefined);
    await step('delete vnet by name', () => native.deleteLinks([vxlanName(vnet), bridgeName(vnet)]));
  },

  async teardownVnet(vnet) {
    // deleteLinks waits for each device's whole teardown, so the next request starts after it.
    await step('delete vxlan', () => native.deleteLinks([vxlanName(vnet)]));
    await step('delete bridge', () => native.deleteLinks([bridgeName(vnet)]));
    await step('delGroup', () => Links.delGroup(vnetGroup(vnet))).catch(() => undefined);
  },

  async deleteNic(mac) {
    // Gone for everyone once unlisted: the kernel's remaining teardown is not waited for.
    return Links.delUnlisted(hostVethName(mac));
  },
};

const iproute: KernelLinks = {
  underlay: (address) => linkWithAddress(address),

  async list() {
    return (await listLinks()).map(({ ifindex, name, kind, master, vxlanLocal, up }) => ({ ifindex, name, kind, master, vxlanLocal, up }));
  },

  async createVnet(spec) {
    try {
      await ipBatch(vnetCommands(spec));
      const vx = (await listLinks()).find((l) => l.name === vxlanName(spec.vnet));
      if (!vx) throw new Error(`${vxlanName(spec.vnet)} vanished after creation`);
      await ndProxyIpv6(vxlanName(spec.vnet));
      await quietIpv6(bridgeName(spec.vnet));
      return vx.ifindex;
    } catch (err) {
      await iproute.deleteLinks([vxlanName(spec.vnet), bridgeName(spec.vnet)]);
      throw asPlumbingError(err);
    }
  },

  async createNic(p, ready) {
    const host = hostVethName(p.mac);
    // The host end joins the bridge last, as on the native path.
    const [add, master, up] = hostSideCommands(p);
    try {
      await ipBatch([add!]);
      await quietIpv6(host);
      await ipBatch(instanceCommands(p), inNetns(p.netns));
      await ready;
      await ipBatch([master!, up!]);
    } catch (err) {
      await iproute.deleteLinks([host]);
      throw asPlumbingError(err);
    }
  },

  async stageNic(p, ready) {
    const host = hostVethName(p.mac);
    try {
      // Down until activated: the filter need not be in before it joins the bridge.
      await ipBatch(stagedHostSideCommands(p));
      await quietIpv6(host);
      await ready;
    } catch (err) {
      await iproute.deleteLinks([host]);
      throw asPlumbingError(err);
    }
  },

  async activateNic(mac) {
    try {
      await ip(['link', 'set', hostVethName(mac), 'up']);
    } catch (err) {
      throw asPlumbingError(err);
    }
  },

  async deleteLinks(names) {
    for (const n of names) await ip(['link', 'del', n]).catch(() => undefined);
  },

  deleteVnet: (vnet) => iproute.deleteLinks([vxlanName(vnet), bridgeName(vnet)]),
  // One `ip` per device already.
  teardownVnet: (vnet) => iproute.deleteLinks([vxlanName(vnet), bridgeName(vnet)]),

  async deleteNic(mac) {
    try {
      await ip(['link', 'del', hostVethName(mac)]);
      return true;
    } catch (err) {
      if (err instanceof IpCommandError && /Cannot find device/.test(err.stderr)) return false;
      throw err;
    }
  },
};

/** The native path when the module is built, else iproute2. */
export function kernelLinks(): KernelLinks {
  return nativePlumbing() ? native : iproute;
}
