/**
 * Carries an edge plan out in the node's namespace for the kernel backend (the pure part
 * is ./edge-rules.ts): the vnets' bridges get the shared gateway MAC, the gateway
 * addresses, their tables, routes and rules (native requests when the module is built,
 * else iproute2), then the edge's nftables table in one transaction (natively when
 * built). What of ours is there is read (iproute2) at the first apply and after a failed
 * one, so a restarted agent converges from whatever the last one left; in between the
 * applier sends only the difference to what it made.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { Links, nativeLinksAvailable } from '../../dataplane/links.js';
import { type EdgePlan, EDGE_RULE_PREF, isV6, vnetOfTable } from '../../edge/plan.js';
import { canonicalMac } from '../../net/addr.js';
import { ip, ipBatch, listLinks } from '../plumbing/iproute.js';
import { bridgeName, parseDeviceName } from '../plumbing/names.js';
import { asPlumbingError, applyNftables } from '../plumbing/run.js';
import { type EdgeKernelState, type PortOf, edgeChanges, edgeIp6RuleCommands, edgeIpCommands, edgeKernelState, planHasIpv6, portsOf, renderEdgeNft } from './edge-rules.js';
import { gatewayMac } from '../../edge/plan.js';

/** The kernel backend's gateway port: the vnet's bridge, for all its VLANs. */
export const bridgePort: PortOf = (vnet) => ({ dev: bridgeName(vnet), mac: gatewayMac(vnet) });

/** Whether a device name is one of our gateway ports (a bridge or a gateway TAP). */
const isPortName = (name: string) => {
  const own = parseDeviceName(name);
  return own?.kind === 'bridge' || own?.kind === 'gateway';
};

async function sysctl(path: string, value: string): Promise<void> {
  await writeFile(`/proc/sys/net/${path}`, value);
}

/** Addresses, routes and rules of ours in this namespace now. */
async function currentState(): Promise<EdgeKernelState> {
  const out: EdgeKernelState = { addresses: [], routes: [], rules: [] };
  await readFamily('-4', out);
  await readFamily('-6', out);
  return out;
}

async function readFamily(family: '-4' | '-6', out: EdgeKernelState): Promise<void> {
  const [addrs, routes, rules] = await Promise.all([
    ip(['-j', family, 'addr', 'show']),
    ip(['-j', family, 'route', 'show', 'table', 'all']),
    ip(['-j', family, 'rule', 'show']),
  ]);
  const host = family === '-6' ? '/128' : '/32';
  for (const l of JSON.parse(addrs) as Array<{ ifname: string; addr_info?: Array<{ family: string; local: string; prefixlen: number }> }>) {
    if (!isPortName(l.ifname)) continue;
    for (const a of l.addr_info ?? []) {
      // IPv6: only the addresses we put there (no link-local: the ports have none).
      if (a.family === 'inet' || (a.family === 'inet6' && !a.local.startsWith('fe80:'))) out.addresses.push({ dev: l.ifname, address: a.local, prefix: a.prefixlen });
    }
  }
  for (const r of JSON.parse(routes) as Array<{ dst: string; dev?: string; table?: string; prefsrc?: string; type?: string; metrics?: Array<{ mtu?: number }> }>) {
    const table = Number(r.table);
    if (r.type !== undefined && r.type !== 'unicast') continue;
    if (!Number.isInteger(table) || vnetOfTable(table) === undefined || !r.dev) continue;
    const mtu = r.metrics?.find((m) => m.mtu !== undefined)?.mtu;
    out.routes.push({ table, dst: r.dst.includes('/') ? r.dst : `${r.dst}${host}`, dev: r.dev, src: r.prefsrc ?? '', ...(mtu ? { mtu } : {}) });
  }
  for (const u of JSON.parse(rules) as Array<{ priority: number; fwmark?: string; fwmask?: string; table?: string }>) {
    if (u.priority !== EDGE_RULE_PREF || !u.fwmark || !u.table) continue;
    // No mask: an exact rule (an agent before the firewall shared the mark); replaced by a masked one.
    out.rules.push({ ...(family === '-6' ? { family: 6 as const } : {}), mark: Number(u.fwmark), mask: u.fwmask ? Number(u.fwmask) : 0xffffffff, table: Number(u.table) });
  }
}

/**
 * IPv6 on a gateway port (ports are made with it off). The kernel sends neighbour
 * solicitations only from a link-local address: the port's, derived from the shared
 * gateway MAC (the same on every node, never routed). No DAD, no router adverts taken;
 * the edge's ip6 table keeps the node from sending redirects through it.
 */
async function enableIpv6(dev: string): Promise<void> {
  if ((await readFile(`/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`, 'utf8')).trim() === '0') return;
  await sysctl(`ipv6/conf/${dev}/addr_gen_mode`, '0');
  await sysctl(`ipv6/conf/${dev}/accept_dad`, '0');
  await sysctl(`ipv6/conf/${dev}/accept_ra`, '0');
  await sysctl(`ipv6/conf/${dev}/disable_ipv6`, '0');
}

