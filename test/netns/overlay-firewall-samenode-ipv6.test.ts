/**
 * The firewall between instances of one owner through running agents, on each backend,
 * in one datacenter per backend (two nodes; each suite its own owner, fabric network and
 * instances, so neither sees the other's rules).
 *
 * On one node (the set-up of overlay-firewall.test.ts with the pair on one node): A and B
 * on the same fabric network. On the kernel backend the flow is bridged once, from one
 * host veth to the other in the vnet's bridge. On the userspace backend it crosses two NIC
 * bridges (the sender's rn<mac>, the fast path's local delivery, the receiver's rn<mac>),
 * so conntrack (zone 65535, the node-wide rhumb_nic_bridges table) sees every packet
 * twice: replies must still be established there, a blocked flow's first pass must not
 * make it pass the second, and a rule opening one direction must not open the other.
 * Policy: A and B both have their firewall on; one rule lets A reach B on one TCP port.
 * The spec's defaults: inbound blocked, outbound allowed, replies allowed.
 *
 * On IPv6 fabric traffic (the network of edge-ipv6.test.ts): three instances on an IPv6
 * fabric network, A and B1 on node 1 (the same-node pair), B2 on node 2 (the pair across
 * nodes with A). Policy: all three have their firewall on; one rule lets A reach the Bs on
 * TCP 5432 (spec defaults as above). The rules' address sets are IPv6 ones, ICMPv6 echo
 * follows `icmp6` rules (and not `icmp` ones), an ICMPv6 error of an allowed flow is
 * related, and neighbour discovery is never blocked, even by a rule blocking every ICMPv6
 * message both ways: without it no IPv6 packet would leave.
 *
 * Needs root, a built dist/ (npm run build) and the native addon.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { tableName } from '../../src/fw/compile.js';
import { hostVethName, nicBridgeName } from '../../src/agent/plumbing/names.js';
import { Datacenter, type Instance, type Node, ProcessOutput, ping } from '../helpers/datacenter.js';
import { echoServersProgram, fwSettled, talk as talkTo, udpProbeProgram } from '../helpers/fw-flows.js';
import { netnsSkipReason } from '../helpers/netns.js';

const skip = netnsSkipReason();
/** The allowed port, another one, and a UDP port nobody listens on. */
const ALLOWED = 5432;
const OTHER = 6000;
const UDP_CLOSED = 7000;
/** ICMPv6 echo request (RFC 4443). */
const ECHO_REQUEST6 = 128;

