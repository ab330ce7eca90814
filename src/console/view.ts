/**
 * The console's picture of the datacenter (pure): built from the stored records (nodes'
 * underlay records and NICs, fabric VLANs and networks, NICs, firewall rules and
 * instances) and the agents' health reports. The browser renders exactly this object;
 * every string in it may come from a tenant and is shown as text.
 */
import type { FabricVlanRecord, NetworkRecord, NicRecord } from '../napi/models/records.js';
import type { InstanceRecord, StoredRule } from '../fw/types.js';
import type { UnderlayRecord } from '../overlay/keys.js';
import type { NodeHealth, PeerHealth, ShootdownSeen } from './health.js';

export interface ConsoleInputs {
  revision: number;
  now: number;
  underlays: UnderlayRecord[];
  networks: NetworkRecord[];
  vlans: FabricVlanRecord[];
  nics: NicRecord[];
  rules: StoredRule[];
  instances: InstanceRecord[];
  health: NodeHealth[];
  shootdowns: ShootdownSeen[];
  /** A list was cut at its limit. */
  truncated: boolean;
}

export interface ConsolePeer extends PeerHealth {
  /** The peer node's UUID when the address is a known underlay address. */
  node?: string;
}

export interface ConsoleNode {
  uuid: string;
  underlay_ip?: string;
  backend?: string;
  /** 'up': reported within the last 3 intervals; 'silent': reported once, not lately; 'unknown': never. */
  agent: 'up' | 'silent' | 'unknown';
  report_age_ms?: number;
  /** Fabric NICs the API places here. */
  nics: number;
  vnets: number[];
  peers: ConsolePeer[];
}

export interface ConsoleInstance {
  uuid: string;
  mac: string;
  ip?: string;
  cn_uuid?: string;
  owner_uuid: string;
  tags?: Record<string, string | number | boolean>;
  firewall_enabled?: boolean;
}

export interface ConsoleNetwork {
  uuid: string;
  name: string;
  owner_uuid?: string;
  vlan_id: number;
  vlan_name?: string;
  vnet_id?: number;
  subnet: string;
  gateway?: string;
  instances: ConsoleInstance[];
}

export interface ConsoleVnet {
  vnet_id: number;
  owner_uuid?: string;
  networks: string[];
  /** Nodes with NICs on this vnet, and how many each. */
  nodes: Array<{ uuid: string; nics: number }>;
}

export interface ConsoleRule {
  uuid: string;
  rule: string;
  enabled: boolean;
  owner_uuid?: string;
  global?: boolean;
  description?: string;
}

export interface ConsoleFwInstance {
  uuid: string;
  owner_uuid?: string;
  tags: Record<string, string | number | boolean>;
  firewall_enabled: boolean;
  addresses: string[];
}

export interface ConsoleSnapshot {
  revision: number;
  generated_at: number;
  nodes: ConsoleNode[];
  vnets: ConsoleVnet[];
  networks: ConsoleNetwork[];
  shootdowns: ShootdownSeen[];
  rules: ConsoleRule[];
  instances: ConsoleFwInstance[];
  truncated: boolean;
}

/** A node whose last report is older than this is shown as silent. */
export const SILENT_AFTER_MS = 10_000;

function isFabricNic(n: NicRecord, nets: Map<string, NetworkRecord>): boolean {
  return n.belongs_to_type === 'zone' && !!n.network_uuid && nets.get(n.network_uuid)?.fabric === true;
}

/** Where fabric NICs are: per vnet the nodes (with counts), per node its NICs and vnets. */
interface Placements {
  vnetNodes: Map<number, Map<string, number>>;
  nicsPerNode: Map<string, number>;
  vnetsPerNode: Map<string, Set<number>>;
}

