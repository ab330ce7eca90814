/**
 * Simulated compute nodes for bench/scale: one SVP connection each, in this process.
 * Each node long-polls LOG_REQ for its underlay address and removes what it got with
 * LOG_RM (as the agent does), and issues VL3 lookups for NICs on its vnets, either at a
 * fixed rate or back to back. Every VL2 it is told about is reported to onVl2.
 */
import net from 'node:net';
import {
  FrameDecoder,
  LogType,
  SvpOp,
  SvpStatus,
  type SvpMessage,
  decodeMessage,
  encodeMessage,
} from '../../src/svp/codec.js';
import { ipToBytes, macFromBytes } from '../../src/net/addr.js';

export interface LookupTarget {
  ip: Buffer;
  vnetId: number;
}

export interface NodeStats {
  lookups: number;
  lookupErrors: number;
  lookupMs: number[];
  logAcks: number;
  events: number;
  /** LOG_RM round trips (the node holds no LOG_REQ meanwhile). */
  logRmMs: number[];
}

export class SimNode {
  private socket!: net.Socket;
  private readonly decoder = new FrameDecoder({ role: 'client', maxFrameBytes: 1 << 20 });
  private readonly waiting = new Map<number, (m: SvpMessage) => void>();
  private nextId = 1;
  private running = true;
  /** Lookups: 'off', a rate per second, or 'closed' (one outstanding, back to back). */
  lookupMode: 'off' | 'closed' | number = 'off';
  recordLookups = false;
  readonly stats: NodeStats = { lookups: 0, lookupErrors: 0, lookupMs: [], logAcks: 0, events: 0, logRmMs: [] };

  constructor(
    readonly index: number,
    private readonly underlay: string,
    private readonly targets: () => LookupTarget,
    private readonly onVl2: (node: number, mac: string, vnetId: number, at: number) => void,
  ) {}

  connect(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket = net.connect({ host: '127.0.0.1', port, noDelay: true }, () => {
        this.socket.off('error', reject);
        this.socket.on('error', () => undefined);
        resolve();
      });
      this.socket.once('error', reject);
      this.socket.on('data', (chunk: Buffer) => {
        const { frames } = this.decoder.push(chunk);
        for (const f of frames) {
          const cb = this.waiting.get(f.id);
          if (!cb) continue;
          this.waiting.delete(f.id);
          cb(decodeMessage(f));
        }
      });
    });
  }

  private ask(msg: SvpMessage): Promise<SvpMessage> {
    const id = this.nextId++ >>> 0;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.socket.write(encodeMessage(msg, id));
    });
  }

  /** LOG_REQ / LOG_RM until stopped. */
  async logLoop(): Promise<void> {
    const ip = ipToBytes(this.underlay);
    while (this.running) {
      const m = await this.ask({ op: SvpOp.LOG_REQ, count: 16384, ip });
      if (m.op !== SvpOp.LOG_ACK || !this.running) continue;
      const at = performance.now();
      this.stats.logAcks++;
      if (m.status !== SvpStatus.OK) {
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      if (m.entries.length === 0) continue;
      this.stats.events += m.entries.length;
      for (const e of m.entries) if (e.type === LogType.VL2) this.onVl2(this.index, macFromBytes(e.mac), e.vnetId, at);
      const rm = performance.now();
      await this.ask({ op: SvpOp.LOG_RM, ids: m.entries.map((e) => e.id) });
      this.stats.logRmMs.push(performance.now() - rm);
    }
  }

  /** Lookups as lookupMode says, until stopped. */
  async lookupLoop(): Promise<void> {
    while (this.running) {
      const mode = this.lookupMode;
      if (mode === 'off') {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      const t = this.targets();
      const s = performance.now();
      const m = await this.ask({ op: SvpOp.VL3_REQ, ip: t.ip, type: 1, vnetId: t.vnetId });
      if (this.recordLookups) {
        this.stats.lookups++;
        this.stats.lookupMs.push(performance.now() - s);
        if (m.op !== SvpOp.VL3_ACK || m.status !== SvpStatus.OK) this.stats.lookupErrors++;
      }
      if (typeof mode === 'number') {
        const wait = 1000 / mode - (performance.now() - s);
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  resetStats(): void {
    this.stats.lookups = 0;
    this.stats.lookupErrors = 0;
    this.stats.lookupMs = [];
    this.stats.logRmMs = [];
  }

  stop(): void {
    this.running = false;
    this.socket.destroy();
  }
}
