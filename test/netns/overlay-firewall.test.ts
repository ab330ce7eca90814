/**
 * The firewall through the running agents, across the overlay: two compute nodes in
 * namespaces (the layout of overlay-kernel.test.ts, smaller), agents started as an
 * operator would (firewall on by default, --state-dir in a temp dir), the controller's
 * REST API for the instance registry and the rules, on each backend. Traffic between
 * instances on different nodes shows what the agent applied in the instance's node's
 * namespace (an instance flushing its own tables changes nothing); a rule change takes
 * effect with nothing restarted; a restarted agent knows its NICs' namespaces again (from
 * its state file) and keeps the instance's table in force; logged rules' connections are
 * written as JSON lines.
 *
 * Needs root, a built dist/ (npm run build) and the native addon.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { STATE_FILE } from '../../src/agent/state.js';
import { tableName } from '../../src/fw/compile.js';
import { hostVethName } from '../../src/agent/plumbing/names.js';
import {
  Datacenter,
  type Instance,
  type Node,
  ProcessOutput,
  attachNic,
  eventually,
  tcpProbeProgram,
  tcpServersProgram,
} from '../helpers/datacenter.js';
import { netnsSkipReason, run } from '../helpers/netns.js';
import { CLI, http } from '../helpers/processes.js';

const skip = netnsSkipReason();
const OWNER = 'aaaaaaaa-0000-4000-8000-0000000000f1';
const OTHER_OWNER = 'bbbbbbbb-0000-4000-8000-0000000000f2';
const PORTS = [5432, 6000];

const SERVER = tcpServersProgram(PORTS, '0.0.0.0');

// One line of JSON: for each [host, port], "open" or why not (timeout: dropped).
const PROBE = tcpProbeProgram(1500);

for (const backend of ['kernel', 'userspace'] as const) describe(`firewall applied by the agents across the overlay (${backend} backend)`, { skip, timeout: 120_000 }, () => {
  const flowFile = (n: Node) => join(n.stateDir, 'fw-flows.jsonl');
  const dc = new Datacenter(backend === 'kernel' ? 'ovf' : 'ovu', { nodes: 2, stateTag: 'ovf-state', underlay16: '198.19', backend, agentArgs: (n) => ['--flow-log', flowFile(n)] });
  const { lab, api } = dc;
  let db: Instance;
  let web: Instance;
  let ruleUuid = '';
  let netUuid = '';

  const startAgent = (n: Node) => dc.startAgent(n);
  const stopAgent = (n: Node) => dc.stopAgent(n);

  async function status(n: Node) {
    const r = await http(n.agent!.api, 'GET', '/status');
    assert.equal(r.status, 200);
    return r.body as {
      nics: Array<{ mac: string; netns?: string; ifname?: string; belongs_to_uuid?: string }>;
      firewall: { enabled: boolean; revision?: number; failures?: Record<string, string> };
    };
  }

  /** What web gets at each of db's ports. */
  async function reach(ports: number[]): Promise<string[]> {
    const out = await lab.exec(web.ns, process.execPath, '-e', PROBE, JSON.stringify(ports.map((p) => [db.ip, p])));
    return (JSON.parse(out) as string[]).map((r, i) => `${ports[i]} ${r === 'open' ? 'open' : 'blocked'}`);
  }

  /**
   * db's firewall table as nft lists it ('' when there is none): in its node's namespace,
   * on db's port (both backends enforce outside the instance: the kernel backend's port is
   * a host veth in the vnet's bridge, the userspace backend's one in the NIC's own bridge
   * with the fast path's TAP).
   */
  async function dbTable(): Promise<string> {
    return lab.exec(db.node.ns, 'nft', 'list', 'table', 'bridge', tableName(db.uuid)).catch(() => '');
  }

  /**
   * Waits until db's agent has applied everything the controller has published for its
   * node: the engine is synced (GET …/ruleset), the newest ruleset revision on the node's
   * feed read, and the agent reports at least that revision with nothing pending for db.
   * (Not the feed's own revision: that is the store's, which unrelated writes such as SVP
   * log cursors advance without waking the agent's long-poll.)
   */
  async function settled(): Promise<void> {
    await api('GET', `/fw/instances/${db.uuid}/ruleset`);
    const full = await api('GET', `/fw/nodes/${db.node.uuid}/rulesets?since=0&wait=0`);
    const feed = { revision: Math.max(0, ...full.rulesets.map((r: { revision: number }) => r.revision)) };
    let last = {};
    await eventually(
      async () => {
        const fw = (await status(db.node)).firewall;
        last = fw;
        return fw.enabled && (fw.revision ?? 0) >= feed.revision && Object.keys(fw.failures ?? {}).length === 0;
      },
      15_000,
      `agent on ${db.node.name} at fw revision ${feed.revision}`,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; agent reports ${JSON.stringify(last)}`);
    });
  }

  before(async () => {
    await dc.start();
    const nodes = dc.nodes;
    netUuid = await dc.fabricNetwork(OWNER, { vlan_id: 7, name: 'prod' }, {
      name: 'prod',
      subnet: '10.79.0.0/24',
      provision_start_ip: '10.79.0.10',
      provision_end_ip: '10.79.0.200',
      gateway: '10.79.0.1',
    });
    db = await dc.addInstance('db', OWNER, netUuid, nodes[0]!);
    web = await dc.addInstance('web', OWNER, netUuid, nodes[1]!);
    const server = lab.spawnIn(db.ns, [process.execPath, '-e', SERVER]);
    const out = new ProcessOutput(server);
    await out.until(() => out.lines.includes('ready'), 10_000, 'the servers in db');
  });

  after(() => dc.stop());

  it('the allowed port passes across the overlay, another port is blocked', async () => {
    assert.deepEqual(await reach(PORTS), ['5432 open', '6000 open'], 'no firewall yet');
    assert.equal(await dbTable(), '');
    await api('PUT', `/fw/instances/${db.uuid}`, { owner_uuid: OWNER, tags: { role: 'db' }, firewall_enabled: true });
    await api('PUT', `/fw/instances/${web.uuid}`, { owner_uuid: OWNER, tags: { role: 'web' }, firewall_enabled: false });
    const rule = await api('POST', '/rules', { rule: 'FROM tag role = web TO tag role = db ALLOW tcp PORT 5432', owner_uuid: OWNER, enabled: true });
    ruleUuid = rule.uuid;
    await settled();
    assert.match(await dbTable(), /5432/);
    assert.match(await dbTable(), new RegExp(`oifname "${hostVethName(db.mac)}" jump inbound`));
    assert.equal(await lab.exec(db.ns, 'nft', 'list', 'tables'), '', 'nothing inside db\'s namespace');
    assert.deepEqual(await reach(PORTS), ['5432 open', '6000 blocked']);
    const metrics = String((await http(db.node.agent!.api, 'GET', '/metrics')).body);
    assert.match(metrics, /rhumb_fw_rulesets_applied_total\{[^}]*\} [1-9]/);
  });

  it('db flushing every nftables table in its own namespace changes nothing', async () => {
    await lab.exec(db.ns, 'nft', 'flush', 'ruleset');
    await lab.exec(db.ns, 'nft', 'add', 'table', 'inet', 'mine');
    await lab.exec(db.ns, 'nft', 'flush', 'ruleset');
    assert.deepEqual(await reach(PORTS), ['5432 open', '6000 blocked']);
    assert.match(await dbTable(), /5432/);
  });

  it('db\'s outbound block holds too after db flushes every table in its namespace', async () => {
    const server = lab.spawnIn(web.ns, [process.execPath, '-e', SERVER]);
    const out = new ProcessOutput(server);
    await out.until(() => out.lines.includes('ready'), 10_000, 'the servers in web');
    const rule = await api('POST', '/rules', { rule: 'FROM tag role = db TO tag role = web BLOCK tcp PORT 6000', owner_uuid: OWNER, enabled: true });
    try {
      await settled();
      await lab.exec(db.ns, 'nft', 'flush', 'ruleset');
      const got = await lab.exec(db.ns, process.execPath, '-e', PROBE, JSON.stringify(PORTS.map((p) => [web.ip, p])));
      assert.deepEqual((JSON.parse(got) as string[]).map((r, i) => `${PORTS[i]} ${r === 'open' ? 'open' : 'blocked'}`), ['5432 open', '6000 blocked']);
    } finally {
      await api('DELETE', `/rules/${rule.uuid}`);
      server.kill('SIGTERM');
    }
    await settled();
  });

  it('a rule change takes effect without restarting anything', async () => {
    const pid = db.node.agent!.proc.pid;
    await api('PUT', `/rules/${ruleUuid}`, { rule: 'FROM tag role = web TO tag role = db ALLOW tcp PORT 6000' });
    await settled();
    assert.deepEqual(await reach(PORTS), ['5432 blocked', '6000 open']);
    assert.equal(db.node.agent!.proc.pid, pid);
    assert.equal(db.node.agent!.proc.exitCode, null);
  });

  it('another owner can neither take the rule over nor switch the instance\'s firewall off (issue 17 item 3)', async () => {
    const tableBefore = await dbTable();
    const takeRule = await http(dc.ctl!.restUrl, 'PUT', `/rules/${ruleUuid}`, { owner_uuid: OTHER_OWNER, enabled: false });
    assert.equal(takeRule.status, 403, JSON.stringify(takeRule.body));
    assert.equal(takeRule.body.message, 'owner does not match');
    const takeDb = await http(dc.ctl!.restUrl, 'PUT', `/fw/instances/${db.uuid}`, { owner_uuid: OTHER_OWNER, firewall_enabled: false });
    assert.equal(takeDb.status, 403, JSON.stringify(takeDb.body));
    const rule = await api('GET', `/rules/${ruleUuid}`);
    assert.deepEqual([rule.owner_uuid, rule.enabled], [OWNER, true]);
    await settled();
    assert.equal(await dbTable(), tableBefore, 'db\'s table is unchanged');
    assert.deepEqual(await reach(PORTS), ['5432 blocked', '6000 open']);
  });

  it('a NIC attached to an instance with a policy is in its table when attach returns (the controller names NICs placed on the node)', async () => {
    const nic = await api('POST', '/nics', { owner_uuid: OWNER, belongs_to_uuid: db.uuid, belongs_to_type: 'zone', network_uuid: netUuid, cn_uuid: db.node.uuid });
    const ns = await lab.addNetns('db2');
    // Attached at once, as a provisioner would: placing the NIC on the node (cn_uuid) is what
    // makes the controller name its port in db's ruleset, and that reaches the agent's feed
    // before the attach (which reads the same record) has plumbed it.
    await attachNic(db.node.agent!, nic.mac, ns);
    const inbound = /oifname \{([^}]*)\} jump inbound/.exec(await dbTable());
    assert.deepEqual(inbound?.[1]?.split(',').map((p) => p.trim()).sort(), [`"${hostVethName(db.mac)}"`, `"${hostVethName(nic.mac)}"`].sort());
    assert.equal((await http(db.node.agent!.api, 'POST', '/detach', { mac: nic.mac })).status, 200);
    await api('DELETE', `/nics/${nic.mac}`);
    await settled();
    assert.doesNotMatch(await dbTable(), new RegExp(hostVethName(nic.mac)), 'the deleted NIC\'s port leaves the table');
  });

  it('after an agent restart the NIC\'s namespace is known again and the table stays in force', async () => {
    const n = db.node;
    const before = (await status(n)).nics.find((x) => x.mac === db.mac)!;
    assert.deepEqual(
      { netns: before.netns, ifname: before.ifname, belongs_to_uuid: before.belongs_to_uuid },
      { netns: `/run/netns/${db.ns}`, ifname: 'eth0', belongs_to_uuid: db.uuid },
    );
    const tableBefore = await dbTable();
    await stopAgent(n);
    // The state file names the namespace; while the agent is down the table stays.
    const saved = JSON.parse(await readFile(join(n.stateDir, STATE_FILE), 'utf8'));
    assert.deepEqual(saved.nics[db.mac], { netns: `/run/netns/${db.ns}`, ifname: 'eth0', belongs_to_uuid: db.uuid });
    assert.equal(await dbTable(), tableBefore);
    await startAgent(n);
    const after = (await status(n)).nics.find((x) => x.mac === db.mac)!;
    assert.equal(after.netns, `/run/netns/${db.ns}`);
    assert.equal(after.ifname, 'eth0');
    assert.equal(after.belongs_to_uuid, db.uuid);
    await settled();
    assert.equal(await dbTable(), tableBefore, 'the same table after the full resync');
    assert.deepEqual(await reach(PORTS), ['5432 blocked', '6000 open']);
    // The restarted agent resolves the instance's namespace: a new rule change lands.
    await api('PUT', `/rules/${ruleUuid}`, { rule: 'FROM tag role = web TO tag role = db ALLOW tcp PORT 5432' });
    await settled();
    assert.deepEqual(await reach(PORTS), ['5432 open', '6000 blocked']);
  });

  it('a logged rule\'s allowed and blocked connections are JSON lines with its rule uuid, and fw log --follow prints them', async () => {
    await api('PUT', `/rules/${ruleUuid}`, { log: true });
    const block = await api('POST', '/rules', { rule: 'FROM tag role = web TO tag role = db BLOCK tcp PORT 6000 PRIORITY 1', owner_uuid: OWNER, enabled: true, log: true });
    await settled();
    const file = flowFile(db.node);
    const follower = spawn(process.execPath, [CLI, 'fw', 'log', '--follow', '--interval', '50', '--file', file, '--rule', ruleUuid]);
    const followed = new ProcessOutput(follower);
    try {
      assert.deepEqual(await reach(PORTS), ['5432 open', '6000 blocked']);
      type Line = Record<string, unknown>;
      const lines = async (): Promise<Line[]> =>
        (await readFile(file, 'utf8').catch(() => '')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);
      const want = (rule: string, action: string, port: number) => (l: Line) => l.rule === rule && l.action === action && l.dport === port;
      await eventually(async () => (await lines()).some(want(ruleUuid, 'allow', 5432)) && (await lines()).some(want(block.uuid, 'block', 6000)), 10_000, 'both connections in the flow log');
      const allowed = (await lines()).find(want(ruleUuid, 'allow', 5432))!;
      assert.deepEqual(
        { ...allowed, time: typeof allowed.time, sport: typeof allowed.sport },
        { time: 'string', node: db.node.uuid, instance: db.uuid, owner: OWNER, rule: ruleUuid, action: 'allow', direction: 'in', protocol: 'tcp', src: web.ip, dst: db.ip, sport: 'number', dport: 5432 },
      );
      // --follow with --rule: the allowed connection, not the other rule's.
      await followed.until(() => followed.lines.some((l) => l.includes('"dport":5432')), 10_000, 'fw log --follow');
      assert.ok(followed.lines.every((l) => (JSON.parse(l) as Line).rule === ruleUuid));
      const listed = await run(process.execPath, [CLI, 'fw', 'log', '--file', file, '--instance', db.uuid]);
      assert.ok(listed.includes(`"rule":"${block.uuid}","action":"block"`), listed);
      const metrics = String((await http(db.node.agent!.api, 'GET', '/metrics')).body);
      assert.match(metrics, /rhumb_fw_flow_logs_total\{action="allow"[^}]*\} [1-9]/);
      assert.match(metrics, /rhumb_fw_flow_logs_total\{action="block"[^}]*\} [1-9]/);
    } finally {
      follower.kill('SIGTERM');
    }
  });
});
