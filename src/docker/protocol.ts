/**
 * Docker's plugin protocol for network and IPAM drivers (libnetwork's remote drivers:
 * JSON over HTTP POST), as data: what each request must carry, checked, and the option
 * names Docker uses. Pure; ./server.ts serves it and ./driver.ts acts on it.
 *
 * What reaches which driver (this decides the design, see ./driver.ts):
 * - `docker network create -o K=V` reaches the *network* driver only, in CreateNetwork's
 *   Options["com.docker.network.generic"]; `--ipam-opt K=V` reaches the *IPAM* driver only
 *   (RequestPool's Options). Neither is told the network's name.
 * - The IPAM driver is asked for the pool and the gateway *before* CreateNetwork, and for
 *   an endpoint's address *before* CreateEndpoint; it knows the network only by the
 *   PoolID it returned, and the endpoint only by the MAC libnetwork generates for it
 *   (RequiresMACAddress).
 * - Errors: a request that cannot be decoded gets an HTTP error; one that is understood
 *   but cannot be done gets 200 with {"Err": "..."}, which Docker shows the user.
 */
import ipaddr from 'ipaddr.js';
import { isUuid, tryCanonicalMac } from '../net/addr.js';

/** The media type Docker's plugin client sends and expects. */
export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';

/** libnetwork's option names (netlabel). */
export const OPT = {
  generic: 'com.docker.network.generic',
  enableIpv6: 'com.docker.network.enable_ipv6',
  exposedPorts: 'com.docker.network.endpoint.exposedports',
  portMap: 'com.docker.network.portmap',
  mac: 'com.docker.network.endpoint.macaddress',
  requestAddressType: 'RequestAddressType',
  gatewayType: 'com.docker.network.gateway',
} as const;

/** The address space rhumb's IPAM driver names (one: pools are told apart by their IDs). */
export const ADDRESS_SPACE = 'rhumb';
const POOL_PREFIX = 'rhumb';

/** A request Docker sent that rhumb cannot act on; the message is for the user. */
export class PluginRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PluginRequestError';
  }
}

type Obj = Record<string, unknown>;

function obj(v: unknown, what: string): Obj {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new PluginRequestError(`${what} must be a JSON object`);
  return v as Obj;
}

function str(o: Obj, field: string, required = true): string | undefined {
  const v = o[field];
  if (v === undefined || v === null || v === '') {
    if (required) throw new PluginRequestError(`${field} is missing`);
    return undefined;
  }
  if (typeof v !== 'string') throw new PluginRequestError(`${field} must be a string`);
  return v;
}

/** Docker's network and endpoint IDs: 64 hex digits. */
function dockerId(o: Obj, field: string): string {
  const v = str(o, field)!;
  if (!/^[0-9a-f]{64}$/.test(v)) throw new PluginRequestError(`${field} must be 64 hex digits`);
  return v;
}

// ---- network options (-o) ------------------------------------------------------------

export interface NetworkOptions {
  owner: string;
  /** The fabric VLAN to use; undefined: the existing network's, or a free one. */
  vlan?: number;
  /** Inter-container communication (Docker's default: on). */
  icc: boolean;
}

/** `-o` names rhumb takes (Docker's own com.docker.network.* options are passed through). */
export const NETWORK_OPTIONS = ['owner', 'vlan', 'icc'] as const;

function boolOption(name: string, v: string): boolean {
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw new PluginRequestError(`option ${name} must be true or false, not "${v}"`);
}

/** CreateNetwork's Options -> rhumb's network options; unknown, missing or bad ones are refused by name. */
export function parseNetworkOptions(options: unknown): NetworkOptions {
  const all = obj(options ?? {}, 'Options');
  if (all[OPT.enableIpv6] === true) throw new PluginRequestError('rhumb networks are IPv4 only: drop --ipv6');
  const generic = obj(all[OPT.generic] ?? {}, 'the network options');
  const unknown = Object.keys(generic).filter((k) => !(NETWORK_OPTIONS as readonly string[]).includes(k) && !k.startsWith('com.docker.network.'));
  if (unknown.length > 0) {
    throw new PluginRequestError(`unknown option(s) ${unknown.sort().join(', ')}: rhumb takes -o owner=UUID, -o vlan=N and -o icc=true|false`);
  }
  for (const [k, v] of Object.entries(generic)) if (typeof v !== 'string') throw new PluginRequestError(`option ${k} must be a string`);
  const g = generic as Record<string, string>;
  if (g.owner === undefined || g.owner === '') throw new PluginRequestError('option owner is required: -o owner=UUID (the fabric network\'s owner)');
  if (!isUuid(g.owner.toLowerCase())) throw new PluginRequestError(`option owner must be a UUID, not "${g.owner}"`);
  let vlan: number | undefined;
  if (g.vlan !== undefined) {
    if (!/^\d{1,4}$/.test(g.vlan) || Number(g.vlan) > 4094) throw new PluginRequestError(`option vlan must be a VLAN id 0-4094, not "${g.vlan}"`);
    vlan = Number(g.vlan);
  }
  const icc = g.icc === undefined ? true : boolOption('icc', g.icc);
  return { owner: g.owner.toLowerCase(), ...(vlan !== undefined ? { vlan } : {}), icc };
}

