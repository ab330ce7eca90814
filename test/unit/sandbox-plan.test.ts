/**
 * What `rhumb sandbox up` plans before it makes anything: bad options are refused with
 * a message that says what to do, names fit Linux's limits, every owner spans nodes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULTS, SandboxInputError, planSandbox, plannedNamespaces, validateOptions } from '../../src/sandbox/plan.js';

let n = 0;
const counter = () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`;

describe('sandbox options', () => {
  for (const [what, over, msg] of [
    ['one node (nothing to cross)', { nodes: 1 }, /--nodes must be an integer from 2 to 16/],
    ['too many nodes', { nodes: 17 }, /--nodes/],
    ['an unknown backend', { backend: 'dpdk' }, /--backend must be kernel or userspace/],
    ['an unknown store', { store: 'redis' }, /--store/],
    ['a prefix that makes names too long', { prefix: 'abcdefghi' }, /--prefix must be 1-8/],
    ['a prefix with a dash', { prefix: 'rh-sb' }, /--prefix/],
    ['a subnet outside 198.18.0.0/15', { subnet: '10.1.2.0/24' }, /198\.18\.0\.0\/15/],
    ['a subnet that is not a /24', { subnet: '198.18.0.0/16' }, /IPv4 \/24/],
    ['a subnet written with a host part', { subnet: '198.18.3.7/24' }, /198\.18\.3\.0\/24/],
    ['garbage as a subnet', { subnet: 'lots' }, /--subnet/],
    ['the same REST and SVP port', { restPort: 9000, svpPort: 9000 }, /must differ/],
    ['the agents\' port', { restPort: 8090 }, /taken by the sandbox/],
  ] as const) {
    it(`refuses ${what}`, () => {
      assert.throws(() => validateOptions({ ...DEFAULTS, ...over } as never), (err: Error) => err instanceof SandboxInputError && msg.test(err.message));
    });
  }

  it('accepts the defaults: 3 nodes, kernel, leveldb, 198.19.254.0/24', () => {
    assert.deepEqual(validateOptions({ ...DEFAULTS }), DEFAULTS);
  });
});

describe('sandbox plan', () => {
  it('names namespaces under the prefix, within the 15 characters of an interface name where needed', () => {
    const p = planSandbox({ ...DEFAULTS, prefix: 'abcdefgh', nodes: 16 }, counter);
    assert.equal(p.rootLink, 'abcdefgh-c');
    assert.ok(p.rootLink.length <= 15);
    for (const ns of plannedNamespaces(p)) assert.ok(ns.startsWith('abcdefgh-'), ns);
    assert.equal(new Set(plannedNamespaces(p)).size, plannedNamespaces(p).length, 'no name twice');
    assert.equal(p.nodes[15]!.ip, '198.19.254.16');
    assert.equal(p.controllerIp, '198.19.254.254');
  });

  it('spreads every owner over at least two nodes, for any node count', () => {
    for (const nodes of [2, 3, 5]) {
      const p = planSandbox({ ...DEFAULTS, nodes }, counter);
      for (const o of p.owners) {
        const placed = new Set(p.instances.filter((i) => i.owner === o.name).map((i) => i.node));
        assert.ok(placed.size >= 2, `${o.name} on ${[...placed].join(',')} with ${nodes} nodes`);
      }
    }
  });

  it('has one firewalled owner with a rule allowing ping, so instances reach each other', () => {
    const p = planSandbox(DEFAULTS, counter);
    const fw = p.owners.filter((o) => o.firewall).map((o) => o.name);
    assert.deepEqual(fw, ['acme']);
    assert.ok(p.rules.some((r) => r.owner === 'acme' && /ALLOW icmp TYPE 8/.test(r.rule)));
    assert.equal(new Set(p.instances.map((i) => i.uuid)).size, p.instances.length);
  });
});