function placements(fabricNics: NicRecord[], nets: Map<string, NetworkRecord>): Placements {
  const p: Placements = { vnetNodes: new Map(), nicsPerNode: new Map(), vnetsPerNode: new Map() };
  for (const n of fabricNics) {
    const vnet = nets.get(n.network_uuid!)!.vnet_id;
    if (vnet === undefined || !n.cn_uuid) continue;
    const m = p.vnetNodes.get(vnet) ?? new Map<string, number>();
    m.set(n.cn_uuid, (m.get(n.cn_uuid) ?? 0) + 1);
    p.vnetNodes.set(vnet, m);
    p.nicsPerNode.set(n.cn_uuid, (p.nicsPerNode.get(n.cn_uuid) ?? 0) + 1);
    const s = p.vnetsPerNode.get(n.cn_uuid) ?? new Set<number>();
    s.add(vnet);
    p.vnetsPerNode.set(n.cn_uuid, s);
  }
  return p;
}

/**
 * Every node with an underlay record, a report, or NICs placed on it, in underlay
 * address order (then UUID): the order an operator numbers them in.
 */
function buildNodes(i: ConsoleInputs, fabricNics: NicRecord[], p: Placements): ConsoleNode[] {
  const health = new Map(i.health.map((h) => [h.node, h]));
  const underlayOf = new Map(i.underlays.map((u) => [u.cn_uuid, u.ip]));
  const byUnderlay = new Map(i.underlays.map((u) => [u.ip, u.cn_uuid]));
  const ids = new Set<string>([...i.underlays.map((u) => u.cn_uuid), ...i.health.map((h) => h.node)]);
  for (const n of fabricNics) if (n.cn_uuid) ids.add(n.cn_uuid);
  const addressKey = (uuid: string): string => {
    const ip = underlayOf.get(uuid) ?? health.get(uuid)?.underlay_ip;
    return ip ? ip.split('.').map((o) => o.padStart(3, '0')).join('.') : '~';
  };
  const ordered = [...ids].sort((a, b) => addressKey(a).localeCompare(addressKey(b)) || a.localeCompare(b));
  return ordered.map((uuid) => {
    const h = health.get(uuid);
    const age = h ? Math.max(0, i.now - h.reported_at) : undefined;
    const ip = underlayOf.get(uuid) ?? h?.underlay_ip;
    return {
      uuid,
      ...(ip ? { underlay_ip: ip } : {}),
      ...(h ? { backend: h.backend } : {}),
      agent: !h ? 'unknown' : age! > SILENT_AFTER_MS ? 'silent' : 'up',
      ...(age !== undefined ? { report_age_ms: age } : {}),
      nics: p.nicsPerNode.get(uuid) ?? 0,
      vnets: [...(p.vnetsPerNode.get(uuid) ?? [])].sort((a, b) => a - b),
      peers: (h?.peers ?? []).map((peer) => {
        const peerNode = byUnderlay.get(peer.address);
        return { ...peer, ...(peerNode ? { node: peerNode } : {}) };
      }),
    };
  });
}

function buildNetworks(i: ConsoleInputs, fabricNets: NetworkRecord[], fabricNics: NicRecord[]): ConsoleNetwork[] {
  const fw = new Map(i.instances.map((r) => [r.uuid, r]));
  const vlanName = new Map(i.vlans.map((v) => [`${v.owner_uuid}/${v.vlan_id}`, v.name]));
  const byNetwork = new Map<string, NicRecord[]>();
  for (const nic of fabricNics) {
    const list = byNetwork.get(nic.network_uuid!) ?? [];
    list.push(nic);
    byNetwork.set(nic.network_uuid!, list);
  }
  const instance = (nic: NicRecord): ConsoleInstance => {
    const rec = fw.get(nic.belongs_to_uuid);
    return {
      uuid: nic.belongs_to_uuid,
      mac: nic.mac,
      owner_uuid: nic.owner_uuid,
      ...(nic.ip ? { ip: nic.ip } : {}),
      ...(nic.cn_uuid ? { cn_uuid: nic.cn_uuid } : {}),
      ...(rec ? { tags: rec.tags, firewall_enabled: rec.firewall_enabled } : {}),
    };
  };
  return fabricNets.map((n) => {
    const owner = n.owner_uuids?.[0];
    const vname = owner !== undefined ? vlanName.get(`${owner}/${n.vlan_id}`) : undefined;
    return {
      uuid: n.uuid,
      name: n.name,
      ...(owner ? { owner_uuid: owner } : {}),
      vlan_id: n.vlan_id,
      ...(vname !== undefined ? { vlan_name: vname } : {}),
      ...(n.vnet_id !== undefined ? { vnet_id: n.vnet_id } : {}),
      subnet: n.subnet,
      ...(n.gateway ? { gateway: n.gateway } : {}),
      instances: (byNetwork.get(n.uuid) ?? []).sort((a, b) => (a.ip ?? '').localeCompare(b.ip ?? '', 'en', { numeric: true })).map(instance),
    };
  });
}

