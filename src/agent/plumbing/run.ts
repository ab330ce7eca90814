/**
 * Carries plumbing out: through the native module (src/dataplane/links.ts, nftables.ts —
 * netlink requests and nftables batches from this process, nothing spawned) when it is
 * built, else through iproute2 and nft (./iproute.ts, the fallback). Either way a refusal
 * by the kernel or by nftables is a PlumbingError with its message; nothing is left
 * half-applied by one call (an nftables text is one batch; a namespace's configuration is
 * undone by deleting its interface, which the callers do).
 */
import { writeFile } from 'node:fs/promises';
import { isNativeError } from '../../dataplane/addon.js';
import { Links, nativeLinksAvailable } from '../../dataplane/links.js';
import { nativeNftAvailable, nftApply as nativeNftApply } from '../../dataplane/nftables.js';
import { IpCommandError, inNetns, ip, ipBatch, nftApply as spawnNftApply } from './iproute.js';
import { type NicPlumbing, PlumbingError, instanceCommands, instanceConfig, isIpv6Nic } from './nic.js';

let native: boolean | undefined;

/** Whether plumbing goes through the native module (decided once). */
export function nativePlumbing(): boolean {
  native ??= nativeLinksAvailable() && nativeNftAvailable();
  return native;
}

/** A kernel or nftables refusal as a PlumbingError (what the agent answers 422 with); anything else as is. */
export function asPlumbingError(err: unknown, what?: string): unknown {
  if (err instanceof PlumbingError) return err;
  if (isNativeError(err) || err instanceof IpCommandError) return new PlumbingError(what ? `${what}: ${err.message}` : err.message);
  return err;
}

/** Inside the NIC's namespace: lo up, address, interface up, routes, default route. */
export async function configureInstance(p: NicPlumbing): Promise<void> {
  try {
    // The native request knows IPv4 only: an IPv6 NIC is configured by iproute2 (rare, control path).
    if (nativePlumbing() && !isIpv6Nic(p)) await Links.configureNetns(p.netns, instanceConfig(p));
    else await ipBatch(instanceCommands(p), inNetns(p.netns));
  } catch (err) {
    throw asPlumbingError(err);
  }
}

/** Applies an nftables text as one transaction in this namespace, or in the one at netns. */
export async function applyNftables(text: string, netns?: string): Promise<void> {
  try {
    if (nativePlumbing()) await nativeNftApply(text, netns);
    else if (netns === undefined) await spawnNftApply(text);
    else throw new PlumbingError('nftables in another namespace needs the native module');
  } catch (err) {
    throw asPlumbingError(err, 'nftables');
  }
}

/** Deletes a link of this namespace by name; false when there was none. */
export async function deleteLink(name: string): Promise<boolean> {
  try {
    if (nativePlumbing()) return await Links.del(name);
    await ip(['link', 'del', name]);
    return true;
  } catch (err) {
    if (err instanceof IpCommandError && /Cannot find device/.test(err.stderr)) return false;
    throw asPlumbingError(err);
  }
}

/** IPv6 off on a device of ours in the node's namespace: it carries no addresses; no router solicitations or MLD from it. */
export async function quietIpv6(dev: string): Promise<void> {
  await writeFile(`/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`, '1').catch(() => undefined);
}
