/**
 * The firewall through the running agents, across the overlay: two compute nodes in
 * namespaces (the layout of overlay-kernel.test.ts, smaller), agents started as an
 * operator would (firewall on by default, --state-dir in a temp dir), the controller's
 * REST API for the instance registry and the rules. Traffic between instances on
 * different nodes shows what the agent applied in the instance's namespace; a rule change
 * takes effect with nothing restarted; a restarted agent knows its NICs' namespaces again
 * (from its state file) and keeps the instance's table in force.
 *
 * Needs root, a built dist/ (npm run build) and the native addon.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomInt, randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { STATE_FILE } from '../../src/agent/state.js';
import { tableName } from '../../src/fw/compile.js';
import { NetnsLab, netnsSkipReason } from '../helpers/netns.js';
import { CLI, type RunningController, http, makeTempDir, startControllerProcess } from '../helpers/processes.js';

const skip = netnsSkipReason();
const OWNER = 'aaaaaaaa-0000-4000-8000-0000000000f1';
const PORTS = [5432, 6000];

const SERVER = `
const net = require('node:net');
let n = 0;
for (const p of ${JSON.stringify(PORTS)}) {
  net.createServer((s) => { s.on('error', () => {}); s.end('ok\\n'); })
    .listen(p, '0.0.0.0', () => { if (++n === ${PORTS.length}) console.log('ready'); });
}`;

// One line of JSON: for each [host, port], "open" or why not (timeout: dropped).
const PROBE = `
const net = require('node:net');
const targets = JSON.parse(process.argv[1]);
Promise.all(targets.map(([host, port]) => new Promise((resolve) => {
  const s = net.connect({ host, port });
  let data = '';
  const t = setTimeout(() => { s.destroy(); resolve('timeout'); }, 1500);
  s.on('data', (d) => { data += d; });
  s.on('end', () => { clearTimeout(t); resolve(data.startsWith('ok') ? 'open' : 'eof'); });
  s.on('error', (e) => { clearTimeout(t); resolve(e.code || 'error'); });
}))).then((r) => console.log(JSON.stringify(r)));`;

/** A child's stdout lines and stderr. */
class Output {
  lines: string[] = [];
  stderr = '';
  constructor(readonly child: ChildProcess) {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.lines.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
  }
  async until(cond: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!cond()) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`process exited while waiting for ${what}; stderr: ${this.stderr}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; stderr: ${this.stderr}`);
      await sleep(100);
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

/** Polls fn until it returns true (a safety net with a deadline, not a timing assertion). */
async function eventually(fn: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await sleep(100);
  }
}

interface Node {
  name: string;
  ns: string;
  uuid: string;
  ip: string;
  stateDir: string;
  agent?: { proc: ChildProcess; out: Output; api: string };
}

interface Instance {
  name: string;
  uuid: string;
  ns: string;
  node: Node;
  mac: string;
  ip: string;
}