function buildVnets(fabricNets: NetworkRecord[], p: Placements, nodeOrder: Map<string, number>): ConsoleVnet[] {
  const ids = new Set<number>([...fabricNets.flatMap((n) => (n.vnet_id !== undefined ? [n.vnet_id] : [])), ...p.vnetNodes.keys()]);
  return [...ids]
    .sort((a, b) => a - b)
    .map((vnet) => {
      const onVnet = fabricNets.filter((n) => n.vnet_id === vnet);
      const owner = onVnet.find((n) => n.owner_uuids?.[0])?.owner_uuids?.[0];
      const nodes = [...(p.vnetNodes.get(vnet) ?? new Map<string, number>())].sort(([a], [b]) => nodeOrder.get(a)! - nodeOrder.get(b)!);
      return {
        vnet_id: vnet,
        ...(owner ? { owner_uuid: owner } : {}),
        networks: onVnet.map((n) => n.uuid),
        nodes: nodes.map(([uuid, nics]) => ({ uuid, nics })),
      };
    });
}

function buildRules(rules: StoredRule[]): ConsoleRule[] {
  return rules
    .map((r) => ({
      uuid: r.uuid,
      rule: r.rule,
      enabled: r.enabled,
      ...(r.owner_uuid ? { owner_uuid: r.owner_uuid } : {}),
      ...(r.global ? { global: true } : {}),
      ...(r.description ? { description: r.description } : {}),
    }))
    .sort((a, b) => (a.owner_uuid ?? '').localeCompare(b.owner_uuid ?? '') || a.rule.localeCompare(b.rule));
}

function buildFwInstances(i: ConsoleInputs): ConsoleFwInstance[] {
  const addresses = new Map<string, string[]>();
  for (const n of i.nics) {
    if (!n.ip) continue;
    const list = addresses.get(n.belongs_to_uuid) ?? [];
    list.push(n.ip);
    addresses.set(n.belongs_to_uuid, list);
  }
  return i.instances
    .map((r) => ({ uuid: r.uuid, ...(r.owner_uuid ? { owner_uuid: r.owner_uuid } : {}), tags: r.tags, firewall_enabled: r.firewall_enabled, addresses: (addresses.get(r.uuid) ?? []).sort() }))
    .sort((a, b) => a.uuid.localeCompare(b.uuid));
}

export function buildSnapshot(i: ConsoleInputs): ConsoleSnapshot {
  const nets = new Map(i.networks.map((n) => [n.uuid, n]));
  const fabricNics = i.nics.filter((n) => isFabricNic(n, nets));
  const fabricNets = i.networks
    .filter((n) => n.fabric === true)
    .sort((a, b) => (a.vnet_id ?? 0) - (b.vnet_id ?? 0) || a.vlan_id - b.vlan_id || a.name.localeCompare(b.name));
  const p = placements(fabricNics, nets);
  const nodes = buildNodes(i, fabricNics, p);
  return {
    revision: i.revision,
    generated_at: i.now,
    nodes,
    vnets: buildVnets(fabricNets, p, new Map(nodes.map((n, idx) => [n.uuid, idx]))),
    networks: buildNetworks(i, fabricNets, fabricNics),
    shootdowns: i.shootdowns,
    rules: buildRules(i.rules),
    instances: buildFwInstances(i),
    truncated: i.truncated,
  };
}
