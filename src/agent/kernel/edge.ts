/**
 * Carries an edge plan out in the node's namespace for the kernel backend (the pure part
 * is ./edge-rules.ts): the vnets' bridges get the shared gateway MAC, the gateway
 * addresses, their tables, routes and rules (iproute2: a rare control-path change, the
 * native module has no request for tables and rules), then the edge's nftables table
 * in one transaction (natively when built). What of ours is there is read back each
 * time, so a restarted agent converges from whatever the last one left.
 */
import { writeFile } from 'node:fs/promises';
import { Links, nativeLinksAvailable } from '../../dataplane/links.js';
import { type EdgePlan, EDGE_RULE_PREF, vnetOfTable } from '../../edge/plan.js';
import { canonicalMac } from '../../net/addr.js';
import { ip, ipBatch, listLinks } from '../plumbing/iproute.js';
import { bridgeName, parseDeviceName } from '../plumbing/names.js';
import { asPlumbingError, applyNftables } from '../plumbing/run.js';
import { type EdgeKernelState, type PortOf, edgeIpCommands, edgeKernelState, portsOf, renderEdgeNft } from './edge-rules.js';
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
  const [addrs, routes, rules] = await Promise.all([
    ip(['-j', '-4', 'addr', 'show']),
    ip(['-j', '-4', 'route', 'show', 'table', 'all']),
    ip(['-j', '-4', 'rule', 'show']),
  ]);
  const out: EdgeKernelState = { addresses: [], routes: [], rules: [] };
  for (const l of JSON.parse(addrs) as Array<{ ifname: string; addr_info?: Array<{ family: string; local: string; prefixlen: number }> }>) {
    if (!isPortName(l.ifname)) continue;
    for (const a of l.addr_info ?? []) if (a.family === 'inet') out.addresses.push({ dev: l.ifname, address: a.local, prefix: a.prefixlen });
  }
  for (const r of JSON.parse(routes) as Array<{ dst: string; dev?: string; table?: string; prefsrc?: string; type?: string; metrics?: Array<{ mtu?: number }> }>) {
    const table = Number(r.table);
    if (r.type !== undefined && r.type !== 'unicast') continue;
    if (!Number.isInteger(table) || vnetOfTable(table) === undefined || !r.dev) continue;
    const mtu = r.metrics?.find((m) => m.mtu !== undefined)?.mtu;
    out.routes.push({ table, dst: r.dst.includes('/') ? r.dst : `${r.dst}/32`, dev: r.dev, src: r.prefsrc ?? '', ...(mtu ? { mtu } : {}) });
  }
  for (const u of JSON.parse(rules) as Array<{ priority: number; fwmark?: string; fwmask?: string; table?: string }>) {
    if (u.priority !== EDGE_RULE_PREF || !u.fwmark || !u.table) continue;
    // No mask: an exact rule (an agent before the firewall shared the mark); replaced by a masked one.
    out.rules.push({ mark: Number(u.fwmark), mask: u.fwmask ? Number(u.fwmask) : 0xffffffff, table: Number(u.table) });
  }
  return out;
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
 * a second NIC on a network changes no address, route or rule, and then no process runs).
 * The first plan is always applied: the node converges from what a previous agent left.
 */
export class EdgeApplier {
  private last: string | undefined;

  constructor(private readonly portOf: PortOf = bridgePort) {}

  /** force: the ports were made again (their addresses went with them). */
  async apply(plan: EdgePlan, opts: { force?: boolean } = {}): Promise<void> {
    const key = JSON.stringify([edgeKernelState(plan, this.portOf), renderEdgeNft(plan, this.portOf)]);
    if (!opts.force && key === this.last) return;
    this.last = undefined;
    await applyEdge(plan, this.portOf);
    this.last = key;
  }
}

/**
 * Makes the node's edge what the plan says (an empty plan removes it); the ports (portOf)
 * must exist. Default: the kernel backend's bridges, given the gateway MAC here.
 */
export async function applyEdge(plan: EdgePlan, portOf: PortOf = bridgePort): Promise<void> {
  try {
    if (plan.vnets.length > 0) {
      await sysctl('ipv4/ip_forward', '1');
      // The node's own answers (pings to a gateway, ICMP errors) carry the request's mark.
      await sysctl('ipv4/fwmark_reflect', '1');
    }
    for (const v of plan.vnets) {
      for (const p of portsOf(v, portOf)) {
        // Reverse-path checks with the mark (the vnet's table); ARP answered only for the port's own addresses.
        await sysctl(`ipv4/conf/${p.dev}/src_valid_mark`, '1');
        await sysctl(`ipv4/conf/${p.dev}/arp_ignore`, '1');
      }
    }
    if (portOf === bridgePort) await setBridgeMacs(plan);
    await ipBatch(edgeIpCommands(edgeKernelState(plan, portOf), await currentState()));
    await applyNftables(renderEdgeNft(plan, portOf));
  } catch (err) {
    throw asPlumbingError(err, 'edge');
  }
}
