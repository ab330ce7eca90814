/**
 * SVP v1 client, as rhumb's node agent uses it (and the `rhumb svp` operator commands).
 *
 * - Several server endpoints; a name resolving to several addresses counts as several.
 *   One connection per endpoint, new queries spread round robin over the active ones.
 * - Pipelining: ids are allocated per connection and replies matched by id, in any order.
 * - Per-query timeout. When a connection fails, its outstanding queries move to another
 *   active connection (keeping their deadline), or wait for one.
 * - Reconnect backoff base·2^n capped (1, 2, 4 … 32 s by default), like varpd.
 * - Keepalive PING when nothing has been received for a while; a PING that goes
 *   unanswered tears the connection down.
 */
import dns from 'node:dns';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { type ClientTls, clientTlsOptions } from '../security/tls.js';
import {
  type Frame,
  FrameDecoder,
  LogType,
  SVP_DEFAULT_PORT,
  SvpOp,
  SvpStatus,
  Vl3Type,
  ackOpFor,
  decodeMessage,
  encodeFrame,
  encodePayload,
  opName,
  statusName,
  type SvpMessage,
  type SvpRequest,
} from './codec.js';
import { ipFromBytes, ipToBytes, isV4Mapped, macFromBytes, macToBytes, uuidFromBytes, uuidToBytes } from '../net/addr.js';

export interface SvpClientOptions {
  /** 'host:port', '[v6addr]:port', 'host' (port 1296). */
  servers: readonly string[];
  /** Per-query timeout. Default 5000 ms. */
  timeoutMs?: number;
  /** First reconnect delay; doubles per failure. Default 1000 ms. */
  backoffBaseMs?: number;
  /** Reconnect delay cap. Default 32000 ms. */
  backoffMaxMs?: number;
  /** Send a PING after this long without receiving anything; 0 disables. Default 30000. */
  keepaliveMs?: number;
  /** Re-resolve host names this often; 0 disables. Default 30000. */
  resolveIntervalMs?: number;
  /** Largest accepted reply payload. Default 64 KiB. */
  maxFrameBytes?: number;
  /** Name resolution (tests inject their own). Default: dns.lookup with all addresses. */
  lookup?: (host: string) => Promise<string[]>;
  /**
   * TLS: the CA that verifies the servers (their certificates must name the address or
   * host name connected to) and this client's certificate. Absent: plaintext.
   */
  tls?: ClientTls | undefined;
}

export interface ServerEndpoint {
  host: string;
  port: number;
  /** 'host:port' or '[v6]:port'. */
  label: string;
}

export interface PingResult {
  server: string;
  rttMs: number;
}
export interface Vl2Result {
  server: string;
  status: SvpStatus;
  statusName: string;
  /** Underlay address (canonical text) when OK. */
  ip: string | null;
  port: number;
}
export interface Vl3Result {
  server: string;
  status: SvpStatus;
  statusName: string;
  mac: string | null;
  ip: string | null;
  port: number;
}
export type ClientLogEntry =
  | { type: 'vl2'; id: string; mac: string; vnetId: number }
  | { type: 'vl3'; id: string; ip: string; vlan: number; vnetId: number };
export interface LogResult {
  server: string;
  status: SvpStatus;
  statusName: string;
  entries: ClientLogEntry[];
  /** LOG_ACK payload bytes, status word included. */
  bytes: number;
}
export interface LogRmResult {
  server: string;
  status: SvpStatus;
  statusName: string;
}

export interface QueryOptions {
  timeoutMs?: number;
}

export class SvpTimeoutError extends Error {
  readonly code = 'SvpTimeout';
  constructor(op: string, ms: number) {
    super(`${op} timed out after ${ms} ms`);
    this.name = 'SvpTimeoutError';
  }
}

export class SvpClosedError extends Error {
  readonly code = 'SvpClosed';
  constructor() {
    super('SVP client closed');
    this.name = 'SvpClosedError';
  }
}

export interface SvpClientEvents {
  connect: [server: string];
  disconnect: [server: string, reason: string];
}

/** Parses a server spec. */
export function parseServer(spec: string, defaultPort = SVP_DEFAULT_PORT): { host: string; port: number } {
  const s = spec.trim();
  let host: string;
  let portText: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (bracket) {
    host = bracket[1];
    portText = bracket[2];
  } else if ((s.match(/:/g) ?? []).length === 1) {
    [host, portText] = s.split(':');
  } else {
    host = s; // a bare name, IPv4, or unbracketed IPv6
  }
  if (!host) throw new TypeError(`bad server ${JSON.stringify(spec)}: empty host`);
  const port = portText === undefined ? defaultPort : Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new TypeError(`bad server ${JSON.stringify(spec)}: port`);
  return { host, port };
}

