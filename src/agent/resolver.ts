/**
 * Data-plane misses answered (rhumb's varpd lookups): a destination the data plane does not
 * know is asked of the controller over SVP (VL3 for an IP, VL2 for a MAC), through the
 * agent's caches (NOTFOUND briefly negatively cached, one lookup in flight per
 * destination), and a remote answer is installed in the data plane.
 */
import ipaddr from 'ipaddr.js';
import { SvpStatus } from '../svp/codec.js';
import type { BackendMiss, DataplaneBackend } from './backend.js';
import type { UnderlayRouting } from './underlay-routing.js';
import { type ResolvingCache, type Vl2Mapping, type Vl3Mapping, vl2Key, vl3Key } from './cache.js';
import { canonicalMac } from '../net/addr.js';
import type { Logger } from '../log/index.js';
import type { AgentMetrics } from './metrics.js';
import { NapiRequestError } from './napi-client.js';
import type { AgentNapi, PeerProber, SvpLookups } from './agent-options.js';

/** IPv6 link-local and multicast addresses are never in the mapping: don't ask. */
function unmappable(ip: string): boolean {
  try {
    const range = ipaddr.parse(ip).range();
    return range === 'linkLocal' || range === 'multicast' || range === 'unspecified' || range === 'loopback';
  } catch {
    return true;
  }
}

export interface ResolverDeps {
  nodeUuid: string;
  svp: Pick<SvpLookups, 'vl2' | 'vl3'>;
  napi: Pick<AgentNapi, 'getNic' | 'listNics'>;
  backend: DataplaneBackend;
  vl3: ResolvingCache<Vl3Mapping>;
  vl2: ResolvingCache<Vl2Mapping>;
  metrics: AgentMetrics;
  log: Logger;
  /** The underlay address in use (it follows the node's: ./underlay-follow.ts). */
  underlay: () => string;
  routing?: UnderlayRouting;
  prober?: PeerProber;
}

export class Resolver {
  private readonly vl3: ResolvingCache<Vl3Mapping>;
  private readonly vl2: ResolvingCache<Vl2Mapping>;
  private readonly metrics: AgentMetrics;
  private readonly log: Logger;

  constructor(private readonly o: ResolverDeps) {
    this.vl3 = o.vl3;
    this.vl2 = o.vl2;
    this.metrics = o.metrics;
    this.log = o.log;
  }

  /** True when the answer places the destination on this node. */
  isLocal(underlay: string): boolean {
    return underlay === this.o.underlay();
  }

  /** Asks the controller where an IP lives (no cache); null: NOTFOUND. */
  async lookupVl3(vnet: number, ip: string): Promise<Vl3Mapping | null> {
    const end = this.metrics.lookupSeconds.startTimer({ kind: 'vl3' });
    const r = await this.o.svp.vl3(ip, vnet).finally(end);
    if (r.status === SvpStatus.OK && r.mac && r.ip) return this.withVlan({ mac: canonicalMac(r.mac), underlay: r.ip, port: r.port }, r.mac);
    if (r.status === SvpStatus.NOTFOUND) return null;
    throw new Error(`VL3 ${ip} vnet ${vnet}: ${r.statusName}`);
  }

  private async lookupVl2(vnet: number, mac: string): Promise<Vl2Mapping | null> {
    const end = this.metrics.lookupSeconds.startTimer({ kind: 'vl2' });
    const r = await this.o.svp.vl2(mac, vnet).finally(end);
    if (r.status === SvpStatus.OK && r.ip) return this.withVlan({ underlay: r.ip, port: r.port }, mac);
    if (r.status === SvpStatus.NOTFOUND) return null;
    throw new Error(`VL2 ${mac} vnet ${vnet}: ${r.statusName}`);
  }

  /**
   * For a VLAN-aware data plane, the answer with the fabric VLAN of the MAC's NIC (SVP does
   * not carry it; the API does). A NIC the API no longer has is NOTFOUND.
   */
  private async withVlan<T extends Vl2Mapping>(m: T, mac: string): Promise<T | null> {
    if (!this.o.backend.vlanAware) return m;
    try {
      return { ...m, vlan: (await this.o.napi.getNic(canonicalMac(mac))).vlan_id ?? 0 };
    } catch (err) {
      if (err instanceof NapiRequestError && err.status === 404) return null;
      throw err;
    }
  }

