/**
 * The rhumb CNI plugin's logic without processes (src/cni/): environment and
 * configuration checks with the spec's codes, result shapes per version, the verbs
 * against a fake agent, the agent-error mapping, and the launcher `rhumb cni install` writes.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../helpers/processes.js';
import type { WorkloadAttachment } from '../../src/agent/workload-api.js';
import { AgentReplyError, AgentUnreachable, type AgentCall, agentClient } from '../../src/cni/agent-client.js';
import { parseAgentAddress, parseCniArgs, parseNetConf, requestedAddresses, parseEnv } from '../../src/cni/config.js';
import { CNI } from '../../src/cni/errors.js';
import { LAUNCHER_MARK, installPlugin, uninstallPlugin } from '../../src/cni/install.js';
import { agentErrorToCni, run } from '../../src/cni/plugin.js';
import { buildResult } from '../../src/cni/result.js';

const NET = 'cccccccc-0000-4000-8000-000000000003';
const OWNER = 'bbbbbbbb-0000-4000-8000-000000000002';
const conf = (extra: Record<string, unknown> = {}) => JSON.stringify({ cniVersion: '1.0.0', name: 'rhnet', type: 'rhumb', network: NET, agent: '127.0.0.1:9', ...extra });
const env = (command: string, extra: Record<string, string> = {}) => ({ CNI_COMMAND: command, CNI_CONTAINERID: 'c0ffee', CNI_NETNS: '/run/netns/cni-1', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', ...extra });

const attachment: WorkloadAttachment = {
  key: 'cni/c0ffee/eth0', phase: 'attached', belongs_to_uuid: NET, network_uuid: NET, owner_uuid: OWNER, netns: '/run/netns/cni-1', ifname: 'eth0',
  mac: '90:b8:d0:00:00:01', host_ifname: 'rv90b8d0000001', mtu: 1400, ips: [{ address: '10.9.0.10/24', gateway: '10.9.0.1' }],
  routes: [{ dst: '0.0.0.0/0', gw: '10.9.0.1' }], resolvers: ['10.9.0.53'], vnet: 77, vlan: 5,
};

/** A fake agent: records calls, answers from a handler. */
function fakeAgent(handler: (method: string, path: string, body: unknown) => unknown) {
  const calls: Array<{ method: string; path: string; body: unknown }> = [];
  const call = (async (method: string, path: string, body?: unknown) => {
    calls.push({ method, path, body });
    return handler(method, path, body);
  }) as AgentCall;
  return { calls, factory: () => call };
}

const parsed = (out: { stdout: string }) => JSON.parse(out.stdout) as Record<string, unknown>;

