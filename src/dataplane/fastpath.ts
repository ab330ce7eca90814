/**
 * Typed face of the native userspace fast path (native/src/fastpath.c). The C side owns
 * every packet: TAP devices (one per NIC, created in the namespace its spec names: the
 * userspace backend keeps them in the node's, ../agent/userspace/port.ts), the
 * underlay UDP sockets and a forwarding thread. From here we only add and remove NICs,
 * write the tables in batches, answer misses and read counters.
 *
 *   const fp = FastPath.open({ underlayIp: '198.18.0.1', underlayMtu: 1500 }, (miss) => ...);
 *   const id = fp.addNic({ netns: '/run/netns/i1', ifname: 'eth0', mac, ip, vnet, vlan: 0, mtu: 1450 });
 *   fp.update([{ op: 'l3set', vnet, ip: '10.0.0.7', mac: '02:08:20:aa:bb:cc', vlan: 0 }, { op: 'l2set', vnet, mac, underlay, vlan: 0 }]);
 *   fp.setPeers(['198.18.0.2', '198.18.0.3']);   // VXLAN is accepted from these only
 *   fp.counters(id); fp.close();
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isIP, isIPv4 } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ipFromBytes, ipToBytes, macFromBytes, macToBytes } from '../net/addr.js';

/** Offloads the engine can use; each is probed at start and can be switched off. */
export const OFFLOADS = ['tso', 'uso', 'gso', 'gro', 'coalesce', 'mmsg'] as const;
export type Offload = (typeof OFFLOADS)[number];

export interface FastPathOptions {
  underlayIp: string;
  underlayMtu?: number;
  port?: number;
  /** Offloads not to use (`--no-offload tso,gro`). */
  disable?: readonly Offload[];
  /**
   * Who receives from the underlay: receive threads beside the transmit thread ('split',
   * the default), or the transmit thread itself ('one': fewer wakeups and hand-offs, less
   * CPU per byte on a 2-CPU machine, but less of CPUs shared with busy neighbours).
   */
  threads?: FastPathThreads;
}

export type FastPathThreads = 'split' | 'one';
const THREADS: Record<FastPathThreads, number> = { split: 0, one: 1 };

export interface OffloadState {
  vnethdr: boolean;
  tso: boolean;
  uso: boolean;
  gso: boolean;
  gro: boolean;
  coalesce: boolean;
  mmsg: boolean;
  probedTso: boolean;
  probedUso: boolean;
  probedGso: boolean;
  probedGro: boolean;
  /** The transmit thread also receives (threads 'one'). */
  oneThread: boolean;
}

/**
 * What the engine asks about: a MAC or an IP on a vnet (a frame waits for the answer), or
 * an underlay address VXLAN arrived from that is not a known peer (the datagram was
 * dropped; at most one such upcall a second).
 */
export type FastPathMiss = { kind: 'l2'; vnet: number; mac: string } | { kind: 'l3'; vnet: number; ip: string } | { kind: 'peer'; address: string };

export interface NicSpec {
  /** Path of the instance's network namespace; '' = this process's namespace. */
  netns: string;
  ifname: string;
  mac: string;
  ip: string;
  vnet: number;
  vlan: number;
  mtu: number;
  allowMacSpoofing?: boolean;
  allowIpSpoofing?: boolean;
  /** A gateway port: its MAC is every node's gateway's, so frames from the underlay may carry it as their source. */
  sharedMac?: boolean;
  /** The TAP outlives this process (TUNSETPERSIST); removeNic still deletes it. */
  persist?: boolean;
  /** Attach to an existing TAP of that name (after a restart); fails when there is none. */
  reattach?: boolean;
}

/**
 * Table writes. `vlan` (l2set, l3set) is the fabric VLAN of the NIC the entry names
 * (default 0): the engine answers ARP/ND and forwards only between NICs of one VLAN.
 */
export type TableOp =
  | { op: 'l2set'; vnet: number; mac: string; underlay: string; vlan?: number }
  | { op: 'l2del'; vnet: number; mac: string }
  | { op: 'l3set'; vnet: number; ip: string; mac: string; vlan?: number }
  | { op: 'l3del'; vnet: number; ip: string }
  | { op: 'l2notfound'; vnet: number; mac: string }
  | { op: 'l3notfound'; vnet: number; ip: string };

