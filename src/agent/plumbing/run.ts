/**
 * Carries plumbing out: through the native module (src/dataplane/links.ts, nftables.ts —
 * netlink requests and nftables batches from this process, nothing spawned) when it is
 * built, else through iproute2 and nft (./iproute.ts, the fallback). Either way a refusal
 * by the kernel or by nftables is a PlumbingError with its message; nothing is left
 * half-applied by one call (an nftables text is one batch; a namespace's configuration is
 * undone by deleting its interface, which the callers do).
 */
import { isNativeError } from '../../dataplane/addon.js';
import { Links, nativeLinksAvailable } from '../../dataplane/links.js';
import { nativeNftAvailable, nftApply as nativeNftApply } from '../../dataplane/nftables.js';
import { IpCommandError, inNetns, ip, ipBatch, nftApply as spawnNftApply } from './iproute.js';
import { type NicPlumbing, PlumbingError, type StagedPlumbing, instanceCommands, instanceConfig, isIpv6Nic, stagedTapCommands } from './nic.js';

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

/**
 * A staged NIC's TAP in this namespace (userspace backend): persistent, with the NIC's MAC
 * and MTU, and no reader, so no carrier. iproute2 on either path: the native module makes
 * veths, bridges and vxlan devices, and the fast path's TAPs only with their reader.
 */
export async function stageTap(p: StagedPlumbing): Promise<void> {
  try {
    await ipBatch(stagedTapCommands(p));
  } catch (err) {
    await deleteLink(p.ifname).catch(() => undefined);
    throw asPlumbingError(err);
  }
}
