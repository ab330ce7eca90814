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
import { IpCommandError, inNetns, ipBatch, nftApply as spawnNftApply } from './iproute.js';
import { type NicPlumbing, PlumbingError, instanceCommands, instanceConfig } from './nic.js';

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
    if (nativePlumbing()) await Links.configureNetns(p.netns, instanceConfig(p));
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
