/**
 * The native SVP front end's JS side: plaintext connections are handed to C
 * (native/src/svp_front.c) right after accept; C answers PING, VL2_REQ and VL3_REQ from
 * the mapping index's own tables with no JavaScript per lookup, and hands every other
 * frame (and bad input) to the usual Connection (connection.ts) through a NativeSocket,
 * which looks to it like the net.Socket it would otherwise get. Which frames C answers is
 * decided in one place, svp_classify (native/src/svp_answer.c).
 */
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { getDefaultHighWaterMark } from 'node:stream';
import { getSystemErrorName } from 'node:util';
import {
  SvpEvent,
  type SvpFrontAddon,
  type SvpFrontHandle,
  type SvpIndexHandle,
  type SvpTablesHandle,
  svpFrontAddon,
  svpFrontAvailable,
} from '../dataplane/svp-front.js';
import type { MappingIndex } from '../mapping/index.js';
import type { LookupTally } from './connection.js';

/** The native view of each index, made once: the index takes one mirror. */
const nativeIndexes = new WeakMap<MappingIndex, SvpIndexHandle>();

function nativeIndexOf(index: MappingIndex, a: SvpFrontAddon): SvpIndexHandle {
  let ix = nativeIndexes.get(index);
  if (ix) return ix;
  const handle = a.svpIndexCreate();
  index.mirrorTables<SvpTablesHandle>({
    newState: () => a.svpTablesCreate(),
    storage: (t, which, keys, vals, used) => a.svpTablesStorage(t, which, keys, vals, used),
    underlay: (t, node, ip, port) => a.svpTablesUnderlay(t, node, ip, port),
    use: (t) => a.svpIndexUse(handle, t),
  });
  ix = handle;
  nativeIndexes.set(index, ix);
  return ix;
}

export interface NativeFrontOptions {
  maxFrameBytes: number;
  /** Unsent reply bytes over which a connection stops being answered and read. */
  backlogBound: number;
  /** Upper bounds (seconds) of the request latency histogram's buckets. */
  latencyBounds: readonly number[];
}

/** Lookups answered in C since the last read, and their latency histogram per op. */
export interface NativeStats extends LookupTally {
  backlogPauses: number;
  /** By op: sum of seconds, count, and counts per latency bucket (not cumulative). */
  latency: Record<'ping' | 'vl2' | 'vl3', { sum: number; count: number; buckets: Float64Array }>;
}

/** Whether connections can be served natively here (the addon has the front end). */
export function nativeFrontAvailable(): boolean {
  return process.platform === 'linux' && svpFrontAvailable();
}

/** One server's native front end: its connections and their counters. */
export class NativeFront {
  private readonly a: SvpFrontAddon;
  private handle: SvpFrontHandle | null;
  private readonly sockets = new Map<number, NativeSocket>();
  private readonly nbounds: number;
  readonly highWaterMark = getDefaultHighWaterMark(false);

  constructor(index: MappingIndex, opts: NativeFrontOptions) {
    this.a = svpFrontAddon();
    this.nbounds = opts.latencyBounds.length;
    const ix = nativeIndexOf(index, this.a);
    this.handle = this.a.svpFrontCreate(
      ix,
      (id, kind, arg) => this.onEvent(id, kind, arg),
      opts.maxFrameBytes,
      Math.max(opts.backlogBound, this.highWaterMark),
      this.highWaterMark,
      opts.latencyBounds,
    );
  }

  /**
   * Takes over a socket accepted with pauseOnConnect (never read by Node): C gets its own
   * descriptor and the net.Socket is closed. null when that cannot be done (no descriptor,
   * none to spare): then serve it in JS.
   */
  adopt(socket: net.Socket): NativeSocket | null {
    const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    if (this.handle === null || typeof fd !== 'number' || fd < 0) return null;
    let id: number;
    try {
      id = this.a.svpAdopt(this.handle, fd);
    } catch {
      return null; // no descriptor to spare (EMFILE) or the like: the JS path serves it
    }
    const ns = new NativeSocket(this.a, this.handle, id, socket.remoteAddress, socket.remotePort, this.highWaterMark);
    this.sockets.set(id, ns);
    socket.on('error', () => undefined);
    socket.destroy();
    return ns;
  }

