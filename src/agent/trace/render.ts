/** One line per decoded packet for `rhumb trace`, tcpdump-like. Pure. */
import { SvpOp } from '../../svp/codec.js';
import type { ArpInfo, IcmpInfo, IpInfo, LinkInfo, PacketRecord, SvpMessageInfo } from './records.js';

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
