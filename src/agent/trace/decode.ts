/**
 * Packet decoder for `rhumb trace`. Pure: bytes in, a structured record and a one-line
 * rendering out, no I/O.
 *
 * Layers, one module each: ./link.ts (Ethernet with 802.1Q, Linux cooked headers SLL and
 * SLL2, raw IP), ./network.ts (ARP, IPv4, IPv6), ./transport.ts (UDP, TCP, ICMP/ICMPv6 with
 * neighbour discovery; VXLAN on UDP 4789 with the inner frame decoded recursively), ./svp.ts
 * (SVP on TCP 1296: every frame in the segment, partial frames marked as fragments — there
 * is no stream reassembly). The records are in ./records.ts, the one-line rendering in
 * ./render.ts.
 *
 * Malformed or truncated input never throws: the layer that ran out of bytes is named in
 * `truncated` and the line says "truncated …".
 */
import { SVP_DEFAULT_PORT } from '../../svp/codec.js';
import type { Ctx } from './ctx.js';
import { decodeEthernet, decodeLink } from './link.js';
import { renderRecord } from './render.js';
import { type DecodeOptions, type DecodedPacket, type LinkType, type PacketRecord, VXLAN_PORT } from './records.js';

/** Decodes one captured frame; never throws. */
export function decodeFrame(buf: Uint8Array, link: LinkType = 'ethernet', opts: DecodeOptions = {}): PacketRecord {
  const ctx: Ctx = {
    buf: Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength),
    vxlanPort: opts.vxlanPort ?? VXLAN_PORT,
    svpPort: opts.svpPort ?? SVP_DEFAULT_PORT,
    innerFrame: decodeEthernet,
  };
  const rec: PacketRecord = {};
  try {
    decodeLink(ctx, rec, link, 0, ctx.buf.length, 0);
  } catch (err) {
    // Every read is bounds-checked; this only guards against a decoder bug.
    rec.truncated = `undecodable (${(err as Error).message})`;
  }
  return rec;
}

/** Decodes and renders one frame. */
export function decodePacket(buf: Uint8Array, link: LinkType = 'ethernet', opts: DecodeOptions = {}): DecodedPacket {
  const record = decodeFrame(buf, link, opts);
  return { record, line: renderRecord(record) };
}

/**
 * The `--vnet N` filter: VXLAN packets whose VNI (at any depth) is N, and SVP segments with
 * a message that names vnet N (VL2/VL3 requests, shootdowns, LOG_ACK entries).
 */
export function matchesVnet(rec: PacketRecord, vnet: number): boolean {
  if (rec.vxlan) return rec.vxlan.vni === vnet || matchesVnet(rec.vxlan.inner, vnet);
  if (rec.svp) return rec.svp.messages.some((m) => m.vnet === vnet || (m.vnets?.includes(vnet) ?? false));
  return false;
}
