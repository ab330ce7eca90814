/**
 * The encrypted underlay's metrics on the agent's registry: mode, interface, peers,
 * cleartext the guard dropped (read from nftables at scrape), errors by reason, rotations.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { EncryptionMode } from '../../overlay/wireguard.js';

/** What the gauges read at scrape time. */
export interface WireguardState {
  readonly mode: EncryptionMode;
  readonly deviceUp: boolean;
  readonly configured: number;
  readonly leftOut: readonly unknown[];
  guardDrops(): Promise<{ output: number; input: number }>;
}

export interface WireguardMetrics {
  errors: Counter<'reason'>;
  rotations: Counter;
}

export function wireguardMetrics(registry: Registry, m: WireguardState): WireguardMetrics {
  new Gauge({
    name: 'rhumb_wireguard_mode',
    help: "The deployment's underlay encryption as this agent applies it (1 for the current mode)",
    labelNames: ['mode'] as const,
    registers: [registry],
    collect() {
      for (const mode of ['none', 'prepare', 'wireguard']) this.set({ mode }, m.mode === mode ? 1 : 0);
    },
  });
  new Gauge({
    name: 'rhumb_wireguard_device_up',
    help: "1 when the node's WireGuard interface is up and configured",
    registers: [registry],
    collect() {
      this.set(m.deviceUp ? 1 : 0);
    },
  });
  new Gauge({
    name: 'rhumb_wireguard_peers',
    help: 'Other nodes configured as WireGuard peers, and those left out (no key yet, bad record, collision)',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      this.set({ state: 'configured' }, m.configured);
      this.set({ state: 'left_out' }, m.leftOut.length);
    },
  });
  new Gauge({
    name: 'rhumb_wireguard_cleartext_dropped_total',
    help: 'Cleartext VXLAN packets the guard dropped (output: would have left unencrypted; input: arrived unencrypted); monotonic',
    labelNames: ['direction'] as const,
    registers: [registry],
    async collect() {
      const c = await m.guardDrops();
      this.set({ direction: 'output' }, c.output);
      this.set({ direction: 'input' }, c.input);
    },
  });
  return {
    errors: new Counter({
      name: 'rhumb_wireguard_errors_total',
      help: 'Encrypted underlay failures: device, publish, feed, guard, configure, and peers left out by reason (bad_record, no_key, no_endpoint, bad_tunnel, duplicate)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    rotations: new Counter({ name: 'rhumb_wireguard_key_rotations_total', help: "Rotations of this node's WireGuard key", registers: [registry] }),
  };
}