export type Counters = Record<string, number>;

interface NativeFastPath {
  addNic(spec: { netns: string; ifname: string; mac: Buffer; ip: Buffer; vnet: number; vlan: number; mtu: number; allowMac: boolean; allowIp: boolean; sharedMac: boolean; persist: boolean; reattach: boolean }): number;
  removeNic(id: number): void;
  update(records: Buffer): void;
  entries(vnet: number): Buffer;
  setPeers(addresses: Buffer): void;
  counters(id?: number): Float64Array;
  inject(vnet: number, frame: Buffer): void;
  offloads(): OffloadState;
  close(): void;
}

interface NativeFastPathClass {
  new (opts: Record<string, unknown>, onMiss: (kind: number, vnet: number, key: Buffer) => void): NativeFastPath;
  counterNames(): string[];
}

let addon: { FastPath: NativeFastPathClass } | undefined;

function native(): { FastPath: NativeFastPathClass } {
  if (addon) return addon;
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '../../build/Release/rhumb_native.node'), join(here, '../../../build/Release/rhumb_native.node')];
  const path = candidates.find((p) => existsSync(p));
  if (!path) throw new Error(`rhumb native addon not built (looked for ${candidates.join(', ')}); run npm run build:native`);
  addon = createRequire(import.meta.url)(path) as { FastPath: NativeFastPathClass };
  return addon;
}

// The conversions are net/addr's; these wrappers keep the data plane's own error wording.

export function macBytes(mac: string): Buffer {
  try {
    return macToBytes(mac);
  } catch {
    throw new TypeError(`bad MAC ${JSON.stringify(mac)}`);
  }
}

export function ipv4Bytes(ip: string): Buffer {
  if (!isIPv4(ip)) throw new TypeError(`bad IPv4 address ${JSON.stringify(ip)}`);
  return Buffer.from(ipToBytes(ip).subarray(12));
}

/** 16 bytes: IPv6, or IPv4-mapped (::ffff:a.b.c.d). */
export function ipKey(ip: string): Buffer {
  if (!isIP(ip)) throw new TypeError(`bad IP address ${JSON.stringify(ip)}`);
  return ipToBytes(ip);
}

/** Canonical text of a 16-byte key (IPv4-mapped as the dotted quad). */
export function ipKeyText(k: Buffer): string {
  return ipFromBytes(k);
}

const OPCODE = { l2set: 1, l2del: 2, l3set: 3, l3del: 4, l2notfound: 5, l3notfound: 6 } as const;

/** Packs table operations into the engine's 32-byte records (validates everything first). */
export function encodeOps(ops: readonly TableOp[]): Buffer {
  const b = Buffer.alloc(ops.length * 32);
  ops.forEach((o, i) => {
    const r = b.subarray(i * 32, i * 32 + 32);
    if (!Number.isInteger(o.vnet) || o.vnet < 0 || o.vnet > 0xffffff) throw new RangeError(`bad vnet ${o.vnet}`);
    r[0] = OPCODE[o.op];
    if ('vlan' in o && o.vlan !== undefined) {
      if (!Number.isInteger(o.vlan) || o.vlan < 0 || o.vlan > 4095) throw new RangeError(`bad vlan ${o.vlan}`);
      r.writeUInt16LE(o.vlan, 2);
    }
    r.writeUInt32LE(o.vnet, 4);
    if ('mac' in o) macBytes(o.mac).copy(r, 8);
    if ('ip' in o) ipKey(o.ip).copy(r, 16);
    if (o.op === 'l2set') ipKey(o.underlay).copy(r, 16);
  });
  return b;
}

export interface TableEntries {
  fdb: Array<{ mac: string; underlay: string }>;
  neighbours: Array<{ ip: string; mac: string }>;
}

