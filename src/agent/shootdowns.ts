/**
 * Shootdowns from the controller's log: the agent long-polls LOG_REQ for its underlay
 * address, drops or refreshes the cached answers and data-plane entries each entry names
 * (re-announcing a moved IP with a gratuitous ARP), and removes the entries it applied
 * with LOG_RM. Entries that fail stay in the log and come again.
 */
import { SvpStatus } from '../svp/codec.js';
import type { ClientLogEntry } from '../svp/client.js';
import type { DataplaneBackend } from './backend.js';
import { type ResolvingCache, type Vl2Mapping, type Vl3Mapping, vl2Key, vl3Key } from './cache.js';
import { canonicalMac } from '../net/addr.js';
import type { Logger } from '../log/index.js';
import type { AgentMetrics } from './metrics.js';
import { NapiRequestError } from './napi-client.js';
import type { AgentNapi, SvpLookups } from './agent-options.js';
import type { Resolver } from './resolver.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export interface ShootdownDeps {
  svp: Pick<SvpLookups, 'logReq' | 'logRm'>;
  napi: Pick<AgentNapi, 'getNic'>;
  backend: DataplaneBackend;
  resolver: Resolver;
  vl3: ResolvingCache<Vl3Mapping>;
  vl2: ResolvingCache<Vl2Mapping>;
  metrics: AgentMetrics;
  log: Logger;
  /** The underlay address in use: LOG_REQ names it. */
  underlay: () => string;
  /** LOG_REQ query timeout; must exceed the controller's long-poll wait. Default 30000 ms. */
  logTimeoutMs?: number;
  /** True for a NIC attached here. */
  isAttached: (mac: string) => boolean;
  /** Unplumbs a NIC attached here (the API deleted it). */
  detach: (mac: string) => Promise<unknown>;
  /** Called for each shootdown applied, with the time (Unix ms) it took effect. */
  onApplied?: (entry: ClientLogEntry, appliedAt: number) => void;
}

export class Shootdowns {
  /** How many entries were applied. */
  applied = 0;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly vl3: ResolvingCache<Vl3Mapping>;
  private readonly vl2: ResolvingCache<Vl2Mapping>;
  private readonly metrics: AgentMetrics;
  private readonly log: Logger;

  constructor(private readonly o: ShootdownDeps) {
    this.vl3 = o.vl3;
    this.vl2 = o.vl2;
    this.metrics = o.metrics;
    this.log = o.log;
  }

  /** Starts following the log (until stop()). */
  start(): void {
    this.loop = this.run();
  }

  /** Stops following the log; a LOG_REQ in flight is left unanswered. */
  stop(): void {
    this.stopped = true;
  }

  /** Resolves when the loop has ended, or after 100 ms (a long-poll in flight is not waited for). */
  async ended(): Promise<void> {
    await Promise.race([this.loop, sleep(100)]);
  }

  private async run(): Promise<void> {
    let backoff = 250;
    while (!this.stopped) {
      try {
        const r = await this.o.svp.logReq(this.o.underlay(), 16 * 1024, { timeoutMs: this.o.logTimeoutMs ?? 30_000 });
        if (this.stopped) return;
        if (r.status !== SvpStatus.OK) {
          // FATAL: the controller does not know this underlay address (yet).
          await sleep(1000);
          continue;
        }
        backoff = 250;
        if (r.entries.length === 0) continue;
        const done = await this.apply(r.entries);
        if (done.length > 0) await this.o.svp.logRm(done);
      } catch (err) {
        if (this.stopped) return;
        this.log.warn(`shootdown log: ${(err as Error).message}`);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 8000);
      }
    }
  }

  /** Applies log entries in order; returns the ids applied (the rest are retried). */
  async apply(entries: readonly ClientLogEntry[]): Promise<string[]> {
    const done: string[] = [];
    for (const e of entries) {
      try {
        if (e.type === 'vl2') await this.applyVl2(e.vnetId, e.mac);
        else await this.applyVl3(e.vnetId, e.ip);
        this.metrics.shootdowns.inc({ type: e.type });
        this.applied++;
        this.o.onApplied?.(e, Date.now());
        done.push(e.id);
      } catch (err) {
        this.metrics.shootdownErrors.inc({ type: e.type });
        this.log.warn(`shootdown ${e.type} ${e.type === 'vl2' ? e.mac : e.ip} vnet ${e.vnetId}: ${(err as Error).message}`);
      }
    }
    return done;
  }

  private async applyVl2(vnet: number, macText: string): Promise<void> {
    const mac = canonicalMac(macText);
    this.vl2.invalidate(vl2Key(vnet, mac));
    const prefix = `${vnet}/`;
    this.vl3.invalidateWhere((k, v) => k.startsWith(prefix) && v.mac === mac);
    // Which IP a lookup in flight will name is unknown yet: none of this vnet's may install.
    this.vl3.invalidateInflight((k) => k.startsWith(prefix));
    if (!this.o.isAttached(mac)) {
      await this.o.backend.removeMac(vnet, mac);
      return;
    }
    // One of ours: a deleted NIC is unplumbed here (a moved one waits for its detach).
    try {
      await this.o.napi.getNic(mac);
    } catch (err) {
      if (!(err instanceof NapiRequestError && err.status === 404)) throw err;
      this.log.info(`NIC ${mac} was deleted: unplumbing it`);
      await this.o.detach(mac);
    }
  }

  private async applyVl3(vnet: number, ip: string): Promise<void> {
    const key = vl3Key(vnet, ip);
    const before = this.vl3.peek(key);
    if (!this.o.backend.vnets().includes(vnet)) {
      this.vl3.invalidate(key);
      return;
    }
    const { value: now, stale } = await this.vl3.refresh(key, () => this.o.resolver.lookupVl3(vnet, ip));
    // A later shootdown for this IP arrived meanwhile: it will do the work.
    if (stale) return;
    if (now && !this.o.resolver.isLocal(now.underlay)) {
      this.o.resolver.installIp(vnet, ip, now);
      // Not awaited: the next shootdown need not wait for the announcement to go out.
      void this.o.backend.announce(vnet, ip, now.mac).catch((err: Error) => this.log.warn(`gratuitous ARP ${ip}: ${err.message}`));
      return;
    }
    this.o.backend.removeIp(vnet, ip);
    if (before && before.mac !== now?.mac && !this.o.isAttached(before.mac)) await this.o.backend.removeMac(vnet, before.mac);
  }
}
