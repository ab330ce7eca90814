/**
 * The userspace backend's node side of a NIC: the fast path's TAP stays in the node's
 * namespace (rt<mac>), the instance gets a veth (its end named, addressed and routed
 * exactly as the TAP used to be; the host end rv<mac> named as on the kernel backend), and
 * a bridge of their own (rn<mac>) joins the two. Frames between the instance and the fast
 * path cross that bridge, so the firewall filters them node-side as on the kernel backend:
 * the instance's bridge-family table on its host veth, conntrack state through
 * br_netfilter (../../fw/nft.ts). Nothing of it is inside the instance's reach.
 *
 * The node's netfilter sees such a packet twice: on the NIC's bridge, and where the edge
 * routes it (the gateway TAP, ../../edge). The first pass has a conntrack zone of its own
 * (PORT_BRIDGE_ZONE, set by renderNicBridgeTables before conntrack runs), so the edge's
 * connections and their NAT are decided on the second pass as before. And the node takes
 * nothing from a NIC bridge itself (no ARP answers, no IP delivered): an instance reaches
 * the node only through the edge, as on the kernel backend.
 *
 * Carried out with the native module (the fast path needs it anyway). All or nothing: a
 * failure removes what the call made; the caller owns the TAP (the engine made it).
 */
import { Links } from '../../dataplane/links.js';
import { PORT_BRIDGE_ZONE } from '../../net/ports.js';
import { NIC_BRIDGE_PREFIX, hostVethName, nicBridgeName } from '../plumbing/names.js';
import { type NicPlumbing, type StagedPlumbing, hostVeth, nicBridge, stagedHostVeth, tapAddress } from '../plumbing/nic.js';
import { asPlumbingError, configureInstance, quietIpv6 } from '../plumbing/run.js';

/** The node-wide tables (families inet and arp) of the NIC bridges. */
export const NIC_BRIDGE_TABLE = 'rhumb_nic_bridges';

/**
 * `nft -f` text (create, delete, define: one atomic replacement) of the NIC bridges' node-wide
 * tables. A NIC bridge is a wire between an instance and the fast path, nothing more:
 * - what crosses it is in PORT_BRIDGE_ZONE, both directions, before conntrack sees it
 *   (br_netfilter hands bridged IP traffic to the inet prerouting hook with the bridge as
 *   input device);
 * - nothing reaches the node through it: the bridge has no address, but the node would
 *   answer an instance's ARP for any of its own addresses there (the gateway's on the
 *   gateway TAP among them) and take IP sent to the bridge's MAC, beside the edge.
 */
export function renderNicBridgeTables(): string {
  const bridges = `iifname "${NIC_BRIDGE_PREFIX}*"`;
  const table = (family: string, chains: string[][]) => [
    `table ${family} ${NIC_BRIDGE_TABLE}`,
    `delete table ${family} ${NIC_BRIDGE_TABLE}`,
    `table ${family} ${NIC_BRIDGE_TABLE} {`,
    ...chains.flatMap(([name, hook, rule]) => [`\tchain ${name} {`, `\t\ttype filter hook ${hook}; policy accept;`, `\t\t${rule}`, '\t}']),
    '}',
  ];
  return [
    ...table('inet', [
      ['prerouting', 'prerouting priority raw', `${bridges} ct zone set ${PORT_BRIDGE_ZONE}`],
      ['input', 'input priority filter', `${bridges} drop`],
    ]),
    ...table('arp', [['input', 'input priority filter', `${bridges} drop`]]),
    '',
  ].join('\n');
}

/**
 * The bridge, the TAP (already made by the engine, as tap) in it with its own MAC, the
 * veth with the host end in the bridge. plumb: the instance end in its namespace,
 * configured, the host end up. stage: both ends here, the instance end as p.ifname, the
 * host end down (no carrier) until activatePort().
 */
export async function createPort(p: NicPlumbing | StagedPlumbing, tap: string, how: 'plumb' | 'stage'): Promise<void> {
  const bridge = nicBridge(p);
  const veth = how === 'plumb' ? hostVeth(p as NicPlumbing) : stagedHostVeth(p);
  try {
    await Links.add(bridge);
    await quietIpv6(bridge.name);
    await Links.set(tap, { mac: tapAddress(p.mac), master: bridge.name, up: true });
    await quietIpv6(tap);
    await Links.add(veth);
    await quietIpv6(veth.name);
    if (how === 'plumb') {
      await configureInstance(p as NicPlumbing);
      await Links.set(veth.name, { master: bridge.name, up: true });
    } else {
      await Links.set(veth.name, { master: bridge.name });
    }
  } catch (err) {
    await removePort(p.mac);
    throw asPlumbingError(err);
  }
}

/** The host end comes up: the instance end (in its workload now) gets its carrier. */
export async function activatePort(mac: string): Promise<void> {
  try {
    await Links.set(hostVethName(mac), { up: true });
  } catch (err) {
    throw asPlumbingError(err);
  }
}

/** Removes the NIC's veth (both ends, wherever the instance end is) and its bridge; absent ones are fine. */
export async function removePort(mac: string): Promise<void> {
  for (const name of [hostVethName(mac), nicBridgeName(mac)]) await Links.del(name).catch(() => undefined);
}

/**
 * Which NICs (by MAC) have their bridge and their host veth in it, in one link dump (the
 * instance end of a veth dies with the instance's namespace, and the host end with it).
 */
export async function intactPorts(): Promise<(mac: string) => boolean> {
  const links = await Links.list();
  const bridges = new Set(links.filter((l) => l.kind === 'bridge').map((l) => l.name));
  const ported = new Set(links.filter((l) => l.master !== undefined && bridges.has(l.master)).map((l) => `${l.name} ${l.master}`));
  return (mac) => ported.has(`${hostVethName(mac)} ${nicBridgeName(mac)}`);
}
