/**
 * `fw explain` for published ports (src/fw/ingress.ts, explainIngress): a node's ingress
 * report checked, a packet to an address and port resolved to the instance port it is
 * DNATed to, and that instance's inbound verdict on the instance's port, for the source it sees.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ingressTable } from '../../src/agent/ingress-report.js';
import { PolicyWorld } from '../../src/fw/compile.js';
import { explainIngress } from '../../src/fw/explain.js';
import { type IngressEntry, type NodeIngress, parseNodeIngress, resolveIngress } from '../../src/fw/ingress.js';
import { NODE_1, NODE_2, OWNER_A, instance, mac, policyRule, ruid, vm } from '../helpers/fw-fixtures.js';

const web: IngressEntry = {
  address: '198.18.5.1', protocol: 'tcp', host_port: 8080, instance: vm(1), mac: mac(1), ip: '10.0.0.1', port: 80, via: 'published',
};
const docker: IngressEntry = {
  address: '198.18.0.1', protocol: 'tcp', host_port: 8443, instance: vm(2), mac: mac(2), ip: '10.0.0.2', port: 443, via: 'docker', seen_from: '169.254.0.1',
};

describe('parseNodeIngress', () => {
  it('takes a well-formed table, canonical and sorted', () => {
    const got = parseNodeIngress(NODE_1, { entries: [{ ...docker }, { ...web, instance: vm(1).toUpperCase() }] });
    assert.deepEqual(got, { node: NODE_1, entries: [docker, web] });
    assert.deepEqual(parseNodeIngress(NODE_1, { entries: [] }), { node: NODE_1, entries: [] });
  });

  it('refuses what is not a table, naming the entry and the field', () => {
    assert.equal(parseNodeIngress(NODE_1, {}), 'entries must be a list of published ports');
    assert.equal(parseNodeIngress(NODE_1, { entries: [7] }), 'entries[0] must be an object');
    const bad: Array<[Partial<Record<keyof IngressEntry, unknown>>, RegExp]> = [
      [{ address: 'nowhere' }, /entries\[1\]: address must be an IP address/],
      [{ protocol: 'icmp' }, /protocol must be tcp or udp/],
      [{ host_port: 0 }, /host_port must be an integer in 1\.\.65535/],
      [{ port: 65536 }, /port must be an integer/],
      [{ instance: 'x' }, /instance must be a UUID/],
      [{ mac: 'zz' }, /mac must be a MAC address/],
      [{ ip: '10.0.0' }, /ip must be an IP address/],
      [{ via: 'magic' }, /via must be published or docker/],
      [{ seen_from: 'x' }, /seen_from must be an IP address/],
    ];
    for (const [change, message] of bad) {
      const got = parseNodeIngress(NODE_1, { entries: [docker, { ...web, ...change }] });
      assert.equal(typeof got, 'string', JSON.stringify(change));
      assert.match(got as string, message);
    }
  });

  it('refuses one address and port published twice for one protocol', () => {
    assert.match(parseNodeIngress(NODE_1, { entries: [web, { ...web, instance: vm(3), port: 81 }] }) as string, /tcp port 8080 on 198\.18\.5\.1 is published twice/);
    assert.equal(typeof parseNodeIngress(NODE_1, { entries: [web, { ...web, protocol: 'udp' }] }), 'object', 'udp and tcp are two ports');
  });

  it('takes an IPv6 NIC published on the external IPv6 address (canonical), beside the same host port on IPv4', () => {
    const web6 = { ...web, address: 'FD99:1:0::1', ip: 'fd00:61:0::10', mac: mac(3), instance: vm(3) };
    const got = parseNodeIngress(NODE_1, { entries: [web6, web] });
    assert.equal(typeof got, 'object', String(got));
    assert.deepEqual((got as NodeIngress).entries.map((e) => [e.address, e.ip]), [['198.18.5.1', '10.0.0.1'], ['fd99:1::1', 'fd00:61::10']]);
    assert.deepEqual(resolveIngress([got as NodeIngress], { address: 'fd99:1::1', protocol: 'tcp', hostPort: 8080 }).map((m) => m.entry.instance), [vm(3)]);
    assert.match(parseNodeIngress(NODE_1, { entries: [web6, { ...web6, port: 81 }] }) as string, /tcp port 8080 on fd99:1::1 is published twice/);
  });
});

describe('resolveIngress', () => {
  const nodes: NodeIngress[] = [
    { node: NODE_1, entries: [web, docker] },
    { node: NODE_2, entries: [{ ...docker, instance: vm(5) }] },
  ];
  it('finds the published port by address, protocol and host port', () => {
    assert.deepEqual(resolveIngress(nodes, { address: '198.18.5.1', protocol: 'tcp', hostPort: 8080 }), [{ node: NODE_1, entry: web }]);
    assert.deepEqual(resolveIngress(nodes, { address: '198.18.5.1', protocol: 'udp', hostPort: 8080 }), []);
    assert.deepEqual(resolveIngress(nodes, { address: '198.18.5.1', protocol: 'tcp', hostPort: 80 }), [], 'the instance port is not the host port');
  });
  it('an address published on several nodes matches on each, or on the one named', () => {
    assert.deepEqual(resolveIngress(nodes, { address: '198.18.0.1', protocol: 'tcp', hostPort: 8443 }).map((m) => m.node), [NODE_1, NODE_2]);
    assert.deepEqual(resolveIngress(nodes, { address: '198.18.0.1', protocol: 'tcp', hostPort: 8443, node: NODE_2 }).map((m) => m.entry.instance), [vm(5)]);
  });
});

describe('explainIngress', () => {
  const world = new PolicyWorld();
  world.upsertInstance(instance(1, { owner_uuid: OWNER_A, addresses: ['10.0.0.1'] }));
  world.upsertInstance(instance(2, { owner_uuid: OWNER_A, addresses: ['10.0.0.2'] }));
  world.upsertRule(policyRule(ruid(1), `FROM ip 203.0.113.9 TO vm ${vm(1)} ALLOW tcp PORT 80`, { owner_uuid: OWNER_A }));
  world.upsertRule(policyRule(ruid(2), `FROM ip 203.0.113.9 TO vm ${vm(2)} ALLOW tcp PORT 443`, { owner_uuid: OWNER_A }));

  it("DNATs to the instance's port and lets the instance's inbound rules decide", () => {
    const yes = explainIngress({ from: '203.0.113.9', match: { node: NODE_1, entry: web }, destination: world.compile(vm(1)) }, { protocol: 'tcp', port: 8080 });
    assert.equal(yes.allowed, true);
    assert.equal(yes.to, vm(1));
    assert.equal(yes.inbound.entry?.rule_uuid, ruid(1), 'the rule on port 80 decides, not one on 8080');
    assert.equal(yes.ingress?.node, NODE_1);
    assert.equal(yes.ingress?.port, 80);
    assert.match(yes.summary, /tcp port 8080 on 198\.18\.5\.1 from 203\.0\.113\.9: DNAT to 10\.0\.0\.1:80, ALLOWED/);
    assert.equal(yes.outbound, undefined);
    const other = explainIngress({ from: '192.0.2.1', match: { node: NODE_1, entry: web }, destination: world.compile(vm(1)) }, { protocol: 'tcp', port: 8080 });
    assert.equal(other.allowed, false);
    assert.match(other.inbound.reason, /blocked by default/);
  });

  it('Docker -p: the instance sees the masquerading address, so a rule on the client address does not apply', () => {
    const got = explainIngress({ from: '203.0.113.9', match: { node: NODE_1, entry: docker }, destination: world.compile(vm(2)) }, { protocol: 'tcp', port: 8443 });
    assert.equal(got.allowed, false);
    assert.match(got.ingress!.description, /Docker -p.*sees it coming from 169\.254\.0\.1/);
  });

  it('an instance without a firewall takes everything published to it', () => {
    const got = explainIngress({ from: '192.0.2.1', match: { node: NODE_1, entry: web }, destination: null }, { protocol: 'tcp', port: 8080 });
    assert.equal(got.allowed, true);
    assert.equal(got.inbound.enforced, false);
  });
});

describe('ingressTable (what an agent reports)', () => {
  const published = { ...web };
  const fromDocker = { ...docker };
  it('a node-side firewall filters Docker -p on its publication link before the masquerade: rules see the client', () => {
    assert.equal(fromDocker.seen_from, '169.254.0.1', 'Docker reports the link address it masquerades to');
    const got = ingressTable([published], [fromDocker], { firewall: true });
    assert.ok(got.every((e) => e.unfiltered === undefined));
    assert.equal(got[1]!.seen_from, undefined);
  });
  it('--no-firewall: neither is filtered, and the report says why', () => {
    assert.ok(ingressTable([published], [fromDocker], { firewall: false }).every((e) => /--no-firewall/.test(e.unfiltered!)));
  });
});
