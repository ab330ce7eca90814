/**
 * The one layout of the 32-bit packet mark (meta mark, and the connection's ct mark) in a
 * node's namespace. Two parts of rhumb write it, and each must leave the other's bits alone:
 *
 *   bit 31      30  29  28  27  26  25  24   23 ............................ 0
 *       free  [ 0x72 edge tag: 0x40 0x20 0x10, 0x02 ]   the vnet (edge), 24 bits
 *                     fw: 0x04 invalid, 0x01 established (never part of the tag)
 *
 * - The edge (../edge/plan.ts, ../agent/kernel/edge-rules.ts) marks a vnet's routed
 *   packets and their connection EDGE_TAG + vnet; its policy-routing rules and nft
 *   matches compare under EDGE_MARK_MASK, which leaves out the firewall's bits.
 * - The firewall's node-wide state table (../fw/nft.ts renderStateTable) copies conntrack
 *   state into FW_ESTABLISHED / FW_INVALID on the packet only (never the connection's
 *   mark), after the edge has set its mark in prerouting (FW_CLASSIFY_PRIORITY), and
 *   clears them first: whatever a packet carried before, the bits say what conntrack says.
 * - 0x80000000 and 0x08000000 are free.
 *
 * Device groups (VNET_GROUP_BASE in ./ports.ts) and the edge's routing table ids use the
 * same 0x72 tag with the vnet below; they are not marks.
 */

/** The edge's tag in the top byte. */
export const EDGE_TAG = 0x72000000;
/** Set on a packet of an established or related connection (conntrack's words). */
export const FW_ESTABLISHED = 0x01000000;
/** Set on a packet conntrack calls invalid. */
export const FW_INVALID = 0x04000000;
export const FW_BITS = FW_ESTABLISHED | FW_INVALID;
/** Which bits say "the edge's" (the top byte without the firewall's bits). */
export const EDGE_TAG_MASK = (0xff000000 & ~FW_BITS) >>> 0;
/** Which bits name an edge mark exactly (tag and vnet, without the firewall's bits). */
export const EDGE_MARK_MASK = (0xffffffff & ~FW_BITS) >>> 0;
/**
 * nft priority of the firewall's classification in prerouting: after the edge marks a
 * vnet's routed packets (priority mangle, -150), before destination NAT (-100).
 */
export const FW_CLASSIFY_PRIORITY = 'mangle + 10';

/** 0x-prefixed, 8 hex digits (nft and iproute2 both read it). */
export function markHex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}
