/**
 * What every layer decoder of ./decode.ts shares: the frame being decoded, the ports that
 * mark VXLAN and SVP, and bounds-aware readers. Every read is preceded by a length check;
 * a layer that runs out of bytes says so with short().
 */
import ipaddr from 'ipaddr.js';
import { macFromBytes } from '../../net/addr.js';
import type { PacketRecord } from './records.js';

export interface Ctx {
  buf: Buffer;
  vxlanPort: number;
  svpPort: number;
  /** Decodes a VXLAN packet's inner Ethernet frame (./link.ts; passed in, so the layer modules import only downwards). */
  innerFrame: (ctx: Ctx, rec: PacketRecord, off: number, end: number, depth: number) => void;
}

/** Nesting bound for VXLAN-in-VXLAN (a crafted packet must not recurse forever). */
export const MAX_DEPTH = 4;

export function short(what: string, have: number, need: number): string {
  return `${what} (${Math.max(0, have)} of ${need} bytes)`;
}

export function mac(buf: Buffer, off: number): string {
  return macFromBytes(buf, off);
}

export function ipv4(buf: Buffer, off: number): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

export function ipv6(buf: Buffer, off: number): string {
  return new ipaddr.IPv6(Array.from(buf.subarray(off, off + 16))).toRFC5952String();
}
