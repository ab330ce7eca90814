/** Link layer of `rhumb trace`: Ethernet with 802.1Q/802.1ad tags, Linux cooked (SLL, SLL2), raw IP. */
import { type Ctx, mac, short } from './ctx.js';
import { decodeL3 } from './network.js';
import { ETHERTYPE, type LinkInfo, type LinkType, type PacketRecord } from './records.js';

export function decodeLink(ctx: Ctx, rec: PacketRecord, link: LinkType, off: number, end: number, depth: number): void {
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

export function decodeEthernet(ctx: Ctx, rec: PacketRecord, off: number, end: number, depth: number): void {
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
