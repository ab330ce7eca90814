/**
 * One SVP server connection: cuts frames out of what it reads, answers them, and keeps
 * what a client can make it hold bounded whatever the client does.
 *
 * Lookups (VL2_REQ, VL3_REQ) and PINGs take a fast path: checked and answered straight
 * from the received bytes into one output buffer per read, with no per-request objects,
 * and sent in one write; the other requests go through `handle` as decoded frames, their
 * replies joining the same output in order. The bounds:
 * - the write backlog: before each frame is handled the unsent replies are checked, and
 *   over the bound the connection stops handling frames and reading until the socket
 *   drains (a client that pipelines without reading stops being read);
 * - a LOG_ACK carries at most `maxLogAckBytes`, whatever count was asked (the client gets
 *   fewer events and asks again);
 * - long-polled LOG_REQs: at most `maxHeldLogReqs` are held, further ones are answered at
 *   once (OK, no entries, as when the wait expires);
 * - other requests in progress (LOG_RM commits): at most `maxPending`, or the connection
 *   is closed.
 * Who the peer is (the server's business: TLS, listeners) reaches a connection only as its
 * policy: a read-only connection answers lookups only, a node's LOG_REQ and LOG_RM only
 * for that node.
 */
import { performance } from 'node:perf_hooks';
import type { MappingIndex, PendingEvent } from '../mapping/index.js';
import type { Store } from '../store/types.js';
import {
  type Frame,
  HEADER_BYTES,
  LOG_REQ_BYTES,
  LOG_VL2_BYTES,
  type LogEntry,
  LogType,
  SVP_VERSION,
  checkFrameCrc,
  checkFrameHeader,
  isRequestOp,
  type ProtocolErrorCause,
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
  logRmCount,
  opName,
} from './codec.js';
import { PONG_FRAME_BYTES, VL2_ACK_FRAME_BYTES, VL3_ACK_FRAME_BYTES, putPong, putVl2Ack, putVl3Ack } from './frame-put.js';
import type { Logger } from '../log/index.js';
import { isV4Mapped } from '../net/addr.js';
import { decodeEventId, nodeTag } from '../overlay/event-id.js';

/** The SVP log entry of a pending event (the index keeps events, not wire bytes). */
function logEntryOf(e: PendingEvent): LogEntry {
  return e.type === 'vl2'
    ? { type: LogType.VL2, id: e.id, mac: e.mac, vnetId: e.vnetId }
    : { type: LogType.VL3, id: e.id, ip: e.ip, vlan: e.vlan, vnetId: e.vnetId };
}

/** Why a connection was closed by the server (metric label values). */
export type CloseCause = ProtocolErrorCause | 'shootdown' | 'too_many_pending' | 'internal_error' | 'idle_timeout';

export type OpLabel = 'ping' | 'vl2' | 'vl3' | 'bulk' | 'log_req' | 'log_rm';

/** Why a request was refused by the connection's policy (metric label values). */
export type PolicyRefusal = 'read_only' | 'not_own_node';

/** What the peer may ask, decided by the server from the listener and the peer's certificate. */
export interface ConnectionPolicy {
  /** Lookups only: LOG_REQ and LOG_RM are answered FATAL. */
  readOnly: boolean;
  /** LOG_REQ and LOG_RM only for this node (a node certificate); undefined: any node. */
  node: string | undefined;
}

/** Everything allowed (a plaintext listener, an operator's certificate). */
export const OPEN_POLICY: ConnectionPolicy = { readOnly: false, node: undefined };

export interface ConnectionLimits {
  maxFrameBytes: number;
  logWaitMs: number;
  maxPending: number;
  maxHeldLogReqs: number;
  maxLogAckBytes: number;
  maxWriteBacklogBytes: number;
  logRmVisibleTimeoutMs: number;
}

/**
 * The part of a net.Socket a connection uses: a net.Socket or tls.TLSSocket, or the native
 * front end's NativeSocket (which emits 'data' only for the frames it does not answer).
 */
export interface SvpSocket {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly writableHighWaterMark: number;
  readonly writableLength: number;
  readonly writableNeedDrain: boolean;
  on(event: 'data', fn: (chunk: Buffer) => void): this;
  on(event: 'end' | 'drain', fn: () => void): this;
  on(event: 'error', fn: (err: Error) => void): this;
  write(buf: Buffer): boolean;
  pause(): this;
  resume(): this;
  isPaused(): boolean;
  end(): this;
  destroy(): this;
}

