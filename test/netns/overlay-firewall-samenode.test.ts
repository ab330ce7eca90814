/**
 * The firewall between two instances of one owner on the SAME compute node and the same
 * fabric network, through a running agent, on each backend (the set-up of
 * overlay-firewall.test.ts with one node). On the kernel backend the flow is bridged once,
 * from one host veth to the other in the vnet's bridge. On the userspace backend it
 * crosses two NIC bridges (the sender's rn<mac>, the fast path's local delivery, the
 * receiver's rn<mac>), so conntrack (zone 65535, the node-wide rhumb_nic_bridges table)
 * sees every packet twice: replies must still be established there, a blocked flow's
 * first pass must not make it pass the second, and a rule opening one direction must not
 * open the other.
 *
 * Policy: A and B both have their firewall on; one rule lets A reach B on one TCP port.
 * The spec's defaults: inbound blocked, outbound allowed, replies allowed.
 *
 * Needs root, a built dist/ (npm run build) and the native addon.
 */
import assert from 'node:assert/strict';
import { randomInt, randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tableName } from '../../src/fw/compile.js';
import { hostVethName, nicBridgeName } from '../../src/agent/plumbing/names.js';
import {
  type DatacenterNode,
  ProcessOutput,
  type RunningAgent,
  attachNic,
  buildUnderlay,
  controllerListenArgs,
  ping,
  registerUnderlayNetwork,
  restClient,
  startAgent,
  svpEndpoint,
} from '../helpers/datacenter.js';
import { echoServersProgram, fwSettled, talk as talkTo, udpProbeProgram } from '../helpers/fw-flows.js';
import { NetnsLab, netnsSkipReason } from '../helpers/netns.js';
import { type RunningController, makeTempDir, startControllerProcess } from '../helpers/processes.js';

const skip = netnsSkipReason();
const OWNER = 'aaaaaaaa-0000-4000-8000-0000000000a5';
/** The allowed port, another one, and a UDP port nobody listens on. */
const ALLOWED = 5432;
const OTHER = 6000;
const UDP_CLOSED = 7000;
/** Bytes each way on a connection that carries data (several windows' worth). */
const BYTES = 4 * 1024 * 1024;

interface Node extends DatacenterNode {
  stateDir: string;
  agent?: RunningAgent;
}

interface Instance {
  name: 'A' | 'B';
  uuid: string;
  ns: string;
  mac: string;
  ip: string;
}

for (const backend of ['kernel', 'userspace'] as const) describe(`firewall between two instances on one node (${backend} backend)`, { skip, timeout: 180_000 }, () => {
  const lab = new NetnsLab(backend === 'kernel' ? 'sfk' : 'sfu');
  const underlay24 = `198.19.${randomInt(1, 250)}`;
  let ctl: RunningController | undefined;
  let stateRoot = '';
  let node: Node;
  let a: Instance;
  let b: Instance;
  let ruleUuid = '';

  const api = restClient(() => ctl!.restUrl);

  /** "<port> echoed|blocked" for each port of `to`, from `from`, with bytes each way. */
  const talk = (from: Instance, to: Instance, ports: number[], bytes = BYTES) => talkTo(lab, from.ns, ports.map((p) => [to.ip, p]), bytes);

  const table = (i: Instance) => lab.exec(node.ns, 'nft', 'list', 'table', 'bridge', tableName(i.uuid)).catch(() => '');

  /** The agent has applied the newest ruleset the controller published for the node. */
  const settled = () => fwSettled(api, [node], [a.uuid, b.uuid]);

  before(async () => {
    stateRoot = await makeTempDir('sfw-state');
    const underlay = await buildUnderlay(lab, { subnet24: underlay24, nodeCount: 1, rootHosts: [254] });
    node = { ...underlay.nodes[0]!, stateDir: join(stateRoot, 'n1') };
    ctl = await startControllerProcess({ args: controllerListenArgs(`${underlay24}.254`) });
    await registerUnderlayNetwork(api, underlay24);
    node.agent = await startAgent(lab, node, { controller: ctl.restUrl, svp: svpEndpoint(ctl), stateDir: node.stateDir, extraArgs: ['--backend', backend] });

    await api('POST', `/fabrics/${OWNER}/vlans`, { vlan_id: 9, name: 'same' });
    const net = await api('POST', `/fabrics/${OWNER}/vlans/9/networks`, {
      name: 'same',
      subnet: '10.81.0.0/24',
      provision_start_ip: '10.81.0.10',
      provision_end_ip: '10.81.0.200',
      gateway: '10.81.0.1',
    });
    const made: Instance[] = [];
    for (const name of ['A', 'B'] as const) {
      const uuid = randomUUID();
      const nic = await api('POST', '/nics', { owner_uuid: OWNER, belongs_to_uuid: uuid, belongs_to_type: 'zone', network_uuid: net.uuid, cn_uuid: node.uuid });
      const ns = await lab.addNetns(name.toLowerCase());
      await attachNic(node.agent, nic.mac, ns);
      made.push({ name, uuid, ns, mac: nic.mac, ip: nic.ip });
      const server = lab.spawnIn(ns, [process.execPath, '-e', echoServersProgram([ALLOWED, OTHER], '0.0.0.0')]);
      const out = new ProcessOutput(server);
      await out.until(() => out.lines.includes('ready'), 10_000, `the echo servers in ${name}`);
    }
    [a, b] = made as [Instance, Instance];
  });

  after(async () => {
    await lab.cleanup();
    await ctl?.stop();
    if (stateRoot) await rm(stateRoot, { recursive: true, force: true });
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
