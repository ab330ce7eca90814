/** Object counts (networks, NICs, mappings…) as gauges, read from the store on scrape. */
import { Gauge, type Registry } from 'prom-client';
import { IP_PREFIX as MAPPING_IP_PREFIX, MAC_PREFIX as MAPPING_MAC_PREFIX, EVENT_PREFIX } from '../overlay/keys.js';
import { AGGR_PREFIX, NETWORK_PREFIX, NIC_PREFIX, NIC_TAG_PREFIX, POOL_PREFIX, VLAN_PREFIX } from '../napi/keys.js';
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
  overlay_pending_events: EVENT_PREFIX,
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
