/**
 * Gratuitous ARP into a vnet's bridge: an ARP reply "ip is-at mac" to the broadcast
 * address, injected with libpcap (cap) on the bridge device, so every local instance
 * refreshes its neighbour entry. The vxlan port's ARP proxy consumes it: it never leaves
 * the node. The bridge does not learn source MACs of frames it sends itself.
 */
import { createRequire } from 'node:module';
import { isIPv4 } from 'node:net';
import { macHex } from './names.js';

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

interface CapHandle {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  send(buffer: Buffer, nBytes?: number): void;
  close(): void;
}

const require = createRequire(import.meta.url);

export function sendGarp(device: string, ip: string, mac: string): void {
  const { Cap } = require('cap') as { Cap: new () => CapHandle };
  const cap = new Cap();
  const frame = garpFrame(ip, mac);
  // The filter matches nothing we care about: the handle is only used to send.
  cap.open(device, 'arp and ether src 00:00:00:00:00:01', 65536, Buffer.alloc(65536));
  try {
    cap.send(frame, frame.length);
  } finally {
    cap.close();
  }
}
