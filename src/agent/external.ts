/**
 * The node's external side (`rhumb agent --external-iface IFACE`): the interface egress
 * NAT leaves through and its IPv4 address, the SNAT (and DNAT) address, and its global
 * IPv6 address when it has one (NAT66 for IPv6 networks; without one, IPv6 networks reach
 * nothing beyond the overlay). Read once at start; an interface that is not there, or has
 * no IPv4 address, stops the start.
 */
import { Links, nativeLinksAvailable } from '../dataplane/links.js';
import type { ExternalSide } from '../edge/plan.js';
import { ifnameProblem } from './plumbing/checks.js';
import { ip } from './plumbing/iproute.js';

async function ipv4Addresses(): Promise<Array<{ ifname: string; address: string }>> {
  if (nativeLinksAvailable()) return (await Links.addresses()).flatMap((a) => (a.ifname ? [{ ifname: a.ifname, address: a.address }] : []));
  const out = JSON.parse(await ip(['-j', '-4', 'addr', 'show'])) as Array<{ ifname: string; addr_info?: Array<{ local: string }> }>;
  return out.flatMap((l) => (l.addr_info ?? []).map((a) => ({ ifname: l.ifname, address: a.local })));
}

/** The first global (not link-local) IPv6 address of iface, or undefined. */
async function globalIpv6Address(iface: string): Promise<string | undefined> {
  const out = JSON.parse(await ip(['-j', '-6', 'addr', 'show', 'dev', iface, 'scope', 'global'])) as Array<{ addr_info?: Array<{ local: string; tentative?: boolean }> }>;
  return out.flatMap((l) => l.addr_info ?? []).find((a) => !a.tentative)?.local;
}

async function linkNames(): Promise<string[]> {
  if (nativeLinksAvailable()) return (await Links.list()).map((l) => l.name);
  return (JSON.parse(await ip(['-j', 'link', 'show'])) as Array<{ ifname: string }>).map((l) => l.ifname);
}

/** The external side named by iface; throws with a message for people when it is unusable. */
export async function resolveExternal(iface: string): Promise<ExternalSide> {
  const shape = ifnameProblem(iface);
  if (shape) throw new Error(`--external-iface: ${shape}`);
  if (!(await linkNames()).includes(iface)) throw new Error(`--external-iface ${iface}: no such interface in this network namespace`);
  const addr = (await ipv4Addresses()).find((a) => a.ifname === iface);
  if (!addr) throw new Error(`--external-iface ${iface}: the interface has no IPv4 address (the SNAT address)`);
  const address6 = await globalIpv6Address(iface);
  return { iface, address: addr.address, ...(address6 ? { address6 } : {}) };
}
