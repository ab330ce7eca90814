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
 *
 * With TLS material the listener speaks TLS and every client must show a certificate from
 * the CA: a node's certificate may LOG_REQ/LOG_RM only for that node, an operator's for
 * any, a certificate with no rhumb role only look up. A plaintext read-only listener can
 * be added for varpd-compatible clients (lookups only). Connections are admitted (caps)
 * at TCP accept, before any handshake; a handshake must finish within handshakeTimeoutMs,
 * and a connection with no traffic either way for idleTimeoutMs is closed.
 */
import net from 'node:net';
import tls from 'node:tls';
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
  type ConnectionPolicy,
  type LookupTally,
  OPEN_POLICY,
  type OpLabel,
  type PolicyRefusal,
} from './connection.js';
import { NativeFront, NativeSocket, nativeFrontAvailable } from './native-front.js';
import type { Logger } from '../log/index.js';
import type { Principal } from '../security/identity.js';
import { type ServerTls, serverTlsOptions, tlsPeerPrincipal } from '../security/tls.js';

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
/** Long-polled LOG_REQs held per node, over all its connections. */
export const DEFAULT_MAX_HELD_LOG_REQS_PER_NODE = 16;
/**
 * With every connection slot taken, a new connection may take the slot of one that has
 * said nothing (TLS: not finished its handshake) for this long: idle floods cannot keep
 * clients that talk out.
 */
const SILENT_GRACE_MS = 1000;
/** A TLS handshake must be done within this. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** A connection with no traffic at all for this long is closed (agents ping every 10 s). */
export const DEFAULT_IDLE_TIMEOUT_MS = 300_000;
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
  /** Long-polled LOG_REQs held per node over all connections; more are answered at once (counted). */
  maxHeldLogReqsPerNode?: number;
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
  /** TLS on the listener (client certificates from the CA required); absent: plaintext. */
  tls?: ServerTls | undefined;
  /** A second, plaintext listener answering lookups only (LOG_REQ/LOG_RM refused). */
  plaintextReadOnly?: { host: string; port: number } | undefined;
  /** A TLS handshake must finish within this (ms). */
  handshakeTimeoutMs?: number;
  /**
   * Serve plaintext listeners through the native front end (lookups answered in C, no
   * JavaScript per lookup). Default true, unless the environment has RHUMB_SVP_NATIVE=0;
   * without the addon's front end the JS path serves (logged). TLS is always served in JS.
   */
  nativeFrontEnd?: boolean;
  /** Close a connection with no traffic either way for this long (ms); 0: never. Raised to logWaitMs + 5 s if below. */
  idleTimeoutMs?: number;
  logger?: Logger;
}

/** What a TLS client's certificate lets it do on SVP. */
export function policyFor(p: Principal): ConnectionPolicy {
  if (p.role === 'admin') return OPEN_POLICY;
  if (p.role === 'node') return { readOnly: false, node: p.node };
  return { readOnly: true, node: undefined };
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
  requestsRefused: Counter<'reason'>;
  notHeldPerNode: Counter;
  backlogPauses: Counter;
  heldLogReqs: Gauge;
}

function createMetrics(registry: Registry, collectRequests: () => void, collectNative: () => void): Metrics {
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
      collectNative,
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
      help: 'SVP connections refused, by reason (total, per_peer: the connection caps; evicted_silent: a connection that had said nothing, closed to make room; tls: a failed handshake, no or a foreign certificate, plaintext on the TLS port)',
      labelNames: ['reason'] as const,
      registers,
    }),
    requestsRefused: new Counter({
      name: 'rhumb_svp_requests_refused_total',
      help: "SVP requests answered FATAL by the connection's policy, by reason (read_only listener, not_own_node certificate)",
      labelNames: ['reason'] as const,
      registers,
    }),
    notHeldPerNode: new Counter({
      name: 'rhumb_svp_log_reqs_not_held_total',
      help: 'LOG_REQs answered at once, not long-polled, because their node already had its most held (per node, over all its connections)',
      registers,
    }),
    backlogPauses: new Counter({
      name: 'rhumb_svp_backlog_pauses_total',
      help: 'Times an SVP connection stopped being read because its replies were not being read',
      registers,
      collect: collectNative,
    }),
    heldLogReqs: new Gauge({ name: 'rhumb_svp_log_reqs_held', help: 'LOG_REQs held open waiting for events', registers }),
  };
}