describe('CNI plugin: environment and configuration', () => {
  it('CNI_ARGS: unknown keys kept, values with "=" whole, malformed pairs skipped', () => {
    assert.deepEqual([...parseCniArgs('IgnoreUnknown=1;K8S_POD_NAME=a=b;junk;MAC=02:00:00:00:00:01')], [
      ['IgnoreUnknown', '1'], ['K8S_POD_NAME', 'a=b'], ['MAC', '02:00:00:00:00:01'],
    ]);
  });

  it('agent addresses: socket paths, HOST:PORT, [v6]:PORT, http://', () => {
    assert.deepEqual(parseAgentAddress('/run/rhumb/agent.sock'), { socketPath: '/run/rhumb/agent.sock' });
    assert.deepEqual(parseAgentAddress('unix:///run/a.sock'), { socketPath: '/run/a.sock' });
    assert.deepEqual(parseAgentAddress('127.0.0.1:8090'), { host: '127.0.0.1', port: 8090 });
    assert.deepEqual(parseAgentAddress('[::1]:8090'), { host: '::1', port: 8090 });
    assert.deepEqual(parseAgentAddress('http://10.0.0.1:80/'), { host: '10.0.0.1', port: 80 });
    for (const bad of ['', 'host', 'h:0', 'h:70000', 'a b:1', 5]) assert.throws(() => parseAgentAddress(bad), (e: { code: number }) => e.code === 7);
  });

  it('the default agent address is the agent default', () => {
    const c = parseNetConf(JSON.parse(conf({ agent: undefined })));
    assert.deepEqual(c.agent, { socketPath: '/run/rhumb/agent.sock' });
  });

  it('requests: runtimeConfig before args.cni before CNI_ARGS, sources not mixed; both families kept in order; prefixes stripped', () => {
    const e = parseEnv(env('ADD', { CNI_ARGS: 'IgnoreUnknown=1;MAC=02:00:00:00:00:03;IP=10.9.0.30' }));
    assert.deepEqual(requestedAddresses(parseNetConf(JSON.parse(conf())), e), { mac: '02:00:00:00:00:03', ips: ['10.9.0.30'] });
    const c = parseNetConf(JSON.parse(conf({ runtimeConfig: { mac: '02-AA-00-00-00-01', ips: ['2001:db8::5/64', '10.9.0.20/24'] }, args: { cni: { ips: ['10.9.0.21'] } } })));
    assert.deepEqual(requestedAddresses(c, e), { mac: '02:aa:00:00:00:01', ips: ['2001:db8::5', '10.9.0.20'] });
    // args.cni.ips present: CNI_ARGS IP is ignored (the conventions), even when args has only IPv6.
    const v6 = parseNetConf(JSON.parse(conf({ args: { cni: { ips: ['2001:db8::7'] } } })));
    assert.deepEqual(requestedAddresses(v6, e), { mac: '02:00:00:00:00:03', ips: ['2001:db8::7'] });
    assert.deepEqual(requestedAddresses(parseNetConf(JSON.parse(conf())), parseEnv(env('ADD', { CNI_ARGS: 'IP=2001:db8::8/64,10.9.0.8' }))), { ips: ['2001:db8::8', '10.9.0.8'] });
    assert.throws(() => requestedAddresses(parseNetConf(JSON.parse(conf({ runtimeConfig: { mac: 'zz' } }))), e), (x: { code: number }) => x.code === 7);
    assert.throws(() => requestedAddresses(parseNetConf(JSON.parse(conf())), parseEnv(env('ADD', { CNI_ARGS: 'IP=ten' }))), (x: { code: number }) => x.code === 7);
    assert.throws(() => requestedAddresses(parseNetConf(JSON.parse(conf({ runtimeConfig: { ips: ['fe80::1%eth0'] } }))), e), (x: { code: number }) => x.code === 7);
  });

  it('ADD sends the requested addresses whole; an agent refusing them for the family is code 7 with its reason', async () => {
    const a = fakeAgent(() => attachment);
    const ok = await run(env('ADD'), conf({ runtimeConfig: { ips: ['2001:db8::5', '10.9.0.20/24'] } }), a.factory);
    assert.equal(ok.exitCode, 0, ok.stdout);
    assert.deepEqual((a.calls[0]!.body as { ips?: string[] }).ips, ['2001:db8::5', '10.9.0.20']);
    const why = 'none of the requested addresses (2001:db8::5) is IPv4, the family of network x';
    const refused = fakeAgent(() => {
      throw new AgentReplyError(422, 'InvalidParameters', why);
    });
    const out = await run(env('ADD'), conf({ runtimeConfig: { ips: ['2001:db8::5'] } }), refused.factory);
    assert.equal(out.exitCode, 1);
    assert.deepEqual(parsed(out), { cniVersion: '1.0.0', code: 7, msg: 'invalid network configuration', details: why });
  });

  for (const [why, vars, code, detail] of [
    ['no CNI_COMMAND', { CNI_COMMAND: '' }, 4, /CNI_COMMAND/],
    ['an unknown command', { CNI_COMMAND: 'FROB' }, 4, /unknown CNI_COMMAND/],
    ['no container ID', { CNI_CONTAINERID: '' }, 4, /CNI_CONTAINERID/],
    ['a container ID with a slash', { CNI_CONTAINERID: 'a/b' }, 4, /CNI_CONTAINERID/],
    ['no netns on ADD', { CNI_NETNS: '' }, 4, /CNI_NETNS/],
    ['a netns outside the accepted shapes', { CNI_NETNS: '/tmp/ns' }, 4, /CNI_NETNS/],
    ['an interface name with a colon', { CNI_IFNAME: 'eth0:1' }, 4, /CNI_IFNAME/],
    ['an interface name of 16 characters', { CNI_IFNAME: 'a'.repeat(16) }, 4, /CNI_IFNAME/],
  ] as const) {
    it(`ADD with ${why}: code ${code}, nothing asked of the agent`, async () => {
      const a = fakeAgent(() => attachment);
      const out = await run({ ...env('ADD'), ...vars }, conf(), a.factory);
      assert.equal(out.exitCode, 1);
      const e = parsed(out);
      assert.equal(e.code, code);
      assert.match(String(e.details), detail);
      assert.equal(a.calls.length, 0);
    });
  }

  for (const [why, stdin, code] of [
    ['malformed JSON', '{"cniVersion": "1.0.0",', 6],
    ['a JSON array', '[]', 6],
    ['no cniVersion', JSON.stringify({ name: 'n', network: NET }), 1],
    ['cniVersion 0.3.1', conf({ cniVersion: '0.3.1' }), 1],
    ['cniVersion 2.0.0', conf({ cniVersion: '2.0.0' }), 1],
    ['a numeric cniVersion', conf({ cniVersion: 1 }), 7],
    ['no network', conf({ network: undefined }), 7],
    ['a network name without owner', conf({ network: 'blue' }), 7],
    ['a bad owner', conf({ network: 'blue', owner_uuid: 'me' }), 7],
    ['a bad agent', conf({ agent: 'nowhere' }), 7],
    ['a bad name', conf({ name: '-x' }), 7],
    ['a bad timeout', conf({ timeout_ms: 'soon' }), 7],
  ] as const) {
    it(`ADD with ${why}: code ${code}`, async () => {
      const a = fakeAgent(() => attachment);
      const out = await run(env('ADD'), stdin, a.factory);
      assert.equal(out.exitCode, 1);
      assert.equal(parsed(out).code, code, out.stdout);
      assert.ok(parsed(out).msg);
      assert.equal(a.calls.length, 0);
    });
  }
});

