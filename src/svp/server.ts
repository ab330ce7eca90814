/**
 * SVP v1 server (what varpd's svp plugin and rhumb's agent talk to), answering from the
 * MappingIndex. Differences from portolan, on purpose:
 * - requests on one connection are served concurrently and answered by id as soon as each
 *   is ready (lookups at once, long-polled LOG_REQs and LOG_RMs when they complete);
 * - bad input (version, CRC, oversize or truncated frame, unknown or response op, wrong
 *   payload length, SHOOTDOWN) closes that connection and is counted, never crashes;
 * - LOG_REQ on an empty queue is held until an event arrives or `logWaitMs` passes;
 * - LOG_ACK never exceeds the requested count, status word included.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, type Registry } from 'prom-client';
import { FastHistogram, type HistogramSeries } from './fast-histogram.js';
import type { MappingIndex, PendingEvent } from '../mapping/index.js';
import type { Store } from '../store/types.js';
import {
  DEFAULT_MAX_FRAME_BYTES,
  type Frame,
  FrameDecoder,
  LOG_REQ_BYTES,
  LOG_VL2_BYTES,
  type LogEntry,
  LogType,
  type ProtocolErrorCause,
  SVP_DEFAULT_PORT,
  SvpOp,
  SvpProtocolError,
  SvpStatus,
  VL2_REQ_BYTES,
  VL3_REQ_BYTES,
  Vl3Type,
  BULK_REQ_BYTES,
  encodeBulkAck,
  encodeLogAck,
  encodeLogEntry,
  encodeLogRmAck,
  encodePong,
  encodeVl2Ack,
  encodeVl3Ack,
  isV4Mapped,
  logRmCount,
  opName,
} from './codec.js';

export interface SvpLogger {
  warn(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  debug?(obj: object, msg?: string): void;
}

export interface SvpServerOptions {
  store: Store;
  index: MappingIndex;
  registry: Registry;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 1296; 0 picks a free port. */
  port?: number;
  /** Largest accepted size field (payload bytes); default 64 KiB. */
  maxFrameBytes?: number;
  /** How long a LOG_REQ on an empty queue is held before answering OK with no entries. */
  logWaitMs?: number;
  /** Requests still being worked on (long-polls, removals) allowed per connection. */
  maxPendingPerConnection?: number;
  /** Unused: the index bounds how long a LOG_RM waits to become visible (MappingIndexOptions). */
  logRmVisibleTimeoutMs?: number;
  logger?: SvpLogger;
}

/** Why a connection was closed by the server (metric label values). */
export type CloseCause = ProtocolErrorCause | 'shootdown' | 'too_many_pending' | 'internal_error';

type OpLabel = 'ping' | 'vl2' | 'vl3' | 'bulk' | 'log_req' | 'log_rm';

interface Metrics {
  requests: Counter<'op' | 'status'>;
  latency: FastHistogram;
  connections: Gauge;
  accepted: Counter;
  closedForCause: Counter<'cause'>;
  logServed: Counter;
  logRemoved: Counter;
}

const HIGH_WATER_BYTES = 1 << 20;

function statusLabel(status: number): string {
  return (SvpStatus[status] ?? String(status)).toLowerCase();
}

export class SvpServer {
  private readonly opts: Required<Omit<SvpServerOptions, 'logger'>> & { logger: SvpLogger | undefined };
  private readonly server: net.Server;
  private readonly conns = new Set<Connection>();
  private readonly m: Metrics;
  private readonly requestChildren = new Map<string, { child: { inc(n?: number): void }; pending: number }>();
  private readonly dirty: { child: { inc(n?: number): void }; pending: number }[] = [];
  private flushQueued = false;
  private readonly latencyChildren = new Map<string, HistogramSeries>();
  private listening = false;

