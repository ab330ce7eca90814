/**
 * The agents' node reports (src/agent/report.ts) as the controller keeps them: the last
 * report per node, a short history of each peer's probe counters (so loss is a recent
 * rate, not a lifetime average), and the most recent shootdowns across all nodes. In
 * memory only: a restarted controller shows health again after one report interval.
 * parseNodeReport() and everything in HealthBook are pure (time is passed in).
 */
import type { NodeReport, ProbeReport, ShootdownReport } from '../agent/report.js';
import { isUuid } from '../net/addr.js';

export type { NodeReport, ProbeReport, ShootdownReport };

const MAX_PROBES = 4096;
const MAX_SHOOTDOWNS = 4096;

/** Validates a report body; throws an Error naming the first bad field. */
export function parseNodeReport(node: string, body: unknown): NodeReport {
  const bad = (field: string, why: string): never => {
    throw new Error(`${field}: ${why}`);
  };
  if (!isUuid(node.toLowerCase())) bad('cn_uuid', 'must be a UUID');
  if (!body || typeof body !== 'object' || Array.isArray(body)) bad('body', 'must be a JSON object');
  const b = body as Record<string, unknown>;
  const str = (f: string, max = 256): string => (typeof b[f] === 'string' && (b[f] as string).length <= max ? (b[f] as string) : bad(f, 'must be a string'));
  const num = (v: unknown, f: string): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : bad(f, 'must be a number >= 0'));
  const arr = (f: string, max: number): unknown[] => {
    const v = b[f];
    if (!Array.isArray(v)) return bad(f, 'must be an array');
    if (v.length > max) bad(f, `at most ${max} entries`);
    return v;
  };
  if (typeof b.node === 'string' && b.node.toLowerCase() !== node.toLowerCase()) bad('node', 'does not match the URL');
  const vnets = arr('vnets', 1 << 20).map((v, i) => (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0xffffff ? (v as number) : bad(`vnets[${i}]`, 'must be a vnet id')));
  const probes = arr('probes', MAX_PROBES).map((raw, i): ProbeReport => {
    if (!raw || typeof raw !== 'object') return bad(`probes[${i}]`, 'must be an object');
    const p = raw as Record<string, unknown>;
    const state = p.state === 'up' || p.state === 'down' || p.state === 'unknown' ? p.state : bad(`probes[${i}].state`, 'must be up, down or unknown');
    if (typeof p.address !== 'string' || p.address.length > 64) bad(`probes[${i}].address`, 'must be an address');
    return {
      address: p.address as string,
      state,
      sent: num(p.sent, `probes[${i}].sent`),
      received: num(p.received, `probes[${i}].received`),
      lost: num(p.lost, `probes[${i}].lost`),
      ...(p.last_rtt_ms !== undefined ? { last_rtt_ms: num(p.last_rtt_ms, `probes[${i}].last_rtt_ms`) } : {}),
    };
  });
  const shootdowns = arr('shootdowns', MAX_SHOOTDOWNS).map((raw, i): ShootdownReport => {
    if (!raw || typeof raw !== 'object') return bad(`shootdowns[${i}]`, 'must be an object');
    const s = raw as Record<string, unknown>;
    const type = s.type === 'vl2' || s.type === 'vl3' ? s.type : bad(`shootdowns[${i}].type`, 'must be vl2 or vl3');
    if (typeof s.id !== 'string' || s.id.length > 64) bad(`shootdowns[${i}].id`, 'must be a string');
    if (typeof s.target !== 'string' || s.target.length > 64) bad(`shootdowns[${i}].target`, 'must be a string');
    return {
      id: s.id as string,
      type,
      vnet: num(s.vnet, `shootdowns[${i}].vnet`),
      target: s.target as string,
      ...(s.committed_at !== undefined ? { committed_at: num(s.committed_at, `shootdowns[${i}].committed_at`) } : {}),
      applied_at: num(s.applied_at, `shootdowns[${i}].applied_at`),
    };
  });
  return {
    node: node.toLowerCase(),
    underlay_ip: str('underlay_ip', 64),
    backend: str('backend', 32),
    sent_at: num(b.sent_at, 'sent_at'),
    vnets,
    nics: num(b.nics, 'nics'),
    probes,
    shootdowns,
  };
}