// ---- subnets and pools -----------------------------------------------------------------

export interface Subnet {
  /** Canonical a.b.c.d/n. */
  cidr: string;
  network: string;
  prefix: number;
  /** First and last host addresses. */
  first: string;
  last: string;
}

function v4ToInt(a: ipaddr.IPv4): number {
  return a.octets.reduce((n, o) => n * 256 + o, 0);
}

function intToV4(n: number): string {
  return [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.');
}

/** An IPv4 subnet as Docker's --subnet gives it; host bits must be zero, room for a gateway and hosts. */
export function parseSubnet(text: unknown): Subnet {
  if (typeof text !== 'string' || !ipaddr.IPv4.isValidCIDR(text)) throw new PluginRequestError(`subnet must be an IPv4 CIDR (a.b.c.d/n), not ${JSON.stringify(text)}`);
  const [addr, prefix] = ipaddr.IPv4.parseCIDR(text);
  if (prefix < 8 || prefix > 30) throw new PluginRequestError(`subnet ${text}: the prefix length must be 8-30`);
  const n = v4ToInt(addr);
  const size = 2 ** (32 - prefix);
  if (n % size !== 0) throw new PluginRequestError(`subnet ${text} has host bits set: did you mean ${intToV4(n - (n % size))}/${prefix}?`);
  return { cidr: `${addr.toString()}/${prefix}`, network: addr.toString(), prefix, first: intToV4(n + 1), last: intToV4(n + size - 2) };
}

export function subnetContains(s: Subnet, ip: string): boolean {
  if (!ipaddr.IPv4.isValidFourPartDecimal(ip)) return false;
  return ipaddr.IPv4.parse(ip).match(ipaddr.IPv4.parse(s.network), s.prefix);
}

/**
 * PoolIDs carry everything the IPAM driver will need later: the subnet, and the owner
 * when `--ipam-opt owner=UUID` gave it (Docker tells an IPAM driver nothing else about
 * the network an address is for).
 */
export interface PoolRef {
  subnet: Subnet;
  owner?: string;
}

export function poolId(p: PoolRef): string {
  return [POOL_PREFIX, p.subnet.cidr, ...(p.owner ? [p.owner] : [])].join(':');
}

export function parsePoolId(id: unknown): PoolRef {
  if (typeof id !== 'string') throw new PluginRequestError('PoolID is missing');
  const parts = id.split(':');
  if (parts[0] !== POOL_PREFIX || parts.length < 2 || parts.length > 3) throw new PluginRequestError(`PoolID ${JSON.stringify(id)} is not one of rhumb's`);
  const owner = parts[2];
  if (owner !== undefined && !isUuid(owner)) throw new PluginRequestError(`PoolID ${JSON.stringify(id)} is not one of rhumb's`);
  return { subnet: parseSubnet(parts[1]), ...(owner ? { owner } : {}) };
}

/** /IpamDriver.RequestPool -> the pool (rhumb chooses no subnets: --subnet is required). */
export function parseRequestPool(body: unknown): PoolRef {
  const b = obj(body, 'the request');
  if (b.V6 === true) throw new PluginRequestError('rhumb networks are IPv4 only: drop --ipv6');
  const pool = str(b, 'Pool', false);
  if (!pool) throw new PluginRequestError('rhumb does not choose subnets: give the network one with --subnet (e.g. --subnet 10.60.0.0/24)');
  if (str(b, 'SubPool', false)) throw new PluginRequestError('rhumb allocates from the whole subnet: drop --ip-range');
  const options = obj(b.Options ?? {}, 'Options');
  const unknown = Object.keys(options).filter((k) => k !== 'owner');
  if (unknown.length > 0) throw new PluginRequestError(`unknown IPAM option(s) ${unknown.sort().join(', ')}: rhumb takes --ipam-opt owner=UUID`);
  const owner = options.owner;
  if (owner !== undefined && (typeof owner !== 'string' || !isUuid(owner.toLowerCase()))) {
    throw new PluginRequestError(`IPAM option owner must be a UUID, not ${JSON.stringify(owner)}`);
  }
  return { subnet: parseSubnet(pool), ...(typeof owner === 'string' ? { owner: owner.toLowerCase() } : {}) };
}

export interface AddressRequest {
  pool: PoolRef;
  /** A specific address asked for (--ip, --gateway). */
  address?: string;
  /** The network's gateway (asked for at network creation), not an endpoint's address. */
  gateway: boolean;
  /** The endpoint's MAC (libnetwork's, as RequiresMACAddress asks). */
  mac?: string;
}

/** /IpamDriver.RequestAddress */
export function parseRequestAddress(body: unknown): AddressRequest {
  const b = obj(body, 'the request');
  const pool = parsePoolId(b.PoolID);
  const options = obj(b.Options ?? {}, 'Options');
  const address = str(b, 'Address', false);
  if (address !== undefined && !subnetContains(pool.subnet, address)) throw new PluginRequestError(`address ${address} is not in ${pool.subnet.cidr}`);
  const gateway = options[OPT.requestAddressType] === OPT.gatewayType;
  let mac: string | undefined;
  if (options[OPT.mac] !== undefined) {
    mac = tryCanonicalMac(options[OPT.mac]);
    if (!mac) throw new PluginRequestError(`${OPT.mac} is not a MAC address`);
  }
  return { pool, ...(address !== undefined ? { address } : {}), gateway, ...(mac ? { mac } : {}) };
}

/** /IpamDriver.ReleaseAddress */
export function parseReleaseAddress(body: unknown): { pool: PoolRef; address: string } {
  const b = obj(body, 'the request');
  const pool = parsePoolId(b.PoolID);
  const address = str(b, 'Address')!;
  if (!ipaddr.IPv4.isValidFourPartDecimal(address)) throw new PluginRequestError('Address must be an IPv4 address');
  return { pool, address };
}

// ---- network driver requests -----------------------------------------------------------

export interface CreateNetworkRequest {
  networkId: string;
  options: NetworkOptions;
  subnet: Subnet;
  /** The gateway libnetwork got from the IPAM driver (or the user's --gateway). */
  gateway?: string;
}

/** /NetworkDriver.CreateNetwork */
export function parseCreateNetwork(body: unknown): CreateNetworkRequest {
  const b = obj(body, 'the request');
  const networkId = dockerId(b, 'NetworkID');
  const options = parseNetworkOptions(b.Options);
  const v6 = b.IPv6Data;
  if (Array.isArray(v6) && v6.length > 0) throw new PluginRequestError('rhumb networks are IPv4 only: drop --ipv6');
  const v4 = Array.isArray(b.IPv4Data) ? b.IPv4Data : [];
  if (v4.length !== 1) throw new PluginRequestError(`a rhumb network has exactly one IPv4 subnet (got ${v4.length})`);
  const d = obj(v4[0], 'IPv4Data');
  const subnet = parseSubnet(str(d, 'Pool'));
  const gwCidr = str(d, 'Gateway', false);
  const gateway = gwCidr?.split('/')[0];
  if (gateway !== undefined && !subnetContains(subnet, gateway)) throw new PluginRequestError(`gateway ${gateway} is not in ${subnet.cidr}`);
  return { networkId, options, subnet, ...(gateway !== undefined ? { gateway } : {}) };
}

export interface EndpointRef {
  networkId: string;
  endpointId: string;
}

/** DeleteNetwork, DeleteEndpoint, Leave, EndpointOperInfo, RevokeExternalConnectivity. */
export function parseNetworkRef(body: unknown): { networkId: string } {
  return { networkId: dockerId(obj(body, 'the request'), 'NetworkID') };
}

export function parseEndpointRef(body: unknown): EndpointRef {
  const b = obj(body, 'the request');
  return { networkId: dockerId(b, 'NetworkID'), endpointId: dockerId(b, 'EndpointID') };
}

export type Proto = 'tcp' | 'udp';

export interface PortBinding {
  proto: Proto;
  /** The container's port. */
  port: number;
  /** The node address to listen on ('' : the node's address). */
  hostIp: string;
  hostPort: number;
}

export interface PortOptions {
  exposed: Array<{ proto: Proto; port: number }>;
  bindings: PortBinding[];
}

function protoOf(n: unknown): Proto {
  if (n === 6) return 'tcp';
  if (n === 17) return 'udp';
  if (n === 132) throw new PluginRequestError('rhumb does not publish or filter SCTP ports');
  throw new PluginRequestError(`unknown port protocol ${JSON.stringify(n)}`);
}

function portNumber(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) throw new PluginRequestError(`${what} must be a port number 1-65535`);
  return v;
}

