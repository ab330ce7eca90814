/**
 * One SVP server connection: decodes frames, answers them, and keeps what a client can
 * make it hold bounded whatever the client does:
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
import type net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { MappingIndex, PendingEvent } from '../mapping/index.js';
import type { Store } from '../store/types.js';
import {
  type Frame,
  FrameDecoder,
  LOG_REQ_BYTES,
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
  encodeLogRmAck,
  encodePong,
  encodeVl2Ack,
  encodeVl3Ack,
  logRmCount,
  opName,
} from './codec.js';
import type { Logger } from '../log/index.js';
import { isV4Mapped, uuidFromBytes } from '../net/addr.js';

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

/** What a connection needs from its server: data, limits, logging and counters. */
export interface ConnectionHost {
  readonly store: Store;
  readonly index: MappingIndex;
  readonly logger: Logger | undefined;
  readonly limits: ConnectionLimits;
  countRequest(op: OpLabel, status: number, startedMs: number): void;
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

const macScratch = Buffer.alloc(6);
const NO_FRAMES: Frame[] = [];
/** Replies at least this big are written on their own rather than copied into a batch. */
const DIRECT_WRITE_BYTES = 4096;

export class Connection {
  private readonly decoder: FrameDecoder;
  private closed = false;
  private readEnded = false;
  private ending = false;
  /** Cancel functions of requests still in progress (long-polls, removals). */
  private readonly pending = new Set<() => void>();
  private held = 0;
  readonly peer: string;
  /** Decoded frames not handled yet (the backlog was over the bound), from `next`. */
  private queue: Frame[] = NO_FRAMES;
  private next = 0;
  /** A decode error to act on once the frames before it are handled. */
  private decodeError: SvpProtocolError | undefined;
  /** Small replies collected while frames are handled (null outside handleQueued). */
  private batch: Buffer[] | null = null;
  private batchBytes = 0;
  /** Backlog bound; at least the socket's high-water mark, so that 'drain' always follows. */
  private readonly backlogBound: number;