function endpointLabel(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

async function defaultLookup(host: string): Promise<string[]> {
  const addrs = await dns.promises.lookup(host, { all: true });
  return addrs.map((a) => a.address);
}

interface Query {
  op: SvpOp;
  payload: Buffer;
  resolve: (r: { msg: SvpMessage; server: string }) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  conn: Conn | null;
  id: number;
  /** The connection's received-frame count when this query was sent. */
  rxAtSend: number;
  done: boolean;
}

type ConnState = 'connecting' | 'active' | 'backoff' | 'closed';

class Conn {
  state: ConnState = 'backoff';
  private socket: net.Socket | null = null;
  private decoder: FrameDecoder | null = null;
  private nextId = 1;
  readonly inflight = new Map<number, Query>();
  private failures = 0;
  lastRx = 0;
  /** Frames received so far (a query timing out with none since it was sent means a dead peer). */
  private rxFrames = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private keepaliveTimer: NodeJS.Timeout | null = null;
  private pinging = false;

  constructor(
    private readonly client: SvpClient,
    readonly ep: ServerEndpoint,
    /** The server spec's host (a name or an address) this endpoint came from. */
    readonly origin: string,
  ) {}

  connect(): void {
    if (this.state === 'closed' || this.state === 'connecting' || this.state === 'active') return;
    this.state = 'connecting';
    const cfg = this.client.config;
    const socket = cfg.tls
      ? tls.connect({ host: this.ep.host, port: this.ep.port, ...clientTlsOptions(cfg.tls), ...(net.isIP(this.origin) ? {} : { servername: this.origin }) }).setNoDelay(true)
      : net.connect({ host: this.ep.host, port: this.ep.port, noDelay: true });
    this.socket = socket;
    this.decoder = new FrameDecoder({ maxFrameBytes: cfg.maxFrameBytes, role: 'client' });
    socket.setTimeout(cfg.timeoutMs, () => {
      if (this.state === 'connecting') this.fail(socket, 'connect timed out');
    });
    socket.once(cfg.tls ? 'secureConnect' : 'connect', () => {
      if (this.socket !== socket) return;
      socket.setTimeout(0);
      this.state = 'active';
      this.failures = 0;
      this.lastRx = Date.now();
      this.armKeepalive();
      this.client.connUp(this);
    });
    socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
    socket.on('error', (err) => this.fail(socket, err.message));
    socket.on('close', () => this.fail(socket, 'connection closed'));
    socket.on('end', () => this.fail(socket, 'server ended the connection'));
  }

  private onData(socket: net.Socket, chunk: Buffer): void {
    if (this.socket !== socket || !this.decoder) return;
    this.lastRx = Date.now();
    const { frames, error } = this.decoder.push(chunk);
    this.rxFrames += frames.length;
    for (const f of frames) {
      if (!this.onFrame(f)) {
        this.fail(socket, `bad reply ${opName(f.op)}`);
        return;
      }
    }
    if (error) this.fail(socket, `protocol error: ${error.message}`);
  }

  /** false when the reply breaks the protocol (the connection is then reset). */
  private onFrame(f: Frame): boolean {
    const q = this.inflight.get(f.id);
    if (!q) return true; // a reply to a query that already timed out
    if (ackOpFor(q.op) !== f.op) return false;
    let msg: SvpMessage;
    try {
      msg = decodeMessage(f);
    } catch {
      return false;
    }
    this.inflight.delete(f.id);
    this.client.settle(q, { msg, server: this.ep.label });
    return true;
  }

  send(q: Query): void {
    const socket = this.socket;
    if (!socket || this.state !== 'active') throw new Error('send on an inactive connection');
    let id = this.nextId;
    while (this.inflight.has(id)) id = id >= 0xffffffff ? 1 : id + 1;
    this.nextId = id >= 0xffffffff ? 1 : id + 1;
    q.id = id;
    q.conn = this;
    q.rxAtSend = this.rxFrames;
    this.inflight.set(id, q);
    socket.write(encodeFrame(q.op, id, q.payload));
  }

  /** Forgets a query (timed out); true when the connection looks dead for it. */
  forget(q: Query): boolean {
    this.inflight.delete(q.id);
    return this.state === 'active' && this.rxFrames === q.rxAtSend;
  }

  private armKeepalive(): void {
    const ms = this.client.config.keepaliveMs;
    if (ms <= 0) return;
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = setInterval(() => {
      if (this.state !== 'active' || this.pinging) return;
      if (Date.now() - this.lastRx < ms) return;
      this.pinging = true;
      this.client.keepalivePing(this).finally(() => {
        this.pinging = false;
      });
    }, Math.max(10, Math.floor(ms / 2)));
    this.keepaliveTimer.unref();
  }

  /** Tears the connection down, hands its queries to others, schedules a reconnect. */
  fail(socket: net.Socket | null, reason: string): void {
    if (socket && this.socket !== socket) return;
    if (this.state === 'backoff' || this.state === 'closed') return;
    this.down('backoff', reason);
    const cfg = this.client.config;
    const delay = Math.min(cfg.backoffBaseMs * 2 ** Math.min(this.failures, 30), cfg.backoffMaxMs);
    this.failures++;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.connect();
    }, delay);
    this.reconnectTimer.unref();
  }

  /** Torn down and connected again at once, not after a back-off (the path it used is gone). */
  restart(reason: string): void {
    if (this.state === 'closed') return;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.down('backoff', reason);
    this.connect();
  }

  /** Into `state` with the socket torn down and its queries handed on; the client hears of a lost active connection. */
  private down(state: 'backoff' | 'closed', reason: string): void {
    const wasActive = this.state === 'active';
    this.state = state;
    this.teardown();
    if (wasActive) this.client.connDown(this, reason);
  }

  private teardown(): void {
    const socket = this.socket;
    this.socket = null;
    this.decoder = null;
    if (socket) {
      socket.removeAllListeners('data');
      socket.on('error', () => {});
      socket.destroy();
    }
    if (this.keepaliveTimer) clearInterval(this.keepaliveTimer);
    this.keepaliveTimer = null;
    const orphans = [...this.inflight.values()];
    this.inflight.clear();
    for (const q of orphans) {
      q.conn = null;
      this.client.dispatch(q, this);
    }
  }

  close(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    this.down('closed', 'closed');
  }
}