describe('CNI plugin: results', () => {
  it('1.0.0: host veth then container interface; ips point at it; routes, dns', () => {
    const r = buildResult(parseNetConf(JSON.parse(conf())), '/run/netns/cni-1', 'eth0', attachment);
    assert.deepEqual(r, {
      cniVersion: '1.0.0',
      interfaces: [{ name: 'rv90b8d0000001' }, { name: 'eth0', mac: '90:b8:d0:00:00:01', sandbox: '/run/netns/cni-1' }],
      ips: [{ address: '10.9.0.10/24', gateway: '10.9.0.1', interface: 1 }],
      routes: [{ dst: '0.0.0.0/0', gw: '10.9.0.1' }],
      dns: { nameservers: ['10.9.0.53'] },
    });
  });

  it('0.4.0 adds ips[].version; 1.1.0 adds the interface MTU', () => {
    const r04 = buildResult(parseNetConf(JSON.parse(conf({ cniVersion: '0.4.0' }))), '/run/netns/cni-1', 'eth0', attachment);
    assert.equal(r04.ips![0]!.version, '4');
    assert.equal(r04.interfaces![1]!.mtu, undefined);
    const r11 = buildResult(parseNetConf(JSON.parse(conf({ cniVersion: '1.1.0' }))), '/run/netns/cni-1', 'eth0', attachment);
    assert.equal(r11.ips![0]!.version, undefined);
    assert.equal(r11.interfaces![1]!.mtu, 1400);
  });

  it('userspace backend (no host side): one interface, index 0; no resolvers: the config dns', () => {
    const w = { ...attachment, host_ifname: undefined, resolvers: [] };
    const r = buildResult(parseNetConf(JSON.parse(conf({ dns: { nameservers: ['1.1.1.1'], search: ['x'] } }))), '/run/netns/cni-1', 'eth0', w);
    assert.deepEqual(r.interfaces, [{ name: 'eth0', mac: '90:b8:d0:00:00:01', sandbox: '/run/netns/cni-1' }]);
    assert.equal(r.ips![0]!.interface, 0);
    assert.deepEqual(r.dns, { nameservers: ['1.1.1.1'], search: ['x'] });
  });

  it('a prevResult is kept and ours appended with the right index', () => {
    const prev = { cniVersion: '1.0.0', interfaces: [{ name: 'lo', sandbox: '/run/netns/cni-1' }], ips: [{ address: '127.0.0.1/8', interface: 0 }] };
    const r = buildResult(parseNetConf(JSON.parse(conf({ prevResult: prev }))), '/run/netns/cni-1', 'eth0', attachment);
    assert.equal(r.interfaces!.length, 3);
    assert.deepEqual(r.ips!.map((i) => i.interface), [0, 2]);
  });
});

