/**
 * Live capture for `rhumb trace`: libpcap through the `cap` package, every packet decoded
 * by ./decode.ts. Events ('packet', 'error', 'close') or `for await` over the capture.
 */
import { EventEmitter } from 'node:events';
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { decodeFrame, matchesVnet } from './decode.js';
import type { DecodeOptions, LinkType, PacketRecord } from './records.js';
import { renderRecord } from './render.js';

/** What rhumb puts on the wire: VXLAN and SVP. */
export const DEFAULT_FILTER = 'udp port 4789 or tcp port 1296';
/** Kernel capture buffer: room for bursts without holding much memory. */
export const DEFAULT_BUFFER_BYTES = 4 * 1024 * 1024;
/** Largest frame we copy out (cap's snaplen is 65535). */
const PACKET_BUFFER_BYTES = 65535;
/** Packets held for a slow async-iterator consumer before we start dropping. */
const MAX_QUEUED = 10_000;

// The `cap` package ships no types: the slice of its API we use.
interface CapHandle {
  open(device: string, filter: string, bufSize: number, buffer: Buffer): string;
  close(): boolean;
  on(event: 'packet', fn: (nbytes: number, truncated: boolean) => void): void;
  removeAllListeners(event?: string): void;
}
interface CapModule {
  Cap: new () => CapHandle;
}

const require = createRequire(import.meta.url);
let capModule: CapModule | undefined;
function loadCap(): CapModule {
  capModule ??= require('cap') as CapModule;
  return capModule;
}

export interface CaptureOptions extends DecodeOptions {
  /** Interface name; default: the first non-loopback interface that is up, else 'any'. */
  iface?: string;
  /** BPF filter; default DEFAULT_FILTER. */
  filter?: string;
  /** Keep only VXLAN with this VNI and SVP naming this vnet. */
  vnet?: number;
  /** libpcap kernel buffer bytes. */
  bufferBytes?: number;
}

export interface CapturedPacket {
  /** Capture time, ms since the epoch (cap does not expose the pcap timestamp). */
  ts: number;
  iface: string;
  /** Bytes captured. */
  length: number;
  record: PacketRecord;
  line: string;
}

/** pcap link type name as `cap` reports it -> our decoder's link type. */
export function linkTypeFromCap(name: string): LinkType {
  switch (name) {
    case 'ETHERNET':
      return 'ethernet';
    case 'LINKTYPE_LINUX_SLL':
      return 'linux_sll';
    case 'RAW':
      return 'raw';
  }
  // cap names types it does not know "Unknown linktype N"; 276 is DLT_LINUX_SLL2.
  const m = /^Unknown linktype (\d+)$/.exec(name);
  if (m && Number(m[1]) === 276) return 'linux_sll2';
  throw new Error(`cannot decode link type ${name}`);
}

export interface InterfaceInfo {
  name: string;
  up: boolean;
  loopback: boolean;
}

/** First interface that is up and not loopback, in the order given; else 'any'. */
export function chooseDefaultInterface(ifaces: readonly InterfaceInfo[]): string {
  return ifaces.find((i) => i.up && !i.loopback)?.name ?? 'any';
}

const IFF_UP = 0x1;
const IFF_LOOPBACK = 0x8;

/** This namespace's interfaces in ifindex order, from /sys/class/net. */
export function listInterfaces(): InterfaceInfo[] {
  const out: Array<InterfaceInfo & { index: number }> = [];
  let names: string[];
  try {
    names = readdirSync('/sys/class/net');
  } catch {
    return [];
  }
  for (const name of names) {
    try {
      const flags = Number.parseInt(readFileSync(`/sys/class/net/${name}/flags`, 'utf8').trim(), 16);
      const index = Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim());
      out.push({ name, index, up: (flags & IFF_UP) !== 0, loopback: (flags & IFF_LOOPBACK) !== 0 });
    } catch {
      // The interface went away while we looked.
    }
  }
  return out.sort((a, b) => a.index - b.index).map(({ name, up, loopback }) => ({ name, up, loopback }));
}