describe('firewall applied by the agents across the overlay', { skip, timeout: 120_000 }, () => {
  const lab = new NetnsLab('ovf');
  const block = randomInt(1, 250);
  const ulAddr = (host: number) => `198.19.${block}.${host}`;
  const ctlIp = ulAddr(254);
  let ctl: RunningController | undefined;
  let svp = '';
  let stateRoot = '';
  const nodes: Node[] = [];
  let db: Instance;
  let web: Instance;
  let ruleUuid = '';

  const api = async (method: string, path: string, body?: unknown) => {
    const r = await http(ctl!.restUrl, method, path, body);
    assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  };

  async function startAgent(n: Node): Promise<void> {
    const proc = lab.spawnIn(n.ns, [
      process.execPath,
      CLI,
      'agent',
      '--node',
      n.uuid,
      '--underlay-ip',
      n.ip,
      '--controller',
      ctl!.restUrl,
      '--svp',
      svp,
      '--api',
      `${n.ip}:0`,
      '--state-dir',
      n.stateDir,
    ]);
    const out = new Output(proc);
    await out.until(() => out.lines.some((l) => /ready/.test(l)), 30_000, `agent on ${n.name}`);
    const apiLine = out.lines.find((l) => /API http/.test(l))!;
    n.agent = { proc, out, api: /API (http:\/\/\S+)/.exec(apiLine)![1]! };
  }

  async function stopAgent(n: Node): Promise<void> {
    n.agent!.proc.kill('SIGTERM');
    await exited(n.agent!.proc);
    n.agent = undefined;
  }

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

  /** db's firewall table as nft lists it in db's namespace ('' when there is none). */
  async function dbTable(): Promise<string> {
    return lab.exec(db.ns, 'nft', 'list', 'table', 'inet', tableName(db.uuid)).catch(() => '');
  }

  /**
   * Waits until db's agent has applied everything the controller has published for its
   * node: the engine is synced (GET …/ruleset), its node feed revision read, and the
   * agent reports at least that revision with nothing pending for db.
   */
  async function settled(): Promise<void> {
    await api('GET', `/fw/instances/${db.uuid}/ruleset`);
    const feed = await api('GET', `/fw/nodes/${db.node.uuid}/rulesets?since=0&wait=0`);
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
    stateRoot = await makeTempDir('ovf-state');
    const ul = await lab.addNetns('ul');
    await lab.ip(ul, 'link', 'add', 'name', 'ulbr', 'type', 'bridge');
    await lab.ip(ul, 'link', 'set', 'ulbr', 'up');
    const [rootEnd, ulEnd] = await lab.addVeth({ ns: null, name: lab.name('c') }, { ns: ul, name: 'c-ul' });
    await lab.ip(ul, 'link', 'set', ulEnd, 'master', 'ulbr', 'up');
    await lab.ip(null, 'addr', 'add', `${ctlIp}/24`, 'dev', rootEnd);
    await lab.ip(null, 'link', 'set', rootEnd, 'up');
    for (let i = 1; i <= 2; i++) {
      const ns = await lab.addNetns(`n${i}`);
      await lab.addVeth({ ns, name: 'ul0' }, { ns: ul, name: `n${i}-ul` });
      await lab.ip(ul, 'link', 'set', `n${i}-ul`, 'master', 'ulbr', 'up');
      await lab.ip(ns, 'addr', 'add', `${ulAddr(i)}/24`, 'dev', 'ul0');
      await lab.ip(ns, 'link', 'set', 'ul0', 'up');
      nodes.push({ name: `n${i}`, ns, uuid: randomUUID(), ip: ulAddr(i), stateDir: join(stateRoot, `n${i}`) });
    }
    ctl = await startControllerProcess({ args: ['--listen', `${ctlIp}:0`, '--svp-listen', `${ctlIp}:0`] });
    assert.ok(ctl.svp, 'controller announced its SVP address');
    svp = `${ctl.svp.host}:${ctl.svp.port}`;
    await api('POST', '/networks', {
      name: 'underlay',
      nic_tag: 'sdc_underlay',
      vlan_id: 0,
      subnet: `198.19.${block}.0/24`,
      provision_start_ip: ulAddr(1),
      provision_end_ip: ulAddr(250),
    });
    await Promise.all(nodes.map((n) => startAgent(n)));

    await api('POST', `/fabrics/${OWNER}/vlans`, { vlan_id: 7, name: 'prod' });
    const net = await api('POST', `/fabrics/${OWNER}/vlans/7/networks`, {
      name: 'prod',
      subnet: '10.79.0.0/24',
      provision_start_ip: '10.79.0.10',
      provision_end_ip: '10.79.0.200',
      gateway: '10.79.0.1',
    });
    const made: Instance[] = [];
    for (const [name, node] of [
      ['db', nodes[0]!],
      ['web', nodes[1]!],
    ] as const) {
      const uuid = randomUUID();
      const nic = await api('POST', '/nics', { owner_uuid: OWNER, belongs_to_uuid: uuid, belongs_to_type: 'zone', network_uuid: net.uuid, cn_uuid: node.uuid });
      const ns = await lab.addNetns(name);
      const r = await http(node.agent!.api, 'POST', '/attach', { mac: nic.mac, netns: `/run/netns/${ns}` });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      made.push({ name, uuid, ns, node, mac: nic.mac, ip: nic.ip });
    }
    [db, web] = made as [Instance, Instance];
    const server = lab.spawnIn(db.ns, [process.execPath, '-e', SERVER]);
    const out = new Output(server);
    await out.until(() => out.lines.includes('ready'), 10_000, 'the servers in db');
  });

  after(async () => {
    await lab.cleanup();
    await ctl?.stop();
    if (stateRoot) await rm(stateRoot, { recursive: true, force: true });
  });

  it('the allowed port passes across the overlay, another port is blocked', async () => {
    assert.deepEqual(await reach(PORTS), ['5432 open', '6000 open'], 'no firewall yet');
    assert.equal(await dbTable(), '');
    await api('PUT', `/fw/instances/${db.uuid}`, { owner_uuid: OWNER, tags: { role: 'db' }, firewall_enabled: true });
    await api('PUT', `/fw/instances/${web.uuid}`, { owner_uuid: OWNER, tags: { role: 'web' }, firewall_enabled: false });
    const rule = await api('POST', '/rules', { rule: 'FROM tag role = web TO tag role = db ALLOW tcp PORT 5432', owner_uuid: OWNER, enabled: true });
    ruleUuid = rule.uuid;
    await settled();
    assert.match(await dbTable(), /5432/);
    assert.deepEqual(await reach(PORTS), ['5432 open', '6000 blocked']);
    const metrics = String((await http(db.node.agent!.api, 'GET', '/metrics')).body);
    assert.match(metrics, /rhumb_fw_rulesets_applied_total\{[^}]*\} [1-9]/);
  });

  it('a rule change takes effect without restarting anything', async () => {
    const pid = db.node.agent!.proc.pid;
    await api('PUT', `/rules/${ruleUuid}`, { rule: 'FROM tag role = web TO tag role = db ALLOW tcp PORT 6000' });
    await settled();
    assert.deepEqual(await reach(PORTS), ['5432 blocked', '6000 open']);
    assert.equal(db.node.agent!.proc.pid, pid);
    assert.equal(db.node.agent!.proc.exitCode, null);
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
});