  private onEvent(id: number, kind: SvpEvent, arg: Buffer | number): void {
    const s = this.sockets.get(id);
    if (!s) return;
    if (kind === SvpEvent.CLOSE) this.sockets.delete(id);
    s.onNative(kind, arg);
  }

  /** Counts since the last call (zeros after close). */
  stats(): NativeStats | null {
    if (this.handle === null) return null;
    const d = this.a.svpStats(this.handle);
    const nb = this.nbounds;
    const series = (i: number) => {
      const o = 7 + i * (2 + nb);
      return { sum: d[o], count: d[o + 1], buckets: d.subarray(o + 2, o + 2 + nb) };
    };
    return {
      ping: d[0],
      vl2Ok: d[1],
      vl2NotFound: d[2],
      vl3Ok: d[3],
      vl3NotFound: d[4],
      vl3BadType: d[5],
      backlogPauses: d[6],
      latency: { ping: series(0), vl2: series(1), vl3: series(2) },
    };
  }

  /** Closes every connection and lets the native side go once they are closed. */
  close(): void {
    if (this.handle === null) return;
    const h = this.handle;
    this.handle = null;
    this.a.svpFrontRelease(h);
  }
}

/**
 * A connection served by the native front end, with the part of net.Socket's face that
 * Connection and the server use: 'data' (only frames C does not answer), 'end', 'drain',
 * 'error', 'close', plus 'first-byte' (the connection said something).
 */
export class NativeSocket extends EventEmitter {
  private paused = false;
  private gone = false;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly a: SvpFrontAddon,
    private readonly front: SvpFrontHandle,
    private readonly id: number,
    readonly remoteAddress: string | undefined,
    readonly remotePort: number | undefined,
    readonly writableHighWaterMark: number,
  ) {
    super();
  }

  /** @internal From NativeFront. */
  onNative(kind: SvpEvent, arg: Buffer | number): void {
    switch (kind) {
      case SvpEvent.DATA:
        this.emit('data', arg as Buffer);
        return;
      case SvpEvent.END:
        this.emit('end');
        return;
      case SvpEvent.DRAIN:
        this.emit('drain');
        return;
      case SvpEvent.FIRST_BYTE:
        this.emit('first-byte');
        return;
      case SvpEvent.ERROR: {
        const err = Object.assign(new Error(`svp connection: ${errnoName(arg as number)}`), { errno: -(arg as number) });
        if (this.listenerCount('error') > 0) this.emit('error', err);
        return;
      }
      case SvpEvent.CLOSE:
        this.gone = true;
        if (this.idleTimer) clearTimeout(this.idleTimer);
        this.emit('close', false);
        return;
    }
  }

  get destroyed(): boolean {
    return this.gone;
  }

  get writableLength(): number {
    return this.gone ? 0 : this.a.svpPending(this.front, this.id);
  }

  get writableNeedDrain(): boolean {
    return !this.gone && this.a.svpNeedDrain(this.front, this.id);
  }

  write(buf: Buffer): boolean {
    if (this.gone) return false;
    const unsent = this.a.svpWrite(this.front, this.id, buf);
    return unsent >= 0 && unsent < this.writableHighWaterMark;
  }

  pause(): this {
    this.paused = true;
    if (!this.gone) this.a.svpPause(this.front, this.id);
    return this;
  }

  resume(): this {
    this.paused = false;
    if (!this.gone) this.a.svpResume(this.front, this.id);
    return this;
  }

  isPaused(): boolean {
    return this.paused;
  }

  end(): this {
    if (!this.gone) this.a.svpEnd(this.front, this.id);
    return this;
  }

  destroy(): this {
    // 'close' follows from the native side on a later loop turn.
    if (!this.gone) this.a.svpDestroy(this.front, this.id);
    return this;
  }

  /** Calls fn after ms with no traffic either way (net.Socket's setTimeout, checked lazily). */
  setTimeout(ms: number, fn: () => void): this {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (ms <= 0) return this;
    const check = (wait: number): void => {
      this.idleTimer = setTimeout(() => {
        if (this.gone) return;
        const idle = this.a.svpIdleMs(this.front, this.id);
        if (idle >= ms) fn();
        else check(ms - idle);
      }, wait);
      this.idleTimer.unref();
    };
    check(ms);
    return this;
  }
}

function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-errno);
  } catch {
    return `errno ${errno}`;
  }
}