  constructor(options: SvpServerOptions) {
    this.opts = {
      host: '127.0.0.1',
      port: SVP_DEFAULT_PORT,
      maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
      logWaitMs: 10_000,
      maxPendingPerConnection: 1024,
      logRmVisibleTimeoutMs: 2000,
      ...options,
      logger: options.logger,
    };
    const registers = [options.registry];
    this.m = {
      requests: new Counter({
        name: 'rhumb_svp_requests_total',
        help: 'SVP requests answered, by op and status',
        labelNames: ['op', 'status'] as const,
        registers,
      }),
      latency: new FastHistogram(
        'rhumb_svp_request_duration_seconds',
        'SVP request service time by op (LOG_REQ includes its long-poll wait)',
        'op',
        [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25, 1, 5, 15, 60],
        options.registry,
      ),
      connections: new Gauge({ name: 'rhumb_svp_connections', help: 'Open SVP connections', registers }),
      accepted: new Counter({ name: 'rhumb_svp_connections_accepted_total', help: 'SVP connections accepted', registers }),
      closedForCause: new Counter({
        name: 'rhumb_svp_connections_closed_for_cause_total',
        help: 'SVP connections the server closed because of bad input, by cause',
        labelNames: ['cause'] as const,
        registers,
      }),
      logServed: new Counter({ name: 'rhumb_svp_log_events_served_total', help: 'Log entries sent in LOG_ACKs', registers }),
      logRemoved: new Counter({
        name: 'rhumb_svp_log_events_removed_total',
        help: 'Pending events deleted by LOG_RM',
        registers,
      }),
    };
    this.server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
    this.server.on('error', (err) => this.opts.logger?.warn({ err: err.message }, 'svp server error'));
  }

  get options(): Readonly<Required<Omit<SvpServerOptions, 'logger'>>> {
    return this.opts;
  }

  /** Binds host:port; resolves with the bound address (port is real when 0 was asked). */
  listen(): Promise<net.AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(this.opts.port, this.opts.host, () => {
        this.server.off('error', onError);
        this.listening = true;
        resolve(this.server.address() as net.AddressInfo);
      });
    });
  }

  address(): net.AddressInfo | null {
    return (this.server.address() as net.AddressInfo | null) ?? null;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** Stops listening and ends every connection (held long-polls are dropped). */
  async close(): Promise<void> {
    const closed = this.listening ? new Promise<void>((resolve) => this.server.close(() => resolve())) : Promise.resolve();
    this.listening = false;
    for (const c of [...this.conns]) c.destroy();
    await closed;
  }

  private accept(socket: net.Socket): void {
    const conn = new Connection(this, socket);
    this.conns.add(conn);
    this.m.accepted.inc();
    this.m.connections.inc();
    socket.once('close', () => {
      this.conns.delete(conn);
      this.m.connections.dec();
      conn.cleanup();
    });
  }

  // --- used by Connection -------------------------------------------------------------

  get store(): Store {
    return this.opts.store;
  }
  get index(): MappingIndex {
    return this.opts.index;
  }
  get logger(): SvpLogger | undefined {
    return this.opts.logger;
  }

  countRequest(op: OpLabel, status: number, startedMs: number): void {
    const key = `${op}:${status}`;
    let c = this.requestChildren.get(key);
    if (!c) {
      c = { child: this.m.requests.labels(op, statusLabel(status)), pending: 0 };
      this.requestChildren.set(key, c);
      this.dirty.push(c);
    } else if (c.pending === 0) this.dirty.push(c);
    c.pending++;
    let h = this.latencyChildren.get(op);
    if (!h) {
      h = this.m.latency.labels(op);
      this.latencyChildren.set(op, h);
    }
    h.observe((performance.now() - startedMs) / 1000);
    if (this.dirty.length > 0 && !this.flushQueued) {
      // One counter update per op/status per tick, not per request.
      this.flushQueued = true;
      queueMicrotask(() => this.flushCounts());
    }
  }

  /** Adds the request counts gathered so far to the counter (one inc per op/status). */
  flushCounts(): void {
    this.flushQueued = false;
    for (const c of this.dirty) {
      if (c.pending > 0) c.child.inc(c.pending);
      c.pending = 0;
    }
    this.dirty.length = 0;
  }

  countClose(cause: CloseCause): void {
    this.m.closedForCause.inc({ cause });
  }

  countServed(n: number): void {
    if (n > 0) this.m.logServed.inc(n);
  }

  countRemoved(n: number): void {
    if (n > 0) this.m.logRemoved.inc(n);
  }
}

const macScratch = Buffer.alloc(6);

/** The SVP log entry of a pending event. */
function logEntryOf(e: PendingEvent): LogEntry {
  return e.type === 'vl2'
    ? { type: LogType.VL2, id: e.id, mac: e.mac, vnetId: e.vnetId }
    : { type: LogType.VL3, id: e.id, ip: e.ip, vlan: e.vlan, vnetId: e.vnetId };
}

class Connection {
  private readonly decoder: FrameDecoder;
  private closed = false;
  private readEnded = false;
  /** Cancel functions of requests still in progress (long-polls, removals). */
  private readonly pending = new Set<() => void>();
  private readonly peer: string;
  /** Replies collected while a chunk's frames are handled (null outside onData). */
  private batch: Buffer[] | null = null;

