/** Network layer of `rhumb trace`: ARP, IPv4, IPv6 (extension and fragment headers walked). */
import { type Ctx, ipv4, ipv6, mac, short } from './ctx.js';
import { ETHERTYPE, type PacketRecord } from './records.js';
import { decodeL4 } from './transport.js';

export function decodeL3(ctx: Ctx, rec: PacketRecord, ethertype: number, off: number, end: number, depth: number): void {
  switch (ethertype) {
    case ETHERTYPE.ARP:
      return decodeArp(ctx, rec, off, end);
    case ETHERTYPE.IPV4:
      return decodeIpv4(ctx, rec, off, end, depth);
    case ETHERTYPE.IPV6:
      return decodeIpv6(ctx, rec, off, end, depth);
    default:
      rec.note = `ethertype 0x${ethertype.toString(16).padStart(4, '0')}, ${end - off} bytes`;
  }
}

function decodeArp(ctx: Ctx, rec: PacketRecord, off: number, end: number): void {
  const b = ctx.buf;
  if (end - off < 8) {
    rec.truncated = short('ARP header', end - off, 28);
    return;
  }
  const htype = b.readUInt16BE(off);
  const ptype = b.readUInt16BE(off + 2);
  const hlen = b[off + 4];
  const plen = b[off + 5];
  if (htype !== 1 || ptype !== ETHERTYPE.IPV4 || hlen !== 6 || plen !== 4) {
    rec.note = `ARP htype ${htype} ptype 0x${ptype.toString(16)} hlen ${hlen} plen ${plen}`;
    return;
  }
  if (end - off < 28) {
    rec.truncated = short('ARP header', end - off, 28);
    return;
  }
  const op = b.readUInt16BE(off + 6);
  rec.arp = {
    op: op === 1 ? 'request' : op === 2 ? 'reply' : `op ${op}`,
    senderMac: mac(b, off + 8),
    senderIp: ipv4(b, off + 14),
    targetMac: mac(b, off + 18),
    targetIp: ipv4(b, off + 24),
  };
}

function decodeIpv4(ctx: Ctx, rec: PacketRecord, off: number, end: number, depth: number): void {
  const b = ctx.buf;
  const label = depth > 0 ? 'inner IPv4 header' : 'IPv4 header';
  if (end - off < 20) {
    rec.truncated = short(label, end - off, 20);
    return;
  }
  const version = b[off] >> 4;
  const ihl = (b[off] & 0x0f) * 4;
  if (version !== 4 || ihl < 20) {
    rec.note = `bad IPv4 header (version ${version}, header length ${ihl})`;
    return;
  }
  const totalLength = b.readUInt16BE(off + 2);
  const fragField = b.readUInt16BE(off + 6);
  const proto = b[off + 9];
  rec.ip = { version: 4, src: ipv4(b, off + 12), dst: ipv4(b, off + 16), proto, ttl: b[off + 8], length: totalLength };
  if (end - off < ihl) {
    rec.truncated = short(`${label} options`, end - off, ihl);
    return;
  }
  // Ethernet pads short frames: the IP length, not the capture, says where the packet ends.
  const l4End = totalLength >= ihl ? Math.min(end, off + totalLength) : end;
  if ((fragField & 0x1fff) !== 0) {
    rec.ip.fragment = true;
    return;
  }
  decodeL4(ctx, rec, proto, 4, off + ihl, l4End, depth);
}

const IPV6_EXTENSIONS = new Set([0, 43, 60]);

function decodeIpv6(ctx: Ctx, rec: PacketRecord, off: number, end: number, depth: number): void {
  const b = ctx.buf;
  const label = depth > 0 ? 'inner IPv6 header' : 'IPv6 header';
  if (end - off < 40) {
    rec.truncated = short(label, end - off, 40);
    return;
  }
  if (b[off] >> 4 !== 6) {
    rec.note = `bad IPv6 header (version ${b[off] >> 4})`;
    return;
  }
  const payloadLength = b.readUInt16BE(off + 4);
  let next = b[off + 6];
  rec.ip = { version: 6, src: ipv6(b, off + 8), dst: ipv6(b, off + 24), proto: next, ttl: b[off + 7], length: payloadLength + 40 };
  const l4End = Math.min(end, off + 40 + payloadLength);
  let p = off + 40;
  // Walk hop-by-hop, routing, destination options and fragment headers.
  for (let hops = 0; hops < 8; hops++) {
    if (IPV6_EXTENSIONS.has(next)) {
      if (l4End - p < 8) {
        rec.truncated = short('IPv6 extension header', l4End - p, 8);
        return;
      }
      const len = (b[p + 1] + 1) * 8;
      next = b[p];
      p += len;
    } else if (next === 44) {
      if (l4End - p < 8) {
        rec.truncated = short('IPv6 fragment header', l4End - p, 8);
        return;
      }
      const fragOffset = b.readUInt16BE(p + 2) >> 3;
      next = b[p];
      p += 8;
      if (fragOffset !== 0) {
        rec.ip.proto = next;
        rec.ip.fragment = true;
        return;
      }
    } else {
      break;
    }
  }
  rec.ip.proto = next;
  decodeL4(ctx, rec, next, 6, p, l4End, depth);
}