/** What a PacketCapture emits. */
export interface PacketCaptureEvents {
  packet: [packet: CapturedPacket];
  close: [];
  error: [err: Error];
}

/**
 * An open capture. Packets are decoded synchronously in cap's callback (its buffer is
 * reused for the next packet); records matching the vnet filter are emitted.
 */
export class PacketCapture extends EventEmitter<PacketCaptureEvents> implements AsyncIterable<CapturedPacket> {
  readonly iface: string;
  readonly filter: string;
  readonly linkType: LinkType;
  /** Packets seen by the filter, and packets the vnet filter dropped. */
  seen = 0;
  filtered = 0;
  /** Packets dropped because an async iterator consumer fell behind. */
  overflowed = 0;
  private cap: CapHandle | null;
  private readonly buffer = Buffer.alloc(PACKET_BUFFER_BYTES);
  private readonly decodeOpts: DecodeOptions;
  private readonly vnet: number | undefined;
  private closed = false;

  private constructor(opts: CaptureOptions) {
    super();
    this.iface = opts.iface ?? chooseDefaultInterface(listInterfaces());
    this.filter = opts.filter ?? DEFAULT_FILTER;
    this.vnet = opts.vnet;
    this.decodeOpts = { vxlanPort: opts.vxlanPort, svpPort: opts.svpPort };
    const { Cap } = loadCap();
    const cap = new Cap();
    let linkName: string;
    try {
      linkName = cap.open(this.iface, this.filter, opts.bufferBytes ?? DEFAULT_BUFFER_BYTES, this.buffer);
    } catch (err) {
      throw new Error(`cannot capture on ${this.iface}: ${(err as Error).message}`, { cause: err });
    }
    try {
      this.linkType = linkTypeFromCap(linkName);
    } catch (err) {
      cap.close();
      throw new Error(`cannot capture on ${this.iface}: ${(err as Error).message}`, { cause: err });
    }
    this.cap = cap;
    cap.on('packet', (nbytes) => this.onPacket(nbytes));
  }

  /** Opens a capture; throws with the interface name when libpcap refuses. */
  static open(opts: CaptureOptions = {}): PacketCapture {
    if (opts.vnet !== undefined && (!Number.isInteger(opts.vnet) || opts.vnet < 0 || opts.vnet > 0xffffff))
      throw new RangeError(`vnet must be a 24-bit VNI, got ${opts.vnet}`);
    return new PacketCapture(opts);
  }

  private onPacket(nbytes: number): void {
    if (this.closed) return;
    this.seen++;
    const record = decodeFrame(this.buffer.subarray(0, nbytes), this.linkType, this.decodeOpts);
    if (this.vnet !== undefined && !matchesVnet(record, this.vnet)) {
      this.filtered++;
      return;
    }
    this.emit('packet', { ts: Date.now(), iface: this.iface, length: nbytes, record, line: renderRecord(record) });
  }

  /** Stops capturing; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const cap = this.cap;
    this.cap = null;
    if (cap) {
      cap.removeAllListeners('packet');
      cap.close();
    }
    this.emit('close');
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Iterates packets until close(); breaking out of the loop closes the capture. */
  [Symbol.asyncIterator](): AsyncIterator<CapturedPacket> {
    const queue: CapturedPacket[] = [];
    let wake: (() => void) | null = null;
    const onPacket = (p: CapturedPacket) => {
      if (queue.length >= MAX_QUEUED) {
        this.overflowed++;
        return;
      }
      queue.push(p);
      wake?.();
    };
    const onClose = () => wake?.();
    this.on('packet', onPacket);
    this.on('close', onClose);
    const detach = () => {
      this.off('packet', onPacket);
      this.off('close', onClose);
    };
    return {
      next: async (): Promise<IteratorResult<CapturedPacket>> => {
        while (queue.length === 0 && !this.closed) {
          await new Promise<void>((r) => (wake = r));
          wake = null;
        }
        const p = queue.shift();
        if (p) return { value: p, done: false };
        detach();
        return { value: undefined, done: true };
      },
      return: async (): Promise<IteratorResult<CapturedPacket>> => {
        detach();
        this.close();
        return { value: undefined, done: true };
      },
    };
  }
}