interface ResolvedConfig {
  timeoutMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  keepaliveMs: number;
  resolveIntervalMs: number;
  maxFrameBytes: number;
  tls: ClientTls | undefined;
}

export class SvpClient extends EventEmitter<SvpClientEvents> {
  readonly config: ResolvedConfig;
  private readonly specs: { host: string; port: number }[];
  private readonly lookup: (host: string) => Promise<string[]>;
  private conns: Conn[] = [];
  private rr = 0;
  private waiting: Query[] = [];
  private closed = false;
  private started: Promise<void> | null = null;
  private resolveTimer: NodeJS.Timeout | null = null;
  private readyWaiters: (() => void)[] = [];

  constructor(opts: SvpClientOptions) {
    super();
    if (opts.servers.length === 0) throw new TypeError('SvpClient needs at least one server');
    this.specs = opts.servers.flatMap((s) => s.split(',')).filter((s) => s.trim() !== '').map((s) => parseServer(s));
    this.lookup = opts.lookup ?? defaultLookup;
    this.config = {
      timeoutMs: opts.timeoutMs ?? 5000,
      backoffBaseMs: opts.backoffBaseMs ?? 1000,
      backoffMaxMs: opts.backoffMaxMs ?? 32000,
      keepaliveMs: opts.keepaliveMs ?? 30000,
      resolveIntervalMs: opts.resolveIntervalMs ?? 30000,
      maxFrameBytes: opts.maxFrameBytes ?? 64 * 1024,
      tls: opts.tls,
    };
  }

  /** Resolves endpoints and starts connecting (queries call this themselves). */
  start(): Promise<void> {
    if (!this.started) {
      this.started = this.resolveAll();
      if (this.config.resolveIntervalMs > 0 && this.specs.some((s) => !net.isIP(s.host))) {
        this.resolveTimer = setInterval(() => void this.resolveAll(), this.config.resolveIntervalMs);
        this.resolveTimer.unref();
      }
    }
    return this.started;
  }

