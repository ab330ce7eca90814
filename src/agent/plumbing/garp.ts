/**
 * Gratuitous ARP: an ARP reply "ip is-at mac" to the broadcast address, so every local
 * instance refreshes its neighbour entry. garpFrame builds the frame (both backends send
 * it: the userspace one injects it into the vnet's TAPs); sendGarp sends it out of a vnet's
 * bridge with a raw AF_PACKET socket (kernel backend). There the vxlan port's ARP proxy
 * consumes it, so it never leaves the node, and the bridge does not learn source MACs of
 * frames it sends itself.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isIPv4 } from 'node:net';
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

// One AF_PACKET send. A child process, not libpcap in the agent: cap's handles crash the
// process when the garbage collector destroys them (Pcap::~Pcap -> AsyncWrap::EmitDestroy).
const SEND_FRAME = 'import socket,sys\ns=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\ns.bind((sys.argv[1],0))\ns.send(bytes.fromhex(sys.argv[2]))';

// The system interpreter when there is one: version-manager shims on PATH cost ~100 ms.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** Sends the gratuitous ARP out of `device` (python3's AF_PACKET socket; the agent runs as root). */
export function sendGarp(device: string, ip: string, mac: string): Promise<void> {
  const frame = garpFrame(ip, mac);
  return new Promise((resolve, reject) => {
    execFile(PYTHON, ['-c', SEND_FRAME, device, frame.toString('hex')], { timeout: 5000 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`gratuitous ARP on ${device}: ${stderr.trim() || err.message}`));
      else resolve();
    });
  });
}