/** What a connection needs from its server: data, limits, logging and counters. */
export interface ConnectionHost {
  readonly store: Store;
  readonly index: MappingIndex;
  readonly logger: Logger | undefined;
  readonly limits: ConnectionLimits;
  countRequest(op: OpLabel, status: number, startedMs: number): void;
  /** Lookups answered together in one read turn that took elapsedMs. */
  countLookups(tally: LookupTally, elapsedMs: number): void;
  countClose(cause: CloseCause): void;
  countServed(n: number): void;
  countRemoved(n: number): void;
  /** The connection stopped reading because its replies are not being read. */
  countBacklogPause(): void;
  /** A LOG_REQ for node cn started (+1) or stopped (-1) being held. */
  countHeld(delta: 1 | -1, cn: string): void;
  /**
   * Whether another LOG_REQ of node cn may be held (the per-node cap, over all its
   * connections); false is counted, and the request answered at once.
   */
  mayHold(cn: string): boolean;
  /** A request the connection's policy does not allow was answered FATAL. */
  countRefused(reason: PolicyRefusal): void;
}

/** Lookups answered on the fast path in one read turn, counted in bulk by the server. */
export interface LookupTally {
  ping: number;
  vl2Ok: number;
  vl2NotFound: number;
  vl3Ok: number;
  vl3NotFound: number;
  vl3BadType: number;
}

const macScratch = Buffer.alloc(6);
const EMPTY = Buffer.alloc(0);
/** Replies at least this big are written on their own rather than copied into the output. */
const DIRECT_WRITE_BYTES = 4096;
/** Fast-path replies are at most 9/7 of their requests' bytes (VL2: 28 in, 36 out). */
const REPLY_PER_REQUEST_BYTE = 9 / 7;

function badSize(f: Frame, want: number): SvpProtocolError {
  return new SvpProtocolError('bad_size', `${opName(f.op)} payload must be ${want} bytes, got ${f.payload.length}`);
}

/** The frame at buf[off] for the general path (its payload is a view into buf). */
function frameAt(buf: Buffer, off: number, op: number, size: number): Frame {
  return { version: SVP_VERSION, op, id: buf.readUInt32BE(off + 8), payload: buf.subarray(off + HEADER_BYTES, off + HEADER_BYTES + size) };
}

export class Connection {
  private closed = false;
  private readEnded = false;
  private ending = false;
  /** Cancel functions of requests still in progress (long-polls, removals). */
  private readonly pending = new Set<() => void>();
  private held = 0;
  readonly peer: string;
  /** Received bytes not handled yet, from `inOff`: a partial frame, or frames held back. */
  private input: Buffer = EMPTY;
  private inOff = 0;
  /** Frames are held back (and reading paused) until the unsent replies drain. */
  private blocked = false;
  /** A protocol error at `inOff`, acted on once the frames before it are answered. */
  private inputError: SvpProtocolError | undefined;
  /** Inside handleInput: replies are collected into `out` and sent in one write. */
  private inTurn = false;
  private out: Buffer | null = null;
  private outLen = 0;
  private readonly tally: LookupTally = { ping: 0, vl2Ok: 0, vl2NotFound: 0, vl3Ok: 0, vl3NotFound: 0, vl3BadType: 0 };
  /** Backlog bound; at least the socket's high-water mark, so that 'drain' always follows. */
  private readonly backlogBound: number;
  private readonly maxFrameBytes: number;
  private readonly index: MappingIndex;
  /** The node tag its event ids carry, for a connection bound to one node (computed once). */
  private nodeTagCache: bigint | undefined;

