/**
 * The agent's restart: it adopts what the kernel already carries instead of tearing it
 * down. NICs plumbed here that the API places here are taken back (with their namespace
 * from the state file when the namespace still holds them), NICs the API deleted while the
 * agent was down are unplumbed, and the data plane's entries refill the lookup caches.
 */
import { type ResolvingCache, type Vl2Mapping, type Vl3Mapping, vl2Key, vl3Key } from './cache.js';
import { inNetns, ip as ipCmd } from './plumbing/iproute.js';
import { canonicalMac } from '../net/addr.js';
import { type NicPlumbing, nicSettings } from './plumbing/nic.js';
import type { Logger } from '../log/index.js';
import { NapiRequestError } from './napi-client.js';
import type { AttachmentRecord } from './state.js';
import type { AgentOptions } from './agent-options.js';
import type { AttachedNic } from './attachments.js';

export interface AdoptionDeps {
  o: Pick<AgentOptions, 'napi' | 'nodeUuid' | 'state' | 'backend' | 'routing' | 'prober'>;
  log: Logger;
  /** The agent's NICs and state records, filled here. */
  nics: Map<string, AttachedNic>;
  records: Map<string, AttachmentRecord>;
  saveState: () => Promise<void>;
  vl3: ResolvingCache<Vl3Mapping>;
  vl2: ResolvingCache<Vl2Mapping>;
}

/** True when the namespace at this path has an interface with this MAC. */
async function netnsHoldsMac(netns: string, mac: string): Promise<boolean> {
  try {
    const links = JSON.parse(await ipCmd(['-j', 'link', 'show'], inNetns(netns))) as Array<{ address?: string }>;
    return links.some((l) => l.address !== undefined && canonicalMac(l.address) === mac);
  } catch {
    return false;
  }
}

/** Adopts NICs the API places here that are plumbed, and the kernel's entries. */
export async function rebuild(d: AdoptionDeps): Promise<void> {
  await adoptNics(d);
  const entries = cacheEntries(d);
  if (d.nics.size > 0 || entries > 0) d.log.info(`rebuilt: ${d.nics.size} NIC(s), ${entries} kernel entries`);
}

/** The NICs plumbed here: adopted, or reconciled when the API does not place them here. */
async function adoptNics(d: AdoptionDeps): Promise<void> {
  const apiNics = await d.o.napi.listNics({ cn_uuid: d.o.nodeUuid, belongs_to_type: 'zone' });
  const byMac = new Map(apiNics.map((n) => [canonicalMac(n.mac), n]));
  // A record counts only if its NIC is still plumbed and its namespace still holds the NIC.
  // An unreadable file costs only the namespace paths, not the start.
  const saved = d.o.state
    ? await d.o.state.load().catch((err: Error) => {
        d.log.warn(`state file: ${err.message}; namespaces of adopted NICs are unknown`);
        return new Map<string, AttachmentRecord>();
      })
    : new Map<string, AttachmentRecord>();
  for (const mac of d.o.backend.plumbedMacs()) {
    const r = saved.get(mac);
    if (!r) continue;
    if (await netnsHoldsMac(r.netns, mac)) d.records.set(mac, r);
    else d.log.warn(`NIC ${mac}: recorded namespace ${r.netns} no longer holds it; its namespace is unknown`);
  }
  const adopted: NicPlumbing[] = [];
  const orphans: string[] = [];
  for (const mac of d.o.backend.plumbedMacs()) {
    const n = byMac.get(mac);
    if (!n) {
      orphans.push(mac);
      continue;
    }
    try {
      const r = d.records.get(mac);
      // Adoption touches no device: the namespace is only carried along (unknown: empty).
      const p: NicPlumbing = { ...nicSettings(n), netns: r?.netns ?? '', ifname: r?.ifname ?? '' };
      adopted.push(p);
      if (r) d.records.set(mac, { ...r, belongs_to_uuid: n.belongs_to_uuid });
      d.nics.set(mac, {
        mac,
        ip: p.ip,
        vnet: p.vnet,
        vlan: p.vlan,
        network_uuid: n.network_uuid,
        belongs_to_uuid: n.belongs_to_uuid,
        owner_uuid: n.owner_uuid,
        ...(r ? { netns: r.netns, ifname: r.ifname } : {}),
      });
    } catch (err) {
      d.log.warn(`NIC ${mac}: ${(err as Error).message}`);
    }
  }
  await d.o.backend.adopt(adopted);
  for (const mac of orphans) await reconcileOrphan(d, mac);
  for (const mac of [...d.records.keys()]) if (!d.o.backend.isPlumbed(mac)) d.records.delete(mac);
  await d.saveState();
}

/** Fills the lookup caches from the data plane's entries; returns how many there are. */
function cacheEntries(d: AdoptionDeps): number {
  let entries = 0;
  for (const vnet of d.o.backend.vnets()) {
    const e = d.o.backend.entries(vnet);
    // Entries name tunnel addresses when encrypted; the caches hold underlay addresses.
    const underlayOf = (dst: string) => d.o.routing?.underlayOf(dst) ?? dst;
    const where = new Map(e.fdb.map((f) => [f.mac, underlayOf(f.underlay)]));
    for (const f of e.fdb) {
      d.vl2.set(vl2Key(vnet, f.mac), { underlay: underlayOf(f.underlay), port: 4789 });
      d.o.prober?.add(underlayOf(f.underlay));
    }
    for (const n of e.neighbours) {
      const underlay = where.get(n.mac);
      if (underlay) d.vl3.set(vl3Key(vnet, n.ip), { mac: n.mac, underlay, port: 4789 });
    }
    entries += e.fdb.length + e.neighbours.length;
  }
  return entries;
}

/**
 * A NIC plumbed here that the API does not place here: deleted while the agent was
 * down (unplumb it), or moved elsewhere (left for the orchestrator's detach).
 */
async function reconcileOrphan(d: AdoptionDeps, mac: string): Promise<void> {
  try {
    await d.o.napi.getNic(mac);
    d.log.warn(`NIC ${mac} is plumbed here but placed on another node; left until it is detached`);
  } catch (err) {
    if (!(err instanceof NapiRequestError && err.status === 404)) throw err;
    const vnet = d.o.backend.vnetOf(mac);
    if (vnet === undefined) return;
    d.log.info(`NIC ${mac} was deleted while the agent was down: unplumbing it`);
    await d.o.backend.unplumb(mac, vnet);
  }
}
