/** The agent's Prometheus metrics (served on its local API's /metrics). */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export interface AgentMetrics {
  misses: Counter<'kind'>;
  lookups: Counter<'kind' | 'result' | 'source'>;
  lookupSeconds: Histogram<'kind'>;
  cacheEntries: Gauge<'kind' | 'state'>;
  shootdowns: Counter<'type'>;
  shootdownErrors: Counter<'type'>;
  nics: Gauge;
  vnets: Gauge;
}

export function createAgentMetrics(registry: Registry, collectCaches: () => Array<{ kind: string; positive: number; negative: number }>, counts: () => { nics: number; vnets: number }): AgentMetrics {
  const cacheEntries = new Gauge({
    name: 'rhumb_agent_cache_entries',
    help: 'Mapping cache entries by lookup kind (vl2, vl3) and state (positive, negative)',
    labelNames: ['kind', 'state'] as const,
    registers: [registry],
    collect() {
      for (const c of collectCaches()) {
        this.set({ kind: c.kind, state: 'positive' }, c.positive);
        this.set({ kind: c.kind, state: 'negative' }, c.negative);
      }
    },
  });
  return {
    misses: new Counter({
      name: 'rhumb_agent_misses_total',
      help: 'Data-plane misses by kind (l2: MAC -> VTEP, l3: IP -> MAC, l3_unmapped: addresses never mapped, e.g. IPv6 link-local; ignored)',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    lookups: new Counter({
      name: 'rhumb_agent_lookups_total',
      help: 'Mapping resolutions by kind, result (ok, local, notfound, error) and source (hit, negative, lookup, coalesced)',
      labelNames: ['kind', 'result', 'source'] as const,
      registers: [registry],
    }),
    lookupSeconds: new Histogram({
      name: 'rhumb_agent_lookup_seconds',
      help: 'SVP lookup latency (requests actually sent to the controller)',
      labelNames: ['kind'] as const,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers: [registry],
    }),
    cacheEntries,
    shootdowns: new Counter({
      name: 'rhumb_agent_shootdowns_applied_total',
      help: 'Shootdown log entries applied, by type (vl2, vl3)',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    shootdownErrors: new Counter({
      name: 'rhumb_agent_shootdown_errors_total',
      help: 'Shootdown log entries that failed to apply (retried on the next poll)',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    nics: new Gauge({
      name: 'rhumb_agent_nics',
      help: 'Fabric NICs plumbed on this node',
      registers: [registry],
      collect() {
        this.set(counts().nics);
      },
    }),
    vnets: new Gauge({
      name: 'rhumb_agent_vnets',
      help: 'vnets with devices on this node',
      registers: [registry],
      collect() {
        this.set(counts().vnets);
      },
    }),
  };
}
