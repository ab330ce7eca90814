/**
 * SVP v1 server (what varpd's svp plugin and rhumb's agent talk to), answering from the
 * MappingIndex. Differences from portolan, on purpose:
 * - requests on one connection are served concurrently and answered by id as soon as each
 *   is ready (lookups at once, long-polled LOG_REQs and LOG_RMs when they complete);
 * - bad input (version, CRC, oversize or truncated frame, unknown or response op, wrong
 *   payload length, SHOOTDOWN) closes that connection and is counted, never crashes;
 * - LOG_REQ on an empty queue is held until an event arrives or `logWaitMs` passes;
 * - LOG_ACK never exceeds the requested count, status word included, nor `maxLogAckBytes`;
 * - what one client can make the server hold is bounded (connection.ts), and connections
 *   are capped in total and per peer address; refusals are counted.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, type Registry } from 'prom-client';
import { FastHistogram, type HistogramSeries } from './fast-histogram.js';
import type { MappingIndex } from '../mapping/index.js';
import type { Store } from '../store/types.js';
import { DEFAULT_MAX_FRAME_BYTES, SVP_DEFAULT_PORT, SvpStatus } from './codec.js';
import { PeerAdmission, type RefusalReason, peerKey } from './admission.js';
import {
  type CloseCause,
  Connection,
  type ConnectionHost,
  type ConnectionLimits,
  type LookupTally,
  type OpLabel,
} from './connection.js';
import type { Logger } from '../log/index.js';

export type { CloseCause } from './connection.js';
export type { RefusalReason } from './admission.js';

/** Open connections allowed in total (one per compute node and agent endpoint is typical). */
export const DEFAULT_MAX_CONNECTIONS = 4096;
/** Open connections allowed from one peer address. */
export const DEFAULT_MAX_CONNECTIONS_PER_PEER = 64;
/** Largest LOG_ACK payload sent, whatever the count asked (varpd asks 1 KiB, the agent 16 KiB). */
export const DEFAULT_MAX_LOG_ACK_BYTES = 16 * 1024;
/** Unsent reply bytes a connection may accumulate before it stops being read. */
export const DEFAULT_MAX_WRITE_BACKLOG_BYTES = 128 * 1024;
/**
 * Requests in progress per connection (held LOG_REQs, LOG_RM commits); more close the
 * connection. varpd and the agent send one LOG_RM at a time; each can name 4,000 events.
 */
export const DEFAULT_MAX_PENDING = 64;
/** Long-polled LOG_REQs held per connection (varpd and the agent hold one). */
export const DEFAULT_MAX_HELD_LOG_REQS = 4;
/** The smallest LOG_ACK cap that still fits a status word and the largest entry (VL3). */
const MIN_LOG_ACK_BYTES = 4 + 44;

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
  /** Long-polled LOG_REQs held per connection; more are answered at once with no entries. */
  maxHeldLogReqsPerConnection?: number;
  /** Largest LOG_ACK payload (status word included), whatever count the client asks. */
  maxLogAckBytes?: number;
  /** Unsent reply bytes per connection above which it stops being read until it drains. */
  maxWriteBacklogBytes?: number;
  /** Open connections in total; more are closed at once and counted. */
  maxConnections?: number;
  /** Open connections from one peer address; more are closed at once and counted. */
  maxConnectionsPerPeer?: number;
  /** Upper bound on waiting for a LOG_RM's deletions to reach the index before acking. */
  logRmVisibleTimeoutMs?: number;
  logger?: Logger;
}

interface Metrics {
  requests: Counter<'op' | 'status'>;
  latency: FastHistogram;
  connections: Gauge;
  accepted: Counter;
  closedForCause: Counter<'cause'>;
  logServed: Counter;
  logRemoved: Counter;
  refused: Counter<'reason'>;
  backlogPauses: Counter;
  heldLogReqs: Gauge;
}

