/**
 * The firewall on IPv6 fabric traffic, through running agents, on each backend: three
 * instances of one owner on an IPv6 fabric network (the set-up of
 * overlay-firewall-samenode.test.ts, the network of edge-ipv6.test.ts): A and B1 on node 1
 * (the same-node pair), B2 on node 2 (the pair across nodes with A).
 *
 * Policy: all three have their firewall on; one rule lets A reach the Bs on TCP 5432
 * (spec defaults: inbound blocked, outbound allowed, replies allowed). The rules' address
 * sets are IPv6 ones, ICMPv6 echo follows `icmp6` rules (and not `icmp` ones), an ICMPv6
 * error of an allowed flow is related, and neighbour discovery is never blocked, even by a
 * rule blocking every ICMPv6 message both ways: without it no IPv6 packet would leave.
 *
 * Needs root, a built dist/ (npm run build) and the native addon.
 */
import assert from 'node:assert/strict';
import { randomInt, randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tableName } from '../../src/fw/compile.js';
import {
  type DatacenterNode,
  ProcessOutput,
  type RunningAgent,
  attachNic,
  buildUnderlay,
  controllerListenArgs,
  registerUnderlayNetwork,
  restClient,
  startAgent,
  svpEndpoint,
} from '../helpers/datacenter.js';
import { echoServersProgram, fwSettled, talk as talkTo, udpProbeProgram } from '../helpers/fw-flows.js';
import { NetnsLab, netnsSkipReason } from '../helpers/netns.js';
import { type RunningController, makeTempDir, startControllerProcess } from '../helpers/processes.js';

const skip = netnsSkipReason();
const OWNER = 'aaaaaaaa-0000-4000-8000-0000000000a6';
/** The allowed port, another one, and a UDP port nobody listens on. */
const ALLOWED = 5432;
const OTHER = 6000;
const UDP_CLOSED = 7000;
/** Bytes each way on a connection that carries data (several windows' worth). */
const BYTES = 1024 * 1024;
/** ICMPv6 echo request (RFC 4443). */
const ECHO_REQUEST6 = 128;

interface Node extends DatacenterNode {
  agent?: RunningAgent;
}

interface Instance {
  name: string;
  uuid: string;
  ns: string;
  node: Node;
  mac: string;
  ip: string;
}

for (const backend of ['kernel', 'userspace'] as const) describe(`firewall on IPv6 fabric traffic (${backend} backend)`, { skip, timeout: 180_000 }, () => {
  const lab = new NetnsLab(backend === 'kernel' ? 'fsk' : 'fsu');
  const underlay24 = `198.19.${randomInt(1, 250)}`;
  const subnet = `fd00:${randomInt(0x100, 0xfff).toString(16)}:`;
  let ctl: RunningController | undefined;
  let stateRoot = '';
  const nodes: Node[] = [];
  let a: Instance;
  let bs: Instance[] = [];

  const api = restClient(() => ctl!.restUrl);

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

  const settled = () => fwSettled(api, nodes, [a, ...bs].map((i) => i.uuid));

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
    stateRoot = await makeTempDir('f6-state');
    const underlay = await buildUnderlay(lab, { subnet24: underlay24, nodeCount: 2, rootHosts: [254] });
    nodes.push(...underlay.nodes);
    ctl = await startControllerProcess({ args: controllerListenArgs(`${underlay24}.254`) });
    await registerUnderlayNetwork(api, underlay24);
    for (const n of nodes) {
      n.agent = await startAgent(lab, n, { controller: ctl.restUrl, svp: svpEndpoint(ctl), stateDir: join(stateRoot, n.name), extraArgs: ['--backend', backend] });
    }
    await api('POST', `/fabrics/${OWNER}/vlans`, { vlan_id: 36, name: 'six' });
    const net = await api('POST', `/fabrics/${OWNER}/vlans/36/networks`, {
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
      const uuid = randomUUID();
      const nic = await api('POST', '/nics', { owner_uuid: OWNER, belongs_to_uuid: uuid, belongs_to_type: 'zone', network_uuid: net.uuid, cn_uuid: node.uuid });
      const ns = await lab.addNetns(name.toLowerCase());
      await attachNic(node.agent!, nic.mac, ns);
      made.push({ name, uuid, ns, node, mac: nic.mac, ip: nic.ip });
      const server = lab.spawnIn(ns, [process.execPath, '-e', echoServersProgram([ALLOWED, OTHER], '::')]);
      const out = new ProcessOutput(server);
      await out.until(() => out.lines.includes('ready'), 10_000, `the echo servers in ${name}`);
    }
    [a, ...bs] = made as [Instance, Instance, Instance];
  });

  after(async () => {
    await lab.cleanup();
    await ctl?.stop();
    if (stateRoot) await rm(stateRoot, { recursive: true, force: true });
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
