/**
 * What the agent tells the controller about its node besides SVP: underlay probe results
 * and the shootdowns it applied, with when. The controller keeps the latest report per
 * node in memory (src/console/health.ts) for the web console; nothing here is needed for
 * forwarding, so a controller that is down or refuses reports costs nothing but the view.
 *
 *   POST {controller}/nodes/:cn_uuid/report   NodeReport (JSON)
 *
 * Commit-to-applied latency of a shootdown: the event's id is a UUIDv7, whose first 48
 * bits are the Unix time in ms at which the NIC write derived it (in the write's own
 * transaction, so it is the commit time to within that transaction). The agent subtracts
 * it from the time it finished applying the entry. Across machines the clocks' offset
 * adds in; on one machine (the sandbox) there is none.
 */
import { Histogram, type Registry } from 'prom-client';
import type { Logger } from '../log/index.js';
import type { ClientLogEntry } from '../svp/client.js';
import type { ProbeResult } from './probes.js';

export interface ProbeReport {
  address: string;
  state: 'unknown' | 'up' | 'down';
  /** Cumulative since the agent started. */
  sent: number;
  received: number;
  lost: number;
  last_rtt_ms?: number;
}

export interface ShootdownReport {
  id: string;
  type: 'vl2' | 'vl3';
  vnet: number;
  /** The MAC (vl2) or IP (vl3) the entry was about. */
  target: string;
  /** Unix ms of the commit (from the UUIDv7 id); absent when the id is not a UUIDv7. */
  committed_at?: number;
  /** Unix ms when the agent had applied it. */
  applied_at: number;
}

export interface NodeReport {
  node: string;
  underlay_ip: string;
  backend: string;
  /** Unix ms at which the agent sent this report. */
  sent_at: number;
  vnets: number[];
  nics: number;
  probes: ProbeReport[];
  /** Shootdowns applied since the previous accepted report (oldest first). */
  shootdowns: ShootdownReport[];
}

/** The Unix ms timestamp of a UUIDv7, or undefined for any other UUID. */
export function uuidv7Millis(id: string): number | undefined {
  const hex = id.replace(/-/g, '');
  if (!/^[0-9a-f]{32}$/i.test(hex) || hex[12] !== '7') return undefined;
  return parseInt(hex.slice(0, 12), 16);
}

export function probeReport(r: ProbeResult): ProbeReport {
  return {
    address: r.address,
    state: r.state,
    sent: r.sent,
    received: r.received,
    lost: r.lost,
    ...(r.lastRttMs !== undefined ? { last_rtt_ms: Math.round(r.lastRttMs * 1000) / 1000 } : {}),
  };
}

/**
 * The shootdowns applied and not yet reported (bounded: when the controller is away the
 * oldest are dropped), and their commit-to-applied latency as a histogram.
 */
export class ShootdownJournal {
  private pending: ShootdownReport[] = [];
  private readonly latency: Histogram;

  constructor(
    registry: Registry,
    private readonly capacity = 256,
  ) {
    this.latency = new Histogram({
      name: 'rhumb_agent_shootdown_latency_seconds',
      help: 'Time from the commit of the NIC write that caused a shootdown to its application on this node',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
  }

  record(e: ClientLogEntry, appliedAt: number): void {
    const committedAt = uuidv7Millis(e.id);
    if (committedAt !== undefined) this.latency.observe(Math.max(0, appliedAt - committedAt) / 1000);
    this.pending.push({
      id: e.id,
      type: e.type,
      vnet: e.vnetId,
      target: e.type === 'vl2' ? e.mac : e.ip,
      ...(committedAt !== undefined ? { committed_at: committedAt } : {}),
      applied_at: appliedAt,
    });
    if (this.pending.length > this.capacity) this.pending.splice(0, this.pending.length - this.capacity);
  }

  /** Takes what is pending; give it back with requeue() if the report was not accepted. */
  take(): ShootdownReport[] {
    return this.pending.splice(0);
  }

  requeue(reports: ShootdownReport[]): void {
    this.pending = [...reports, ...this.pending].slice(-this.capacity);
  }

  get size(): number {
    return this.pending.length;
  }
}

export interface NodeReporterOptions {
  controllerUrl: string;
  /** fetch carrying the node's credentials (TLS, token); default the global fetch. */
  fetch?: typeof fetch;
  nodeUuid: string;
  /** Time between reports when nothing happens. */
  intervalMs: number;
  /** Shortest time between two reports (a burst of shootdowns is one report). */
  minGapMs?: number;
  journal: ShootdownJournal;
  /** The rest of the report (everything but shootdowns and sent_at). */
  snapshot: () => Omit<NodeReport, 'shootdowns' | 'sent_at'>;
  logger?: Logger;
}

/** Sends a NodeReport every interval, and soon after poke() (a shootdown was applied). */
export class NodeReporter {
  private timer: NodeJS.Timeout | undefined;
  private sending = false;
  private again = false;
  private stopped = false;
  private lastSent = 0;
  private failing = false;

  constructor(private readonly o: NodeReporterOptions) {}

  start(): void {
    this.schedule(0);
  }

  /** Something worth reporting happened: report soon (not more often than minGapMs). */
  poke(): void {
    if (this.stopped) return;
    if (this.sending) {
      this.again = true;
      return;
    }
    const gap = this.o.minGapMs ?? 100;
    this.schedule(Math.max(0, this.lastSent + gap - Date.now()));
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.send(), ms);
    this.timer.unref();
  }

  private async send(): Promise<void> {
    this.timer = undefined;
    this.sending = true;
    const shootdowns = this.o.journal.take();
    const report: NodeReport = { ...this.o.snapshot(), sent_at: Date.now(), shootdowns };
    try {
      const res = await (this.o.fetch ?? fetch)(`${this.o.controllerUrl.replace(/\/$/, '')}/nodes/${this.o.nodeUuid}/report`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(report),
        signal: AbortSignal.timeout(5000),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.status >= 400) throw new Error(`HTTP ${res.status}`);
      if (this.failing) this.o.logger?.info('node report: the controller accepts reports again');
      this.failing = false;
    } catch (err) {
      this.o.journal.requeue(shootdowns);
      // Said once per outage, not every interval.
      if (!this.failing) this.o.logger?.warn(`node report: ${(err as Error).message} (will retry)`);
      this.failing = true;
    } finally {
      this.lastSent = Date.now();
      this.sending = false;
    }
    if (this.again) {
      this.again = false;
      this.poke();
    } else {
      this.schedule(this.o.intervalMs);
    }
  }
}
