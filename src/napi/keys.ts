/**
 * Where NAPI objects live in the Store. One ordered keyspace; every API write is one
 * transaction (src/store/txn.ts) over these keys plus the overlay keys of
 * src/overlay/keys.ts.
 *
 *   napi/nic_tags/<name>                        NicTag
 *   napi/networks/<uuid>                        Network
 *   napi/network_names/<name_str>               uuid   (unique name index; name_str as NAPI:
 *                                                       'global:<name>' or '<owner>:<name>')
 *   napi/ips/<network uuid>/<ip sort key>       IP record
 *   napi/nics/<mac 12 hex>                      NIC
 *   napi/idx/nic/<index>/<value>/<mac 12 hex>   '' (secondary indexes: belongs_to, cn, network)
 *   napi/network_pools/<uuid>                   NetworkPool
 *   napi/aggregations/<id>                      Aggregation
 *   napi/fabrics/<owner uuid>                   {owner_uuid, vnet_id}
 *   napi/vnets/<vnet 8 digits>                  owner uuid (makes vnet_id unique)
 *   napi/vlans/<owner uuid>/<vlan 4 digits>     FabricVlan
 *   napi/routers/<owner uuid>/<uuid>            Router (connects fabric networks of one owner)
 *   napi/gen/networks                           counter bumped by every write that changes
 *                                               the set of networks or pool memberships, so
 *                                               scans (overlap, in-use) become CAS-checked
 */
import ipaddr from 'ipaddr.js';
import { padVnet } from '../overlay/keys.js';
import { ipText, quadToNumber } from '../net/addr.js';

export const NIC_TAG_PREFIX = 'napi/nic_tags/';
export const NETWORK_PREFIX = 'napi/networks/';
export const NETWORK_NAME_PREFIX = 'napi/network_names/';
export const IP_PREFIX = 'napi/ips/';
export const NIC_PREFIX = 'napi/nics/';
export const NIC_INDEX_PREFIX = 'napi/idx/nic/';
export const POOL_PREFIX = 'napi/network_pools/';
export const AGGR_PREFIX = 'napi/aggregations/';
export const FABRIC_PREFIX = 'napi/fabrics/';
export const VNET_PREFIX = 'napi/vnets/';
export const VLAN_PREFIX = 'napi/vlans/';
export const ROUTER_PREFIX = 'napi/routers/';
export const NETWORK_GEN_KEY = 'napi/gen/networks';

export const nicTagKey = (name: string): string => NIC_TAG_PREFIX + name;
export const networkKey = (uuid: string): string => NETWORK_PREFIX + uuid;
export const networkNameKey = (nameStr: string): string => NETWORK_NAME_PREFIX + nameStr;
export const ipPrefix = (networkUuid: string): string => `${IP_PREFIX}${networkUuid}/`;
export const ipKey = (networkUuid: string, ip: string): string => ipPrefix(networkUuid) + ipSortKey(ip);
export const nicKey = (mac: string): string => NIC_PREFIX + mac.replace(/[:-]/g, '').toLowerCase();
export const poolKey = (uuid: string): string => POOL_PREFIX + uuid;
export const aggrKey = (id: string): string => AGGR_PREFIX + id;
export const fabricKey = (owner: string): string => FABRIC_PREFIX + owner;
export const vnetKey = (vnet: number): string => VNET_PREFIX + padVnet(vnet);
export const vlanPrefix = (owner: string): string => `${VLAN_PREFIX}${owner}/`;
export const vlanKey = (owner: string, vlan: number): string => vlanPrefix(owner) + String(vlan).padStart(4, '0');
export const routerPrefix = (owner: string): string => `${ROUTER_PREFIX}${owner}/`;
export const routerKey = (owner: string, uuid: string): string => routerPrefix(owner) + uuid;

export type NicIndex = 'belongs_to' | 'cn' | 'network';
export const nicIndexPrefix = (index: NicIndex, value: string): string => `${NIC_INDEX_PREFIX}${index}/${value}/`;
export const nicIndexKey = (index: NicIndex, value: string, mac: string): string =>
  nicIndexPrefix(index, value) + mac.replace(/[:-]/g, '').toLowerCase();

/**
 * Fixed-width hex of an address so that keys sort in address order:
 * IPv4 -> 8 hex digits, IPv6 -> 32 (IPv4 sorts before IPv6).
 */
export function ipSortKey(ip: string): string {
  const quad = quadToNumber(ip);
  if (quad !== undefined) return quad.toString(16).padStart(8, '0');
  const a = ipaddr.parse(ip);
  return a
    .toByteArray()
    .map((b) => b.toString(16).padStart(2, '0'))
    .join('');
}

/** Inverse of ipSortKey. */
export function ipFromSortKey(hex: string): string {
  const bytes = hex.match(/../g)!.map((h) => parseInt(h, 16));
  return ipText(ipaddr.fromByteArray(bytes));
}