export function decodeEntries(b: Buffer): TableEntries {
  const out: TableEntries = { fdb: [], neighbours: [] };
  for (let o = 0; o + 32 <= b.length; o += 32) {
    const r = b.subarray(o, o + 32);
    if (r[0] === 1) out.fdb.push({ mac: macFromBytes(r.subarray(8, 14)), underlay: ipKeyText(r.subarray(16, 32)) });
    else if (r[0] === 3) out.neighbours.push({ ip: ipKeyText(r.subarray(16, 32)), mac: macFromBytes(r.subarray(8, 14)) });
  }
  return out;
}

/** Parses `--no-offload tso,gro` (also 'all'). */
export function parseOffloadList(s: string): Offload[] {
  const out: Offload[] = [];
  for (const raw of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    if (raw === 'all') return [...OFFLOADS];
    if (!(OFFLOADS as readonly string[]).includes(raw)) throw new RangeError(`unknown offload ${raw} (one of ${OFFLOADS.join(', ')}, all)`);
    out.push(raw as Offload);
  }
  return out;
}

export class FastPath {
  private closed = false;
  static readonly counterNames: readonly string[] = [];

  private constructor(private readonly n: NativeFastPath, private readonly names: readonly string[]) {}

  static open(opts: FastPathOptions, onMiss: (miss: FastPathMiss) => void): FastPath {
    const a = native();
    const off = new Set(opts.disable ?? []);
    const n = new a.FastPath(
      {
        underlayIp: ipv4Bytes(opts.underlayIp),
        underlayMtu: opts.underlayMtu ?? 1500,
        port: opts.port ?? 4789,
        tso: !off.has('tso'),
        uso: !off.has('uso'),
        gso: !off.has('gso'),
        gro: !off.has('gro'),
        coalesce: !off.has('coalesce'),
        mmsg: !off.has('mmsg'),
        threads: THREADS[opts.threads ?? 'split'],
      },
      (kind, vnet, key) => {
        if (kind === 2) onMiss({ kind: 'l2', vnet, mac: macFromBytes(key) });
        else if (kind === 4) onMiss({ kind: 'peer', address: ipKeyText(key) });
        else onMiss({ kind: 'l3', vnet, ip: ipKeyText(key) });
      },
    );
    return new FastPath(n, a.FastPath.counterNames());
  }

  addNic(s: NicSpec): number {
    return this.n.addNic({
      netns: s.netns,
      ifname: s.ifname,
      mac: macBytes(s.mac),
      ip: ipKey(s.ip),
      vnet: s.vnet,
      vlan: s.vlan,
      mtu: s.mtu,
      allowMac: s.allowMacSpoofing === true,
      allowIp: s.allowIpSpoofing === true,
      sharedMac: s.sharedMac === true,
      persist: s.persist === true,
      reattach: s.reattach === true,
    });
  }

  removeNic(id: number): void {
    this.n.removeNic(id);
  }

  /** Applies every operation, or none (bad input throws before anything changes). */
  update(ops: readonly TableOp[]): void {
    if (ops.length > 0) this.n.update(encodeOps(ops));
  }

  entries(vnet: number): TableEntries {
    return decodeEntries(this.n.entries(vnet));
  }

  /**
   * The underlay addresses of the other nodes: VXLAN from any other address is dropped
   * (counted as drop_unknown_peer). Replaces the previous set; none until first set.
   */
  setPeers(addresses: readonly string[]): void {
    const unique = [...new Set(addresses)];
    const b = Buffer.alloc(unique.length * 4);
    unique.forEach((a, i) => ipv4Bytes(a).copy(b, i * 4));
    this.n.setPeers(b);
  }

  private named(v: Float64Array): Counters {
    const out: Counters = {};
    this.names.forEach((name, i) => (out[name] = v[i]!));
    return out;
  }

  /** The NIC's counters, or the engine's (underlay-side drops) without an id. */
  counters(id?: number): Counters {
    return this.named(id === undefined ? this.n.counters() : this.n.counters(id));
  }

  counterNames(): readonly string[] {
    return this.names;
  }

  /** Writes a frame into every local TAP of the vnet except the one with the frame's source MAC. */
  inject(vnet: number, frame: Buffer): void {
    this.n.inject(vnet, frame);
  }

  offloads(): OffloadState {
    return this.n.offloads();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.n.close();
  }
}