  /** Resolves once at least one connection is active, or rejects after timeoutMs. */
  async ready(timeoutMs = this.config.timeoutMs): Promise<void> {
    await this.start();
    if (this.conns.some((c) => c.state === 'active')) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.readyWaiters = this.readyWaiters.filter((w) => w !== done);
        reject(new SvpTimeoutError('connect', timeoutMs));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        resolve();
      };
      this.readyWaiters.push(done);
    });
  }

  /** Endpoints and their state (for status output). */
  endpoints(): { server: string; state: ConnState; inflight: number }[] {
    return this.conns.map((c) => ({ server: c.ep.label, state: c.state, inflight: c.inflight.size }));
  }

  private async resolveAll(): Promise<void> {
    const wanted = new Map<string, { ep: ServerEndpoint; origin: string }>();
    for (const s of this.specs) {
      let addrs: string[];
      if (net.isIP(s.host)) addrs = [s.host];
      else {
        try {
          addrs = await this.lookup(s.host);
        } catch {
          // Keep what this name had; the next resolution round may succeed.
          for (const c of this.conns) if (c.origin === s.host && c.ep.port === s.port) wanted.set(c.ep.label, c);
          continue;
        }
      }
      for (const a of addrs) {
        const label = endpointLabel(a, s.port);
        if (!wanted.has(label)) wanted.set(label, { ep: { host: a, port: s.port, label }, origin: s.host });
      }
    }
    if (this.closed) return;
    const next: Conn[] = [];
    const gone: Conn[] = [];
    for (const c of this.conns) (wanted.has(c.ep.label) ? next : gone).push(c);
    const fresh: Conn[] = [];
    for (const [label, w] of wanted) {
      if (next.some((c) => c.ep.label === label)) continue;
      const c = new Conn(this, w.ep, w.origin);
      next.push(c);
      fresh.push(c);
    }
    this.conns = next;
    for (const c of gone) c.close(); // their queries move to the remaining connections
    for (const c of fresh) c.connect();
  }

  // --- called by Conn -------------------------------------------------------------------

  connUp(c: Conn): void {
    this.emit('connect', c.ep.label);
    const ws = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of ws) w();
    const waiting = this.waiting;
    this.waiting = [];
    for (const q of waiting) if (!q.done) this.dispatch(q);
  }

  connDown(c: Conn, reason: string): void {
    this.emit('disconnect', c.ep.label, reason);
  }

  /** Sends q on the next active connection (round robin), or parks it until one is up. */
  dispatch(q: Query, exclude?: Conn): void {
    if (q.done) return;
    const n = this.conns.length;
    for (let i = 0; i < n; i++) {
      const c = this.conns[(this.rr + i) % n];
      if (c.state !== 'active' || c === exclude) continue;
      this.rr = (this.rr + i + 1) % n;
      try {
        c.send(q);
        return;
      } catch {
        continue;
      }
    }
    this.waiting.push(q);
  }

  settle(q: Query, r: { msg: SvpMessage; server: string }): void {
    if (q.done) return;
    q.done = true;
    clearTimeout(q.timer);
    q.resolve(r);
  }

  keepalivePing(c: Conn): Promise<void> {
    return new Promise<void>((resolve) => {
      const q = this.makeQuery({ op: SvpOp.PING }, this.config.timeoutMs, () => resolve(), () => {
        c.fail(null, 'keepalive PING unanswered');
        resolve();
      });
      if (c.state !== 'active') {
        q.done = true;
        clearTimeout(q.timer);
        resolve();
        return;
      }
      c.send(q);
    });
  }

  // --- queries --------------------------------------------------------------------------

  private makeQuery(
    req: SvpRequest,
    timeoutMs: number,
    resolve: Query['resolve'],
    reject: Query['reject'],
  ): Query {
    const q: Query = {
      op: req.op,
      payload: encodePayload(req),
      resolve,
      reject,
      conn: null,
      id: 0,
      rxAtSend: 0,
      done: false,
      timer: setTimeout(() => {
        if (q.done) return;
        q.done = true;
        this.waiting = this.waiting.filter((x) => x !== q);
        const conn = q.conn;
        const dead = conn ? conn.forget(q) : false;
        reject(new SvpTimeoutError(opName(req.op), timeoutMs));
        if (conn && dead) conn.fail(null, `no reply within ${timeoutMs} ms`);
      }, timeoutMs),
    };
    return q;
  }

  private async query(req: SvpRequest, opts?: QueryOptions): Promise<{ msg: SvpMessage; server: string }> {
    if (this.closed) throw new SvpClosedError();
    void this.start();
    const timeoutMs = opts?.timeoutMs ?? this.config.timeoutMs;
    return new Promise((resolve, reject) => {
      const q = this.makeQuery(req, timeoutMs, resolve, reject);
      this.dispatch(q);
    });
  }

  async ping(opts?: QueryOptions): Promise<PingResult> {
    const t0 = performance.now();
    const { server } = await this.query({ op: SvpOp.PING }, opts);
    return { server, rttMs: performance.now() - t0 };
  }

  /** Where a MAC lives on a vnet. */
  async vl2(mac: string, vnetId: number, opts?: QueryOptions): Promise<Vl2Result> {
    const { msg, server } = await this.query({ op: SvpOp.VL2_REQ, mac: macToBytes(mac), vnetId }, opts);
    if (msg.op !== SvpOp.VL2_ACK) throw new Error('unexpected reply');
    const ok = msg.status === SvpStatus.OK;
    return { server, status: msg.status, statusName: statusName(msg.status), ip: ok ? ipFromBytes(msg.ip) : null, port: msg.port };
  }

  /** Which MAC owns an IP on a vnet, and where it lives. type defaults from the address. */
  async vl3(ip: string, vnetId: number, opts?: QueryOptions & { type?: number }): Promise<Vl3Result> {
    const bytes = ipToBytes(ip);
    const type = opts?.type ?? (isV4Mapped(bytes) ? Vl3Type.IPV4 : Vl3Type.IPV6);
    const { msg, server } = await this.query({ op: SvpOp.VL3_REQ, ip: bytes, type, vnetId }, opts);
    if (msg.op !== SvpOp.VL3_ACK) throw new Error('unexpected reply');
    const ok = msg.status === SvpStatus.OK;
    return {
      server,
      status: msg.status,
      statusName: statusName(msg.status),
      mac: ok ? macFromBytes(msg.mac) : null,
      ip: ok ? ipFromBytes(msg.ip) : null,
      port: msg.port,
    };
  }

  /**
   * Pending shootdown events for the node with this underlay IP. The server may hold the
   * request until an event exists (long-poll): give a timeout above the server's wait.
   */
  async logReq(underlayIp: string, count = 1024, opts?: QueryOptions): Promise<LogResult> {
    const { msg, server } = await this.query({ op: SvpOp.LOG_REQ, count, ip: ipToBytes(underlayIp) }, opts);
    if (msg.op !== SvpOp.LOG_ACK) throw new Error('unexpected reply');
    let bytes = 4;
    const entries: ClientLogEntry[] = msg.entries.map((e) => {
      if (e.type === LogType.VL2) {
        bytes += 32;
        return { type: 'vl2', id: uuidFromBytes(e.id), mac: macFromBytes(e.mac), vnetId: e.vnetId };
      }
      bytes += 44;
      return { type: 'vl3', id: uuidFromBytes(e.id), ip: ipFromBytes(e.ip), vlan: e.vlan, vnetId: e.vnetId };
    });
    return { server, status: msg.status, statusName: statusName(msg.status), entries, bytes };
  }

  /** Acknowledges (removes) events by id. */
  async logRm(ids: readonly string[], opts?: QueryOptions): Promise<LogRmResult> {
    const { msg, server } = await this.query({ op: SvpOp.LOG_RM, ids: ids.map(uuidToBytes) }, opts);
    if (msg.op !== SvpOp.LOG_RM_ACK) throw new Error('unexpected reply');
    return { server, status: msg.status, statusName: statusName(msg.status) };
  }

  /**
   * Every connection made again now: an address of this host is gone, and connections
   * that left from it are dead though nothing says so before a time-out. Their queries
   * wait for the new connections.
   */
  reconnect(reason: string): void {
    if (this.closed) return;
    for (const c of this.conns) c.restart(reason);
  }

  /** Closes every connection; outstanding queries reject with SvpClosedError. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.resolveTimer) clearInterval(this.resolveTimer);
    const conns = this.conns;
    this.conns = [];
    for (const c of conns) c.close();
    const waiting = this.waiting;
    this.waiting = [];
    for (const q of waiting) {
      if (q.done) continue;
      q.done = true;
      clearTimeout(q.timer);
      q.reject(new SvpClosedError());
    }
    for (const w of this.readyWaiters) w();
    this.readyWaiters = [];
  }
}
