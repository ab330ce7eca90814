/** Object counts (networks, NICs, mappings…) as gauges, read from the store on scrape. */
import { Gauge, type Registry } from 'prom-client';
import { IP_PREFIX as MAPPING_IP_PREFIX, MAC_PREFIX as MAPPING_MAC_PREFIX, VLOG_PREFIX } from '../overlay/keys.js';
import { AGGR_PREFIX, NETWORK_PREFIX, NIC_PREFIX, NIC_TAG_PREFIX, POOL_PREFIX, VLAN_PREFIX } from '../napi/keys.js';
import type { MappingIndex } from '../mapping/index.js';
import type { Store } from '../store/types.js';

const OBJECTS: Record<string, string> = {
  nic_tags: NIC_TAG_PREFIX,
  networks: NETWORK_PREFIX,
  nics: NIC_PREFIX,
  network_pools: POOL_PREFIX,
  aggregations: AGGR_PREFIX,
  fabric_vlans: VLAN_PREFIX,
  overlay_mac_mappings: MAPPING_MAC_PREFIX,
  overlay_ip_mappings: MAPPING_IP_PREFIX,
  overlay_log_entries: VLOG_PREFIX,
};

export function registerObjectGauges(registry: Registry, store: Store): void {
  new Gauge({
    name: 'rhumb_objects',
    help: 'Objects in the store by type',
    labelNames: ['type'] as const,
    registers: [registry],
    async collect() {
      for (const [type, prefix] of Object.entries(OBJECTS)) {
        this.set({ type }, await store.count(prefix).catch(() => 0));
      }
    },
  });
}

/** The SVP mapping index: sizes, memory, how far it has followed the store, reloads. */
export function registerIndexGauges(registry: Registry, index: MappingIndex): void {
  new Gauge({
    name: 'rhumb_mapping_index_entries',
    help: 'Entries in the in-memory mapping index by kind',
    labelNames: ['kind'] as const,
    registers: [registry],
    collect() {
      const s = index.stats();
      this.set({ kind: 'mac' }, s.macMappings);
      this.set({ kind: 'ip' }, s.ipMappings);
      this.set({ kind: 'node' }, s.nodes);
      this.set({ kind: 'underlay' }, s.underlays);
      this.set({ kind: 'event' }, s.events);
      this.set({ kind: 'log_entry' }, s.logEntries);
      this.set({ kind: 'invalid' }, s.invalidRecords);
    },
  });
  new Gauge({
    name: 'rhumb_mapping_index_table_bytes',
    help: 'Bytes held by the mapping index hash tables',
    registers: [registry],
    collect() {
      this.set(index.stats().tableBytes);
    },
  });
  new Gauge({
    name: 'rhumb_mapping_index_revision',
    help: 'Store revision the mapping index reflects',
    registers: [registry],
    collect() {
      this.set(index.revision);
    },
  });
  new Gauge({
    name: 'rhumb_mapping_index_reloads',
    help: 'Full reloads of the mapping index since start (after compaction or a lost feed)',
    registers: [registry],
    collect() {
      this.set(index.stats().reloads);
    },
  });
}
