/**
 * What `rhumb trace` decodes a packet into: JSON-friendly records (strings and numbers
 * only), one per layer, and the protocol numbers the decoder knows.
 */
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