describe('CNI plugin: verbs against a fake agent', () => {
  it('ADD posts the attachment (key from container ID + ifname, scope from the network name) and prints the result', async () => {
    const a = fakeAgent(() => attachment);
    const out = await run(env('ADD', { CNI_ARGS: 'IgnoreUnknown=1;MAC=02:00:00:00:00:09' }), conf({ network: 'blue', owner_uuid: OWNER }), a.factory);
    assert.equal(out.exitCode, 0, out.stdout);
    assert.deepEqual(a.calls[0], {
      method: 'POST', path: '/workloads',
      body: {
        key: 'cni/c0ffee/eth0', scope: 'cni/rhnet', labels: { 'cni.network': 'rhnet', 'cni.ifname': 'eth0', 'cni.container_id': 'c0ffee' },
        network_name: 'blue', owner_uuid: OWNER, netns: '/run/netns/cni-1', ifname: 'eth0', mac: '02:00:00:00:00:09',
      },
    });
    assert.equal(parsed(out).cniVersion, '1.0.0');
  });

  it('DEL releases by key, needs no netns and prints nothing', async () => {
    const a = fakeAgent(() => ({ key: 'cni/c0ffee/eth0', released: false }));
    const out = await run(env('DEL', { CNI_NETNS: '' }), conf(), a.factory);
    assert.deepEqual(out, { stdout: '', exitCode: 0 });
    assert.deepEqual(a.calls.map((c) => [c.method, c.path]), [['DELETE', '/workloads/cni%2Fc0ffee%2Feth0']]);
  });

  it('CHECK: needs prevResult; unknown is code 3; problems are code 101', async () => {
    const ok = fakeAgent(() => ({ key: 'k', ok: true, problems: [] }));
    assert.equal((await run(env('CHECK'), conf({ prevResult: {} }), ok.factory)).exitCode, 0);
    assert.equal(parsed(await run(env('CHECK'), conf(), ok.factory)).code, 7);
    const missing = fakeAgent(() => {
      throw new AgentReplyError(404, 'NotFound', 'no workload attachment');
    });
    assert.equal(parsed(await run(env('CHECK'), conf({ prevResult: {} }), missing.factory)).code, 3);
    const broken = fakeAgent(() => ({ key: 'k', ok: false, problems: ['interface eth0 is missing from /run/netns/cni-1'] }));
    const out = await run(env('CHECK'), conf({ prevResult: {} }), broken.factory);
    assert.equal(parsed(out).code, 101);
    assert.match(String(parsed(out).details), /eth0 is missing/);
  });

  it('STATUS: 0 when the agent reaches the controller; 51 when it does not, or the agent is away', async () => {
    const up = fakeAgent(() => ({ node: 'n', controller: { reachable: true } }));
    assert.deepEqual(await run({ CNI_COMMAND: 'STATUS' }, conf({ cniVersion: '1.1.0' }), up.factory), { stdout: '', exitCode: 0 });
    const noCtl = fakeAgent(() => ({ node: 'n', controller: { reachable: false, error: 'fetch failed' } }));
    assert.equal(parsed(await run({ CNI_COMMAND: 'STATUS' }, conf({ cniVersion: '1.1.0' }), noCtl.factory)).code, 51);
    const away = fakeAgent(() => {
      throw new AgentUnreachable('127.0.0.1:9', 'ECONNREFUSED');
    });
    const out = await run({ CNI_COMMAND: 'STATUS' }, conf({ cniVersion: '1.1.0' }), away.factory);
    assert.equal(out.exitCode, 1);
    assert.equal(parsed(out).code, 51);
  });

  it('GC releases this network\'s attachments not in the valid list, and only those', async () => {
    const held = [{ key: 'cni/keep/eth0' }, { key: 'cni/stale/eth0' }, { key: 'cni/keep/eth1' }];
    const a = fakeAgent((method) => (method === 'GET' ? held : { released: true }));
    const gcConf = conf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'keep', ifname: 'eth0' }, { containerID: 'keep', ifname: 'eth1' }] });
    assert.deepEqual(await run({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }, gcConf, a.factory), { stdout: '', exitCode: 0 });
    assert.deepEqual(a.calls.map((c) => [c.method, c.path]), [['GET', '/workloads?scope=cni%2Frhnet'], ['DELETE', '/workloads/cni%2Fstale%2Feth0']]);
    // The pre-rename key works too; no list at all is refused rather than taken as "none valid".
    const b = fakeAgent((method) => (method === 'GET' ? held : { released: true }));
    await run({ CNI_COMMAND: 'GC' }, conf({ 'cni.dev/attachments': [] }), b.factory);
    assert.equal(b.calls.filter((c) => c.method === 'DELETE').length, 3);
    const c = fakeAgent(() => held);
    assert.equal(parsed(await run({ CNI_COMMAND: 'GC' }, conf(), c.factory)).code, 7);
    assert.equal(c.calls.length, 0);
  });

  it('VERSION: the versions spoken, echoing the asked one; ignores a garbage stdin', async () => {
    for (const [stdin, v] of [['{"cniVersion":"0.4.0"}', '0.4.0'], ['{"cniVersion":"1.0.0"}', '1.0.0'], ['', '1.1.0'], ['{"cniVersion":"9.9.9"}', '1.1.0']] as const) {
      const out = await run({ CNI_COMMAND: 'VERSION' }, stdin);
      assert.deepEqual(parsed(out), { cniVersion: v, supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
    }
  });

  it('agent errors map to the spec codes', () => {
    const code = (e: unknown) => agentErrorToCni(e).code;
    assert.equal(code(new AgentUnreachable('x', 'ENOENT')), CNI.TRY_AGAIN_LATER);
    assert.equal(code(new AgentReplyError(503, 'ControllerUnreachable', 'x')), CNI.TRY_AGAIN_LATER);
    assert.equal(code(new AgentReplyError(507, 'SubnetFull', 'x')), CNI.TRY_AGAIN_LATER);
    assert.equal(code(new AgentReplyError(404, 'NetworkNotFound', 'x')), CNI.INVALID_NETWORK_CONFIG);
    assert.equal(code(new AgentReplyError(422, 'AgentError', 'netns /run/netns/x does not exist')), CNI.INVALID_ENV);
    assert.equal(code(new AgentReplyError(422, 'AgentError', 'ip link add: File exists')), CNI.PLUMBING_FAILED);
    assert.equal(code(new AgentReplyError(500, 'InternalError', 'boom')), CNI.INTERNAL);
  });
});

