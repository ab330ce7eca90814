/**
 * The 16-byte ids of shootdown events on the SVP wire (LOG_ACK entries, LOG_RM). One log
 * entry's event reaches many nodes; each node's copy has its own id, and the id alone
 * names both the node and the event, so a LOG_RM is understood by whichever replica it
 * reaches (agents send LOG_RM round robin) and after a restart.
 *
 * An id is a UUIDv7, whose time field is when the NIC write created the entry (the
 * entry's `created`): agents read it to measure commit-to-applied latency.
 *
 *   bits   0..47   created, Unix ms              (UUIDv7 unix_ts_ms)
 *         48..51   0111                          (version 7)
 *         52..63   revision, bits 15..4          (of the entry's store revision mod 2^16)
 *         64..65   10                            (variant)
 *         66..69   revision, bits 3..0
 *         70..81   k: the event among its revision's events (0..4095)
 *         82..127  node tag: 46 bits of SHA-256 of the node's uuid
 *
 * (created, revision mod 2^16) finds the entry: two entries of one millisecond are at most
 * a few revisions apart. 4,096 events a revision let one write shoot down every NIC of a
 * node whose underlay moved (../overlay/derive.ts deriveUnderlayMove), however many vnets
 * they are on. 46-bit tags make two nodes of one deployment sharing a tag vanishingly
 * unlikely (~10^-6 at 10,000 nodes); if they did, a LOG_RM by one would also remove the
 * other's copy of an event both were sent. (Ids are opaque to agents, which only echo
 * them and read the time; ids from before k widened from 8 bits decode to other events,
 * so across that upgrade a node may be sent an event it had removed, once.)
 */
import { createHash } from 'node:crypto';

export const EVENT_ID_BYTES = 16;
const TAG_BITS = 46n;
const TAG_MASK = (1n << TAG_BITS) - 1n;
const K_BITS = 12n;
const K_MASK = (1n << K_BITS) - 1n;
export const MAX_EVENTS_PER_REVISION = Number(K_MASK) + 1;

/** A node's tag in its event ids. */
export function nodeTag(cn: string): bigint {
  return createHash('sha256').update(cn).digest().readBigUInt64BE(0) & TAG_MASK;
}

export interface EventRef {
  /** The entry's creation time, Unix ms (0 when unknown). */
  timeMs: number;
  /** The entry's store revision. */
  rev: number;
  /** The event among its revision's events. */
  k: number;
}

export interface DecodedEventId {
  timeMs: number;
  /** The revision mod 2^16. */
  revLow: number;
  k: number;
  tag: bigint;
}

export function encodeEventId(ref: EventRef, tag: bigint): Buffer {
  const revLow = BigInt(ref.rev & 0xffff);
  let v = BigInt(Math.max(0, Math.min(ref.timeMs, 2 ** 48 - 1))) << 80n;
  v |= 0x7n << 76n;
  v |= (revLow >> 4n) << 64n;
  v |= 0x2n << 62n;
  v |= (revLow & 0xfn) << 58n;
  v |= (BigInt(ref.k) & K_MASK) << TAG_BITS;
  v |= tag & TAG_MASK;
  const out = Buffer.alloc(EVENT_ID_BYTES);
  out.writeBigUInt64BE(v >> 64n, 0);
  out.writeBigUInt64BE(v & 0xffffffffffffffffn, 8);
  return out;
}

export function decodeEventId(buf: Uint8Array, off = 0): DecodedEventId {
  const b = Buffer.from(buf.buffer, buf.byteOffset + off, EVENT_ID_BYTES);
  const v = (b.readBigUInt64BE(0) << 64n) | b.readBigUInt64BE(8);
  const revLow = Number((((v >> 64n) & 0xfffn) << 4n) | ((v >> 58n) & 0xfn));
  return {
    timeMs: Number(v >> 80n),
    revLow,
    k: Number((v >> TAG_BITS) & K_MASK),
    tag: v & TAG_MASK,
  };
}

/** The key under which (created, revision mod 2^16) is looked up. */
export function stampKey(timeMs: number, revLow: number): string {
  return `${timeMs}:${revLow}`;
}
