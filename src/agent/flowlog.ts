/**
 * Firewall flow logs: the node-side tables send what logged rules match (the first
 * packet of each connection: established traffic is accepted before any rule) to the
 * node's NFLOG group (src/fw/nft.ts FLOW_LOG_GROUP). The native module parses them
 * (src/dataplane/nflog.ts); here each becomes one JSON line — time, node, instance,
 * owner, rule, action, direction, protocol, addresses, ports — appended to a file the
 * agent rotates by size (path, path.1 … path.N), and counted in metrics. A blocked
 * connection is one line, not one per retry (BlockedRepeats).
 */
import { appendFile, rename, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { Counter, type Registry } from 'prom-client';
import { type NflogEvent, type NflogRecord, openNflog } from '../dataplane/nflog.js';
import { FLOW_LOG_GROUP, parseFlowLogPrefix } from '../fw/nft.js';

/** One connection a logged rule allowed or blocked, as written (one JSON object a line). */
export interface FlowLine {
  time: string;
  node: string;
  instance: string;
  owner?: string;
  rule: string;
  action: 'allow' | 'block';
  direction: 'in' | 'out';
  protocol: string;
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
}

const PROTOCOLS: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 50: 'esp', 51: 'ah', 58: 'icmp6', 132: 'sctp' };

/** The line for a record (undefined: not one of ours). Pure. */
export function flowLine(r: NflogRecord, node: string, ownerOf: (instance: string) => string | undefined): FlowLine | undefined {
  const tag = parseFlowLogPrefix(r.prefix);
  if (!tag) return undefined;
  const line: FlowLine = {
    time: new Date(r.time).toISOString(),
    node,
    instance: tag.instance,
    rule: tag.rule_uuid,
    action: tag.action,
    direction: tag.direction,
    protocol: PROTOCOLS[r.proto] ?? String(r.proto),
    src: r.src,
    dst: r.dst,
  };
  const owner = ownerOf(tag.instance);
  if (owner !== undefined) line.owner = owner;
  if (r.sport !== undefined) line.sport = r.sport;
  if (r.dport !== undefined) line.dport = r.dport;
  return line;
}

/**
 * A blocked connection's retries (same addresses, ports, protocol, rule): a dropped packet
 * never becomes an established connection, so every retransmitted SYN or datagram meets
 * the logged rule again. One line per connection: repeats of a blocked one within
 * windowMs of its first line are left out (counted instead). Bounded: at most maxKeys
 * connections remembered, the oldest forgotten first. Pure; the clock is injected.
 */
export class BlockedRepeats {
  /** key -> when its line was written (insertion order is time order). */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly windowMs = 30_000,
    private readonly maxKeys = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** True when this line repeats a blocked connection logged within the window. */
  repeats(l: FlowLine): boolean {
    if (l.action !== 'block') return false;
    const t = this.now();
    for (const [k, at] of this.seen) {
      if (t - at < this.windowMs && this.seen.size < this.maxKeys) break;
      this.seen.delete(k);
    }
    const key = `${l.instance} ${l.rule} ${l.direction} ${l.protocol} ${l.src} ${l.sport ?? ''} ${l.dst} ${l.dport ?? ''}`;
    if (this.seen.has(key)) return true;
    this.seen.set(key, t);
    return false;
  }
}

export interface FlowLogOptions {
  path: string;
  node: string;
  ownerOf: (instance: string) => string | undefined;
  /** Rotate when the file passes this size (default 16 MiB). */
  maxBytes?: number;
  /** Rotated files kept (default 3). */
  keep?: number;
  group?: number;
  registry?: Registry;
  log: (msg: string) => void;
}

export class FlowLog {
  private socket: { close(): void } | undefined;
  private size = -1;
  private chain: Promise<void> = Promise.resolve();
  private readonly lines: Counter | undefined;
  private readonly dropped: Counter | undefined;
  private readonly repeated: Counter | undefined;
  private readonly repeats = new BlockedRepeats();

  constructor(private readonly o: FlowLogOptions) {
    const reg = o.registry;
    const get = <T>(name: string): T | undefined => reg?.getSingleMetric(name) as T | undefined;
    if (reg) {
      this.lines =
        get<Counter>('rhumb_fw_flow_logs_total') ??
        new Counter({ name: 'rhumb_fw_flow_logs_total', help: 'Connections logged rules allowed or blocked, by action', labelNames: ['action'], registers: [reg] });
      this.dropped =
        get<Counter>('rhumb_fw_flow_log_lost_total') ??
        new Counter({ name: 'rhumb_fw_flow_log_lost_total', help: 'Times the kernel dropped flow log records (socket buffer full)', registers: [reg] });
      this.repeated =
        get<Counter>('rhumb_fw_flow_log_repeats_total') ??
        new Counter({ name: 'rhumb_fw_flow_log_repeats_total', help: "A blocked connection's retries left out of the flow log (one line per connection)", registers: [reg] });
    }
  }

  /** Binds the node's NFLOG group (throws when another process holds it). */
  start(): void {
    this.socket = openNflog(this.o.group ?? FLOW_LOG_GROUP, (records) => this.onRecords(records), (e) => this.onEvent(e));
  }

  /** Waits for what was received to be written. */
  async flush(): Promise<void> {
    await this.chain;
  }

  async close(): Promise<void> {
    this.socket?.close();
    this.socket = undefined;
    await this.chain;
  }

  private onEvent(e: NflogEvent): void {
    if (e.kind === 'overflow') this.dropped?.inc();
    else this.o.log(`flow log: NFLOG socket stopped (${e.message ?? 'error'})`);
  }

  private onRecords(records: NflogRecord[]): void {
    const out: string[] = [];
    for (const r of records) {
      const line = flowLine(r, this.o.node, this.o.ownerOf);
      if (!line) continue;
      if (this.repeats.repeats(line)) {
        this.repeated?.inc();
        continue;
      }
      this.lines?.inc({ action: line.action });
      out.push(JSON.stringify(line));
    }
    if (out.length === 0) return;
    const text = out.join('\n') + '\n';
    this.chain = this.chain.then(() => this.write(text)).catch((err: Error) => this.o.log(`flow log: ${err.message}`));
  }

  private async write(text: string): Promise<void> {
    if (this.size < 0) {
      await mkdir(dirname(this.o.path), { recursive: true });
      this.size = await stat(this.o.path).then((s) => s.size, () => 0);
    }
    if (this.size > 0 && this.size + text.length > (this.o.maxBytes ?? 16 * 1024 * 1024)) await this.rotate();
    await appendFile(this.o.path, text);
    this.size += Buffer.byteLength(text);
  }

  private async rotate(): Promise<void> {
    const keep = Math.max(1, this.o.keep ?? 3);
    for (let i = keep - 1; i >= 1; i--) await rename(`${this.o.path}.${i}`, `${this.o.path}.${i + 1}`).catch(() => undefined);
    await rename(this.o.path, `${this.o.path}.1`);
    this.size = 0;
  }
}