/**
 * The exposed ports and port bindings libnetwork passes with an endpoint. A binding needs
 * an explicit host port (-p HOST:CONTAINER; rhumb does not pick one) and maps one port.
 */
export function parsePortOptions(options: unknown): PortOptions {
  const o = obj(options ?? {}, 'Options');
  const exposedRaw = o[OPT.exposedPorts] ?? [];
  const mapRaw = o[OPT.portMap] ?? [];
  if (!Array.isArray(exposedRaw) || !Array.isArray(mapRaw)) throw new PluginRequestError('exposed ports and port maps must be lists');
  const exposed = exposedRaw.map((e) => {
    const x = obj(e, 'an exposed port');
    return { proto: protoOf(x.Proto), port: portNumber(x.Port, 'an exposed port') };
  });
  const bindings = mapRaw.map((e) => {
    const x = obj(e, 'a port binding');
    const proto = protoOf(x.Proto);
    const port = portNumber(x.Port, 'a published container port');
    if (x.HostPort === 0 || x.HostPort === undefined) {
      throw new PluginRequestError(`port ${port}/${proto}: rhumb needs the node's port too (-p HOSTPORT:${port}); it does not pick one`);
    }
    const hostPort = portNumber(x.HostPort, 'a host port');
    if (x.HostPortEnd !== undefined && x.HostPortEnd !== 0 && x.HostPortEnd !== hostPort) {
      throw new PluginRequestError(`port ${port}/${proto}: rhumb publishes one host port per container port, not a range`);
    }
    const hostIp = typeof x.HostIP === 'string' ? x.HostIP : '';
    if (hostIp !== '' && hostIp !== '0.0.0.0' && !ipaddr.IPv4.isValidFourPartDecimal(hostIp)) {
      throw new PluginRequestError(`port ${port}/${proto}: the host address must be IPv4, not ${hostIp}`);
    }
    return { proto, port, hostIp: hostIp === '0.0.0.0' ? '' : hostIp, hostPort };
  });
  return { exposed, bindings };
}

