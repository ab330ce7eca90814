/**
 * Gratuitous ARP: an ARP reply "ip is-at mac" to the broadcast address, so every local
 * instance refreshes its neighbour entry; for an IPv6 address, its equivalent, an
 * unsolicited neighbour advertisement (Override set) to all nodes. garpFrame and
 * unsolicitedNaFrame build the frames, announceFrame the one for an address (both
 * backends send it: the userspace one injects it into the vnet's TAPs); sendGarp sends it
 * out of a vnet's bridge with a raw AF_PACKET socket, in process (kernel backend). There
 * the vxlan port's ARP proxy consumes an ARP, and a multicast advert finds no forwarding
 * entry, so neither leaves the node; the bridge does not learn source MACs of frames it
 * sends itself.
 */
import { isIPv4, isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';
import { sendFrame } from '../../dataplane/packet.js';
import { macHex } from '../../net/addr.js';

/** The 42-byte Ethernet frame (pure). */
export function garpFrame(ip: string, mac: string): Buffer {
  if (!isIPv4(ip)) throw new TypeError(`gratuitous ARP needs an IPv4 address, got ${ip}`);
  const m = Buffer.from(macHex(mac), 'hex');
  const a = Buffer.from(ip.split('.').map(Number));
  const f = Buffer.alloc(42);
  f.fill(0xff, 0, 6); // broadcast
  m.copy(f, 6);
  f.writeUInt16BE(0x0806, 12);
  f.writeUInt16BE(1, 14); // Ethernet
  f.writeUInt16BE(0x0800, 16); // IPv4
  f[18] = 6;
  f[19] = 4;
  f.writeUInt16BE(2, 20); // reply
  m.copy(f, 22);
  a.copy(f, 28);
  f.fill(0xff, 32, 38);
  a.copy(f, 38);
  return f;
}

const ALL_NODES = Buffer.from(ipaddr.parse('ff02::1').toByteArray());

/** The 16-bit one's complement sum of data, folded (RFC 1071). */
function csum16(data: Buffer, start = 0): number {
  let sum = start;
  for (let i = 0; i + 1 < data.length; i += 2) sum += data.readUInt16BE(i);
  if (data.length % 2) sum += data[data.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/**
 * The 86-byte unsolicited neighbour advertisement "ip is at mac" (RFC 4861 7.2.6): from
 * ip to ff02::1 (Ethernet 33:33:00:00:00:01), hop limit 255, Override set, Solicited not,
 * with the target link-layer address option. Pure.
 */
export function unsolicitedNaFrame(ip: string, mac: string): Buffer {
  if (!isIPv6(ip)) throw new TypeError(`a neighbour advertisement needs an IPv6 address, got ${ip}`);
  const m = Buffer.from(macHex(mac), 'hex');
  const a = Buffer.from(ipaddr.parse(ip).toByteArray());
  const f = Buffer.alloc(86);
  Buffer.from('333300000001', 'hex').copy(f, 0);
  m.copy(f, 6);
  f.writeUInt16BE(0x86dd, 12);
  f[14] = 0x60;
  f.writeUInt16BE(32, 18); // payload length
  f[20] = 58; // ICMPv6
  f[21] = 255;
  a.copy(f, 22);
  ALL_NODES.copy(f, 38);
  const icmp = f.subarray(54);
  icmp[0] = 136; // neighbour advertisement
  icmp[4] = 0x20; // Override
  a.copy(icmp, 8);
  icmp[24] = 2; // target link-layer address
  icmp[25] = 1;
  m.copy(icmp, 26);
  const pseudo = Buffer.concat([a, ALL_NODES, Buffer.from([0, 0, 0, 32, 0, 0, 0, 58])]);
  icmp.writeUInt16BE(~csum16(icmp, csum16(pseudo)) & 0xffff, 2);
  return f;
}

/** The announcement of an address: a gratuitous ARP (IPv4) or an unsolicited neighbour advertisement (IPv6). */
export function announceFrame(ip: string, mac: string): Buffer {
  return isIPv6(ip) ? unsolicitedNaFrame(ip, mac) : garpFrame(ip, mac);
}

/** Sends the announcement of ip (announceFrame) out of `device` (a raw AF_PACKET socket; the agent runs as root). */
export function sendGarp(device: string, ip: string, mac: string): void {
  const frame = announceFrame(ip, mac);
  try {
    sendFrame(device, frame);
  } catch (err) {
    throw new Error(`announcing ${ip} on ${device}: ${(err as Error).message}`, { cause: err });
  }
}