function createMetrics(registry: Registry, collectRequests: () => void): Metrics {
  const registers = [registry];
  return {
    requests: new Counter({
      name: 'rhumb_svp_requests_total',
      help: 'SVP requests answered, by op and status',
      labelNames: ['op', 'status'] as const,
      registers,
      // Requests are tallied in plain numbers and added to the counter when it is read.
      collect: collectRequests,
    }),
    latency: new FastHistogram(
      'rhumb_svp_request_duration_seconds',
      'SVP request service time by op (LOG_REQ includes its long-poll wait)',
      'op',
      [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25, 1, 5, 15, 60],
      registry,
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
    refused: new Counter({
      name: 'rhumb_svp_connections_refused_total',
      help: 'SVP connections closed on accept because of the connection caps, by reason (total, per_peer)',
      labelNames: ['reason'] as const,
      registers,
    }),
    backlogPauses: new Counter({
      name: 'rhumb_svp_backlog_pauses_total',
      help: 'Times an SVP connection stopped being read because its replies were not being read',
      registers,
    }),
    heldLogReqs: new Gauge({ name: 'rhumb_svp_log_reqs_held', help: 'LOG_REQs held open waiting for events', registers }),
  };
}

function statusLabel(status: number): string {
  return (SvpStatus[status] ?? String(status)).toLowerCase();
}

const OP_INDEX: Record<OpLabel, number> = { ping: 0, vl2: 1, vl3: 2, bulk: 3, log_req: 4, log_rm: 5 };
/** Request counts per op and status not yet added to the counter. */
interface PendingCount {
  child: { inc(n?: number): void };
  pending: number;
}

export class SvpServer implements ConnectionHost {
  private readonly opts: Required<Omit<SvpServerOptions, 'logger'>> & { logger: Logger | undefined };
  private readonly server: net.Server;
  private readonly conns = new Set<Connection>();
  private readonly m: Metrics;
  /** By OP_INDEX[op] * 8 + status (statuses are 0..4), created on first use. */
  private readonly requestCounts: (PendingCount | undefined)[] = [];
  private readonly latencySeries: (HistogramSeries | undefined)[] = [];
  private listening = false;
  private readonly admission: PeerAdmission;
  readonly limits: ConnectionLimits;

  constructor(options: SvpServerOptions) {
    this.opts = {
      host: '127.0.0.1',
      port: SVP_DEFAULT_PORT,
      maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
      logWaitMs: 10_000,
      maxPendingPerConnection: DEFAULT_MAX_PENDING,
      maxHeldLogReqsPerConnection: DEFAULT_MAX_HELD_LOG_REQS,
      maxLogAckBytes: DEFAULT_MAX_LOG_ACK_BYTES,
      maxWriteBacklogBytes: DEFAULT_MAX_WRITE_BACKLOG_BYTES,
      maxConnections: DEFAULT_MAX_CONNECTIONS,
      maxConnectionsPerPeer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
      logRmVisibleTimeoutMs: 2000,
      ...options,
      logger: options.logger,
    };
    const o = this.opts;
    if (!Number.isInteger(o.maxLogAckBytes) || o.maxLogAckBytes < MIN_LOG_ACK_BYTES)
      throw new RangeError(`maxLogAckBytes must be an integer of at least ${MIN_LOG_ACK_BYTES}, got ${o.maxLogAckBytes}`);
    for (const name of ['maxPendingPerConnection', 'maxHeldLogReqsPerConnection', 'maxWriteBacklogBytes'] as const)
      if (!Number.isInteger(o[name]) || o[name] < 1) throw new RangeError(`${name} must be a positive integer, got ${o[name]}`);
    this.admission = new PeerAdmission({ maxTotal: o.maxConnections, maxPerPeer: o.maxConnectionsPerPeer });
    this.limits = {
      maxFrameBytes: o.maxFrameBytes,
      logWaitMs: o.logWaitMs,
      maxPending: o.maxPendingPerConnection,
      maxHeldLogReqs: o.maxHeldLogReqsPerConnection,
      maxLogAckBytes: o.maxLogAckBytes,
      maxWriteBacklogBytes: o.maxWriteBacklogBytes,
      logRmVisibleTimeoutMs: o.logRmVisibleTimeoutMs,
    };
    this.m = createMetrics(options.registry, () => this.flushCounts());
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
    const peer = peerKey(socket.remoteAddress);
    const refused = this.admission.admit(peer);
    if (refused) {
      this.refuse(socket, peer, refused);
      return;
    }
    const conn = new Connection(this, socket);
    this.conns.add(conn);
    this.m.accepted.inc();
    this.m.connections.inc();
    socket.once('close', () => {
      this.conns.delete(conn);
      this.admission.release(peer);
      this.m.connections.dec();
      conn.cleanup();
    });
  }

  private refuse(socket: net.Socket, peer: string, reason: RefusalReason): void {
    this.m.refused.inc({ reason });
    this.opts.logger?.debug({ peer, reason }, 'svp: connection refused (connection cap)');
    socket.on('error', () => undefined);
    socket.destroy();
  }

  // --- used by Connection -------------------------------------------------------------

  get store(): Store {
    return this.opts.store;
  }
  get index(): MappingIndex {
    return this.opts.index;
  }
  get logger(): Logger | undefined {
    return this.opts.logger;
  }

  countRequest(op: OpLabel, status: number, startedMs: number): void {
    this.requestCount(op, status).pending++;
    this.latency(op).observe((performance.now() - startedMs) / 1000);
  }

  countLookups(t: LookupTally, elapsedMs: number): void {
    const n = t.ping + t.vl2Ok + t.vl2NotFound + t.vl3Ok + t.vl3NotFound + t.vl3BadType;
    if (n === 0) return;
    // Lookups answered in one read turn are timed together: each is given the average.
    const each = elapsedMs / 1000 / n;
    if (t.ping > 0) this.countMany('ping', SvpStatus.OK, t.ping, each);
    if (t.vl2Ok > 0) this.countMany('vl2', SvpStatus.OK, t.vl2Ok, each);
    if (t.vl2NotFound > 0) this.countMany('vl2', SvpStatus.NOTFOUND, t.vl2NotFound, each);
    if (t.vl3Ok > 0) this.countMany('vl3', SvpStatus.OK, t.vl3Ok, each);
    if (t.vl3NotFound > 0) this.countMany('vl3', SvpStatus.NOTFOUND, t.vl3NotFound, each);
    if (t.vl3BadType > 0) this.countMany('vl3', SvpStatus.BADL3TYPE, t.vl3BadType, each);
  }

  private countMany(op: OpLabel, status: number, n: number, eachSeconds: number): void {
    this.requestCount(op, status).pending += n;
    this.latency(op).observeMany(eachSeconds, n);
  }

  private requestCount(op: OpLabel, status: number): PendingCount {
    const i = OP_INDEX[op] * 8 + status;
    let c = this.requestCounts[i];
    if (!c) {
      c = { child: this.m.requests.labels(op, statusLabel(status)), pending: 0 };
      this.requestCounts[i] = c;
    }
    return c;
  }

  private latency(op: OpLabel): HistogramSeries {
    const i = OP_INDEX[op];
    let h = this.latencySeries[i];
    if (!h) {
      h = this.m.latency.labels(op);
      this.latencySeries[i] = h;
    }
    return h;
  }

  /** Adds the request counts gathered so far to the counter (runs when it is read). */
  private flushCounts(): void {
    for (const c of this.requestCounts) {
      if (c && c.pending > 0) {
        c.child.inc(c.pending);
        c.pending = 0;
      }
    }
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

  countBacklogPause(): void {
    this.m.backlogPauses.inc();
  }

  countHeld(delta: 1 | -1): void {
    this.m.heldLogReqs.inc(delta);
  }
}
