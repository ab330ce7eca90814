/** A raw SVP connection for tests: send arbitrary bytes, wait for frames by id or for close. */
import net from 'node:net';
import tls from 'node:tls';
import assert from 'node:assert/strict';
import type { Registry } from 'prom-client';
import { type Frame, FrameDecoder } from '../../src/svp/codec.js';

export class RawSvp {
  readonly frames: Frame[] = [];
  /** Resolves when the server closes (or resets) the connection. */
  readonly closed: Promise<void>;
  isClosed = false;
  decodeError: string | undefined;
  private readonly decoder = new FrameDecoder({ role: 'client', maxFrameBytes: 1 << 24 });
  private waiters: { match: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      const { frames, error } = this.decoder.push(chunk);
      if (error) this.decodeError = error.message;
      for (const f of frames) {
        const copy = { ...f, payload: Buffer.from(f.payload) };
        const i = this.waiters.findIndex((w) => w.match(copy));
        if (i >= 0) this.waiters.splice(i, 1)[0].resolve(copy);
        else this.frames.push(copy);
      }
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.isClosed = true;
        resolve();
      }),
    );
  }

  /** localAddress picks the source address (any 127.x.y.z works on loopback). */
  static connect(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawSvp> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host, noDelay: true, ...(localAddress ? { localAddress } : {}) }, () => {
        s.off('error', reject);
        resolve(new RawSvp(s));
      });
      s.once('error', reject);
    });
  }

  /** Over TLS (a client certificate in opts when the server wants one); rejects when the handshake fails. */
  static connectTls(port: number, opts: tls.ConnectionOptions, host = '127.0.0.1'): Promise<RawSvp> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({ port, host, ...opts }, () => {
        s.off('error', reject);
        s.setNoDelay(true);
        resolve(new RawSvp(s));
      });
      s.once('error', reject);
      s.once('close', () => reject(new Error('closed during the handshake')));
    });
  }

  send(buf: Buffer): void {
    this.socket.write(buf);
  }

  /** The next frame with this id (already received or still to come). */
  reply(id: number, timeoutMs = 3000): Promise<Frame> {
    return this.waitFor((f) => f.id === id >>> 0, timeoutMs);
  }

  waitFor(match: (f: Frame) => boolean, timeoutMs = 3000): Promise<Frame> {
    const i = this.frames.findIndex(match);
    if (i >= 0) return Promise.resolve(this.frames.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const w = {
        match,
        resolve: (f: Frame) => {
          clearTimeout(timer);
          resolve(f);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`no matching frame within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Resolves true if the server closes within timeoutMs. */
  async closesWithin(timeoutMs = 2000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      this.closed.then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    return r;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** Waits until n replies have arrived on raw and takes them (in arrival order); fails when fewer came in time. */
export async function nextFrames(raw: RawSvp, n: number, timeoutMs = 5000): Promise<Frame[]> {
  const deadline = Date.now() + timeoutMs;
  while (raw.frames.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.equal(raw.frames.length, n, `${raw.frames.length} of ${n} replies arrived`);
  return raw.frames.splice(0, n);
}

/** The sum of a metric's values whose labels match these (0 when the metric is not registered). */
export async function metricSum(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const { values } = await m.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want))
    .reduce((a, v) => a + v.value, 0);
}
