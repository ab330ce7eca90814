/**
 * One Ethernet frame out of a named interface of this process's namespace (native
 * packet.c: a raw AF_PACKET socket). For the few frames the agent itself originates, such
 * as a moved address's announcement; never per forwarded packet.
 */
import { nativeAddon } from './addon.js';

interface PacketAddon {
  sendFrame(ifname: string, frame: Buffer): void;
}

/**
 * Sends frame (14 to 9,018 bytes, its Ethernet header included) out of ifname. Throws a
 * TypeError/RangeError for bad arguments, and a system error (code ENODEV, ENETDOWN, …)
 * when the kernel refuses it.
 */
export function sendFrame(ifname: string, frame: Buffer): void {
  nativeAddon<PacketAddon>().sendFrame(ifname, frame);
}
