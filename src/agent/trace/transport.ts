/**
 * Transport layer of `rhumb trace`: UDP (VXLAN on the VXLAN port, its inner frame decoded
 * recursively through ctx.innerFrame), TCP (SVP on the SVP port), ICMP and ICMPv6 (echo,
 * neighbour discovery).
 */
import { type Ctx, MAX_DEPTH, ipv6, mac, short } from './ctx.js';
import { IPPROTO, type IcmpInfo, type PacketRecord, VXLAN_FLAG_I, VXLAN_HEADER_BYTES } from './records.js';
import { decodeSvpSegment } from './svp.js';

export function decodeL4(ctx: Ctx, rec: PacketRecord, proto: number, ipVersion: 4 | 6, off: number, end: number, depth: number): void {
  switch (proto) {
    case IPPROTO.UDP:
      return decodeUdp(ctx, rec, off, end, depth);
    case IPPROTO.TCP:
      return decodeTcp(ctx, rec, off, end);
    case IPPROTO.ICMP:
      return decodeIcmp(ctx, rec, 4, off, end);
    case IPPROTO.ICMPV6:
      return decodeIcmp(ctx, rec, 6, off, end);
    default:
      rec.note = `IPv${ipVersion} protocol ${proto}, ${Math.max(0, end - off)} bytes`;
  }
}

function decodeUdp(ctx: Ctx, rec: PacketRecord, off: number, end: number, depth: number): void {
  const b = ctx.buf;
  if (end - off < 8) {
    rec.truncated = short('UDP header', end - off, 8);
    return;
  }
  const srcPort = b.readUInt16BE(off);
  const dstPort = b.readUInt16BE(off + 2);
  const length = b.readUInt16BE(off + 4);
  rec.udp = { srcPort, dstPort, length };
  const payloadEnd = length >= 8 ? Math.min(end, off + length) : end;
  if (dstPort === ctx.vxlanPort || (srcPort === ctx.vxlanPort && dstPort !== ctx.vxlanPort)) {
    decodeVxlan(ctx, rec, off + 8, payloadEnd, depth);
  }
}

function decodeVxlan(ctx: Ctx, rec: PacketRecord, off: number, end: number, depth: number): void {
  const b = ctx.buf;
  if (end - off < VXLAN_HEADER_BYTES) {
    rec.truncated = short('VXLAN header', end - off, VXLAN_HEADER_BYTES);
    return;
  }
  const flags = b[off];
  const vni = (b[off + 4] << 16) | (b[off + 5] << 8) | b[off + 6];
  const inner: PacketRecord = {};
  rec.vxlan = { flags, i: (flags & VXLAN_FLAG_I) !== 0, vni, inner };
  if (depth + 1 >= MAX_DEPTH) {
    inner.note = 'VXLAN nested too deep';
    return;
  }
  ctx.innerFrame(ctx, inner, off + VXLAN_HEADER_BYTES, end, depth + 1);
}

const TCP_FLAG_LETTERS: Array<[number, string]> = [
  [0x02, 'S'],
  [0x01, 'F'],
  [0x04, 'R'],
  [0x08, 'P'],
  [0x20, 'U'],
  [0x40, 'E'],
  [0x80, 'W'],
];

function tcpFlags(bits: number): string {
  let s = '';
  for (const [bit, letter] of TCP_FLAG_LETTERS) if (bits & bit) s += letter;
  if (bits & 0x10) s += '.';
  return s || 'none';
}

function decodeTcp(ctx: Ctx, rec: PacketRecord, off: number, end: number): void {
  const b = ctx.buf;
  if (end - off < 20) {
    rec.truncated = short('TCP header', end - off, 20);
    return;
  }
  const srcPort = b.readUInt16BE(off);
  const dstPort = b.readUInt16BE(off + 2);
  const dataOffset = (b[off + 12] >> 4) * 4;
  rec.tcp = {
    srcPort,
    dstPort,
    flags: tcpFlags(b[off + 13]),
    seq: b.readUInt32BE(off + 4),
    ack: b.readUInt32BE(off + 8),
    payloadLength: 0,
  };
  if (dataOffset < 20) {
    rec.note = `bad TCP data offset ${dataOffset}`;
    return;
  }
  if (end - off < dataOffset) {
    rec.truncated = short('TCP options', end - off, dataOffset);
    return;
  }
  const payloadOff = off + dataOffset;
  rec.tcp.payloadLength = end - payloadOff;
  if (rec.tcp.payloadLength > 0 && (srcPort === ctx.svpPort || dstPort === ctx.svpPort)) {
    rec.svp = decodeSvpSegment(b.subarray(payloadOff, end));
  }
}

const ICMP4_NAMES: Record<number, string> = {
  0: 'echo reply',
  3: 'destination unreachable',
  4: 'source quench',
  5: 'redirect',
  8: 'echo request',
  11: 'time exceeded',
  12: 'parameter problem',
};
const ICMP6_NAMES: Record<number, string> = {
  1: 'destination unreachable',
  2: 'packet too big',
  3: 'time exceeded',
  4: 'parameter problem',
  128: 'echo request',
  129: 'echo reply',
  133: 'router solicitation',
  134: 'router advertisement',
  135: 'neighbor solicitation',
  136: 'neighbor advertisement',
  143: 'multicast listener report v2',
};

function decodeIcmp(ctx: Ctx, rec: PacketRecord, version: 4 | 6, off: number, end: number): void {
  const b = ctx.buf;
  const label = version === 4 ? 'ICMP header' : 'ICMPv6 header';
  if (end - off < 4) {
    rec.truncated = short(label, end - off, 4);
    return;
  }
  const type = b[off];
  const code = b[off + 1];
  const names = version === 4 ? ICMP4_NAMES : ICMP6_NAMES;
  const icmp: IcmpInfo = { version, type, code, name: names[type] ?? `type ${type}` };
  rec.icmp = icmp;
  const isEcho = version === 4 ? type === 0 || type === 8 : type === 128 || type === 129;
  if (isEcho) {
    if (end - off < 8) {
      rec.truncated = short(`${label} (echo)`, end - off, 8);
      return;
    }
    icmp.id = b.readUInt16BE(off + 4);
    icmp.seq = b.readUInt16BE(off + 6);
    return;
  }
  if (version === 6 && (type === 135 || type === 136)) {
    if (end - off < 24) {
      rec.truncated = short(`ICMPv6 ${icmp.name}`, end - off, 24);
      return;
    }
    icmp.target = ipv6(b, off + 8);
    // Options: type u8, length u8 (units of 8 bytes); 1 = source, 2 = target link-layer address.
    let p = off + 24;
    while (end - p >= 2) {
      const optType = b[p];
      const optLen = b[p + 1] * 8;
      if (optLen === 0 || end - p < optLen) break;
      if ((optType === 1 || optType === 2) && optLen >= 8) icmp.lladdr = mac(b, p + 2);
      p += optLen;
    }
  }
}