for (const backend of ['kernel', 'userspace'] as const) describe(`firewall between instances (${backend} backend)`, { skip, timeout: 360_000 }, () => {
  const dc = new Datacenter(backend === 'kernel' ? 'fik' : 'fiu', { nodes: 2, stateTag: 'fwi-state', underlay16: '198.19', backend });
  const { lab, api } = dc;

  before(() => dc.start());
  after(() => dc.stop());

  describe('two instances on one node', () => {
    const OWNER = 'aaaaaaaa-0000-4000-8000-0000000000a5';
    /** Bytes each way on a connection that carries data (several windows' worth). */
    const BYTES = 4 * 1024 * 1024;
    let node: Node;
    let a: Instance;
    let b: Instance;
    let ruleUuid = '';

    /** "<port> echoed|blocked" for each port of `to`, from `from`, with bytes each way. */
    const talk = (from: Instance, to: Instance, ports: number[], bytes = BYTES) => talkTo(lab, from.ns, ports.map((p) => [to.ip, p]), bytes);

    const table = (i: Instance) => lab.exec(node.ns, 'nft', 'list', 'table', 'bridge', tableName(i.uuid)).catch(() => '');

    /** The agent has applied the newest ruleset the controller published for the node. */
    const settled = () => fwSettled(api, [node], [a.uuid, b.uuid]);

    before(async () => {
      node = dc.nodes[0]!;
      const net = await dc.fabricNetwork(OWNER, { vlan_id: 9, name: 'same' }, {
        name: 'same',
        subnet: '10.81.0.0/24',
        provision_start_ip: '10.81.0.10',
        provision_end_ip: '10.81.0.200',
        gateway: '10.81.0.1',
      });
      const made: Instance[] = [];
      for (const name of ['A', 'B'] as const) {
        const inst = await dc.addInstance(name, OWNER, net, node);
        made.push(inst);
        const server = lab.spawnIn(inst.ns, [process.execPath, '-e', echoServersProgram([ALLOWED, OTHER], '0.0.0.0')]);
        const out = new ProcessOutput(server);
        await out.until(() => out.lines.includes('ready'), 10_000, `the echo servers in ${name}`);
      }
      [a, b] = made as [Instance, Instance];
    });

    it('with no policy the two talk both ways through the node (the path the tests below filter)', async () => {
      if (backend === 'userspace') {
        // Each instance behind a NIC bridge of its own: the flow crosses two.
        for (const i of [a, b]) assert.match(await lab.ip(node.ns, 'link', 'show', hostVethName(i.mac)), new RegExp(`master ${nicBridgeName(i.mac)}`));
      } else {
        assert.equal(
          /master (\S+)/.exec(await lab.ip(node.ns, 'link', 'show', hostVethName(a.mac)))?.[1],
          /master (\S+)/.exec(await lab.ip(node.ns, 'link', 'show', hostVethName(b.mac)))?.[1],
          'one vnet bridge holds both host veths',
        );
      }
      assert.deepEqual(await talk(a, b, [ALLOWED, OTHER]), [`${ALLOWED} echoed`, `${OTHER} echoed`]);
      assert.deepEqual(await talk(b, a, [ALLOWED, OTHER]), [`${ALLOWED} echoed`, `${OTHER} echoed`]);
      assert.equal(await ping(lab, a.ns, b.ip, 1, 2), true);
      assert.equal(await table(b), '');
    });

    it('A reaches B on the allowed port only, with data both ways; A\'s outbound is open by default', async () => {
      await api('PUT', `/fw/instances/${a.uuid}`, { owner_uuid: OWNER, tags: { role: 'a' }, firewall_enabled: true });
      await api('PUT', `/fw/instances/${b.uuid}`, { owner_uuid: OWNER, tags: { role: 'b' }, firewall_enabled: true });
      const rule = await api('POST', '/rules', { rule: `FROM tag role = a TO tag role = b ALLOW tcp PORT ${ALLOWED}`, owner_uuid: OWNER, enabled: true });
      ruleUuid = rule.uuid;
      await settled();
      assert.match(await table(b), new RegExp(`oifname "${hostVethName(b.mac)}" jump inbound`));
      assert.match(await table(a), new RegExp(`iifname "${hostVethName(a.mac)}" jump outbound`), 'A has a table of its own (no outbound rules: the default)');
      // A's firewall is on and has no outbound rule: the default lets A's SYN out; B's rule
      // lets it in; every reply, tracked on each bridge it crosses, is established.
      assert.deepEqual(await talk(a, b, [ALLOWED, OTHER]), [`${ALLOWED} echoed`, `${OTHER} blocked`]);
      if (backend === 'userspace') {
        // One conntrack entry per flow, in the NIC bridges' zone, met on both bridges: the
        // allowed one answered (assured); the blocked one confirmed by A's bridge, dropped at B's.
        const flows = (await lab.exec(node.ns, 'cat', '/proc/net/nf_conntrack')).split('\n').filter((l) => l.includes(`src=${a.ip} dst=${b.ip} `));
        const of = (port: number) => flows.filter((l) => new RegExp(`sport=\\d+ dport=${port} `).test(l));
        assert.ok(of(ALLOWED).some((l) => /\[ASSURED\].* zone=65535 /.test(l)), flows.join('\n'));
        assert.ok(of(OTHER).some((l) => /SYN_SENT .*\[UNREPLIED\].* zone=65535 /.test(l)), flows.join('\n'));
      }
      // Again, once conntrack holds the blocked attempts' entries (first pass seen, never answered).
      assert.deepEqual(await talk(a, b, [OTHER, ALLOWED]), [`${OTHER} blocked`, `${ALLOWED} echoed`]);
    });

    it('B to A follows A\'s rules: blocked by A\'s default inbound, open on the port a rule allows, and that opens nothing from A to B', async () => {
      assert.deepEqual(await talk(b, a, [ALLOWED, OTHER]), [`${ALLOWED} blocked`, `${OTHER} blocked`]);
      const back = await api('POST', '/rules', { rule: `FROM tag role = b TO tag role = a ALLOW tcp PORT ${OTHER}`, owner_uuid: OWNER, enabled: true });
      try {
        await settled();
        // B's firewall is on with no outbound rule: the default lets B's connection out.
        assert.deepEqual(await talk(b, a, [ALLOWED, OTHER]), [`${ALLOWED} blocked`, `${OTHER} echoed`]);
        assert.deepEqual(await talk(a, b, [ALLOWED, OTHER]), [`${ALLOWED} echoed`, `${OTHER} blocked`]);
      } finally {
        await api('DELETE', `/rules/${back.uuid}`);
      }
      await settled();
      assert.deepEqual(await talk(b, a, [ALLOWED, OTHER]), [`${ALLOWED} blocked`, `${OTHER} blocked`]);
    });

    it('an outbound rule on A blocks on A\'s side what B would let in', async () => {
      const out = await api('POST', '/rules', { rule: `FROM tag role = a TO tag role = b BLOCK tcp PORT ${ALLOWED} PRIORITY 1`, owner_uuid: OWNER, enabled: true });
      try {
        await settled();
        assert.match(await table(a), new RegExp(`tcp dport ${ALLOWED} drop`));
        assert.deepEqual(await talk(a, b, [ALLOWED, OTHER]), [`${ALLOWED} blocked`, `${OTHER} blocked`]);
      } finally {
        await api('DELETE', `/rules/${out.uuid}`);
      }
      await settled();
      assert.deepEqual(await talk(a, b, [ALLOWED]), [`${ALLOWED} echoed`]);
    });

    it('a rule change takes effect without restarting anything', async () => {
      const pid = node.agent!.proc.pid;
      await api('PUT', `/rules/${ruleUuid}`, { rule: `FROM tag role = a TO tag role = b ALLOW tcp PORT ${OTHER}` });
      await settled();
      assert.deepEqual(await talk(a, b, [ALLOWED, OTHER]), [`${ALLOWED} blocked`, `${OTHER} echoed`]);
      await api('PUT', `/rules/${ruleUuid}`, { rule: `FROM tag role = a TO tag role = b ALLOW tcp PORT ${ALLOWED}` });
      await settled();
      assert.deepEqual(await talk(a, b, [ALLOWED, OTHER]), [`${ALLOWED} echoed`, `${OTHER} blocked`]);
      assert.equal(node.agent!.proc.pid, pid);
      assert.equal(node.agent!.proc.exitCode, null);
    });

    it('ICMP follows the rules: echo blocked inbound by default, allowed by a TYPE 8 rule one way (replies pass), errors of an allowed flow come back', async () => {
      assert.equal(await ping(lab, a.ns, b.ip, 1, 1), false, 'B\'s default inbound blocks echo requests');
      assert.equal(await ping(lab, b.ns, a.ip, 1, 1), false, 'A\'s too');
      const icmp = await api('POST', '/rules', { rule: 'FROM tag role = a TO tag role = b ALLOW icmp TYPE 8', owner_uuid: OWNER, enabled: true });
      const udp = await api('POST', '/rules', { rule: `FROM tag role = a TO tag role = b ALLOW udp PORT ${UDP_CLOSED}`, owner_uuid: OWNER, enabled: true });
      try {
        await settled();
        assert.equal(await ping(lab, a.ns, b.ip, 2, 2), true, 'A pings B: request allowed, reply established');
        assert.equal(await ping(lab, b.ns, a.ip, 1, 1), false, 'B still cannot ping A');
        // B answers a datagram to a closed port with port unreachable: related to A's flow,
        // so A's default inbound lets it in (the socket sees ECONNREFUSED).
        assert.equal((await lab.exec(a.ns, process.execPath, '-e', udpProbeProgram(4), b.ip, String(UDP_CLOSED))).trim(), 'refused');
        // The other way the datagram never reaches A, so nothing answers.
        assert.equal((await lab.exec(b.ns, process.execPath, '-e', udpProbeProgram(4), a.ip, String(UDP_CLOSED))).trim(), 'silent');
      } finally {
        await api('DELETE', `/rules/${icmp.uuid}`);
        await api('DELETE', `/rules/${udp.uuid}`);
      }
      await settled();
      assert.equal(await ping(lab, a.ns, b.ip, 1, 1), false, 'the rule gone, echo is blocked again');
    });
  });

  describe('IPv6 fabric traffic', () => {
    const OWNER = 'aaaaaaaa-0000-4000-8000-0000000000a6';
    /** Bytes each way on a connection that carries data (several windows' worth). */
    const BYTES = 1024 * 1024;
    const subnet = `fd00:${randomInt(0x100, 0xfff).toString(16)}:`;
    let a: Instance;
    let bs: Instance[] = [];

    /** From `from`, bytes each way to every B (or `to`) on each port: "<B> <port> echoed|blocked". */
    async function talk(from: Instance, to: Instance[], ports: number[], bytes = BYTES): Promise<string[]> {
      const targets = to.flatMap((t) => ports.map((p): [string, number] => [t.ip, p]));
      const got = await talkTo(lab, from.ns, targets, bytes);
      return got.map((r, i) => `${to[Math.floor(i / ports.length)]!.name} ${r}`);
    }
    const expect = (to: Instance[], ports: Array<[number, string]>) => to.flatMap((t) => ports.map(([p, what]) => `${t.name} ${p} ${what}`));

    async function ping6(from: Instance, to: Instance, count = 1, waitS = 1): Promise<boolean> {
      return lab.exec(from.ns, 'ping', '-6', '-c', String(count), '-W', String(waitS), '-q', to.ip).then(() => true, () => false);
    }

    /** For each (from, to): "<from>><to> yes|no", all at once. */
    async function pings(pairs: Array<[Instance, Instance]>, count = 1, waitS = 1): Promise<string[]> {
      const ok = await Promise.all(pairs.map(([f, t]) => ping6(f, t, count, waitS)));
      return pairs.map(([f, t], i) => `${f.name}>${t.name} ${ok[i] ? 'yes' : 'no'}`);
    }

    const udpProbe = (from: Instance, to: Instance) => lab.exec(from.ns, process.execPath, '-e', udpProbeProgram(6), to.ip, String(UDP_CLOSED)).then((o) => `${to.name} ${o.trim()}`);

    const table = (i: Instance) => lab.exec(i.node.ns, 'nft', 'list', 'table', 'bridge', tableName(i.uuid)).catch(() => '');

    const settled = () => fwSettled(api, dc.nodes, [a, ...bs].map((i) => i.uuid));

    async function rules(texts: string[]): Promise<string[]> {
      const made: string[] = [];
      for (const rule of texts) made.push((await api('POST', '/rules', { rule, owner_uuid: OWNER, enabled: true })).uuid);
      return made;
    }

    async function dropRules(uuids: string[]): Promise<void> {
      for (const u of uuids) await api('DELETE', `/rules/${u}`);
    }

    /** i's neighbour entry for peer's address ('' when none). */
    const neighbour = (i: Instance, peer: Instance) => lab.exec(i.ns, 'ip', '-6', 'neigh', 'show', peer.ip).then((o) => o.trim());

    before(async () => {
      const nodes = dc.nodes;
      const net = await dc.fabricNetwork(OWNER, { vlan_id: 36, name: 'six' }, {
        name: 'six',
        subnet: `${subnet}:/64`,
        provision_start_ip: `${subnet}:10`,
        provision_end_ip: `${subnet}:ff`,
        gateway: `${subnet}:1`,
      });
      const made: Instance[] = [];
      for (const [name, node] of [
        ['A', nodes[0]!],
        ['B1', nodes[0]!],
        ['B2', nodes[1]!],
      ] as const) {
        // Namespaces apart from the other suite's A and B.
        const inst = await dc.addInstance(name, OWNER, net, node, `six-${name.toLowerCase()}`);
        made.push(inst);
        const server = lab.spawnIn(inst.ns, [process.execPath, '-e', echoServersProgram([ALLOWED, OTHER], '::')]);
        const out = new ProcessOutput(server);
        await out.until(() => out.lines.includes('ready'), 10_000, `the echo servers in ${name}`);
      }
      [a, ...bs] = made as [Instance, Instance, Instance];
    });

    it('with no policy all three talk over IPv6 both ways, on one node and across nodes (the paths the tests below filter)', async () => {
      for (const i of [a, ...bs]) assert.ok(i.ip.startsWith(subnet), `${i.name} has an IPv6 address: ${i.ip}`);
      const both: Array<[number, string]> = [[ALLOWED, 'echoed'], [OTHER, 'echoed']];
      assert.deepEqual(await talk(a, bs, [ALLOWED, OTHER], 65536), expect(bs, both));
      for (const b of bs) assert.deepEqual(await talk(b, [a], [ALLOWED, OTHER], 65536), expect([a], both));
      assert.deepEqual(await pings(bs.flatMap((b): Array<[Instance, Instance]> => [[a, b], [b, a]]), 1, 2), ['A>B1 yes', 'B1>A yes', 'A>B2 yes', 'B2>A yes']);
      for (const i of [a, ...bs]) assert.equal(await table(i), '', `${i.name} has no table yet`);
    });

    it('A reaches the Bs on the allowed port only, with data both ways over IPv6; B to A is blocked by A\'s default inbound', async () => {
      await api('PUT', `/fw/instances/${a.uuid}`, { owner_uuid: OWNER, tags: { role: 'a' }, firewall_enabled: true });
      for (const b of bs) await api('PUT', `/fw/instances/${b.uuid}`, { owner_uuid: OWNER, tags: { role: 'b' }, firewall_enabled: true });
      await rules([`FROM tag role = a TO tag role = b ALLOW tcp PORT ${ALLOWED}`]);
      await settled();
      // The rule's peer set is IPv6 (A has no IPv4 address): the match is on ip6 saddr.
      for (const b of bs) assert.match(await table(b), new RegExp(`ip6 saddr @\\S+ tcp dport ${ALLOWED} accept`), `${b.name}'s inbound`);
      assert.deepEqual(await talk(a, bs, [ALLOWED, OTHER]), expect(bs, [[ALLOWED, 'echoed'], [OTHER, 'blocked']]));
      const back = await Promise.all(bs.map((b) => talk(b, [a], [ALLOWED, OTHER])));
      assert.deepEqual(back, bs.map(() => expect([a], [[ALLOWED, 'blocked'], [OTHER, 'blocked']])));
      // Again, once conntrack holds the blocked attempts' entries (never answered).
      assert.deepEqual(await talk(a, bs, [OTHER, ALLOWED]), expect(bs, [[OTHER, 'blocked'], [ALLOWED, 'echoed']]));
    });

    it('ICMPv6 echo follows the rules: blocked by default, not opened by an icmp (IPv4) rule, opened one way by icmp6 TYPE 128 (replies pass); an ICMPv6 error of an allowed flow is related', async () => {
      const all: Array<[Instance, Instance]> = bs.flatMap((b): Array<[Instance, Instance]> => [[a, b], [b, a]]);
      assert.deepEqual(await pings(all), ['A>B1 no', 'B1>A no', 'A>B2 no', 'B2>A no'], 'the default inbound blocks echo requests');
      const v4 = await rules(['FROM tag role = a TO tag role = b ALLOW icmp TYPE 8']);
      try {
        await settled();
        assert.deepEqual(await pings(all), ['A>B1 no', 'B1>A no', 'A>B2 no', 'B2>A no'], 'an icmp rule is IPv4 only');
      } finally {
        await dropRules(v4);
      }
      const made = await rules([
        `FROM tag role = a TO tag role = b ALLOW icmp6 TYPE ${ECHO_REQUEST6}`,
        `FROM tag role = a TO tag role = b ALLOW udp PORT ${UDP_CLOSED}`,
      ]);
      try {
        await settled();
        for (const b of bs) assert.match(await table(b), new RegExp(`ip6 saddr @\\S+ icmpv6 type (echo-request|${ECHO_REQUEST6}) accept`), `${b.name}'s inbound`);
        // A B answers a datagram to a closed port with ICMPv6 port unreachable: related to A's
        // flow, so A's default inbound lets it in (A's socket sees ECONNREFUSED).
        assert.deepEqual(await Promise.all(bs.map((b) => udpProbe(a, b))), bs.map((b) => `${b.name} refused`));
        assert.deepEqual(await pings(all, 2, 2), ['A>B1 yes', 'B1>A no', 'A>B2 yes', 'B2>A no']);
      } finally {
        await dropRules(made);
      }
      await settled();
      assert.deepEqual(await pings(all), ['A>B1 no', 'B1>A no', 'A>B2 no', 'B2>A no'], 'the rule gone, echo is blocked again');
    });

    it('neighbour discovery is never blocked: with every ICMPv6 message blocked both ways, flushed neighbour caches fill again and the allowed flow works', async () => {
      const made = await rules([
        'FROM any TO all vms BLOCK icmp6 TYPE all PRIORITY 100',
        'FROM all vms TO any BLOCK icmp6 TYPE all PRIORITY 100',
        `FROM tag role = a TO tag role = b ALLOW icmp6 TYPE ${ECHO_REQUEST6}`,
      ]);
      try {
        await settled();
        for (const i of [a, ...bs]) assert.match(await table(i), /meta l4proto ipv6-icmp drop/, `${i.name} blocks ICMPv6 both ways`);
        const all: Array<[Instance, Instance]> = bs.flatMap((b): Array<[Instance, Instance]> => [[a, b], [b, a]]);
        assert.deepEqual(await pings(all), ['A>B1 no', 'B1>A no', 'A>B2 no', 'B2>A no'], 'the block outranks the echo rule');
        for (const i of [a, ...bs]) await lab.ip(i.ns, '-6', 'neigh', 'flush', 'all');
        for (const b of bs) {
          assert.doesNotMatch(await neighbour(a, b), /lladdr/, `A forgot ${b.name}`);
          assert.doesNotMatch(await neighbour(b, a), /lladdr/, `${b.name} forgot A`);
        }
        assert.deepEqual(await talk(a, bs, [ALLOWED, OTHER]), expect(bs, [[ALLOWED, 'echoed'], [OTHER, 'blocked']]));
        // Each side resolved the other (solicitation and advertisement both ways through both tables).
        const resolved = (mac: string) => new RegExp(`lladdr ${mac} .*(REACHABLE|STALE|DELAY|PROBE)`, 'i');
        for (const b of bs) {
          assert.match(await neighbour(a, b), resolved(b.mac), `A resolved ${b.name}`);
          assert.match(await neighbour(b, a), resolved(a.mac), `${b.name} resolved A`);
        }
      } finally {
        await dropRules(made);
      }
      await settled();
      assert.deepEqual(await talk(a, bs, [ALLOWED]), expect(bs, [[ALLOWED, 'echoed']]));
    });
  });
});
