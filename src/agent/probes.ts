/**
 * Underlay reachability probes: ICMP echo to the underlay addresses of peer nodes, with
 * RTT and up/down state exported as Prometheus metrics.
 *
 * The ICMP codec at the top is pure (unit-tested); the Prober below owns raw sockets
 * (the `raw-socket` package, root or CAP_NET_RAW) unless a socket factory is injected.
 */
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { randomInt } from 'node:crypto';
import ipaddr from 'ipaddr.js';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { ipText } from '../net/addr.js';

// ---------------------------------------------------------------------------------------
// ICMP echo codec (pure)

export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
/** Marks our probes so foreign echo replies that happen to share the identifier are ignored. */
export const PROBE_MAGIC = Buffer.from('rhumbprb', 'latin1');

export type IpFamily = 4 | 6;

/** RFC 1071 one's-complement checksum of buf (odd length padded with a zero byte). */
export function internetChecksum(buf: Uint8Array, initial = 0): number {
  let sum = initial;
  const even = buf.length & ~1;
  for (let i = 0; i < even; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if (buf.length & 1) sum += buf[buf.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export interface EchoFields {
  id: number;
  seq: number;
  /** Bytes after the 8-byte ICMP header. */
  payload: Buffer;
}

/**
 * An ICMP (IPv4) or ICMPv6 echo request. The IPv4 checksum is computed here; the ICMPv6
 * one needs the IPv6 pseudo-header (source address chosen by routing), so it is left zero
 * and Linux fills it in on raw ICMPv6 sockets.
 */
export function encodeEchoRequest(family: IpFamily, fields: EchoFields): Buffer {
  if (!Number.isInteger(fields.id) || fields.id < 0 || fields.id > 0xffff) throw new RangeError(`echo id must be a u16, got ${fields.id}`);
  if (!Number.isInteger(fields.seq) || fields.seq < 0 || fields.seq > 0xffff) throw new RangeError(`echo seq must be a u16, got ${fields.seq}`);
  const buf = Buffer.alloc(8 + fields.payload.length);
  buf[0] = family === 4 ? ICMP_ECHO_REQUEST : ICMPV6_ECHO_REQUEST;
  buf[1] = 0;
  buf.writeUInt16BE(fields.id, 4);
  buf.writeUInt16BE(fields.seq, 6);
  fields.payload.copy(buf, 8);
  if (family === 4) buf.writeUInt16BE(internetChecksum(buf), 2);
  return buf;
}

export interface EchoMessage extends EchoFields {
  type: number;
  code: number;
  /** False when an IPv4 checksum does not verify (ICMPv6 is checked by the kernel). */
  checksumOk: boolean;
}

/**
 * Parses what a raw ICMP socket hands us: for IPv4 the IP header comes first, for ICMPv6
 * it does not. Returns null for anything that is not a well-formed echo request or reply.
 */
export function parseEcho(family: IpFamily, packet: Uint8Array): EchoMessage | null {
  const buf = Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
  if (family === 4) {
    if (buf.length < 20 || buf[0] >> 4 !== 4) return null;
    const off = (buf[0] & 0x0f) * 4;
    if (off < 20) return null;
    const total = buf.readUInt16BE(2);
    // Trust the IP length when it is sane; the kernel may hand us trailing bytes otherwise.
    const end = total >= off && total <= buf.length ? total : buf.length;
    return parseIcmp(family, buf.subarray(off, end));
  }
  return parseIcmp(family, buf);
}

function parseIcmp(family: IpFamily, icmp: Buffer): EchoMessage | null {
  if (icmp.length < 8) return null;
  const type = icmp[0];
  const echoTypes = family === 4 ? [ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY] : [ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY];
  if (!echoTypes.includes(type)) return null;
  return {
    type,
    code: icmp[1],
    id: icmp.readUInt16BE(4),
    seq: icmp.readUInt16BE(6),
    payload: Buffer.from(icmp.subarray(8)),
    checksumOk: family === 6 || internetChecksum(icmp) === 0,
  };
}

export function isEchoReply(family: IpFamily, msg: EchoMessage): boolean {
  return msg.code === 0 && msg.type === (family === 4 ? ICMP_ECHO_REPLY : ICMPV6_ECHO_REPLY);
}

// ---------------------------------------------------------------------------------------
// Sockets

/** The slice of a raw ICMP socket the prober needs (injectable for tests). */
export interface IcmpSocket {
  send(packet: Buffer, address: string, done: (err: Error | null) => void): void;
  onMessage(fn: (packet: Buffer, source: string) => void): void;
  onError(fn: (err: Error) => void): void;
  /** Called when the socket closed by itself (the prober opens a new one). */
  onClose(fn: () => void): void;
  close(): void;
}

export type IcmpSocketFactory = (family: IpFamily) => IcmpSocket;

// raw-socket ships no types.
interface RawSocket {
  send(buf: Buffer, offset: number, length: number, address: string, cb: (err: Error | null, bytes: number) => void): void;
  on(event: 'message', fn: (buf: Buffer, source: string) => void): void;
  on(event: 'error', fn: (err: Error) => void): void;
  on(event: 'close', fn: () => void): void;
  close(): void;
}
interface RawSocketModule {
  createSocket(opts: { addressFamily: number; protocol: number; bufferSize?: number }): RawSocket;
  AddressFamily: { IPv4: number; IPv6: number };
  Protocol: { ICMP: number; ICMPv6: number };
}

const require = createRequire(import.meta.url);

/** Raw ICMP sockets through `raw-socket` (needs root or CAP_NET_RAW). */
export const rawIcmpSocketFactory: IcmpSocketFactory = (family) => {
  const raw = require('raw-socket') as RawSocketModule;
  const sock = raw.createSocket({
    addressFamily: family === 4 ? raw.AddressFamily.IPv4 : raw.AddressFamily.IPv6,
    protocol: family === 4 ? raw.Protocol.ICMP : raw.Protocol.ICMPv6,
    bufferSize: 65536,
  });
  return {
    send: (packet, address, done) => sock.send(packet, 0, packet.length, address, (err) => done(err)),
    onMessage: (fn) => sock.on('message', fn),
    onError: (fn) => sock.on('error', fn),
    onClose: (fn) => sock.on('close', fn),
    close: () => sock.close(),
  };
};

// ---------------------------------------------------------------------------------------
// Prober

/** One spelling per address, so replies' sources match targets however they were written. */
function canonicalAddress(address: string): string {
  return ipText(ipaddr.parse(address));
}

export type Reachability = 'unknown' | 'up' | 'down';

export interface ProbeResult {
  /** Metric label: the peer's name (node UUID) or its address. */
  peer: string;
  address: string;
  state: Reachability;
  sent: number;
  received: number;
  lost: number;
  consecutiveLosses: number;
  /** Round-trip time of the last reply, milliseconds. */
  lastRttMs?: number;
  /** Time of the last state change, ms since the epoch. */
  since?: number;
}

export interface ProberOptions {
  /** Where the metrics live; none when omitted. */
  registry?: Registry;
  /** Time between probe rounds. Default 1000 ms. */
  intervalMs?: number;
  /** How long a probe waits for its reply. Default 1000 ms. */
  timeoutMs?: number;
  /** Consecutive losses that mark a peer down. Default 3. */
  downAfter?: number;
  /** Echo identifier; default random. */
  identifier?: number;
  /** Padding after the magic, so probes can be sized like real traffic. Default 16. */
  payloadBytes?: number;
  socketFactory?: IcmpSocketFactory;
}

interface Target {
  result: ProbeResult;
  family: IpFamily;
}

interface Outstanding {
  target: Target;
  sentAt: bigint;
  timer: NodeJS.Timeout;
  settle: (rttMs: number | null) => void;
}

export interface ProberMetrics {
  reachable: Gauge<'peer'>;
  rtt: Histogram<'peer'>;
  sent: Counter<'peer'>;
  lost: Counter<'peer'>;
}

function createMetrics(registry: Registry): ProberMetrics {
  return {
    reachable: new Gauge({
      name: 'rhumb_probe_reachable',
      help: 'Underlay ICMP reachability of a peer node (1 up, 0 down)',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    rtt: new Histogram({
      name: 'rhumb_probe_rtt_seconds',
      help: 'Underlay ICMP echo round-trip time to a peer node',
      labelNames: ['peer'] as const,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    }),
    sent: new Counter({
      name: 'rhumb_probe_sent_total',
      help: 'ICMP echo requests sent to a peer node',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
    lost: new Counter({
      name: 'rhumb_probe_lost_total',
      help: 'ICMP echo requests to a peer node that got no reply in time (or failed to send)',
      labelNames: ['peer'] as const,
      registers: [registry],
    }),
  };
}

/** What a Prober emits. */
export interface ProberEvents {
  change: [result: ProbeResult];
  error: [err: Error];
}

/**
 * Probes every target once per interval. A reply marks the peer up; `downAfter` losses in
 * a row mark it down. 'change' is emitted on every state transition.
 */
export class Prober extends EventEmitter<ProberEvents> {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly downAfter: number;
  readonly identifier: number;
  readonly metrics: ProberMetrics | undefined;
  /** Socket errors seen (for example a pending EHOSTUNREACH); the prober carries on. */
  socketErrors = 0;
  private readonly targets = new Map<string, Target>();
  private readonly outstanding = new Map<number, Outstanding>();
  private readonly sockets = new Map<IpFamily, IcmpSocket>();
  private readonly socketFactory: IcmpSocketFactory;
  private readonly payload: Buffer;
  private nextSeq: number;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(opts: ProberOptions = {}) {
    super();
    this.intervalMs = opts.intervalMs ?? 1000;
    this.timeoutMs = opts.timeoutMs ?? 1000;
    this.downAfter = opts.downAfter ?? 3;
    if (!(this.intervalMs > 0) || !(this.timeoutMs > 0)) throw new RangeError('intervalMs and timeoutMs must be positive');
    if (!Number.isInteger(this.downAfter) || this.downAfter < 1) throw new RangeError('downAfter must be a positive integer');
    this.identifier = opts.identifier ?? randomInt(1, 0x10000);
    this.payload = Buffer.concat([PROBE_MAGIC, Buffer.alloc(opts.payloadBytes ?? 16)]);
    this.socketFactory = opts.socketFactory ?? rawIcmpSocketFactory;
    this.metrics = opts.registry ? createMetrics(opts.registry) : undefined;
    this.nextSeq = randomInt(0, 0x10000);
  }

  /** Adds (or relabels) a target; probing starts with the next round. */
  add(addressText: string, peer: string = addressText): void {
    const family = isIP(addressText);
    if (family !== 4 && family !== 6) throw new TypeError(`not an IP address: ${JSON.stringify(addressText)}`);
    const address = canonicalAddress(addressText);
    const existing = this.targets.get(address);
    if (existing) {
      if (existing.result.peer === peer) return;
      this.remove(address);
    }
    this.targets.set(address, {
      family,
      result: { peer, address, state: 'unknown', sent: 0, received: 0, lost: 0, consecutiveLosses: 0 },
    });
  }

  /** Forgets a target, its outstanding probes and its metric series. */
  remove(addressText: string): boolean {
    const address = this.key(addressText);
    const target = this.targets.get(address);
    if (!target) return false;
    this.targets.delete(address);
    for (const [seq, o] of this.outstanding) {
      if (o.target === target) {
        clearTimeout(o.timer);
        this.outstanding.delete(seq);
        o.settle(null);
      }
    }
    if (this.metrics) {
      const labels = { peer: target.result.peer };
      this.metrics.reachable.remove(labels);
      this.metrics.rtt.remove(labels);
      this.metrics.sent.remove(labels);
      this.metrics.lost.remove(labels);
    }
    return true;
  }

  has(address: string): boolean {
    return this.targets.has(this.key(address));
  }

  private key(address: string): string {
    return isIP(address) ? canonicalAddress(address) : address;
  }

  /** Snapshot of every target's state. */
  results(): ProbeResult[] {
    return [...this.targets.values()].map((t) => ({ ...t.result }));
  }

  result(address: string): ProbeResult | undefined {
    const t = this.targets.get(this.key(address));
    return t ? { ...t.result } : undefined;
  }

  /** Starts periodic rounds (the first one now). */
  start(): void {
    if (this.timer || this.stopped) return;
    void this.probeAll();
    this.timer = setInterval(() => void this.probeAll(), this.intervalMs);
  }

  /** Stops probing, settles outstanding probes as unanswered without counting them, closes sockets. */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const o of this.outstanding.values()) {
      clearTimeout(o.timer);
      o.settle(null);
    }
    this.outstanding.clear();
    for (const s of this.sockets.values()) s.close();
    this.sockets.clear();
  }

  /** One probe to every target; resolves when each has a reply or timed out. */
  async probeAll(): Promise<ProbeResult[]> {
    await Promise.all([...this.targets.keys()].map((a) => this.probe(a)));
    return this.results();
  }

  /** One probe; resolves with the RTT in ms, or null when lost. */
  probe(addressText: string): Promise<number | null> {
    const address = this.key(addressText);
    const target = this.targets.get(address);
    if (!target || this.stopped) return Promise.resolve(null);
    let socket: IcmpSocket;
    try {
      socket = this.socket(target.family);
    } catch (err) {
      this.emit('error', err as Error);
      return Promise.resolve(null);
    }
    const seq = this.allocSeq();
    const packet = encodeEchoRequest(target.family, { id: this.identifier, seq, payload: this.payload });
    target.result.sent++;
    this.metrics?.sent.inc({ peer: target.result.peer });
    return new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        if (this.outstanding.get(seq)?.target !== target) return;
        this.outstanding.delete(seq);
        this.recordLoss(target);
        resolve(null);
      }, this.timeoutMs);
      this.outstanding.set(seq, { target, sentAt: process.hrtime.bigint(), timer, settle: resolve });
      socket.send(packet, address, (err) => {
        if (!err) return;
        // Nothing went out (no route, neighbour failure reported on the socket): a loss now.
        const o = this.outstanding.get(seq);
        if (o?.target !== target) return;
        clearTimeout(o.timer);
        this.outstanding.delete(seq);
        this.recordLoss(target);
        resolve(null);
      });
    });
  }

  private allocSeq(): number {
    // Skip sequence numbers still in flight (only possible with > 65535 outstanding).
    for (let i = 0; i < 0x10000; i++) {
      const seq = this.nextSeq;
      this.nextSeq = (this.nextSeq + 1) & 0xffff;
      if (!this.outstanding.has(seq)) return seq;
    }
    throw new Error('no free ICMP sequence number');
  }

  private socket(family: IpFamily): IcmpSocket {
    const existing = this.sockets.get(family);
    if (existing) return existing;
    const s = this.socketFactory(family);
    s.onMessage((packet, source) => this.onMessage(family, packet, source));
    s.onError((err) => {
      this.socketErrors++;
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
    s.onClose(() => {
      if (this.sockets.get(family) === s) this.sockets.delete(family);
    });
    this.sockets.set(family, s);
    return s;
  }

  private onMessage(family: IpFamily, packet: Buffer, source: string): void {
    const msg = parseEcho(family, packet);
    if (!msg || !isEchoReply(family, msg) || !msg.checksumOk || msg.id !== this.identifier) return;
    if (!msg.payload.subarray(0, PROBE_MAGIC.length).equals(PROBE_MAGIC)) return;
    const o = this.outstanding.get(msg.seq);
    if (!o || !isIP(source) || o.target.result.address !== canonicalAddress(source)) return;
    clearTimeout(o.timer);
    this.outstanding.delete(msg.seq);
    const rttMs = Number(process.hrtime.bigint() - o.sentAt) / 1e6;
    this.recordReply(o.target, rttMs);
    o.settle(rttMs);
  }

  private recordReply(target: Target, rttMs: number): void {
    const r = target.result;
    r.received++;
    r.consecutiveLosses = 0;
    r.lastRttMs = rttMs;
    this.metrics?.rtt.observe({ peer: r.peer }, rttMs / 1000);
    this.setState(target, 'up');
  }

  private recordLoss(target: Target): void {
    const r = target.result;
    r.lost++;
    r.consecutiveLosses++;
    this.metrics?.lost.inc({ peer: r.peer });
    if (r.consecutiveLosses >= this.downAfter) this.setState(target, 'down');
  }

  private setState(target: Target, state: Reachability): void {
    const r = target.result;
    this.metrics?.reachable.set({ peer: r.peer }, state === 'up' ? 1 : 0);
    if (r.state === state) return;
    r.state = state;
    r.since = Date.now();
    this.emit('change', { ...r });
  }
}