export interface PeerHealth {
  address: string;
  state: ProbeReport['state'];
  last_rtt_ms?: number;
  /** Lost / sent over the loss window (null: nothing sent in it). */
  loss?: number;
}

export interface NodeHealth {
  node: string;
  underlay_ip: string;
  backend: string;
  vnets: number[];
  nics: number;
  /** When the controller received the last report (Unix ms). */
  reported_at: number;
  peers: PeerHealth[];
}

export interface ShootdownSeen extends ShootdownReport {
  node: string;
  /** applied_at - committed_at, ms (absent when the commit time is unknown). */
  latency_ms?: number;
}

interface CounterSample {
  at: number;
  sent: number;
  lost: number;
}

export interface HealthBookOptions {
  /** Loss is computed over the reports of this long. Default 60 s. */
  lossWindowMs?: number;
  /** Recent shootdowns kept. Default 200. */
  shootdownCapacity?: number;
}

export class HealthBook {
  private readonly nodes = new Map<string, { report: NodeReport; at: number }>();
  private readonly history = new Map<string, CounterSample[]>();
  private recent: ShootdownSeen[] = [];
  private readonly lossWindowMs: number;
  private readonly capacity: number;

  constructor(o: HealthBookOptions = {}) {
    this.lossWindowMs = o.lossWindowMs ?? 60_000;
    this.capacity = o.shootdownCapacity ?? 200;
  }

  accept(report: NodeReport, now: number): void {
    this.nodes.set(report.node, { report, at: now });
    const seen = new Set<string>();
    for (const p of report.probes) {
      const key = `${report.node}/${p.address}`;
      seen.add(key);
      const h = this.history.get(key) ?? [];
      // A restarted agent's counters start again from zero: start the history again too.
      const last = h[h.length - 1];
      if (last && (p.sent < last.sent || p.lost < last.lost)) h.length = 0;
      h.push({ at: now, sent: p.sent, lost: p.lost });
      // Keep one sample at or before the window's start, so the window is covered.
      while (h.length > 2 && h[1]!.at <= now - this.lossWindowMs) h.shift();
      this.history.set(key, h);
    }
    for (const key of [...this.history.keys()]) if (key.startsWith(`${report.node}/`) && !seen.has(key)) this.history.delete(key);
    for (const s of report.shootdowns) {
      if (this.recent.some((r) => r.id === s.id && r.node === report.node)) continue;
      this.recent.push({
        ...s,
        node: report.node,
        ...(s.committed_at !== undefined ? { latency_ms: Math.max(0, s.applied_at - s.committed_at) } : {}),
      });
    }
    this.recent.sort((a, b) => a.applied_at - b.applied_at);
    if (this.recent.length > this.capacity) this.recent.splice(0, this.recent.length - this.capacity);
  }

  /** Loss over the window for one peer of one node (undefined when nothing was sent). */
  loss(node: string, address: string): number | undefined {
    const h = this.history.get(`${node}/${address}`);
    if (!h || h.length === 0) return undefined;
    const first = h.length > 1 ? h[0]! : { sent: 0, lost: 0 };
    const last = h[h.length - 1]!;
    const sent = last.sent - first.sent;
    return sent > 0 ? Math.min(1, (last.lost - first.lost) / sent) : undefined;
  }

  node(uuid: string): NodeHealth | undefined {
    const e = this.nodes.get(uuid);
    if (!e) return undefined;
    const r = e.report;
    return {
      node: r.node,
      underlay_ip: r.underlay_ip,
      backend: r.backend,
      vnets: r.vnets,
      nics: r.nics,
      reported_at: e.at,
      peers: r.probes.map((p) => {
        const loss = this.loss(r.node, p.address);
        return {
          address: p.address,
          state: p.state,
          ...(p.last_rtt_ms !== undefined ? { last_rtt_ms: p.last_rtt_ms } : {}),
          ...(loss !== undefined ? { loss } : {}),
        };
      }),
    };
  }

  allNodes(): NodeHealth[] {
    return [...this.nodes.keys()].sort().map((n) => this.node(n)!);
  }

  /** Most recent first. */
  shootdowns(limit = 50): ShootdownSeen[] {
    return this.recent.slice(-limit).reverse();
  }
}
