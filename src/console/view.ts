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

export function buildSnapshot(i: ConsoleInputs): ConsoleSnapshot {
  const nets = new Map(i.networks.map((n) => [n.uuid, n]));
  const fabricNics = i.nics.filter((n) => isFabricNic(n, nets));
  const fw = new Map(i.instances.map((r) => [r.uuid, r]));
  const health = new Map(i.health.map((h) => [h.node, h]));
  const byUnderlay = new Map(i.underlays.map((u) => [u.ip, u.cn_uuid]));

  // Nodes: those with an underlay record, those that report, and those NICs are placed on.
  const nodeIds = new Set<string>([...i.underlays.map((u) => u.cn_uuid), ...i.health.map((h) => h.node)]);
  for (const n of fabricNics) if (n.cn_uuid) nodeIds.add(n.cn_uuid);
  const underlayOf = new Map(i.underlays.map((u) => [u.cn_uuid, u.ip]));

  const vnetNodes = new Map<number, Map<string, number>>();
  const nicsPerNode = new Map<string, number>();
  const vnetsPerNode = new Map<string, Set<number>>();
  for (const n of fabricNics) {
    const vnet = nets.get(n.network_uuid!)!.vnet_id;
    if (vnet === undefined || !n.cn_uuid) continue;
    const m = vnetNodes.get(vnet) ?? new Map<string, number>();
    m.set(n.cn_uuid, (m.get(n.cn_uuid) ?? 0) + 1);
    vnetNodes.set(vnet, m);
    nicsPerNode.set(n.cn_uuid, (nicsPerNode.get(n.cn_uuid) ?? 0) + 1);
    const s = vnetsPerNode.get(n.cn_uuid) ?? new Set<number>();
    s.add(vnet);
    vnetsPerNode.set(n.cn_uuid, s);
  }

  // Nodes in underlay address order (then UUID): the order an operator numbers them in.
  const addressKey = (uuid: string): string => {
    const ip = underlayOf.get(uuid) ?? health.get(uuid)?.underlay_ip;
    return ip ? ip.split('.').map((o) => o.padStart(3, '0')).join('.') : '~';
  };
  const ordered = [...nodeIds].sort((a, b) => addressKey(a).localeCompare(addressKey(b)) || a.localeCompare(b));
  const rank = new Map(ordered.map((u, idx) => [u, idx]));
  const nodes: ConsoleNode[] = ordered.map((uuid) => {
    const h = health.get(uuid);
    const age = h ? Math.max(0, i.now - h.reported_at) : undefined;
    const ip = underlayOf.get(uuid) ?? h?.underlay_ip;
    return {
      uuid,
      ...(ip ? { underlay_ip: ip } : {}),
      ...(h ? { backend: h.backend } : {}),
      agent: !h ? 'unknown' : age! > SILENT_AFTER_MS ? 'silent' : 'up',
      ...(age !== undefined ? { report_age_ms: age } : {}),
      nics: nicsPerNode.get(uuid) ?? 0,
      vnets: [...(vnetsPerNode.get(uuid) ?? [])].sort((a, b) => a - b),
      peers: (h?.peers ?? []).map((p) => {
        const peerNode = byUnderlay.get(p.address);
        return { ...p, ...(peerNode ? { node: peerNode } : {}) };
      }),
    };
  });

  const vlanName = new Map(i.vlans.map((v) => [`${v.owner_uuid}/${v.vlan_id}`, v.name]));
  const fabricNets = i.networks.filter((n) => n.fabric === true).sort((a, b) => (a.vnet_id ?? 0) - (b.vnet_id ?? 0) || a.vlan_id - b.vlan_id || a.name.localeCompare(b.name));
  const networks: ConsoleNetwork[] = fabricNets.map((n) => {
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
      instances: fabricNics
        .filter((nic) => nic.network_uuid === n.uuid)
        .sort((a, b) => (a.ip ?? '').localeCompare(b.ip ?? '', 'en', { numeric: true }))
        .map((nic) => {
          const rec = fw.get(nic.belongs_to_uuid);
          return {
            uuid: nic.belongs_to_uuid,
            mac: nic.mac,
            owner_uuid: nic.owner_uuid,
            ...(nic.ip ? { ip: nic.ip } : {}),
            ...(nic.cn_uuid ? { cn_uuid: nic.cn_uuid } : {}),
            ...(rec ? { tags: rec.tags, firewall_enabled: rec.firewall_enabled } : {}),
          };
        }),
    };
  });

  const vnetIds = new Set<number>([...fabricNets.flatMap((n) => (n.vnet_id !== undefined ? [n.vnet_id] : [])), ...vnetNodes.keys()]);
  const vnets: ConsoleVnet[] = [...vnetIds]
    .sort((a, b) => a - b)
    .map((vnet) => {
      const onVnet = fabricNets.filter((n) => n.vnet_id === vnet);
      const owner = onVnet.find((n) => n.owner_uuids?.[0])?.owner_uuids?.[0];
      return {
        vnet_id: vnet,
        ...(owner ? { owner_uuid: owner } : {}),
        networks: onVnet.map((n) => n.uuid),
        nodes: [...(vnetNodes.get(vnet) ?? new Map<string, number>())].sort(([a], [b]) => rank.get(a)! - rank.get(b)!).map(([uuid, nics]) => ({ uuid, nics })),
      };
    });

  const addresses = new Map<string, string[]>();
  for (const n of i.nics) {
    if (!n.ip) continue;
    const list = addresses.get(n.belongs_to_uuid) ?? [];
    list.push(n.ip);
    addresses.set(n.belongs_to_uuid, list);
  }

  return {
    revision: i.revision,
    generated_at: i.now,
    nodes,
    vnets,
    networks,
    shootdowns: i.shootdowns,
    rules: i.rules
      .map((r) => ({
        uuid: r.uuid,
        rule: r.rule,
        enabled: r.enabled,
        ...(r.owner_uuid ? { owner_uuid: r.owner_uuid } : {}),
        ...(r.global ? { global: true } : {}),
        ...(r.description ? { description: r.description } : {}),
      }))
      .sort((a, b) => (a.owner_uuid ?? '').localeCompare(b.owner_uuid ?? '') || a.rule.localeCompare(b.rule)),
    instances: i.instances
      .map((r) => ({ uuid: r.uuid, ...(r.owner_uuid ? { owner_uuid: r.owner_uuid } : {}), tags: r.tags, firewall_enabled: r.firewall_enabled, addresses: (addresses.get(r.uuid) ?? []).sort() }))
      .sort((a, b) => a.uuid.localeCompare(b.uuid)),
    truncated: i.truncated,
  };
}