/** Gives a bridge the vnet's gateway MAC (bridges made before the edge existed lack it). */
async function setBridgeMacs(plan: EdgePlan): Promise<void> {
  const native = nativeLinksAvailable();
  const links = native ? (await Links.list()).map((l) => ({ name: l.name, mac: l.mac })) : (await listLinks()).map((l) => ({ name: l.name, mac: l.address }));
  const macOf = new Map(links.map((l) => [l.name, l.mac]));
  for (const v of plan.vnets) {
    const br = bridgeName(v.vnet);
    const now = macOf.get(br);
    if (now === undefined || canonicalMac(now) === v.mac) continue;
    if (native) await Links.set(br, { mac: v.mac });
    else await ip(['link', 'set', br, 'address', v.mac]);
  }
}

/**
 * Applies edge plans, skipping one that would change nothing (most attaches and detaches:
 * a second NIC on a network changes no address, route or rule). The first plan is always
 * applied, from what of ours it reads in the kernel: the node converges from what a
 * previous agent left. After that the applier knows what it made, and a change sends only
 * the difference (natively: no process, nothing read back); after a failure it reads again.
 */
export class EdgeApplier {
  private last: string | undefined;
  /** Our addresses, routes and rules in the kernel after the last apply; undefined: read them. */
  private kernel: EdgeKernelState | undefined;

  constructor(private readonly portOf: PortOf = bridgePort) {}

  /** force: the ports were made again (their addresses went with them). */
  async apply(plan: EdgePlan, opts: { force?: boolean } = {}): Promise<void> {
    const key = JSON.stringify([edgeKernelState(plan, this.portOf), renderEdgeNft(plan, this.portOf)]);
    if (!opts.force && key === this.last) return;
    const known = opts.force ? undefined : this.kernel;
    this.last = undefined;
    this.kernel = undefined;
    this.kernel = await applyEdge(plan, this.portOf, known);
    this.last = key;
  }

  /** A port (a vnet's bridge) is deleted: its addresses and routes go with it; the next plan is applied. */
  portGone(dev: string): void {
    this.last = undefined;
    if (!this.kernel) return;
    const k = this.kernel;
    this.kernel = { addresses: k.addresses.filter((a) => a.dev !== dev), routes: k.routes.filter((r) => r.dev !== dev), rules: k.rules };
  }
}

/**
 * Makes the node's edge what the plan says (an empty plan removes it); the ports (portOf)
 * must exist. Default: the kernel backend's bridges, given the gateway MAC here. `known`:
 * what of ours is in the kernel (else read, and bridges made before the edge get their
 * MAC). Resolves what of ours is in the kernel now.
 */
export async function applyEdge(plan: EdgePlan, portOf: PortOf = bridgePort, known?: EdgeKernelState): Promise<EdgeKernelState> {
  try {
    const v6 = planHasIpv6(plan);
    if (plan.vnets.length > 0) {
      await sysctl('ipv4/ip_forward', '1');
      // The node's own answers (pings to a gateway, ICMP errors) carry the request's mark.
      await sysctl('ipv4/fwmark_reflect', '1');
    }
    const nft = renderEdgeNft(plan, portOf);
    if (v6) {
      // The ip6 table (marks, and drop for what a vnet may not do) before any port speaks IPv6.
      await applyNftables(nft);
      await sysctl('ipv6/conf/all/forwarding', '1');
      await sysctl('ipv6/fwmark_reflect', '1');
    }
    for (const v of plan.vnets) {
      const v6Vlans = new Set([...v.gateways.filter((g) => isV6(g.address)).map((g) => g.vlan), ...v.routes.filter((r) => isV6(r.subnet)).map((r) => r.vlan)]);
      for (const p of portsOf(v, portOf)) {
        // Reverse-path checks with the mark (the vnet's table); ARP answered only for the port's own addresses.
        await sysctl(`ipv4/conf/${p.dev}/src_valid_mark`, '1');
        await sysctl(`ipv4/conf/${p.dev}/arp_ignore`, '1');
        if ([...v6Vlans].some((vlan) => portOf(v.vnet, vlan).dev === p.dev)) await enableIpv6(p.dev);
      }
    }
    if (portOf === bridgePort && !known) await setBridgeMacs(plan);
    const want = edgeKernelState(plan, portOf);
    const now = known ?? (await currentState());
    if (nativeLinksAvailable()) {
      await Links.edgeApply(edgeChanges(want, now));
    } else {
      await ipBatch(edgeIpCommands(want, now));
      await ipBatch(edgeIp6RuleCommands(want, now), [], ['-6']);
    }
    await applyNftables(nft);
    return want;
  } catch (err) {
    throw asPlumbingError(err, 'edge');
  }
}