  constructor(
    private readonly host: ConnectionHost,
    private readonly socket: SvpSocket,
    private readonly policy: ConnectionPolicy = OPEN_POLICY,
  ) {
    this.peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.backlogBound = Math.max(host.limits.maxWriteBacklogBytes, socket.writableHighWaterMark);
    this.maxFrameBytes = host.limits.maxFrameBytes;
    this.index = host.index;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err) => host.logger?.debug({ peer: this.peer, err: err.message }, 'svp connection error'));
    socket.on('drain', () => {
      if (this.blocked) this.handleInput();
    });
  }

  private onData(chunk: Buffer): void {
    if (this.closed || this.inputError) return;
    // What is left is a partial frame (reading is paused while whole frames wait).
    this.input = this.inOff < this.input.length ? Buffer.concat([this.input.subarray(this.inOff), chunk]) : chunk;
    this.inOff = 0;
    this.handleInput();
  }

  private onEnd(): void {
    this.readEnded = true;
    this.maybeFinish();
  }

  /**
   * Answers the frames received so far, in order, while the unsent replies stay under the
   * bound (checked before each frame); over it, reading stops until 'drain' calls this
   * again. Lookups and PINGs are answered here, straight into the output buffer; what is
   * answered synchronously goes out at the end in one write (more only when a large reply
   * or a full buffer forces one earlier, order kept).
   */
  private handleInput(): void {
    if (this.closed) return;
    const t0 = performance.now();
    const input = this.input;
    this.blocked = false;
    this.inTurn = true;
    try {
      while (!this.closed) {
        const off = this.inOff;
        const avail = input.length - off;
        if (avail < HEADER_BYTES) break;
        const op = (input[off + 2] << 8) | input[off + 3];
        const size = input.readUInt32BE(off + 4);
        if (input[off] !== 0 || input[off + 1] !== SVP_VERSION || size > this.maxFrameBytes || !isRequestOp(op)) {
          this.inputError = checkFrameHeader(input.readUInt16BE(off), op, size, 'server', this.maxFrameBytes);
          if (this.inputError) break;
        }
        if (avail < HEADER_BYTES + size) break;
        if (this.socket.writableLength + this.outLen > this.backlogBound) {
          this.blocked = true;
          break;
        }
        this.inputError = checkFrameCrc(input, off, size);
        if (this.inputError) break;
        this.inOff = off + HEADER_BYTES + size;
        if (!this.answerFast(op, input, off, size)) this.handle(frameAt(input, off, op, size));
      }
      this.flushOutput();
    } finally {
      this.inTurn = false;
      this.out = null;
      this.outLen = 0;
    }
    this.host.countLookups(this.tally, performance.now() - t0);
    const t = this.tally;
    t.ping = t.vl2Ok = t.vl2NotFound = t.vl3Ok = t.vl3NotFound = t.vl3BadType = 0;
    if (this.closed) return;
    if (this.blocked) {
      if (!this.socket.isPaused()) this.host.countBacklogPause();
      this.socket.pause();
      // 'drain' follows whenever the backlog is over the bound; this covers the rest.
      if (!this.socket.writableNeedDrain) setImmediate(() => this.handleInput());
      return;
    }
    if (this.inputError) {
      this.closeForCause(this.inputError.reason, this.inputError.message);
      return;
    }
    // Keep only the partial frame, copied: not the whole chunk it came in.
    this.input = this.inOff < input.length ? Buffer.from(input.subarray(this.inOff)) : EMPTY;
    this.inOff = 0;
    if (this.socket.isPaused()) this.socket.resume();
    this.maybeFinish();
  }

  /**
   * PING, VL2_REQ and VL3_REQ of the right size, answered into the output buffer with no
   * per-request objects. false: not one of those, take the general path.
   */
  private answerFast(op: number, input: Buffer, off: number, size: number): boolean {
    const p = off + HEADER_BYTES;
    const idOff = off + 8;
    const t = this.tally;
    if (op === SvpOp.VL3_REQ && size === VL3_REQ_BYTES) {
      const o = this.reserve(VL3_ACK_FRAME_BYTES);
      const type = input.readUInt32BE(p + 16);
      if ((type !== Vl3Type.IPV4 && type !== Vl3Type.IPV6) || (type === Vl3Type.IPV4 && !isV4Mapped(input, p))) {
        this.outLen = putVl3Ack(this.out!, o, input, idOff, SvpStatus.BADL3TYPE, null, 0, null);
        t.vl3BadType++;
        return true;
      }
      const ul = this.index.resolveVl3(input.readUInt32BE(p + 20), input, p, macScratch);
      if (ul) {
        this.outLen = putVl3Ack(this.out!, o, input, idOff, SvpStatus.OK, macScratch, ul.port, ul.ip);
        t.vl3Ok++;
      } else {
        this.outLen = putVl3Ack(this.out!, o, input, idOff, SvpStatus.NOTFOUND, null, 0, null);
        t.vl3NotFound++;
      }
      return true;
    }
    if (op === SvpOp.VL2_REQ && size === VL2_REQ_BYTES) {
      const o = this.reserve(VL2_ACK_FRAME_BYTES);
      const ul = this.index.resolveVl2(input.readUInt32BE(p + 8), input, p);
      if (ul) {
        this.outLen = putVl2Ack(this.out!, o, input, idOff, SvpStatus.OK, ul.port, ul.ip);
        t.vl2Ok++;
      } else {
        this.outLen = putVl2Ack(this.out!, o, input, idOff, SvpStatus.NOTFOUND, 0, null);
        t.vl2NotFound++;
      }
      return true;
    }
    if (op === SvpOp.PING && size === 0) {
      const o = this.reserve(PONG_FRAME_BYTES);
      this.outLen = putPong(this.out!, o, input, idOff);
      t.ping++;
      return true;
    }
    return false;
  }

  /**
   * Room for n more bytes in the output buffer; returns where they go. The buffer is sized
   * for the fast-path replies to everything still unread in the input.
   */
  private reserve(n: number): number {
    if (this.out !== null && this.outLen + n <= this.out.length) return this.outLen;
    this.flushOutput();
    const want = Math.ceil((this.input.length - this.inOff) * REPLY_PER_REQUEST_BYTE) + n;
    this.out = Buffer.allocUnsafe(Math.min(Math.max(want, 256), this.backlogBound + n));
    return 0;
  }

  /** Writes the replies collected so far in one write. */
  private flushOutput(): void {
    if (this.outLen === 0) return;
    const out = this.out!;
    if (!this.closed) this.socket.write(this.outLen === out.length ? out : out.subarray(0, this.outLen));
    this.out = null;
    this.outLen = 0;
  }

  /** After the client's end: close our side once everything read has been answered. */
  private maybeFinish(): void {
    if (!this.readEnded || this.closed || this.blocked) return;
    if (this.inputError) {
      this.closeForCause(this.inputError.reason, this.inputError.message);
      return;
    }
    const partial = this.input.length - this.inOff;
    if (partial > 0) {
      this.closeForCause('truncated', `stream ended inside a frame (${partial} bytes buffered)`);
      return;
    }
    if (this.pending.size === 0 && !this.ending) {
      this.ending = true;
      this.socket.end();
    }
  }

  private write(buf: Buffer): void {
    if (this.closed) return;
    if (this.inTurn && buf.length < DIRECT_WRITE_BYTES) {
      const o = this.reserve(buf.length);
      buf.copy(this.out!, o);
      this.outLen = o + buf.length;
      return;
    }
    // Large replies (LOG_ACKs) are not worth copying; keep the order though.
    this.flushOutput();
    this.socket.write(buf);
  }

  /** The general path: every request, as a decoded frame. */
  private handle(f: Frame): void {
    const t0 = performance.now();
    const p = f.payload;
    try {
      switch (f.op) {
        // answerFast takes these when their size is right.
        case SvpOp.PING:
          throw badSize(f, 0);
        case SvpOp.VL2_REQ:
          throw badSize(f, VL2_REQ_BYTES);
        case SvpOp.VL3_REQ:
          throw badSize(f, VL3_REQ_BYTES);
        case SvpOp.BULK_REQ:
          this.expectSize(f, BULK_REQ_BYTES);
          this.write(encodeBulkAck(f.id, SvpStatus.FATAL, p.readUInt32BE(0)));
          this.host.countRequest('bulk', SvpStatus.FATAL, t0);
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
        this.host.logger?.warn({ peer: this.peer, err: (err as Error).message }, 'svp request failed');
        this.closeForCause('internal_error', (err as Error).message);
      }
    }
  }

  private expectSize(f: Frame, n: number): void {
    if (f.payload.length !== n) throw badSize(f, n);
  }

  /** Registers an in-progress request; false (and the connection closed) when over the cap. */
  private track(cancel: () => void): boolean {
    if (this.pending.size >= this.host.limits.maxPending) {
      this.closeForCause('too_many_pending', `more than ${this.host.limits.maxPending} requests in progress`);
      return false;
    }
    this.pending.add(cancel);
    return true;
  }

  private untrack(cancel: () => void): void {
    this.pending.delete(cancel);
    this.maybeFinish();
  }

  private ownTag(): bigint {
    this.nodeTagCache ??= nodeTag(this.policy.node ?? '');
    return this.nodeTagCache;
  }

  /** True (and counted) when the policy forbids this connection the log of node cn. */
  private refusesLog(cn: string | undefined): boolean {
    const reason: PolicyRefusal | undefined = this.policy.readOnly ? 'read_only' : this.policy.node !== undefined && cn !== this.policy.node ? 'not_own_node' : undefined;
    if (reason) this.host.countRefused(reason);
    return reason !== undefined;
  }

  private logReq(id: number, count: number, p: Buffer, t0: number): void {
    const cn = this.host.index.nodeByUnderlay(p, 4);
    if (cn === undefined || cn === 'ambiguous' || count < 4 || this.refusesLog(cn)) {
      this.write(encodeLogAck(id, SvpStatus.FATAL, []));
      this.host.countRequest('log_req', SvpStatus.FATAL, t0);
      return;
    }
    // Something to send, or enough held already: answer now (an empty answer is what an
    // expired wait gives too, and the client just asks again).
    if (this.host.index.pendingEvents(cn, 1).length > 0 || this.held >= this.host.limits.maxHeldLogReqs || !this.host.mayHold(cn)) {
      this.answerLog(id, cn, count, t0);
      return;
    }
    this.holdLogReq(id, cn, count, t0);
  }

  /** Long-poll: hold until the node gains an event or the wait expires. */
  private holdLogReq(id: number, cn: string, count: number, t0: number): void {
    let timer: NodeJS.Timeout | undefined;
    let unsubscribe: (() => void) | undefined;
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      if (timer) clearTimeout(timer);
      unsubscribe?.();
      this.held--;
      this.host.countHeld(-1, cn);
    };
    if (!this.track(release)) return;
    this.held++;
    this.host.countHeld(1, cn);
    const respond = (): void => {
      release();
      this.untrack(release);
      this.answerLog(id, cn, count, t0);
    };
    unsubscribe = this.host.index.onNodeEvents(cn, respond);
    timer = setTimeout(respond, this.host.limits.logWaitMs);
  }

  private answerLog(id: number, cn: string, count: number, t0: number): void {
    if (this.closed) return;
    const budget = Math.min(count, this.host.limits.maxLogAckBytes);
    const picked: Buffer[] = [];
    let size = 4;
    for (const e of this.host.index.pendingEvents(cn, Math.floor((budget - 4) / LOG_VL2_BYTES))) {
      const entry = encodeLogEntry(logEntryOf(e));
      if (size + entry.length > budget) break;
      picked.push(entry);
      size += entry.length;
    }
    this.write(encodeLogAck(id, SvpStatus.OK, picked));
    this.host.countServed(picked.length);
    this.host.countRequest('log_req', SvpStatus.OK, t0);
  }

  private logRm(id: number, p: Buffer, t0: number): void {
    const n = logRmCount(p); // throws bad_size -> connection closed
    const ids = Array.from({ length: n }, (_, i) => Buffer.from(p.subarray(4 + 16 * i, 20 + 16 * i)));
    // A node removes only its own copies (an id names its node by tag); a read-only
    // connection nothing.
    const foreign = this.policy.node !== undefined && ids.some((e) => decodeEventId(e).tag !== this.ownTag());
    if ((this.policy.readOnly || foreign) && this.refusesLog(foreign ? undefined : this.policy.node)) {
      this.write(encodeLogRmAck(id, SvpStatus.FATAL));
      this.host.countRequest('log_rm', SvpStatus.FATAL, t0);
      return;
    }
    // Nothing to remove (no id names an event the index holds or may soon): ack at once.
    if (!this.host.index.mayRemoveEvents(ids)) {
      this.write(encodeLogRmAck(id, SvpStatus.OK));
      this.host.countRequest('log_rm', SvpStatus.OK, t0);
      return;
    }
    let cancelled = false;
    const cancel = (): void => {
      cancelled = true;
    };
    if (!this.track(cancel)) return;
    let removed = 0;
    // The index acks only once it no longer serves these events: a LOG_REQ sent right
    // after the ack must not see them again.
    this.host.index
      .removeEvents(ids)
      .then((count) => {
        removed = count;
        return SvpStatus.OK;
      })
      .catch((err: Error) => {
        this.host.logger?.warn({ peer: this.peer, err: err.message }, 'svp LOG_RM: store commit failed');
        return SvpStatus.FATAL;
      })
      .then((status) => {
        if (status === SvpStatus.OK) this.host.countRemoved(removed);
        if (cancelled || this.closed) return;
        // Written before untrack, which may end the connection once nothing is pending.
        this.write(encodeLogRmAck(id, status));
        this.host.countRequest('log_rm', status, t0);
        this.untrack(cancel);
      });
  }

  closeForCause(cause: CloseCause, detail: string): void {
    if (this.closed) return;
    // Replies to the requests before the bad one still go out (as for a bad frame header).
    if (this.inTurn) this.flushOutput();
    this.host.countClose(cause);
    this.host.logger?.warn({ peer: this.peer, cause, detail }, 'svp: closing connection for bad input');
    this.destroy();
  }

  destroy(): void {
    if (this.closed) return;
    this.cleanup();
    this.socket.destroy();
  }

  /** Cancels every in-progress request and drops queued frames (idempotent). */
  cleanup(): void {
    this.closed = true;
    for (const cancel of this.pending) cancel();
    this.pending.clear();
    this.input = EMPTY;
    this.inOff = 0;
    this.inputError = undefined;
  }
}
