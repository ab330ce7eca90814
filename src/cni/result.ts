/**
 * The ADD result, shaped for the configuration's spec version (pure). What the chained
 * reference plugins and the runtimes read:
 *   interfaces  the node-side interface (kernel backend: the host veth, empty sandbox —
 *               bandwidth looks for it) and the container's (sandbox = CNI_NETNS, mac —
 *               Podman fails without it)
 *   ips         address with its prefix (portmap's hairpin rule uses it), gateway, and the
 *               index of the container interface; 0.4.0 also wants "version": "4"
 *   routes      default route via the gateway, the network's static routes
 *   dns         the network's resolvers (else the configuration's own "dns")
 *   mtu         on the interface, from 1.1.0 on
 * A prevResult (rhumb after another plugin) is kept: ours is appended to it.
 */
import type { WorkloadAttachment } from '../agent/workload-api.js';
import type { CniVersion, NetConf } from './config.js';

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}

export interface CniIpConfig {
  version?: '4' | '6';
  address: string;
  gateway?: string;
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniResult {
  cniVersion: CniVersion;
  interfaces?: CniInterface[];
  ips?: CniIpConfig[];
  routes?: CniRoute[];
  dns?: Record<string, unknown>;
}

function listOf<T>(v: unknown): T[] {
  return Array.isArray(v) ? (v as T[]) : [];
}

export function buildResult(conf: NetConf, netns: string, ifname: string, w: WorkloadAttachment): CniResult {
  const prev = conf.prevResult ?? {};
  const interfaces: CniInterface[] = [...listOf<CniInterface>(prev.interfaces)];
  if (w.host_ifname) interfaces.push({ name: w.host_ifname });
  const container: CniInterface = { name: ifname, ...(w.mac ? { mac: w.mac } : {}), sandbox: netns };
  if (conf.cniVersion === '1.1.0' && w.mtu !== undefined) container.mtu = w.mtu;
  interfaces.push(container);
  const index = interfaces.length - 1;
  const ips: CniIpConfig[] = [...listOf<CniIpConfig>(prev.ips)];
  for (const ip of w.ips ?? []) {
    ips.push({
      ...(conf.cniVersion === '0.4.0' ? { version: ip.address.includes(':') ? ('6' as const) : ('4' as const) } : {}),
      address: ip.address,
      ...(ip.gateway ? { gateway: ip.gateway } : {}),
      interface: index,
    });
  }
  const routes: CniRoute[] = [...listOf<CniRoute>(prev.routes), ...(w.routes ?? []).map((r) => ({ dst: r.dst, ...(r.gw ? { gw: r.gw } : {}) }))];
  const prevDns = prev.dns && typeof prev.dns === 'object' ? (prev.dns as Record<string, unknown>) : undefined;
  const dns = w.resolvers && w.resolvers.length > 0 ? { ...(conf.dns ?? {}), nameservers: w.resolvers } : (conf.dns ?? prevDns);
  return {
    cniVersion: conf.cniVersion,
    interfaces,
    ips,
    ...(routes.length > 0 ? { routes } : {}),
    ...(dns && Object.keys(dns).length > 0 ? { dns } : {}),
  };
}
