/**
 * Follows the node's own underlay address when it changes (the NIC re-addressed, and the
 * node's underlay NIC updated through the API, in either order): whenever the set of
 * local addresses changes — or while the recorded address is not local yet — it asks the
 * API which underlay address this node has, and when that address is local and not the
 * one in use, the agent moves to it (VXLAN leaves from it, LOG_REQ names it). Peers learn
 * from the controller's shootdowns for the node's NICs, written with the API change.
 *
 * Scheduling over injected functions (tests drive tick() directly).
 */
import { isIPv4 } from 'node:net';
import { Links, nativeLinksAvailable } from '../dataplane/links.js';
import { ip } from './plumbing/iproute.js';

export interface UnderlayFollowDeps {
  /** The IPv4 addresses on this namespace's interfaces. */
  localAddresses(): Promise<string[]>;
  /** The underlay addresses the API records for this node. */
  recorded(): Promise<string[]>;
  /** The address in use. */
  current(): string;
  /** Moves the agent to this address. */
  move(to: string): Promise<void>;
  /**
   * The address in use is gone from this namespace: connections that left from it are
   * dead (the agent drops its connections to the controller before the ask that follows).
   */
  addressGone?: () => void;
  log?: (msg: string) => void;
}

export class UnderlayFollower {
  private lastSeen = '';
  /** The address in use was missing at the last look (addressGone said so once). */
  private lost = false;
  /** The address set changed but the API did not name a local address yet: ask again. */
  private unsettled = false;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly deps: UnderlayFollowDeps) {}

  /** Polls every intervalMs (a netlink dump; the API only when something changed). */
  start(intervalMs = 500): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.running ??= this.tick()
        .then(() => undefined)
        .catch((err: Error) => this.deps.log?.(`underlay address: ${err.message}`))
        .finally(() => (this.running = undefined));
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /** One look; returns the address moved to, if any. */
  async tick(): Promise<string | undefined> {
    const local = await this.deps.localAddresses();
    // Other addresses come and go (gateways, instances' routes): only the one in use carries the agent's connections.
    const inUse = this.deps.current();
    const lost = isIPv4(inUse) && !local.includes(inUse);
    if (lost && !this.lost && this.deps.addressGone) {
      this.deps.log?.(`the address in use ${inUse} is gone: connections to the controller made again`);
      this.deps.addressGone();
    }
    this.lost = lost;
    const seen = [...local].sort().join(',');
    if (seen === this.lastSeen && !this.unsettled) return undefined;
    const current = this.deps.current();
    // Seen only once the API answered: a failed ask is retried on the next tick.
    const recorded = await this.deps.recorded();
    this.lastSeen = seen;
    const target = recorded.includes(current) && local.includes(current) ? current : recorded.find((a) => local.includes(a));
    this.unsettled = target === undefined && !local.includes(current);
    if (target === undefined || target === current) return undefined;
    this.deps.log?.(`underlay address ${current} -> ${target} (the API and this node's interfaces agree)`);
    try {
      await this.deps.move(target);
    } catch (err) {
      // Tried again on the next tick (move is idempotent: it starts from what is in use).
      this.unsettled = true;
      throw err;
    }
    return target;
  }
}

/** This namespace's IPv4 addresses (native rtnetlink dump; `ip -j addr` without the addon). */
export async function localIpv4Addresses(): Promise<string[]> {
  if (nativeLinksAvailable()) return (await Links.addresses()).map((a) => a.address).filter((a) => isIPv4(a));
  const out = JSON.parse(await ip(['-j', '-4', 'addr', 'show'])) as Array<{ addr_info?: Array<{ local?: string }> }>;
  return out.flatMap((l) => (l.addr_info ?? []).flatMap((a) => (a.local ? [a.local] : [])));
}