  /**
   * Resolves an IP on a vnet and installs the answer (remote only). With announce (a
   * kernel miss: an instance is waiting on ARP, whose request the proxy consumed), the
   * answer is also sent into the bridge as a gratuitous ARP, which completes the waiting
   * neighbour entry at once instead of at the instance's ARP retransmit (1 s).
   */
  async resolveIp(vnet: number, ip: string, opts: { announce?: boolean } = {}): Promise<Vl3Mapping | null> {
    let result: 'ok' | 'local' | 'notfound' | 'error' = 'error';
    let source = 'lookup';
    try {
      const r = await this.vl3.resolve(vl3Key(vnet, ip), () => this.lookupVl3(vnet, ip));
      source = r.source;
      result = r.value === null ? 'notfound' : this.isLocal(r.value.underlay) ? 'local' : 'ok';
      // A coalesced caller leaves the install to the first; a stale answer (a shootdown
      // arrived meanwhile) is not installed: the kernel asks again if it still needs it.
      if (r.value && result === 'ok' && r.source !== 'coalesced' && !r.stale) {
        this.installIp(vnet, ip, r.value);
        if (opts.announce) void this.o.backend.announce(vnet, ip, r.value.mac).catch((err: Error) => this.log.warn(`gratuitous ARP ${ip}: ${err.message}`));
      }
      return r.value;
    } finally {
      this.metrics.lookups.inc({ kind: 'vl3', result, source });
    }
  }

  async resolveMac(vnet: number, mac: string): Promise<Vl2Mapping | null> {
    let result: 'ok' | 'local' | 'notfound' | 'error' = 'error';
    let source = 'lookup';
    try {
      const r = await this.vl2.resolve(vl2Key(vnet, mac), () => this.lookupVl2(vnet, mac));
      source = r.source;
      result = r.value === null ? 'notfound' : this.isLocal(r.value.underlay) ? 'local' : 'ok';
      if (r.value && result === 'ok' && r.source !== 'coalesced' && !r.stale) {
        const dst = this.dst(r.value.underlay);
        if (dst !== undefined) this.o.backend.installL2(vnet, mac, dst, r.value.vlan);
        this.o.prober?.add(r.value.underlay);
      }
      return r.value;
    } finally {
      this.metrics.lookups.inc({ kind: 'vl2', result, source });
    }
  }

  /** Installs a remote IP's answer: its neighbour entry and its MAC's FDB entry. */
  installIp(vnet: number, ip: string, m: Vl3Mapping): void {
    const dst = this.dst(m.underlay);
    if (dst === undefined) return;
    this.o.backend.installL3(vnet, ip, m.mac, dst, m.vlan);
    // The FDB entry came with the answer: the VL2 cache knows it too.
    this.vl2.set(vl2Key(vnet, m.mac), { underlay: m.underlay, port: m.port, ...(m.vlan === undefined ? {} : { vlan: m.vlan }) });
    this.o.prober?.add(m.underlay);
  }

  /** A miss reported by the data plane: looked up and installed in the background. */
  onMiss(m: BackendMiss): void {
    if (m.kind === 'l3' && unmappable(m.ip)) {
      // IPv6 link-local neighbour solicitations and the like: never in the mapping.
      this.metrics.misses.inc({ kind: 'l3_unmapped' });
      return;
    }
    this.metrics.misses.inc({ kind: m.kind });
    const p = m.kind === 'l3' ? this.resolveIp(m.vnet, m.ip, { announce: true }) : this.resolveMac(m.vnet, m.mac);
    p.catch((err: Error) => this.log.warn(`${m.kind} miss on vnet ${m.vnet}: ${err.message}`));
  }

  /** Where VXLAN for the node at this underlay address goes (undefined: nowhere it may). */
  private dst(underlay: string): string | undefined {
    if (!this.o.routing) return underlay;
    const d = this.o.routing.destination(underlay);
    if (d === undefined) this.log.warn(`node at ${underlay} has no tunnel address: nothing is sent to it`);
    return d;
  }

  /** Resolves the network's NICs on other nodes, so first contact does not wait on a miss. */
  async prefetch(vnet: number, networkUuid: string): Promise<number> {
    const peers = (await this.o.napi.listNics({ network_uuid: networkUuid })).filter(
      (n) => n.ip && n.cn_uuid && n.cn_uuid !== this.o.nodeUuid && n.belongs_to_type === 'zone',
    );
    const results = await Promise.allSettled(peers.slice(0, 1024).map((n) => this.resolveIp(vnet, n.ip!)));
    return results.filter((r) => r.status === 'fulfilled' && r.value && !this.isLocal(r.value.underlay)).length;
  }

  /** Answers that placed this NIC elsewhere are stale once it is plumbed here (or gone). */
  forgetNic(vnet: number, ip: string, mac: string): void {
    this.vl3.invalidate(vl3Key(vnet, ip));
    this.vl2.invalidate(vl2Key(vnet, mac));
  }

  /** Forgets every answer on a vnet that is no longer on this node. */
  forgetVnet(vnet: number): void {
    const prefix = `${vnet}/`;
    this.vl3.invalidateWhere((k) => k.startsWith(prefix));
    this.vl2.invalidateWhere((k) => k.startsWith(prefix));
  }
}