describe('rhumb cni install', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'rhumb-cni-install-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  it('writes an executable launcher for this Node and this build; refuses to replace a foreign file; uninstall removes only its own', async () => {
    const path = await installPlugin({ dir, entry: '/opt/rhumb/dist/src/cni/main.js', nodePath: '/usr/bin/node' });
    const text = await readFile(path, 'utf8');
    assert.ok(text.startsWith('#!/usr/bin/node\n'));
    assert.ok(text.includes(LAUNCHER_MARK) && text.includes('file:///opt/rhumb/dist/src/cni/main.js'));
    assert.equal((await stat(path)).mode & 0o777, 0o755);
    await installPlugin({ dir }); // a reinstall replaces our own
    await writeFile(join(dir, 'other'), '#!/bin/sh\n');
    await assert.rejects(installPlugin({ dir, name: 'other' }), /not a rhumb launcher/);
    await assert.rejects(uninstallPlugin({ dir, name: 'other' }), /left alone/);
    assert.equal(await uninstallPlugin({ dir }), true);
    assert.equal(await uninstallPlugin({ dir }), false);
  });
});

describe('CNI plugin: the agent client and the shipped launcher', () => {
  it('talks to an agent on a unix socket; bounds a call that gets no answer', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rhumb-cni-sock-'));
    const socketPath = join(dir, 'agent.sock');
    const server = createServer((req, res) => {
      if (req.url === '/health') res.end(JSON.stringify({ node: 'n', controller: { reachable: true } }));
      else if (req.url === '/slow') setTimeout(() => res.end('{}'), 2000);
      else {
        res.statusCode = 404;
        res.end(JSON.stringify({ code: 'NotFound', message: 'no such thing' }));
      }
    });
    await new Promise<void>((r) => server.listen(socketPath, r));
    try {
      const call = agentClient({ socketPath }, 300);
      assert.deepEqual(await call('GET', '/health'), { node: 'n', controller: { reachable: true } });
      await assert.rejects(call('GET', '/nope'), (e: AgentReplyError) => e.status === 404 && e.code === 'NotFound' && e.reason === 'no such thing');
      await assert.rejects(call('GET', '/slow'), (e: Error) => e instanceof AgentUnreachable && /no answer in 300 ms/.test(e.message));
      const out = await run({ CNI_COMMAND: 'STATUS' }, conf({ cniVersion: '1.1.0', agent: socketPath }));
      assert.deepEqual(out, { stdout: '', exitCode: 0 });
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('bin/cni/rhumb runs the compiled plugin', () => {
    const out = execFileSync(join(REPO_ROOT, 'bin/cni/rhumb'), { input: '{"cniVersion":"0.4.0"}', env: { ...process.env, CNI_COMMAND: 'VERSION' } }).toString();
    assert.deepEqual(JSON.parse(out), { cniVersion: '0.4.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
  });
});