export interface CreateEndpointRequest extends EndpointRef {
  /** a.b.c.d/n the IPAM driver gave. */
  address?: string;
  mac?: string;
  ports: PortOptions;
}

/** /NetworkDriver.CreateEndpoint */
export function parseCreateEndpoint(body: unknown): CreateEndpointRequest {
  const b = obj(body, 'the request');
  const ref = parseEndpointRef(b);
  const iface = obj(b.Interface ?? {}, 'Interface');
  if (str(iface, 'AddressIPv6', false)) throw new PluginRequestError('rhumb networks are IPv4 only');
  const address = str(iface, 'Address', false);
  const macText = str(iface, 'MacAddress', false);
  const mac = macText === undefined ? undefined : tryCanonicalMac(macText);
  if (macText !== undefined && !mac) throw new PluginRequestError('Interface.MacAddress is not a MAC address');
  return { ...ref, ...(address ? { address } : {}), ...(mac ? { mac } : {}), ports: parsePortOptions(b.Options) };
}

export interface JoinRequest extends EndpointRef {
  sandboxKey: string;
}

/** /NetworkDriver.Join */
export function parseJoin(body: unknown): JoinRequest {
  const b = obj(body, 'the request');
  return { ...parseEndpointRef(b), sandboxKey: str(b, 'SandboxKey')! };
}

/** /NetworkDriver.ProgramExternalConnectivity */
export function parseExternalConnectivity(body: unknown): EndpointRef & { ports: PortOptions } {
  const b = obj(body, 'the request');
  return { ...parseEndpointRef(b), ports: parsePortOptions(b.Options) };
}

// ---- answers ---------------------------------------------------------------------------

export interface JoinAnswer {
  /** The staged interface libnetwork moves into the container, renamed with this prefix and an index. */
  srcName: string;
  gateway?: string;
  /** Static routes: RouteType 0 = via NextHop, 1 = on-link. */
  routes: Array<{ dst: string; via?: string }>;
}

export function joinResponse(a: JoinAnswer): Obj {
  return {
    InterfaceName: { SrcName: a.srcName, DstPrefix: 'eth' },
    ...(a.gateway ? { Gateway: a.gateway } : {}),
    StaticRoutes: a.routes.map((r) => (r.via ? { Destination: r.dst, RouteType: 0, NextHop: r.via } : { Destination: r.dst, RouteType: 1 })),
    // No docker_gwbridge: the network's gateway (or none) is all the container gets.
    DisableGatewayService: true,
  };
}

/** Docker's portmap format, for EndpointOperInfo (what `docker port` and inspect show). */
export function portMapValue(bindings: readonly PortBinding[]): Obj[] {
  return bindings.map((b) => ({
    Proto: b.proto === 'tcp' ? 6 : 17,
    IP: '',
    Port: b.port,
    HostIP: b.hostIp,
    HostPort: b.hostPort,
    HostPortEnd: b.hostPort,
  }));
}
