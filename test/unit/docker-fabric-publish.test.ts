/**
 * The pure parts of the Docker plugin: which fabric network a Docker network maps to
 * (adopt, create on a VLAN, or refuse), the node's publication table (DNAT text, read
 * back after a restart, host-port clashes), the container semantics read from inspect,
 * and the plugin spec file.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { DockerContainer } from '../../src/docker/engine.js';
import { type FabricNetwork, planFabric } from '../../src/docker/fabric.js';
import { PluginRequestError, parseSubnet } from '../../src/docker/protocol.js';
import {
  type Publication, conflicts, containerLinkCommands, linkAddress, nodeLinkCommands, parsePublishTable, renderPublishTable,
} from '../../src/docker/publish.js';
import { containerSpec, exposedPorts, linksOn, portBindings, publishedPorts } from '../../src/docker/semantics.js';
import { installSpec, removeSpec } from '../../src/docker/spec.js';

const OWNER = '11111111-1111-4111-8111-111111111111';
const net = (name: string, subnet: string, vlan_id: number): FabricNetwork => ({ uuid: `uuid-${name}`, name, subnet, vlan_id });

function refuses(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err) => err instanceof PluginRequestError && pattern.test(err.message), `expected a refusal matching ${pattern}`);
}

describe('planFabric', () => {
  const nets = [net('web', '10.60.0.0/24', 2), net('db', '10.70.0.0/16', 3)];
  const vlans = [{ vlan_id: 2 }, { vlan_id: 3 }, { vlan_id: 5 }];

  it('adopts the owner network with exactly that subnet (on its VLAN)', () => {
    assert.deepEqual(planFabric({ owner: OWNER, subnet: parseSubnet('10.60.0.0/24') }, vlans, nets), { kind: 'adopt', network: nets[0] });
    assert.deepEqual(planFabric({ owner: OWNER, subnet: parseSubnet('10.60.0.0/24'), vlan: 2 }, vlans, nets).kind, 'adopt');
    refuses(() => planFabric({ owner: OWNER, subnet: parseSubnet('10.60.0.0/24'), vlan: 9 }, vlans, nets), /is on VLAN 2, not VLAN 9/);
  });

  it('refuses an overlapping subnet and a VLAN in use with another subnet', () => {
    refuses(() => planFabric({ owner: OWNER, subnet: parseSubnet('10.70.5.0/24') }, vlans, nets), /overlaps .*db \(10\.70\.0\.0\/16\)/);
    refuses(() => planFabric({ owner: OWNER, subnet: parseSubnet('10.60.0.0/16') }, vlans, nets), /overlaps .*web/);
    refuses(() => planFabric({ owner: OWNER, subnet: parseSubnet('10.80.0.0/24'), vlan: 3 }, vlans, nets), /VLAN 3 .* in use with another subnet: 10\.70\.0\.0\/16/);
  });

  it('creates on the given VLAN (making it if needed) or on the lowest free one from 2', () => {
    assert.deepEqual(planFabric({ owner: OWNER, subnet: parseSubnet('10.80.0.0/24'), vlan: 5 }, vlans, nets), { kind: 'create', vlan: 5, createVlan: false });
    assert.deepEqual(planFabric({ owner: OWNER, subnet: parseSubnet('10.80.0.0/24'), vlan: 0 }, vlans, nets), { kind: 'create', vlan: 0, createVlan: true });
    assert.deepEqual(planFabric({ owner: OWNER, subnet: parseSubnet('10.80.0.0/24') }, vlans, nets), { kind: 'create', vlan: 4, createVlan: true });
    const full = Array.from({ length: 4093 }, (_, i) => ({ vlan_id: i + 2 }));
    refuses(() => planFabric({ owner: OWNER, subnet: parseSubnet('10.80.0.0/24') }, full, []), /no free fabric VLAN left/);
  });
});

describe('publications', () => {
  const pub = (mac: string, address: string, hostPort: number, port = 80): Publication => ({
    mac, address, nodeIp: '198.18.5.1', bindings: [{ proto: 'tcp', port, hostIp: '', hostPort }],
  });

  it('link addresses never fall in 169.254.0.x (the node side)', () => {
    assert.equal(linkAddress(1), '169.254.1.0');
    assert.equal(linkAddress(256), '169.254.1.255');
    assert.equal(linkAddress(257), '169.254.2.0');
    assert.throws(() => linkAddress(0), RangeError);
  });

  it('renders one table: DNAT per binding, masquerade and a fence around the links; reads back', () => {
    const a = pub('02:42:0a:00:00:02', '169.254.1.0', 8080);
    const b = { ...pub('02:42:0a:00:00:03', '169.254.1.1', 5353, 53), bindings: [{ proto: 'udp' as const, port: 53, hostIp: '198.18.5.9', hostPort: 5353 }] };
    const text = renderPublishTable([b, a]);
    assert.match(text, /^table ip rhumb_publish\ndelete table ip rhumb_publish\ntable ip rhumb_publish \{/);
    assert.ok(text.includes('ip daddr 198.18.5.1 tcp dport 8080 dnat to 169.254.1.0:80 comment "02:42:0a:00:00:02"'));
    assert.ok(text.includes('ip daddr 198.18.5.9 udp dport 5353 dnat to 169.254.1.1:53 comment "02:42:0a:00:00:03"'));
    assert.ok(text.includes('oifname "rhp*" masquerade'));
    assert.ok(text.includes('iifname "rhp*" ct status dnat accept\n\t\tiifname "rhp*" drop'));
    // What `nft list table` prints for those rules parses back to the same bindings.
    const listed = `table ip rhumb_publish {\n\tchain prerouting {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t\tip daddr 198.18.5.1 tcp dport 8080 dnat to 169.254.1.0:80 comment "02:42:0a:00:00:02"\n\t}\n}`;
    assert.deepEqual(parsePublishTable(listed), [{ mac: '02:42:0a:00:00:02', daddr: '198.18.5.1', proto: 'tcp', hostPort: 8080, address: '169.254.1.0', port: 80 }]);
    assert.equal(renderPublishTable([]), 'table ip rhumb_publish\ndelete table ip rhumb_publish\n');
  });

  it('refuses values that are not theirs to carry into nft or ip text', () => {
    assert.throws(() => renderPublishTable([{ ...pub('02:42:0a:00:00:02', '169.254.1.0', 8080), nodeIp: '1.2.3.4; flush ruleset' }]), /node address/);
    assert.throws(() => renderPublishTable([pub('02:42:0a:00:00:02', '169.254.1.0', 70000)]), /host port/);
    assert.throws(() => containerLinkCommands(pub('02:42:0a:00:00:02', '169.254.1.0', 8080), 0), /node pid/);
    assert.deepEqual(nodeLinkCommands(pub('02:42:0a:00:00:02', '169.254.1.0', 8080)), ['addr add 169.254.0.1 peer 169.254.1.0/32 dev rhp02420a000002', 'link set rhp02420a000002 up']);
  });

  it('finds host ports published twice', () => {
    assert.deepEqual(conflicts([pub('02:42:0a:00:00:02', '169.254.1.0', 8080), pub('02:42:0a:00:00:03', '169.254.1.1', 8080, 81)]), ['198.18.5.1:8080/tcp']);
    assert.deepEqual(conflicts([pub('02:42:0a:00:00:02', '169.254.1.0', 8080), pub('02:42:0a:00:00:03', '169.254.1.1', 8081)]), []);
  });
});

describe('container semantics from inspect', () => {
  const c: DockerContainer = {
    Id: 'c'.repeat(64),
    Name: '/web',
    Config: { ExposedPorts: { '80/tcp': {}, '53/udp': {}, '9/sctp': {} } },
    HostConfig: { Links: ['/cache:/web/kv'], PortBindings: { '80/tcp': [{ HostIp: '', HostPort: '8080' }], '81/tcp': [] } },
    NetworkSettings: { Networks: { front: { EndpointID: 'e'.repeat(64), Links: ['db:pg', 'queue'] } } },
  };

  it('reads links per network (and the legacy form), exposed and published ports, bindings', () => {
    assert.deepEqual(linksOn(c, 'front'), [{ target: 'db', alias: 'pg' }, { target: 'queue', alias: 'queue' }, { target: 'cache', alias: 'kv' }]);
    assert.deepEqual(exposedPorts(c), ['53/udp', '80/tcp']);
    assert.deepEqual(publishedPorts(c), ['80/tcp']);
    assert.deepEqual(portBindings(c), [{ proto: 'tcp', port: 80, hostIp: '', hostPort: 8080 }]);
    assert.deepEqual(publishedPorts({ ...c, HostConfig: { ...c.HostConfig, PublishAllPorts: true } }), ['53/udp', '80/tcp']);
  });

  it("builds the firewall's spec, keeping only links whose target is on the network", () => {
    const spec = containerSpec(c, { name: 'front', owner: OWNER, fabricUuid: 'f0000000-0000-4000-8000-000000000000', endpointId: 'e'.repeat(64) }, (n) =>
      n === 'db' ? 'd0000000-0000-4000-8000-000000000000' : undefined,
    );
    assert.deepEqual(spec, {
      owner_uuid: OWNER,
      name: `web.${'e'.repeat(12)}`,
      network: 'f0000000-0000-4000-8000-000000000000',
      links: [{ target: 'd0000000-0000-4000-8000-000000000000', alias: 'pg' }],
      exposed_ports: ['53/udp', '80/tcp'],
      published_ports: ['80/tcp'],
    });
  });
});

describe('plugin spec file', () => {
  it('install-spec writes the URL; remove-spec removes only a spec of that shape', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rhumb-spec-'));
    try {
      const path = await installSpec({ dir, name: 'rhumb', address: '127.0.0.1:9555' });
      assert.equal(await readFile(path, 'utf8'), 'tcp://127.0.0.1:9555\n');
      await installSpec({ dir, name: 'rhumb', address: '/run/docker/plugins/rhumb.sock' });
      assert.equal(await readFile(path, 'utf8'), 'unix:///run/docker/plugins/rhumb.sock\n');
      assert.equal(await removeSpec({ dir, name: 'rhumb' }), true);
      await writeFile(join(dir, 'other.spec'), 'not a url\n');
      assert.equal(await removeSpec({ dir, name: 'other' }), false);
      await assert.rejects(installSpec({ dir, name: '../evil', address: '127.0.0.1:1' }), /plugin name/);
      await assert.rejects(installSpec({ dir, name: 'rhumb', address: 'relative/path' }), /expected a unix socket path/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