function statusLabel(status: number): string {
  return (SvpStatus[status] ?? String(status)).toLowerCase();
}

type ResolvedOptions = Required<Omit<SvpServerOptions, 'logger' | 'tls' | 'plaintextReadOnly'>> & Pick<SvpServerOptions, 'tls' | 'plaintextReadOnly'> & { logger: Logger | undefined };

/** A served connection's socket: Node's (TLS, or the JS path) or the native front end's. */
type ServedSocket = net.Socket | NativeSocket;

/** RHUMB_SVP_NATIVE=0 turns the native front end off by default (comparisons, debugging). */
function nativeByDefault(): boolean {
  return process.env.RHUMB_SVP_NATIVE !== '0';
}

const OP_INDEX: Record<OpLabel, number> = { ping: 0, vl2: 1, vl3: 2, bulk: 3, log_req: 4, log_rm: 5 };
/** Request counts per op and status not yet added to the counter. */
interface PendingCount {
  child: { inc(n?: number): void };
  pending: number;
}

export class SvpServer implements ConnectionHost {
  private readonly opts: ResolvedOptions;
  private readonly server: net.Server;
  /** The plaintext read-only listener, when asked for. */
  private readonly plainServer: net.Server | undefined;
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
      maxHeldLogReqsPerNode: DEFAULT_MAX_HELD_LOG_REQS_PER_NODE,
      maxLogAckBytes: DEFAULT_MAX_LOG_ACK_BYTES,
      maxWriteBacklogBytes: DEFAULT_MAX_WRITE_BACKLOG_BYTES,
      maxConnections: DEFAULT_MAX_CONNECTIONS,
      maxConnectionsPerPeer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
      logRmVisibleTimeoutMs: 2000,
      handshakeTimeoutMs: DEFAULT_HANDSHAKE_TIMEOUT_MS,
      idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS,
      nativeFrontEnd: nativeByDefault(),
      ...options,
      logger: options.logger,
    };
    // A held LOG_REQ is silence by design: never cut it for idleness.
    if (this.opts.idleTimeoutMs > 0) this.opts.idleTimeoutMs = Math.max(this.opts.idleTimeoutMs, this.opts.logWaitMs + 5000);
    const o = this.opts;
    if (!Number.isInteger(o.maxLogAckBytes) || o.maxLogAckBytes < MIN_LOG_ACK_BYTES)
      throw new RangeError(`maxLogAckBytes must be an integer of at least ${MIN_LOG_ACK_BYTES}, got ${o.maxLogAckBytes}`);
    for (const name of ['maxPendingPerConnection', 'maxHeldLogReqsPerConnection', 'maxHeldLogReqsPerNode', 'maxWriteBacklogBytes'] as const)
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
    this.m = createMetrics(options.registry, () => this.flushCounts(), () => this.pullNative());
    if (o.nativeFrontEnd && (!o.tls || o.plaintextReadOnly)) {
      if (nativeFrontAvailable())
        this.front = new NativeFront(o.index, { maxFrameBytes: o.maxFrameBytes, backlogBound: o.maxWriteBacklogBytes, latencyBounds: this.m.latency.buckets });
      else this.opts.logger?.warn('svp: the native front end is not in this build of the addon; serving lookups in JS');
    }
    this.server = o.tls ? this.tlsServer(o.tls) : this.plainListener(OPEN_POLICY);
    this.server.on('error', (err) => this.opts.logger?.warn({ err: err.message }, 'svp server error'));
    if (o.plaintextReadOnly) {
      this.plainServer = this.plainListener({ readOnly: true, node: undefined });
      this.plainServer.on('error', (err) => this.opts.logger?.warn({ err: err.message }, 'svp plaintext listener error'));
    }
  }

  private plainListener(policy: ConnectionPolicy): net.Server {
    // Node never reads a connection the native front end takes over.
    return net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: this.front !== undefined }, (socket) => {
      let served: ServedSocket | null = null;
      if (this.front) {
        served = this.front.adopt(socket);
        if (!served) socket.resume();
      }
      served ??= socket;
      if (this.admit(served, true)) this.serve(served, policy);
    });
  }

  /** The native front end of the plaintext listeners, when on. */
  private readonly front: NativeFront | undefined;

  /**
   * TLS: admitted (caps) on the TCP connection, served once the handshake verified the
   * client's certificate; its principal gives the policy.
   */
  private tlsServer(t: ServerTls): tls.Server {
    const server = tls.createServer({
      ...serverTlsOptions(t, true),
      allowHalfOpen: true,
      noDelay: true,
      handshakeTimeout: this.opts.handshakeTimeoutMs,
    });
    // The caps apply to the TCP connection, before any handshake work; the slot is freed
    // when it closes (the TLS socket's close closes it too).
    server.on('connection', (raw: net.Socket) => void this.admit(raw, false));
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      const principal = tlsPeerPrincipal(socket);
      if (!principal) {
        socket.destroy(); // rejectUnauthorized already refuses these; never serve one
        return;
      }
      this.silent.delete(`${socket.remoteAddress}:${socket.remotePort}`);
      this.armIdle(socket);
      this.serve(socket, policyFor(principal));
    });
    server.on('tlsClientError', (err, socket) => {
      this.m.refused.inc({ reason: 'tls' });
      this.opts.logger?.debug({ peer: socket.remoteAddress, err: err.message }, 'svp: TLS handshake failed');
      // A handshake timeout leaves the connection open otherwise.
      socket.destroy();
    });
    return server;
  }

  get options(): Readonly<ResolvedOptions> {
    return this.opts;
  }

  /** Binds host:port (and the plaintext read-only listener); resolves with the main bound address. */
  async listen(): Promise<net.AddressInfo> {
    const main = await bind(this.server, this.opts.port, this.opts.host);
    if (this.plainServer && this.opts.plaintextReadOnly) {
      try {
        await bind(this.plainServer, this.opts.plaintextReadOnly.port, this.opts.plaintextReadOnly.host);
      } catch (err) {
        await new Promise<void>((r) => this.server.close(() => r()));
        throw err;
      }
    }
    this.listening = true;
    return main;
  }

  address(): net.AddressInfo | null {
    return (this.server.address() as net.AddressInfo | null) ?? null;
  }

  /** The plaintext read-only listener's address, when there is one. */
  plaintextAddress(): net.AddressInfo | null {
    return (this.plainServer?.address() as net.AddressInfo | null | undefined) ?? null;
  }

  /** Whether the plaintext listeners are served by the native front end. */
  get nativeFrontEnd(): boolean {
    return this.front !== undefined;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** Stops listening and ends every connection (held long-polls are dropped). */
  async close(): Promise<void> {
    const servers = this.listening ? [this.server, ...(this.plainServer ? [this.plainServer] : [])] : [];
    const closed = Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
    this.listening = false;
    for (const c of [...this.conns]) c.destroy();
    for (const s of [...this.pendingSockets]) s.destroy();
    this.pullNative();
    this.front?.close();
    await closed;
  }

  /** TCP connections admitted and not closed yet (TLS ones may still be in their handshake). */
  private readonly pendingSockets = new Set<ServedSocket>();

  /** Takes a slot for the TCP connection (released when it closes); false when refused. */
  private admit(socket: ServedSocket, idle: boolean): boolean {
    const peer = peerKey(socket.remoteAddress);
    let refused = this.admission.admit(peer);
    // Full: a connection that never said anything makes room for this one.
    if (refused === 'total' && this.evictSilent()) refused = this.admission.admit(peer);
    if (refused) {
      this.refuse(socket, peer, refused);
      return false;
    }
    let released = false;
    const key = `${socket.remoteAddress}:${socket.remotePort}`;
    const release = () => {
      if (released) return;
      released = true;
      this.silent.delete(key);
      this.pendingSockets.delete(socket);
      this.admission.release(peer);
    };
    this.pendingSockets.add(socket);
    this.silent.set(key, { since: Date.now(), socket, release });
    socket.once('close', release);
    // Plaintext: any byte ends the silence. TLS: a finished handshake does (serveTls).
    if (idle) {
      if (socket instanceof NativeSocket) socket.once('first-byte', () => this.silent.delete(key));
      else socket.once('data', () => this.silent.delete(key));
    }
    // TLS: the handshake timeout covers the start, the TLS socket's own idle timer the rest.
    if (idle) this.armIdle(socket);
    return true;
  }

  /**
   * Admitted connections that have not spoken yet (no byte; TLS: no finished handshake),
   * oldest first, by remote address and port.
   */
  private readonly silent = new Map<string, { since: number; socket: ServedSocket; release: () => void }>();

  /** Closes the oldest silent connection if it has had SILENT_GRACE_MS; true if one went. */
  private evictSilent(): boolean {
    const oldest = this.silent.values().next().value;
    if (!oldest || Date.now() - oldest.since < SILENT_GRACE_MS) return false;
    oldest.release();
    oldest.socket.destroy();
    this.m.refused.inc({ reason: 'evicted_silent' });
    return true;
  }

  /** Closes the connection after idleTimeoutMs without traffic either way. */
  private armIdle(socket: ServedSocket): void {
    if (this.opts.idleTimeoutMs <= 0) return;
    socket.setTimeout(this.opts.idleTimeoutMs, () => {
      this.countClose('idle_timeout');
      socket.destroy();
    });
  }

  private serve(socket: ServedSocket, policy: ConnectionPolicy): void {
    const conn = new Connection(this, socket, policy);
    this.conns.add(conn);
    this.m.accepted.inc();
    this.m.connections.inc();
    socket.once('close', () => {
      this.conns.delete(conn);
      this.m.connections.dec();
      conn.cleanup();
    });
  }

  private refuse(socket: ServedSocket, peer: string, reason: RefusalReason): void {
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

  /** Adds what the native front end counted since the last time to the metrics. */
  private pullNative(): void {
    const st = this.front?.stats();
    if (!st) return;
    const add = (op: OpLabel, status: number, n: number): void => {
      if (n > 0) this.requestCount(op, status).pending += n;
    };
    add('ping', SvpStatus.OK, st.ping);
    add('vl2', SvpStatus.OK, st.vl2Ok);
    add('vl2', SvpStatus.NOTFOUND, st.vl2NotFound);
    add('vl3', SvpStatus.OK, st.vl3Ok);
    add('vl3', SvpStatus.NOTFOUND, st.vl3NotFound);
    add('vl3', SvpStatus.BADL3TYPE, st.vl3BadType);
    for (const op of ['ping', 'vl2', 'vl3'] as const) {
      const l = st.latency[op];
      if (l.count > 0) this.latency(op).addCounts(l.sum, l.count, l.buckets);
    }
    if (st.backlogPauses > 0) this.m.backlogPauses.inc(st.backlogPauses);
  }

  /** Adds the request counts gathered so far to the counter (runs when it is read). */
  private flushCounts(): void {
    this.pullNative();
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

  private readonly heldPerNode = new Map<string, number>();

  countHeld(delta: 1 | -1, cn: string): void {
    this.m.heldLogReqs.inc(delta);
    const n = (this.heldPerNode.get(cn) ?? 0) + delta;
    if (n > 0) this.heldPerNode.set(cn, n);
    else this.heldPerNode.delete(cn);
  }

  mayHold(cn: string): boolean {
    if ((this.heldPerNode.get(cn) ?? 0) < this.opts.maxHeldLogReqsPerNode) return true;
    this.m.notHeldPerNode.inc();
    return false;
  }

  /** New TLS material (SIGHUP); new connections get it, open ones keep theirs. */
  setTls(t: ServerTls): void {
    if (!(this.server instanceof tls.Server)) throw new Error('the SVP listener does not speak TLS');
    this.server.setSecureContext(serverTlsOptions(t, true));
  }

  countRefused(reason: PolicyRefusal): void {
    this.m.requestsRefused.inc({ reason });
  }
}

function bind(server: net.Server, port: number, host: string): Promise<net.AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve(server.address() as net.AddressInfo);
    });
  });
}
