/**
 * nftables in process (native/src/nft.c, libnftables): a text in `nft -f` syntax is
 * parsed and sent to the kernel as one netlink batch, in the agent's namespace or inside
 * an instance's (entered by a helper thread), so it applies whole or not at all and no
 * `nft` process is spawned.
 */
import { isNativeError, nativeAddon, nativeHas } from './addon.js';

interface NativeNft {
  nftApply(netns: string | null, text: string): Promise<void>;
  nftList(netns: string | null, command: string): Promise<string>;
}

export function nativeNftAvailable(): boolean {
  return nativeHas('nftApply', 'nftList');
}

/** nftables refused the text (nothing of it applied); the message is nft's. */
export function isNftRefusal(err: unknown): boolean {
  return isNativeError(err) && err.code === 'ERR_NFT';
}

/** Applies text as one transaction, in this namespace or the one at netns. */
export function nftApply(text: string, netns?: string): Promise<void> {
  return nativeAddon<NativeNft>().nftApply(netns ?? null, text);
}

/** A listing command ("list tables", "list table inet t") and its output. */
export function nftList(command: string, netns?: string): Promise<string> {
  return nativeAddon<NativeNft>().nftList(netns ?? null, command);
}