  constructor(
    private readonly srv: SvpServer,
    private readonly socket: net.Socket,
  ) {
    this.decoder = new FrameDecoder({ maxFrameBytes: srv.options.maxFrameBytes, role: 'server' });
    this.peer = `${socket.remoteAddress}:${socket.remotePort}`;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err) => srv.logger?.debug?.({ peer: this.peer, err: err.message }, 'svp connection error'));
    socket.on('drain', () => {
      if (!this.closed) socket.resume();
    });
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    const { frames, error } = this.decoder.push(chunk);
    if (frames.length > 0) {
      // Replies to everything answered synchronously from this chunk go out in one write.
      const out: Buffer[] = [];
      this.batch = out;
      try {
        for (const f of frames) {
          this.handle(f);
          if (this.closed) break;
        }
      } finally {
        this.batch = null;
      }
      if (!this.closed && out.length > 0) this.socket.write(out.length === 1 ? out[0] : Buffer.concat(out));
    }
    if (error && !this.closed) this.closeForCause(error.reason, error.message);
    // Backpressure: a client that pipelines without reading stops being read.
    if (!this.closed && this.socket.writableLength > HIGH_WATER_BYTES) this.socket.pause();
  }

  private onEnd(): void {
    this.readEnded = true;
    if (this.closed) return;
    const err = this.decoder.end();
    if (err) {
      this.closeForCause(err.reason, err.message);
      return;
    }
    if (this.pending.size === 0) this.socket.end();
  }

  private write(buf: Buffer): void {
    if (this.closed) return;
    if (this.batch) this.batch.push(buf);
    else this.socket.write(buf);
  }

  private handle(f: Frame): void {
    const t0 = performance.now();
    const p = f.payload;
    try {
      switch (f.op) {
        case SvpOp.PING:
          this.expectSize(f, 0);
          this.write(encodePong(f.id));
          this.srv.countRequest('ping', SvpStatus.OK, t0);
          return;
        case SvpOp.VL2_REQ: {
          this.expectSize(f, VL2_REQ_BYTES);
          const ul = this.srv.index.resolveVl2(p.readUInt32BE(8), p, 0);
          if (ul) this.write(encodeVl2Ack(f.id, SvpStatus.OK, ul.port, ul.ip));
          else this.write(encodeVl2Ack(f.id, SvpStatus.NOTFOUND, 0, null));
          this.srv.countRequest('vl2', ul ? SvpStatus.OK : SvpStatus.NOTFOUND, t0);
          return;
        }
        case SvpOp.VL3_REQ: {
          this.expectSize(f, VL3_REQ_BYTES);
          const type = p.readUInt32BE(16);
          if ((type !== Vl3Type.IPV4 && type !== Vl3Type.IPV6) || (type === Vl3Type.IPV4 && !isV4Mapped(p, 0))) {
            this.write(encodeVl3Ack(f.id, SvpStatus.BADL3TYPE, null, 0, null));
            this.srv.countRequest('vl3', SvpStatus.BADL3TYPE, t0);
            return;
          }
          const ul = this.srv.index.resolveVl3(p.readUInt32BE(20), p, 0, macScratch);
          if (ul) this.write(encodeVl3Ack(f.id, SvpStatus.OK, macScratch, ul.port, ul.ip));
          else this.write(encodeVl3Ack(f.id, SvpStatus.NOTFOUND, null, 0, null));
          this.srv.countRequest('vl3', ul ? SvpStatus.OK : SvpStatus.NOTFOUND, t0);
          return;
        }
        case SvpOp.BULK_REQ:
          this.expectSize(f, BULK_REQ_BYTES);
          this.write(encodeBulkAck(f.id, SvpStatus.FATAL, p.readUInt32BE(0)));
          this.srv.countRequest('bulk', SvpStatus.FATAL, t0);
          return;
        case SvpOp.LOG_REQ:
          this.expectSize(f, LOG_REQ_BYTES);
          this.logReq(f.id, p.readUInt32BE(0), p, t0);
          return;
        case SvpOp.LOG_RM:
          this.logRm(f.id, p, t0);
          return;
        case SvpOp.SHOOTDOWN:
          this.closeForCause('shootdown', 'SHOOTDOWN is node to node and has no meaning on a server connection');
          return;
        default:
          // The decoder lets only request ops through; anything else is a bug upstream.
          this.closeForCause('unknown_op', `unexpected ${opName(f.op)}`);
      }
    } catch (err) {
      if (err instanceof SvpProtocolError) this.closeForCause(err.reason, err.message);
      else {
        this.srv.logger?.warn({ peer: this.peer, err: (err as Error).message }, 'svp request failed');
        this.closeForCause('internal_error', (err as Error).message);
      }
    }
  }

  private expectSize(f: Frame, n: number): void {
    if (f.payload.length !== n)
      throw new SvpProtocolError('bad_size', `${opName(f.op)} payload must be ${n} bytes, got ${f.payload.length}`);
  }

  /** Registers an in-progress request; false (and the connection closed) when over the cap. */
  private track(cancel: () => void): boolean {
    if (this.pending.size >= this.srv.options.maxPendingPerConnection) {
      this.closeForCause('too_many_pending', `more than ${this.srv.options.maxPendingPerConnection} requests in progress`);
      return false;
    }
    this.pending.add(cancel);
    return true;
  }

  private untrack(cancel: () => void): void {
    this.pending.delete(cancel);
    if (this.readEnded && this.pending.size === 0 && !this.closed) this.socket.end();
  }

  private logReq(id: number, count: number, p: Buffer, t0: number): void {
    const cn = this.srv.index.nodeByUnderlay(p, 4);
    if (cn === undefined || cn === 'ambiguous' || count < 4) {
      this.write(encodeLogAck(id, SvpStatus.FATAL, []));
      this.srv.countRequest('log_req', SvpStatus.FATAL, t0);
      return;
    }
    if (this.srv.index.pendingEvents(cn, 1).length > 0) {
      this.answerLog(id, cn, count, t0);
      return;
    }
    // Long-poll: hold until the node gains an event or the wait expires.
    let timer: NodeJS.Timeout | undefined;
    let unsubscribe: (() => void) | undefined;
    const finish = (): void => {
      if (timer) clearTimeout(timer);
      unsubscribe?.();
      this.untrack(cancel);
    };
    const cancel = (): void => {
      if (timer) clearTimeout(timer);
      unsubscribe?.();
    };
    if (!this.track(cancel)) return;
    const respond = (): void => {
      finish();
      this.answerLog(id, cn, count, t0);
    };
    unsubscribe = this.srv.index.onNodeEvents(cn, respond);
    timer = setTimeout(respond, this.srv.options.logWaitMs);
  }

  private answerLog(id: number, cn: string, count: number, t0: number): void {
    if (this.closed) return;
    const picked: Buffer[] = [];
    let size = 4;
    for (const e of this.srv.index.pendingEvents(cn, Math.floor((count - 4) / LOG_VL2_BYTES))) {
      const entry = encodeLogEntry(logEntryOf(e));
      if (size + entry.length > count) break;
      picked.push(entry);
      size += entry.length;
    }
    this.write(encodeLogAck(id, SvpStatus.OK, picked));
    this.srv.countServed(picked.length);
    this.srv.countRequest('log_req', SvpStatus.OK, t0);
  }

  private logRm(id: number, p: Buffer, t0: number): void {
    const n = logRmCount(p); // throws bad_size -> connection closed
    if (n === 0) {
      this.write(encodeLogRmAck(id, SvpStatus.OK));
      this.srv.countRequest('log_rm', SvpStatus.OK, t0);
      return;
    }
    let cancelled = false;
    const cancel = (): void => {
      cancelled = true;
    };
    if (!this.track(cancel)) return;
    const ids = Array.from({ length: n }, (_, i) => Buffer.from(p.subarray(4 + 16 * i, 20 + 16 * i)));
    let removed = 0;
    // The index acks only once it no longer serves these events: a LOG_REQ sent right
    // after the ack must not see them again.
    this.srv.index
      .removeEvents(ids)
      .then((count) => {
        removed = count;
        return SvpStatus.OK;
      })
      .catch((err: Error) => {
        this.srv.logger?.warn({ peer: this.peer, err: err.message }, 'svp LOG_RM: store commit failed');
        return SvpStatus.FATAL;
      })
      .then((status) => {
        if (status === SvpStatus.OK) this.srv.countRemoved(removed);
        this.untrack(cancel);
        if (cancelled || this.closed) return;
        this.write(encodeLogRmAck(id, status));
        this.srv.countRequest('log_rm', status, t0);
      });
  }

  closeForCause(cause: CloseCause, detail: string): void {
    if (this.closed) return;
    this.srv.countClose(cause);
    this.srv.logger?.warn({ peer: this.peer, cause, detail }, 'svp: closing connection for bad input');
    this.destroy();
  }

  destroy(): void {
    if (this.closed) return;
    this.closed = true;
    this.cleanup();
    this.socket.destroy();
  }

  /** Cancels every in-progress request (idempotent). */
  cleanup(): void {
    this.closed = true;
    for (const cancel of this.pending) cancel();
    this.pending.clear();
  }
}
