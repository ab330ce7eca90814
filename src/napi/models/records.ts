/**
 * Stored shapes of NAPI objects (what lives under the keys of ../keys.ts). The API's
 * serialized forms are derived from these by each model's serialize function.
 * Shared by every route group, so both the network side and the NIC side agree.
 */

export interface NicTagRecord {
  name: string;
  uuid: string;
  mtu: number;
}

export interface NetworkRecord {
  uuid: string;
  name: string;
  /** NAPI's unique name string: 'global:<name>', or '<owner>:<name>' for fabric networks. */
  name_str: string;
  family: 'ipv4' | 'ipv6';
  /** CIDR, network address canonical. */
  subnet: string;
  provision_start_ip: string;
  provision_end_ip: string;
  vlan_id: number;
  nic_tag: string;
  mtu: number;
  resolvers: string[];
  gateway?: string;
  /** destination (IP or CIDR) -> next hop IP or 'linklocal' */
  routes?: Record<string, string>;
  description?: string;
  owner_uuids?: string[];
  // fabric networks only
  fabric?: true;
  vnet_id?: number;
  internet_nat?: boolean;
  gateway_provisioned?: boolean;
  /**
   * Set by the first phase of a delete: NIC writes treat the network as gone, so none can
   * land on it between the delete's in-use scan and its commit.
   */
  deleting?: true;
  created_timestamp: string;
  modified_timestamp: string;
}

export type BelongsToType = 'zone' | 'server' | 'other';

export interface IpRecord {
  ip: string;
  network_uuid: string;
  reserved: boolean;
  belongs_to_uuid?: string;
  belongs_to_type?: BelongsToType;
  owner_uuid?: string;
  /** ISO time this address was last released; oldest-freed addresses are reused first. */
  freed_timestamp?: string;
  modified_timestamp: string;
}

export interface NicRecord {
  mac: string; // xx:xx:xx:xx:xx:xx
  owner_uuid: string;
  belongs_to_uuid: string;
  belongs_to_type: BelongsToType;
  primary: boolean;
  state: 'provisioning' | 'stopped' | 'running';
  created_timestamp: string;
  modified_timestamp: string;
  cn_uuid?: string;
  model?: string;
  nic_tag?: string;
  nic_tags_provided?: string[];
  ip?: string;
  network_uuid?: string;
  allow_dhcp_spoofing?: boolean;
  allow_ip_spoofing?: boolean;
  allow_mac_spoofing?: boolean;
  allow_restricted_traffic?: boolean;
  allow_unfiltered_promisc?: boolean;
  underlay?: boolean;
}

export interface NetworkPoolRecord {
  uuid: string;
  name: string;
  family: 'ipv4' | 'ipv6';
  networks: string[];
  nic_tag: string;
  nic_tags_present: string[];
  owner_uuids?: string[];
  description?: string;
}

export interface FabricRecord {
  owner_uuid: string;
  vnet_id: number;
}

export interface FabricVlanRecord {
  owner_uuid: string;
  vlan_id: number;
  vnet_id: number;
  /** Optional in NAPI's code although its docs imply it is required. */
  name?: string;
  description?: string;
}

export interface AggregationRecord {
  id: string; // '<belongs_to_uuid>-<name>'
  name: string;
  belongs_to_uuid: string;
  macs: string[];
  lacp_mode: 'off' | 'active' | 'passive';
  nic_tags_provided?: string[];
}

/** A router: fabric networks of one owner that reach each other through the distributed gateway. */
export interface RouterRecord {
  uuid: string;
  owner_uuid: string;
  name: string;
  /** Network uuids, sorted. */
  networks: string[];
  description?: string;
  created_timestamp: string;
  modified_timestamp: string;
}
