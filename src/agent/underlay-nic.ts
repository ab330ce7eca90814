/**
 * The node's underlay NIC in the API: registered at start on the underlay network that
 * holds the node's address, and the other nodes' underlay NICs, whose addresses are the
 * peers VXLAN may go to.
 */
import { ipInSubnet } from '../net/addr.js';
import { linkWithAddress } from './plumbing/iproute.js';
import type { Logger } from '../log/index.js';
import type { AgentOptions } from './agent-options.js';

export type UnderlayNicOptions = Pick<AgentOptions, 'nodeUuid' | 'adminUuid' | 'underlayNicTag' | 'napi' | 'routing'>;

/** Registers the node's underlay NIC (address ownUnderlay) on the underlay network holding its address, if missing. */
export async function registerUnderlayNic(o: UnderlayNicOptions, ownUnderlay: string, log: Logger): Promise<'present' | 'created'> {
  const tag = o.underlayNicTag ?? 'sdc_underlay';
  const mine = await o.napi.listNics({ belongs_to_uuid: o.nodeUuid, belongs_to_type: 'server' });
  if (mine.some((n) => n.underlay === true && n.ip === ownUnderlay)) return 'present';
  const nets = await o.napi.listNetworks({ nic_tag: tag });
  const net = nets.find((n) => ipInSubnet(ownUnderlay, n.subnet));
  if (!net) throw new Error(`no network with nic_tag ${tag} contains the underlay address ${ownUnderlay}`);
  const link = await linkWithAddress(ownUnderlay);
  if (!link?.address) throw new Error(`no interface here has the underlay address ${ownUnderlay}`);
  await o.napi.createNic({
    mac: link.address,
    owner_uuid: o.adminUuid,
    belongs_to_uuid: o.nodeUuid,
    belongs_to_type: 'server',
    network_uuid: net.uuid,
    ip: ownUnderlay,
    cn_uuid: o.nodeUuid,
    underlay: true,
  });
  log.info(`registered underlay NIC ${link.address} ${ownUnderlay} on ${net.name}`);
  return 'created';
}

/** The underlay addresses of the nodes other than this one (at ownUnderlay): their underlay NICs in the API. */
export async function peerUnderlays(o: UnderlayNicOptions, ownUnderlay: string): Promise<string[]> {
  const tag = o.underlayNicTag ?? 'sdc_underlay';
  const nics = await o.napi.listNics({ underlay: true, belongs_to_type: 'server' });
  const underlays = nics.filter((n) => n.ip && n.ip !== ownUnderlay && (n.nic_tag === undefined || n.nic_tag === tag)).map((n) => n.ip!);
  return o.routing ? o.routing.sources(underlays) : underlays;
}
