/**
 * Packet decoder for `rhumb trace`. Pure: bytes in, a structured record and a one-line
 * rendering out, no I/O.
 *
 * Layers: Ethernet (802.1Q), Linux cooked headers (SLL, SLL2), raw IP; ARP; IPv4/IPv6;
 * UDP/TCP/ICMP/ICMPv6 (neighbour discovery included); VXLAN on UDP 4789 with the inner frame
 * decoded recursively; SVP on TCP 1296 (every frame in the segment, partial frames marked as
 * fragments — there is no stream reassembly).
 *
 * Malformed or truncated input never throws: the layer that ran out of bytes is named in
 * `truncated` and the line says "truncated …".
 */
import ipaddr from 'ipaddr.js';
import {
  HEADER_BYTES as SVP_HEADER_BYTES,
  LogType,
  SVP_DEFAULT_PORT,
  SVP_VERSION,
  SvpOp,
  decodeMessage,
  frameCrc,
  isRequestOp,
  isResponseOp,
  opName,
  statusName,
} from '../../svp/codec.js';
import { ipFromBytes, macFromBytes } from '../../net/addr.js';

export const VXLAN_PORT = 4789;
export const VXLAN_HEADER_BYTES = 8;
/** VXLAN flags bit that says the VNI is valid (RFC 7348). */
export const VXLAN_FLAG_I = 0x08;

/** pcap link-layer types we decode. */
export type LinkType = 'ethernet' | 'linux_sll' | 'linux_sll2' | 'raw';

export const ETHERTYPE = {
  IPV4: 0x0800,
  ARP: 0x0806,
  VLAN: 0x8100,
  QINQ: 0x88a8,
  IPV6: 0x86dd,
} as const;

export const IPPROTO = { ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58 } as const;

// ---------------------------------------------------------------------------------------
// Records (JSON-friendly: strings and numbers only)

export interface LinkInfo {
  kind: 'ethernet' | 'sll' | 'sll2' | 'raw';
  /** Ethernet source MAC, or the SLL link-layer address when it is 6 bytes. */
  src?: string;
  dst?: string;
  /** SLL packet type: host, broadcast, multicast, otherhost, outgoing. */
  direction?: string;
  /** SLL2 interface index. */
  ifindex?: number;
  /** Outermost 802.1Q VLAN id, if tagged. */
  vlan?: number;
  /** Priority code point of that tag. */
  pcp?: number;
  /** Further tags (QinQ), outer to inner, after `vlan`. */
  innerVlans?: number[];
  /** Ethertype after any VLAN tags. */
  ethertype?: number;
}

