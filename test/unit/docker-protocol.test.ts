/**
 * Docker's plugin protocol as data (src/docker/protocol.ts): which options each driver
 * takes, pool IDs, address requests, endpoint port options, and the Join answer; every
 * refusal names the cause the user will read.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  OPT, PluginRequestError, joinResponse, parseCreateEndpoint, parseCreateNetwork, parseJoin, parseNetworkOptions, parsePoolId, parsePortOptions,
  parseReleaseAddress, parseRequestAddress, parseRequestPool, parseSubnet, poolId, portMapValue,
} from '../../src/docker/protocol.js';

const OWNER = '11111111-1111-4111-8111-111111111111';
const NET = 'a'.repeat(64);
const EP = 'b'.repeat(64);

function refuses(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err) => err instanceof PluginRequestError && pattern.test(err.message), `expected a refusal matching ${pattern}`);
}

describe('network options (-o)', () => {
  it('takes owner, vlan and icc; icc defaults to on', () => {
    assert.deepEqual(parseNetworkOptions({ [OPT.generic]: { owner: OWNER.toUpperCase() } }), { owner: OWNER, icc: true });
    assert.deepEqual(parseNetworkOptions({ [OPT.generic]: { owner: OWNER, vlan: '7', icc: 'false' }, [OPT.enableIpv6]: false }), { owner: OWNER, vlan: 7, icc: false });
  });

  it('refuses a missing or bad owner, unknown options, bad vlan or icc, and IPv6', () => {
    refuses(() => parseNetworkOptions({ [OPT.generic]: {} }), /owner is required/);
    refuses(() => parseNetworkOptions({ [OPT.generic]: { owner: 'acme' } }), /owner must be a UUID/);
    refuses(() => parseNetworkOptions({ [OPT.generic]: { owner: OWNER, color: 'blue', mtu: '9000' } }), /unknown option\(s\) color, mtu/);
    refuses(() => parseNetworkOptions({ [OPT.generic]: { owner: OWNER, vlan: '5000' } }), /vlan must be a VLAN id/);
    refuses(() => parseNetworkOptions({ [OPT.generic]: { owner: OWNER, vlan: '-1' } }), /vlan must be a VLAN id/);
    refuses(() => parseNetworkOptions({ [OPT.generic]: { owner: OWNER, icc: 'maybe' } }), /icc must be true or false/);
    refuses(() => parseNetworkOptions({ [OPT.generic]: { owner: OWNER }, [OPT.enableIpv6]: true }), /IPv4 only/);
  });
});

describe('subnets and pools', () => {
  it('parses a subnet with its first and last host', () => {
    assert.deepEqual(parseSubnet('10.60.0.0/24'), { cidr: '10.60.0.0/24', network: '10.60.0.0', prefix: 24, first: '10.60.0.1', last: '10.60.0.254' });
    refuses(() => parseSubnet('10.60.0.1/24'), /host bits set: did you mean 10\.60\.0\.0\/24/);
    refuses(() => parseSubnet('10.60.0.0/31'), /prefix length/);
    assert.deepEqual([parseSubnet('10.60.0.4/30').first, parseSubnet('10.60.0.4/30').last], ['10.60.0.5', '10.60.0.6']);
    refuses(() => parseSubnet('fd00::/64'), /IPv4 CIDR/);
  });

  it('a pool ID carries the subnet and the IPAM owner, and reads back', () => {
    const plain = parseRequestPool({ AddressSpace: 'rhumb', Pool: '10.60.0.0/24', SubPool: '', Options: {}, V6: false });
    assert.equal(poolId(plain), 'rhumb:10.60.0.0/24');
    const owned = parseRequestPool({ Pool: '10.60.0.0/24', Options: { owner: OWNER.toUpperCase() } });
    assert.equal(poolId(owned), `rhumb:10.60.0.0/24:${OWNER}`);
    assert.deepEqual(parsePoolId(poolId(owned)), owned);
    refuses(() => parsePoolId('default:10.0.0.0/8'), /not one of rhumb's/);
  });

  it('RequestPool refuses what rhumb does not do, by name', () => {
    refuses(() => parseRequestPool({ Pool: '' }), /--subnet/);
    refuses(() => parseRequestPool({ Pool: '10.60.0.0/24', SubPool: '10.60.0.0/25' }), /--ip-range/);
    refuses(() => parseRequestPool({ Pool: '10.60.0.0/24', V6: true }), /IPv4 only/);
    refuses(() => parseRequestPool({ Pool: '10.60.0.0/24', Options: { colour: 'x' } }), /unknown IPAM option\(s\) colour/);
    refuses(() => parseRequestPool({ Pool: '10.60.0.0/24', Options: { owner: 'x' } }), /owner must be a UUID/);
  });
});

describe('address requests', () => {
  const pool = `rhumb:10.60.0.0/24:${OWNER}`;

  it('tells the gateway request from an endpoint request (with the endpoint MAC)', () => {
    const gw = parseRequestAddress({ PoolID: pool, Address: '', Options: { [OPT.requestAddressType]: OPT.gatewayType } });
    assert.equal(gw.gateway, true);
    const ep = parseRequestAddress({ PoolID: pool, Address: '10.60.0.9', Options: { [OPT.mac]: '02:42:AC:11:00:02' } });
    assert.deepEqual({ gateway: ep.gateway, address: ep.address, mac: ep.mac }, { gateway: false, address: '10.60.0.9', mac: '02:42:ac:11:00:02' });
    refuses(() => parseRequestAddress({ PoolID: pool, Address: '10.61.0.9' }), /not in 10\.60\.0\.0\/24/);
    refuses(() => parseRequestAddress({ PoolID: pool, Options: { [OPT.mac]: 'nope' } }), /not a MAC address/);
    assert.equal(parseReleaseAddress({ PoolID: pool, Address: '10.60.0.9' }).address, '10.60.0.9');
  });
});

describe('network driver requests', () => {
  it('CreateNetwork: options, the one IPv4 subnet and its gateway', () => {
    const req = parseCreateNetwork({
      NetworkID: NET,
      Options: { [OPT.generic]: { owner: OWNER }, [OPT.enableIpv6]: false },
      IPv4Data: [{ AddressSpace: 'rhumb', Pool: '10.60.0.0/24', Gateway: '10.60.0.1/24' }],
      IPv6Data: [],
    });
    assert.equal(req.subnet.cidr, '10.60.0.0/24');
    assert.equal(req.gateway, '10.60.0.1');
    refuses(() => parseCreateNetwork({ NetworkID: 'short', Options: {}, IPv4Data: [] }), /NetworkID must be 64 hex digits/);
    refuses(
      () => parseCreateNetwork({ NetworkID: NET, Options: { [OPT.generic]: { owner: OWNER } }, IPv4Data: [{ Pool: '10.60.0.0/24' }, { Pool: '10.61.0.0/24' }] }),
      /exactly one IPv4 subnet/,
    );
  });

  it('port options: exposed ports and explicit host-port bindings', () => {
    const ports = parsePortOptions({
      [OPT.exposedPorts]: [{ Proto: 6, Port: 80 }, { Proto: 17, Port: 53 }],
      [OPT.portMap]: [{ Proto: 6, IP: '', Port: 80, HostIP: '0.0.0.0', HostPort: 8080, HostPortEnd: 8080 }],
    });
    assert.deepEqual(ports, {
      exposed: [{ proto: 'tcp', port: 80 }, { proto: 'udp', port: 53 }],
      bindings: [{ proto: 'tcp', port: 80, hostIp: '', hostPort: 8080 }],
    });
    refuses(() => parsePortOptions({ [OPT.portMap]: [{ Proto: 6, Port: 80, HostPort: 0 }] }), /needs the node's port too \(-p HOSTPORT:80\)/);
    refuses(() => parsePortOptions({ [OPT.portMap]: [{ Proto: 6, Port: 80, HostPort: 8080, HostPortEnd: 8090 }] }), /not a range/);
    refuses(() => parsePortOptions({ [OPT.exposedPorts]: [{ Proto: 132, Port: 9 }] }), /SCTP/);
    assert.deepEqual(portMapValue(ports.bindings), [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080 }]);
  });

  it('CreateEndpoint and Join, and the Join answer (no gwbridge)', () => {
    const ce = parseCreateEndpoint({ NetworkID: NET, EndpointID: EP, Interface: { Address: '10.60.0.2/24', AddressIPv6: '', MacAddress: '02:42:0A:3C:00:02' }, Options: {} });
    assert.deepEqual({ address: ce.address, mac: ce.mac }, { address: '10.60.0.2/24', mac: '02:42:0a:3c:00:02' });
    assert.equal(parseJoin({ NetworkID: NET, EndpointID: EP, SandboxKey: '/var/run/docker/netns/0123456789ab' }).sandboxKey, '/var/run/docker/netns/0123456789ab');
    assert.deepEqual(joinResponse({ srcName: 'rs02420a3c0002', gateway: '10.60.0.1', routes: [{ dst: '10.9.0.0/16', via: '10.60.0.254' }, { dst: '10.8.0.0/16' }] }), {
      InterfaceName: { SrcName: 'rs02420a3c0002', DstPrefix: 'eth' },
      Gateway: '10.60.0.1',
      StaticRoutes: [{ Destination: '10.9.0.0/16', RouteType: 0, NextHop: '10.60.0.254' }, { Destination: '10.8.0.0/16', RouteType: 1 }],
      DisableGatewayService: true,
    });
  });
});