  constructor(
    private readonly host: ConnectionHost,
    private readonly socket: net.Socket,
    private readonly policy: ConnectionPolicy = OPEN_POLICY,
  ) {
    this.decoder = new FrameDecoder({ maxFrameBytes: host.limits.maxFrameBytes, role: 'server' });
    this.peer = `${socket.remoteAddress}:${socket.remotePort}`;
    this.backlogBound = Math.max(host.limits.maxWriteBacklogBytes, socket.writableHighWaterMark);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err) => host.logger?.debug({ peer: this.peer, err: err.message }, 'svp connection error'));
    socket.on('drain', () => this.handleQueued());
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    const { frames, error } = this.decoder.push(chunk);
    // Reading is paused while frames wait, so this append is a defensive no-op in practice.
    this.queue = this.next < this.queue.length ? this.queue.slice(this.next).concat(frames) : frames;
    this.next = 0;
    if (error) this.decodeError = error;
    this.handleQueued();
  }

  private onEnd(): void {
    this.readEnded = true;
    this.maybeFinish();
  }

  /**
   * Handles queued frames while the unsent replies stay under the bound. Replies answered
   * synchronously go out together in one write. Over the bound, reading stops until
   * 'drain' calls this again.
   */
  private handleQueued(): void {
    if (this.closed) return;
    this.batch = [];
    this.batchBytes = 0;
    let blocked = false;
    try {
      while (this.next < this.queue.length && !this.closed) {
        if (this.socket.writableLength + this.batchBytes > this.backlogBound) {
          blocked = true;
          break;
        }
        this.handle(this.queue[this.next++]);
      }
      this.flushBatch();
    } finally {
      this.batch = null;
    }
    if (this.closed) return;
    if (blocked) {
      if (!this.socket.isPaused()) this.host.countBacklogPause();
      this.socket.pause();
      // 'drain' follows whenever the backlog is over the bound; this covers the rest.
      if (!this.socket.writableNeedDrain) setImmediate(() => this.handleQueued());
      return;
    }
    this.queue = NO_FRAMES; // drop the references to the received chunk
    this.next = 0;
    if (this.decodeError) {
      this.closeForCause(this.decodeError.reason, this.decodeError.message);
      return;
    }
    if (this.socket.isPaused()) this.socket.resume();
    this.maybeFinish();
  }

  /** Writes the replies batched so far in one write. */
  private flushBatch(): void {
    const out = this.batch;
    if (!out || out.length === 0) return;
    if (!this.closed) this.socket.write(out.length === 1 ? out[0] : Buffer.concat(out, this.batchBytes));
    out.length = 0;
    this.batchBytes = 0;
  }

  /** After the client's end: close our side once everything read has been answered. */
  private maybeFinish(): void {
    if (!this.readEnded || this.closed || this.next < this.queue.length) return;
    const err = this.decoder.end();
    if (err) {
      this.closeForCause(err.reason, err.message);
      return;
    }
    if (this.pending.size === 0 && !this.ending) {
      this.ending = true;
      this.socket.end();
    }
  }

  private write(buf: Buffer): void {
    if (this.closed) return;
    if (this.batch && buf.length < DIRECT_WRITE_BYTES) {
      this.batch.push(buf);
      this.batchBytes += buf.length;
      return;
    }
    // Large replies (LOG_ACKs) are not worth copying into a batch; keep the order though.
    this.flushBatch();
    this.socket.write(buf);
  }

  private handle(f: Frame): void {
    const t0 = performance.now();
    const p = f.payload;
    try {
      switch (f.op) {
        case SvpOp.PING:
          this.expectSize(f, 0);
          this.write(encodePong(f.id));
          this.host.countRequest('ping', SvpStatus.OK, t0);
          return;
        case SvpOp.VL2_REQ: {
          this.expectSize(f, VL2_REQ_BYTES);
          const ul = this.host.index.resolveVl2(p.readUInt32BE(8), p, 0);
          if (ul) this.write(encodeVl2Ack(f.id, SvpStatus.OK, ul.port, ul.ip));
          else this.write(encodeVl2Ack(f.id, SvpStatus.NOTFOUND, 0, null));
          this.host.countRequest('vl2', ul ? SvpStatus.OK : SvpStatus.NOTFOUND, t0);
          return;
        }
        case SvpOp.VL3_REQ: {
          this.expectSize(f, VL3_REQ_BYTES);
          const type = p.readUInt32BE(16);
          if ((type !== Vl3Type.IPV4 && type !== Vl3Type.IPV6) || (type === Vl3Type.IPV4 && !isV4Mapped(p, 0))) {
            this.write(encodeVl3Ack(f.id, SvpStatus.BADL3TYPE, null, 0, null));
            this.host.countRequest('vl3', SvpStatus.BADL3TYPE, t0);
            return;
          }
          const ul = this.host.index.resolveVl3(p.readUInt32BE(20), p, 0, macScratch);
          if (ul) this.write(encodeVl3Ack(f.id, SvpStatus.OK, macScratch, ul.port, ul.ip));
          else this.write(encodeVl3Ack(f.id, SvpStatus.NOTFOUND, null, 0, null));
          this.host.countRequest('vl3', ul ? SvpStatus.OK : SvpStatus.NOTFOUND, t0);
          return;
        }
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
    if (f.payload.length !== n)
      throw new SvpProtocolError('bad_size', `${opName(f.op)} payload must be ${n} bytes, got ${f.payload.length}`);
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
    if (this.host.index.pendingEvents(cn).length > 0 || this.held >= this.host.limits.maxHeldLogReqs || !this.host.mayHold(cn)) {
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
    const picked: PendingEvent[] = [];
    let size = 4;
    for (const e of this.host.index.pendingEvents(cn)) {
      if (size + e.entry.length > budget) break;
      picked.push(e);
      size += e.entry.length;
    }
    this.write(
      encodeLogAck(
        id,
        SvpStatus.OK,
        picked.map((e) => e.entry),
      ),
    );
    this.host.countServed(picked.length);
    this.host.countRequest('log_req', SvpStatus.OK, t0);
  }

  private logRm(id: number, p: Buffer, t0: number): void {
    const n = logRmCount(p); // throws bad_size -> connection closed
    const keys = new Set<string>();
    let foreign = false;
    for (let i = 0; i < n; i++) {
      const ev = this.host.index.eventRef(uuidFromBytes(p, 4 + 16 * i));
      if (!ev) continue;
      keys.add(ev.key);
      if (this.policy.node !== undefined && ev.cn !== this.policy.node) foreign = true;
    }
    // A node removes only its own events; a read-only connection none.
    if ((this.policy.readOnly || foreign) && this.refusesLog(foreign ? undefined : this.policy.node)) {
      this.write(encodeLogRmAck(id, SvpStatus.FATAL));
      this.host.countRequest('log_rm', SvpStatus.FATAL, t0);
      return;
    }
    if (keys.size === 0) {
      this.write(encodeLogRmAck(id, SvpStatus.OK));
      this.host.countRequest('log_rm', SvpStatus.OK, t0);
      return;
    }
    let cancelled = false;
    const cancel = (): void => {
      cancelled = true;
    };
    if (!this.track(cancel)) return;
    const ops = [...keys].map((key) => ({ type: 'del' as const, key }));
    this.host.store
      .commit({ ops })
      .then(async (res) => {
        // Ack only once the index no longer serves these events: a LOG_REQ sent right
        // after the ack must not see them again.
        await this.host.index.waitForRevision(res.revision, this.host.limits.logRmVisibleTimeoutMs);
        return SvpStatus.OK;
      })
      .catch((err: Error) => {
        this.host.logger?.warn({ peer: this.peer, err: err.message }, 'svp LOG_RM: store commit failed');
        return SvpStatus.FATAL;
      })
      .then((status) => {
        if (status === SvpStatus.OK) this.host.countRemoved(keys.size);
        if (cancelled || this.closed) return;
        // Written before untrack, which may end the connection once nothing is pending.
        this.write(encodeLogRmAck(id, status));
        this.host.countRequest('log_rm', status, t0);
        this.untrack(cancel);
      });
  }

  closeForCause(cause: CloseCause, detail: string): void {
    if (this.closed) return;
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
    this.queue = NO_FRAMES;
    this.next = 0;
    this.decodeError = undefined;
  }
}