export interface ArpInfo {
  op: 'request' | 'reply' | `op ${number}`;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

export interface IpInfo {
  version: 4 | 6;
  src: string;
  dst: string;
  /** Upper-layer protocol number (after IPv6 extension headers). */
  proto: number;
  ttl: number;
  /** Total length claimed by the header (IPv6: payload length + 40). */
  length: number;
  /** True for a non-first IPv4 fragment (or IPv6 fragment header with offset > 0): no L4. */
  fragment?: boolean;
}

export interface UdpInfo {
  srcPort: number;
  dstPort: number;
  length: number;
}

export interface TcpInfo {
  srcPort: number;
  dstPort: number;
  flags: string;
  seq: number;
  ack: number;
  /** Payload bytes present in the capture. */
  payloadLength: number;
}

export interface IcmpInfo {
  version: 4 | 6;
  type: number;
  code: number;
  /** Human name ("echo request", "neighbor solicitation", …). */
  name: string;
  id?: number;
  seq?: number;
  /** ND target address (NS/NA). */
  target?: string;
  /** Link-layer address from an ND option (source for NS, target for NA). */
  lladdr?: string;
}

export interface VxlanInfo {
  flags: number;
  /** The I flag: VNI valid. */
  i: boolean;
  vni: number;
  inner: PacketRecord;
}

export interface SvpMessageInfo {
  /** Op name, e.g. "VL2_REQ"; "fragment" for bytes that do not start a frame. */
  op: string;
  opCode?: number;
  /** The 4 id bytes as 8 hex digits. */
  id?: string;
  size?: number;
  /** Set when the frame is not complete in this segment. */
  fragment?: { have: number; need: number };
  crcOk?: boolean;
  status?: string;
  mac?: string;
  ip?: string;
  port?: number;
  vnet?: number;
  /** VL3_REQ address type. */
  type?: number;
  /** LOG_REQ byte budget. */
  count?: number;
  /** LOG_ACK entry counts. */
  entries?: { vl2: number; vl3: number };
  /** vnet ids named by LOG_ACK entries. */
  vnets?: number[];
  /** LOG_RM id count. */
  ids?: number;
  /** Payload that does not fit the op (the frame is shown but not parsed). */
  error?: string;
}

export interface SvpInfo {
  messages: SvpMessageInfo[];
}

export interface PacketRecord {
  link?: LinkInfo;
  arp?: ArpInfo;
  ip?: IpInfo;
  udp?: UdpInfo;
  tcp?: TcpInfo;
  icmp?: IcmpInfo;
  vxlan?: VxlanInfo;
  svp?: SvpInfo;
  /** Layer that ran out of bytes, e.g. "IPv4 header (12 of 20 bytes)". */
  truncated?: string;
  /** Something decodable but not understood, e.g. "ethertype 0x88cc". */
  note?: string;
}

export interface DecodeOptions {
  vxlanPort?: number;
  svpPort?: number;
}

export interface DecodedPacket {
  record: PacketRecord;
  line: string;
}

// ---------------------------------------------------------------------------------------
// Entry points

/** Decodes one captured frame; never throws. */
export function decodeFrame(buf: Uint8Array, link: LinkType = 'ethernet', opts: DecodeOptions = {}): PacketRecord {
  const ctx: Ctx = {
    buf: Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength),
    vxlanPort: opts.vxlanPort ?? VXLAN_PORT,
    svpPort: opts.svpPort ?? SVP_DEFAULT_PORT,
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

// ---------------------------------------------------------------------------------------
// Decoding

interface Ctx {
  buf: Buffer;
  vxlanPort: number;
  svpPort: number;
}

/** Nesting bound for VXLAN-in-VXLAN (a crafted packet must not recurse forever). */
const MAX_DEPTH = 4;

function short(what: string, have: number, need: number): string {
  return `${what} (${Math.max(0, have)} of ${need} bytes)`;
}

function mac(buf: Buffer, off: number): string {
  return macFromBytes(buf, off);
}

function ipv4(buf: Buffer, off: number): string {
  return `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`;
}

function ipv6(buf: Buffer, off: number): string {
  return new ipaddr.IPv6(Array.from(buf.subarray(off, off + 16))).toRFC5952String();
}

function decodeLink(ctx: Ctx, rec: PacketRecord, link: LinkType, off: number, end: number, depth: number): void {
  switch (link) {
    case 'ethernet':
      return decodeEthernet(ctx, rec, off, end, depth);
    case 'linux_sll':
      return decodeSll(ctx, rec, off, end, depth);
    case 'linux_sll2':
      return decodeSll2(ctx, rec, off, end, depth);
    case 'raw': {
      rec.link = { kind: 'raw' };
      if (end - off < 1) {
        rec.truncated = short('IP header', end - off, 20);
        return;
      }
      const v = ctx.buf[off] >> 4;
      return decodeL3(ctx, rec, v === 6 ? ETHERTYPE.IPV6 : ETHERTYPE.IPV4, off, end, depth);
    }
  }
}

function decodeEthernet(ctx: Ctx, rec: PacketRecord, off: number, end: number, depth: number): void {
  const b = ctx.buf;
  const label = depth > 0 ? 'inner Ethernet header' : 'Ethernet header';
  if (end - off < 14) {
    rec.truncated = short(label, end - off, 14);
    return;
  }
  const link: LinkInfo = { kind: 'ethernet', dst: mac(b, off), src: mac(b, off + 6) };
  rec.link = link;
  const next = decodeVlanTags(ctx, rec, link, b.readUInt16BE(off + 12), off + 14, end);
  if (next === undefined) return;
  decodeL3(ctx, rec, link.ethertype!, next, end, depth);
}

/** Reads 802.1Q/802.1ad tags starting with `ethertype` at `off`; returns the L3 offset. */
function decodeVlanTags(ctx: Ctx, rec: PacketRecord, link: LinkInfo, ethertype: number, off: number, end: number): number | undefined {
  const b = ctx.buf;
  let type = ethertype;
  while (type === ETHERTYPE.VLAN || type === ETHERTYPE.QINQ) {
    if (end - off < 4) {
      link.ethertype = type;
      rec.truncated = short('802.1Q tag', end - off, 4);
      return undefined;
    }
    const tci = b.readUInt16BE(off);
    if (link.vlan === undefined) {
      link.vlan = tci & 0x0fff;
      link.pcp = tci >> 13;
    } else {
      (link.innerVlans ??= []).push(tci & 0x0fff);
    }
    type = b.readUInt16BE(off + 2);
    off += 4;
  }
  link.ethertype = type;
  return off;
}

const SLL_DIRECTIONS = ['host', 'broadcast', 'multicast', 'otherhost', 'outgoing'];

function decodeSll(ctx: Ctx, rec: PacketRecord, off: number, end: number, depth: number): void {
  const b = ctx.buf;
  if (end - off < 16) {
    rec.truncated = short('Linux cooked header', end - off, 16);
    return;
  }
  const pktType = b.readUInt16BE(off);
  const addrLen = b.readUInt16BE(off + 4);
  const link: LinkInfo = { kind: 'sll', direction: SLL_DIRECTIONS[pktType] ?? `type ${pktType}` };
  if (addrLen === 6) link.src = mac(b, off + 6);
  rec.link = link;
  const next = decodeVlanTags(ctx, rec, link, b.readUInt16BE(off + 14), off + 16, end);
  if (next === undefined) return;
  decodeL3(ctx, rec, link.ethertype!, next, end, depth);
}

function decodeSll2(ctx: Ctx, rec: PacketRecord, off: number, end: number, depth: number): void {
  const b = ctx.buf;
  if (end - off < 20) {
    rec.truncated = short('Linux cooked v2 header', end - off, 20);
    return;
  }
  const pktType = b[off + 10];
  const addrLen = b[off + 11];
  const link: LinkInfo = {
    kind: 'sll2',
    ifindex: b.readUInt32BE(off + 4),
    direction: SLL_DIRECTIONS[pktType] ?? `type ${pktType}`,
  };
  if (addrLen === 6) link.src = mac(b, off + 12);
  rec.link = link;
  const next = decodeVlanTags(ctx, rec, link, b.readUInt16BE(off), off + 20, end);
  if (next === undefined) return;
  decodeL3(ctx, rec, link.ethertype!, next, end, depth);
}

function decodeL3(ctx: Ctx, rec: PacketRecord, ethertype: number, off: number, end: number, depth: number): void {
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

function decodeL4(ctx: Ctx, rec: PacketRecord, proto: number, ipVersion: 4 | 6, off: number, end: number, depth: number): void {
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
  decodeEthernet(ctx, inner, off + VXLAN_HEADER_BYTES, end, depth + 1);
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

// ---------------------------------------------------------------------------------------
// SVP

function idHex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

function looksLikeSvpHeader(b: Buffer, off: number): boolean {
  const op = b.readUInt16BE(off + 2);
  return b.readUInt16BE(off) === SVP_VERSION && (isRequestOp(op) || isResponseOp(op));
}

/**
 * Every SVP frame in one TCP segment's payload. A segment that starts mid-frame (the rest
 * of a frame sent earlier) shows up as a leading "fragment"; a frame that continues in the
 * next segment is marked with `fragment: { have, need }`.
 */
export function decodeSvpSegment(payload: Buffer): SvpInfo {
  const messages: SvpMessageInfo[] = [];
  let off = 0;
  while (off < payload.length) {
    const left = payload.length - off;
    if (left < SVP_HEADER_BYTES) {
      messages.push({ op: 'fragment', fragment: { have: left, need: SVP_HEADER_BYTES } });
      break;
    }
    if (!looksLikeSvpHeader(payload, off)) {
      // Mid-stream bytes: we cannot find the next frame boundary without reassembly.
      messages.push({ op: 'fragment', fragment: { have: left, need: 0 } });
      break;
    }
    const op = payload.readUInt16BE(off + 2);
    const size = payload.readUInt32BE(off + 4);
    const info: SvpMessageInfo = { op: opName(op), opCode: op, id: idHex(payload.readUInt32BE(off + 8)), size };
    messages.push(info);
    const total = SVP_HEADER_BYTES + size;
    if (left < total) {
      info.fragment = { have: left, need: total };
      break;
    }
    const header = payload.subarray(off, off + SVP_HEADER_BYTES);
    const body = payload.subarray(off + SVP_HEADER_BYTES, off + total);
    info.crcOk = frameCrc(header, body) === payload.readUInt32BE(off + 12);
    describeSvpMessage(info, op, body);
    off += total;
  }
  return { messages };
}

function describeSvpMessage(info: SvpMessageInfo, op: number, payload: Buffer): void {
  let msg;
  try {
    msg = decodeMessage({ op, payload });
  } catch (err) {
    info.error = (err as Error).message;
    return;
  }
  switch (msg.op) {
    case SvpOp.VL2_REQ:
    case SvpOp.SHOOTDOWN:
      info.mac = macFromBytes(msg.mac);
      info.vnet = msg.vnetId;
      return;
    case SvpOp.VL2_ACK:
      info.status = statusName(msg.status);
      info.ip = ipFromBytes(msg.ip);
      info.port = msg.port;
      return;
    case SvpOp.VL3_REQ:
      info.ip = ipFromBytes(msg.ip);
      info.type = msg.type;
      info.vnet = msg.vnetId;
      return;
    case SvpOp.VL3_ACK:
      info.status = statusName(msg.status);
      info.mac = macFromBytes(msg.mac);
      info.ip = ipFromBytes(msg.ip);
      info.port = msg.port;
      return;
    case SvpOp.BULK_REQ:
      info.type = msg.type;
      return;
    case SvpOp.BULK_ACK:
      info.status = statusName(msg.status);
      info.type = msg.type;
      return;
    case SvpOp.LOG_REQ:
      info.count = msg.count;
      info.ip = ipFromBytes(msg.ip);
      return;
    case SvpOp.LOG_ACK: {
      info.status = statusName(msg.status);
      let vl2 = 0;
      let vl3 = 0;
      const vnets = new Set<number>();
      for (const e of msg.entries) {
        if (e.type === LogType.VL2) vl2++;
        else vl3++;
        vnets.add(e.vnetId);
      }
      info.entries = { vl2, vl3 };
      info.vnets = [...vnets];
      return;
    }
    case SvpOp.LOG_RM:
      info.ids = msg.ids.length;
      return;
    case SvpOp.LOG_RM_ACK:
      info.status = statusName(msg.status);
      return;
    case SvpOp.PING:
    case SvpOp.PONG:
      return;
  }
}

// ---------------------------------------------------------------------------------------
// Rendering

function hostPort(ip: IpInfo, which: 'src' | 'dst', port: number): string {
  const addr = ip[which];
  return ip.version === 6 ? `[${addr}]:${port}` : `${addr}:${port}`;
}

function renderLink(link: LinkInfo | undefined): string {
  if (!link || link.kind === 'raw') return '';
  let s = link.kind === 'ethernet' ? `${link.src} > ${link.dst}` : `${link.kind} ${link.direction}${link.src ? ` ${link.src}` : ''}`;
  if (link.vlan !== undefined) s += ` vlan ${link.vlan}${link.pcp ? ` p${link.pcp}` : ''}`;
  if (link.innerVlans) s += link.innerVlans.map((v) => ` vlan ${v}`).join('');
  return s;
}

function renderArp(a: ArpInfo): string {
  if (a.op === 'request') {
    const gratuitous = a.senderIp === a.targetIp ? ' (gratuitous)' : '';
    return `ARP who-has ${a.targetIp} tell ${a.senderIp}${gratuitous}`;
  }
  if (a.op === 'reply') return `ARP ${a.senderIp} is-at ${a.senderMac}`;
  return `ARP ${a.op} ${a.senderIp} (${a.senderMac}) > ${a.targetIp} (${a.targetMac})`;
}

function renderIcmp(i: IcmpInfo): string {
  let s = `${i.version === 4 ? 'ICMP' : 'ICMPv6'} ${i.name}`;
  if (i.id !== undefined) s += ` id ${i.id} seq ${i.seq}`;
  if (i.type === 135 && i.version === 6) s = `ICMPv6 neighbor solicitation who-has ${i.target}`;
  if (i.type === 136 && i.version === 6) s = `ICMPv6 neighbor advertisement ${i.target}${i.lladdr ? ` is-at ${i.lladdr}` : ''}`;
  else if (i.lladdr) s += ` lladdr ${i.lladdr}`;
  if (i.code !== 0) s += ` code ${i.code}`;
  return s;
}

function hostPortText(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

function renderSvpMessage(m: SvpMessageInfo): string {
  if (m.op === 'fragment') {
    return m.fragment!.need > 0
      ? `fragment (partial header, ${m.fragment!.have} of ${m.fragment!.need} bytes)`
      : `fragment (${m.fragment!.have} bytes mid-frame)`;
  }
  let s = `${m.op} id ${m.id}`;
  if (m.fragment) return `${s} fragment (${m.fragment.have} of ${m.fragment.need} bytes)`;
  if (m.error) return `${s} bad payload: ${m.error}${m.crcOk === false ? ' bad-crc' : ''}`;
  if (m.status !== undefined) s += ` ${m.status}`;
  switch (m.opCode) {
    case SvpOp.VL2_REQ:
    case SvpOp.SHOOTDOWN:
      s += ` mac ${m.mac} vnet ${m.vnet}`;
      break;
    case SvpOp.VL2_ACK:
      if (m.ip !== undefined && m.status === 'OK') s += ` at ${hostPortText(m.ip, m.port!)}`;
      break;
    case SvpOp.VL3_REQ:
      s += ` ip ${m.ip} type ${m.type} vnet ${m.vnet}`;
      break;
    case SvpOp.VL3_ACK:
      if (m.mac !== undefined && m.status === 'OK') s += ` mac ${m.mac} at ${hostPortText(m.ip!, m.port!)}`;
      break;
    case SvpOp.BULK_REQ:
    case SvpOp.BULK_ACK:
      s += ` type ${m.type}`;
      break;
    case SvpOp.LOG_REQ:
      s += ` count ${m.count} ul3 ${m.ip}`;
      break;
    case SvpOp.LOG_ACK:
      if (m.entries) s += ` ${m.entries.vl2 + m.entries.vl3} entries (${m.entries.vl2} VL2, ${m.entries.vl3} VL3)`;
      break;
    case SvpOp.LOG_RM:
      if (m.ids !== undefined) s += ` ${m.ids} ids`;
      break;
  }
  if (m.crcOk === false) s += ' bad-crc';
  return s;
}

/** The L3-and-up part of a record: what an inner frame or a plain packet shows. */
function renderPayload(rec: PacketRecord, withTruncation: boolean): string {
  const parts: string[] = [];
  if (rec.arp) parts.push(renderArp(rec.arp));
  if (rec.ip) {
    const ip = rec.ip;
    const v = `IPv${ip.version}`;
    if (rec.udp) {
      parts.push(`${v} ${hostPort(ip, 'src', rec.udp.srcPort)} > ${hostPort(ip, 'dst', rec.udp.dstPort)} UDP len ${Math.max(0, rec.udp.length - 8)}`);
    } else if (rec.tcp) {
      const t = rec.tcp;
      parts.push(`${v} ${hostPort(ip, 'src', t.srcPort)} > ${hostPort(ip, 'dst', t.dstPort)} TCP [${t.flags}] seq ${t.seq} ack ${t.ack} len ${t.payloadLength}`);
    } else if (rec.icmp) {
      parts.push(`${v} ${ip.src} > ${ip.dst} ${renderIcmp(rec.icmp)}`);
    } else {
      parts.push(`${v} ${ip.src} > ${ip.dst} proto ${ip.proto}${ip.fragment ? ' fragment' : ''}`);
    }
  }
  if (rec.note) parts.push(rec.note);
  if (withTruncation && rec.truncated) parts.push(`truncated ${rec.truncated}`);
  return parts.join(' ');
}

function joinParts(...parts: string[]): string {
  return parts.filter((s) => s.length > 0).join(' ');
}

/** Everything but the top-level truncation marker. */
function renderBody(rec: PacketRecord): string {
  if (rec.vxlan && rec.ip && rec.udp) {
    const x = rec.vxlan;
    const outer = `VXLAN ${hostPort(rec.ip, 'src', rec.udp.srcPort)} > ${hostPort(rec.ip, 'dst', rec.udp.dstPort)}`;
    const flags = `flags 0x${x.flags.toString(16).padStart(2, '0')}${x.i ? ' [I]' : ' [no I]'}`;
    const innerRest = x.inner.vxlan ? renderRecord(x.inner) : renderPayload(x.inner, true);
    return `${outer} ${flags} vni ${x.vni}: ${joinParts(renderLink(x.inner.link), innerRest)}`;
  }
  if (rec.svp && rec.ip && rec.tcp) {
    const t = rec.tcp;
    const head = `SVP ${hostPort(rec.ip, 'src', t.srcPort)} > ${hostPort(rec.ip, 'dst', t.dstPort)} [${t.flags}] len ${t.payloadLength}`;
    return `${head}: ${rec.svp.messages.map(renderSvpMessage).join('; ')}`;
  }
  const payload = renderPayload(rec, false);
  // Ethernet addresses matter for ARP and for anything not IP; for plain IP they are noise.
  return rec.arp || !rec.ip ? joinParts(renderLink(rec.link), payload) : payload;
}

/**
 * One line per packet, tcpdump-like; VXLAN and SVP get their own lead word, and a packet
 * cut short at its outer layers starts with "truncated <layer> (<have> of <need> bytes)".
 */
export function renderRecord(rec: PacketRecord): string {
  const body = renderBody(rec);
  if (!rec.truncated) return body;
  return body ? `truncated ${rec.truncated}: ${body}` : `truncated ${rec.truncated}`;
}
