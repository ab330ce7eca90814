/**
 * `rhumb sandbox` end to end, as a user runs it: `up` builds the datacenter (its processes
 * outlive the command), an instance pings another on a different node through `shell`,
 * `status` reports it, `down` leaves nothing (namespaces, links, processes, files) — on
 * the kernel backend (LevelDB) and the userspace backend (etcd, with --auth: the
 * controller asks who calls, the agents present node tokens). Bad input: up twice,
 * down with nothing up, a namespace name already taken, not root, and an `up` killed
 * half-way that `down` still undoes.
 *
 * Needs root, a built dist/ and the native addon; etcd-server for the etcd case.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { after, describe, it } from 'node:test';
import { netnsSkipReason } from '../helpers/netns.js';
import { CLI } from '../helpers/processes.js';
import { TestSandbox, markedProcesses, rhumb, running } from '../helpers/sandbox.js';

const skip = netnsSkipReason();
const hasEtcd = existsSync('/usr/bin/etcd');

interface StatusJson {
  phase: string;
  healthy: boolean;
  controller: { rest: string; running: boolean; answering: boolean };
  adminTokenFile?: string;
  nodes: Array<{ name: string; agent: string; vnets?: number[]; nics?: number }>;
  instances: Array<{ name: string; owner: string; node: string; ip: string; ns: string }>;
  processes: Array<{ role: string; pid: number; running: boolean }>;
}

const CASES = [
  { backend: 'kernel', store: 'leveldb', nodes: 3, auth: false },
  { backend: 'userspace', store: 'etcd', nodes: 2, auth: true },
] as const;

for (const c of CASES) {
  describe(`sandbox on the ${c.backend} backend with ${c.store}${c.auth ? ', with --auth' : ''}`, { skip: skip || (c.store === 'etcd' && !hasEtcd ? 'needs etcd (etcd-server)' : false), timeout: 180_000 }, () => {
    const sb = new TestSandbox();
    let status: StatusJson;

    after(async () => {
      await sb.cleanup();
    });

    it('up builds it and its processes outlive the command', async () => {
      const r = await sb.up(['--nodes', String(c.nodes), '--backend', c.backend, '--store', c.store, ...(c.auth ? ['--auth'] : [])]);
      assert.equal(r.code, 0, `up failed: ${r.stderr}\n${r.stdout}`);
      assert.match(r.stdout, /rhumb sandbox: up in/);
      assert.match(r.stdout, /sandbox shell .*web1 -- ping/, 'says how to use it');
      assert.ok(sb.runId, 'state recorded');
      const s = await sb.run(['status', '--json']);
      assert.equal(s.code, 0, s.stderr);
      status = JSON.parse(s.stdout) as StatusJson;
      assert.equal(status.phase, 'up');
      assert.equal(status.healthy, true, s.stdout);
      assert.equal(status.nodes.length, c.nodes);
      // controller, agents (and etcd): still running after `up` exited.
      assert.equal(status.processes.length, 1 + c.nodes + (c.store === 'etcd' ? 1 : 0));
      assert.ok(status.processes.every((p) => p.running));
      assert.ok(status.nodes.every((n) => n.agent === 'running' && (n.nics ?? 0) > 0), JSON.stringify(status.nodes));
    });

    if (c.auth) {
      it('--auth: the controller asks who calls; the admin token (0600, named by status) is let in', async () => {
        assert.ok(status.adminTokenFile, 'status names the admin token file');
        assert.equal(statSync(status.adminTokenFile).mode & 0o777, 0o600);
        const token = (await readFile(status.adminTokenFile, 'utf8')).trim();
        assert.equal((await fetch(`${status.controller.rest}/nics`)).status, 401);
        assert.equal((await fetch(`${status.controller.rest}/nics`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
        const r = await sb.run(['status']);
        assert.match(r.stdout, new RegExp(`admin token is in ${status.adminTokenFile}`));
      });
    }

    it('an instance reaches instances on other nodes over the overlay, for each owner', async () => {
      const byName = new Map(status.instances.map((i) => [i.name, i]));
      for (const [from, to] of [
        ['web1', 'web2'],
        ['app1', 'app2'],
      ] as const) {
        const a = byName.get(from)!;
        const b = byName.get(to)!;
        assert.notEqual(a.node, b.node, `${from} and ${to} are on different nodes`);
        const r = await sb.run(['shell', from, '--', 'ping', '-c', '1', '-W', '3', b.ip]);
        assert.equal(r.code, 0, `${from} -> ${to} (${b.ip}): ${r.stdout}${r.stderr}`);
        assert.match(r.stdout, /1 received/);
      }
    });

    it('status tells what runs where', async () => {
      const r = await sb.run(['status']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /sandbox up, healthy/);
      for (const n of status.nodes) assert.match(r.stdout, new RegExp(`\\b${n.name}\\b.*running`));
      for (const i of status.instances) assert.match(r.stdout, new RegExp(`\\b${i.name}\\b\\s+${i.owner}\\s+${i.node}\\s+${i.ip.replace(/\./g, '\\.')}`));
      assert.match(r.stdout, /console\s+http:\/\/\S+\/ui\//);
    });

    if (c.backend === 'kernel') {
      it('up a second time refuses and leaves the running sandbox alone', async () => {
        const r = await sb.up([]);
        assert.equal(r.code, 1);
        assert.match(r.stderr, /already up.*sandbox down/);
        const s = JSON.parse((await sb.run(['status', '--json'])).stdout) as StatusJson;
        assert.equal(s.healthy, true);
        assert.deepEqual(s.processes.map((p) => p.pid), status.processes.map((p) => p.pid));
      });
    }

    it('down removes every namespace, link, process and file it made', async () => {
      const pids = status.processes.map((p) => p.pid);
      const r = await sb.run(['down']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /down: \d+ namespace\(s\)/);
      assert.deepEqual(sb.leftovers(), []);
      for (const pid of pids) assert.equal(running(pid), false, `pid ${pid} is gone`);
    });
  });
}

describe('sandbox: bad input', { skip, timeout: 120_000 }, () => {
  const sb = new TestSandbox();
  after(async () => {
    await sb.cleanup();
  });

  it('down with nothing up says so and changes nothing', async () => {
    const r = await sb.run(['down']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /no sandbox is up/);
    assert.deepEqual(sb.leftovers(), []);
  });

  it('up as a user who is not root says it needs root and makes nothing', async (t) => {
    // The checkout must be readable by that user (a clone under /root is not).
    if ((await rhumb(['--help'], { uid: 65534, gid: 65534 })).code !== 0) return t.skip('the checkout is not readable by uid 65534');
    const r = await rhumb(['sandbox', 'up', '--prefix', sb.prefix, '--subnet', sb.subnet, ...sb.stateFlags], { uid: 65534, gid: 65534 });
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /needs root/);
    assert.deepEqual(sb.leftovers(), []);
  });

  it('up refuses a namespace name it did not make, and neither touches it nor makes anything', async () => {
    const theirs = `${sb.prefix}-n2`;
    execFileSync('ip', ['netns', 'add', theirs]);
    try {
      const r = await sb.up(['--nodes', '2']);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, new RegExp(`${theirs} already exist.*not made by this sandbox`));
      assert.deepEqual(sb.leftovers(), [`namespace ${theirs}`], 'only the namespace that was already there');
    } finally {
      execFileSync('ip', ['netns', 'del', theirs]);
    }
  });

  it('down undoes an up that was killed half-way', async () => {
    const up = spawn(process.execPath, [CLI, 'sandbox', 'up', '--nodes', '2', '--prefix', sb.prefix, '--subnet', sb.subnet, ...sb.stateFlags], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    up.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((r) => up.once('exit', r));
    // Killed once the controller runs and the agents are being started.
    await new Promise<void>((resolve, reject) => {
      const t = setInterval(() => {
        if (/rhumb sandbox: agents/.test(out)) {
          clearInterval(t);
          resolve();
        } else if (up.exitCode !== null) {
          clearInterval(t);
          reject(new Error(`up ended first: ${out}`));
        }
      }, 20);
    });
    up.kill('SIGKILL');
    await exited;
    sb.runId = sb.readState()?.runId;
    assert.ok(sb.runId, 'the state was recorded before the kill');
    assert.ok(markedProcesses(sb.runId).length > 0, 'the controller outlived the killed up');
    assert.notDeepEqual(sb.leftovers(), []);
    const r = await sb.run(['down']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(sb.leftovers(), []);
  });
});
