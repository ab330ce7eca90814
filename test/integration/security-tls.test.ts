/**
 * A controller process with --tls-dir and --auth-file (issue #13): TLS required on both
 * ports (plaintext refused), certificates from another CA or none refused on SVP, a node
 * certificate reaches only its own node's shootdowns (LOG_REQ and LOG_RM), an operator's
 * every node's, the plaintext read-only listener answers lookups only, SIGHUP re-reads the
 * tokens (a broken file keeps them), SVP fuzzing over TLS, refusals counted in /metrics.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import { restFetch } from '../../src/security/http-client.js';
import { SvpClient } from '../../src/svp/client.js';
import { SvpOp, SvpStatus, encodeFrame, encodeMessage, decodeMessage } from '../../src/svp/codec.js';
import { ipToBytes, uuidToBytes } from '../../src/net/addr.js';
import { CLI, type RunningController, startControllerProcess } from '../helpers/processes.js';
import { RawSvp } from '../helpers/svp-raw.js';

const OWNER = '11111111-2222-4333-8444-555555555555';
const N1 = 'c0000000-0000-4000-8000-000000000001';
const N2 = 'c0000000-0000-4000-8000-000000000002';
const UL: Record<string, string> = { [N1]: '198.18.7.11', [N2]: '198.18.7.12' };
const VM = (n: number) => `a0000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const ADMIN_TOKEN = 'admin-0123456789abcdef';

let dir: string;
let pki: string;
let otherPki: string;
let authFile: string;
let ctl: RunningController;
let plainSvp: { host: string; port: number };
let vnet = 0;

const pem = (d: string, f: string) => readFileSync(join(d, f));
const cli = (...args: string[]) => execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
const svpAddr = () => `${ctl.svp!.host}:${ctl.svp!.port}`;
const tlsFor = (name?: string, dirOf = pki) => ({ ca: pem(pki, 'ca.pem'), ...(name ? { cert: pem(dirOf, `${name}.pem`), key: pem(dirOf, `${name}-key.pem`) } : {}) });

function rest(token?: string) {
  let f: ReturnType<typeof restFetch> | undefined;
  return async (method: string, path: string, body?: unknown) => {
    f ??= restFetch({ tls: { ca: pem(pki, 'ca.pem') }, token });
    const res = await f(ctl.restUrl + path, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* /metrics */
    }
    return { status: res.status, body: parsed as any }; // eslint-disable-line @typescript-eslint/no-explicit-any
  };
}
const admin = rest(ADMIN_TOKEN);

async function ok(method: string, path: string, body?: unknown) {
  const r = await admin(method, path, body);
  assert.ok(r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

async function metric(name: string, label: string): Promise<number> {
  const text = (await admin('GET', '/metrics')).body as string;
  const line = text.split('\n').find((l) => l.startsWith(name) && l.includes(label));
  return line ? Number(line.split(' ').pop()) : 0;
}

function svpClient(name?: string, dirOf = pki, server = svpAddr()): SvpClient {
  return new SvpClient({ servers: [server], timeoutMs: 3000, keepaliveMs: 0, resolveIntervalMs: 0, ...(name === 'plain' ? {} : { tls: tlsFor(name, dirOf) }) });
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rhumb-tls-'));
  pki = join(dir, 'pki');
  otherPki = join(dir, 'other');
  cli('pki', 'init', pki, '--san', '127.0.0.1');
  cli('pki', 'issue', pki, '--name', 'n1', '--node', N1);
  cli('pki', 'issue', pki, '--name', 'n2', '--node', N2);
  cli('pki', 'issue', pki, '--name', 'ops');
  cli('pki', 'init', otherPki, '--san', '127.0.0.1');
  cli('pki', 'issue', otherPki, '--name', 'n1', '--node', N1);
  authFile = join(dir, 'auth.json');
  await writeFile(authFile, JSON.stringify({ tokens: [{ token: ADMIN_TOKEN, role: 'admin' }] }));
  await chmod(authFile, 0o600);
  ctl = await startControllerProcess({ args: ['--tls-dir', pki, '--auth-file', authFile, '--svp-plaintext-listen', '127.0.0.1:0', '--log-wait', '300'] });
  assert.match(ctl.restUrl, /^https:\/\//);
  const line = ctl.stdout.find((l) => /SVP plaintext read-only/.test(l))!;
  const m = /(\S+):(\d+)$/.exec(line)!;
  plainSvp = { host: m[1]!, port: Number(m[2]) };
  // Two nodes with underlay addresses, a fabric with a NIC on each.
  const ul = await ok('POST', '/networks', { name: 'underlay', nic_tag: 'sdc_underlay', vlan_id: 0, subnet: '198.18.7.0/24', provision_start_ip: '198.18.7.10', provision_end_ip: '198.18.7.200' });
  for (const cn of [N1, N2]) {
    await ok('POST', `/networks/${ul.uuid}/nics`, { belongs_to_uuid: cn, belongs_to_type: 'server', owner_uuid: OWNER, ip: UL[cn], underlay: true, check_owner: false });
  }
  vnet = (await ok('POST', `/fabrics/${OWNER}/vlans`, { vlan_id: 5 })).vnet_id;
  const fabric = await ok('POST', `/fabrics/${OWNER}/vlans/5/networks`, { name: 'web', subnet: '10.20.0.0/24', provision_start_ip: '10.20.0.10', provision_end_ip: '10.20.0.250' });
  await ok('POST', `/networks/${fabric.uuid}/nics`, { belongs_to_uuid: VM(1), belongs_to_type: 'zone', owner_uuid: OWNER, cn_uuid: N1, ip: '10.20.0.11' });
  await ok('POST', `/networks/${fabric.uuid}/nics`, { belongs_to_uuid: VM(2), belongs_to_type: 'zone', owner_uuid: OWNER, cn_uuid: N2, ip: '10.20.0.12' });
  // A third NIC on the vnet: a shootdown event for each of N1 and N2.
  await ok('POST', `/networks/${fabric.uuid}/nics`, { belongs_to_uuid: VM(3), belongs_to_type: 'zone', owner_uuid: OWNER, cn_uuid: N1, ip: '10.20.0.13' });
});

after(async () => {
  await ctl?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('TLS is required when configured', () => {
  it('plaintext HTTP on the REST port gets no answer', async () => {
    const url = ctl.restUrl.replace('https://', 'http://');
    await assert.rejects(fetch(`${url}/ping`, { signal: AbortSignal.timeout(5000) }));
  });

  it('plaintext SVP on the SVP port gets no answer and is closed', async () => {
    const raw = await RawSvp.connect(ctl.svp!.port, ctl.svp!.host);
    raw.send(encodeFrame(SvpOp.PING, 1));
    assert.ok(await raw.closesWithin(5000), 'closed');
    assert.equal(raw.frames.length, 0);
  });

  it('HTTPS verifies the controller against the CA; a client without it fails', async () => {
    assert.equal((await rest()('GET', '/ping')).status, 200);
    await assert.rejects(fetch(`${ctl.restUrl}/ping`, { signal: AbortSignal.timeout(5000) }), 'an unknown CA is refused by the client');
  });

  it('SVP over TLS with no client certificate, or one from another CA, is refused', async () => {
    const before = await metric('rhumb_svp_connections_refused_total', 'reason="tls"');
    await assert.rejects(RawSvp.connectTls(ctl.svp!.port, { ca: pem(pki, 'ca.pem') }, ctl.svp!.host).then(async (r) => {
      // TLS 1.3 reports the refusal after the client's handshake: a request gets nothing.
      r.send(encodeFrame(SvpOp.PING, 1));
      await r.reply(1, 3000);
    }));
    await assert.rejects(
      RawSvp.connectTls(ctl.svp!.port, { ca: pem(pki, 'ca.pem'), cert: pem(otherPki, 'n1.pem'), key: pem(otherPki, 'n1-key.pem') }, ctl.svp!.host).then(async (r) => {
        r.send(encodeFrame(SvpOp.PING, 2));
        await r.reply(2, 3000);
      }),
    );
    assert.ok((await metric('rhumb_svp_connections_refused_total', 'reason="tls"')) >= before + 2);
  });

  it('on REST a certificate from another CA is nobody (401), the CA\'s operator certificate is admin', async () => {
    const foreign = restFetch({ tls: { ca: pem(pki, 'ca.pem'), cert: pem(otherPki, 'n1.pem'), key: pem(otherPki, 'n1-key.pem') } });
    assert.equal((await foreign(`${ctl.restUrl}/nics`)).status, 401);
    const ops = restFetch({ tls: tlsFor('ops') });
    assert.equal((await ops(`${ctl.restUrl}/nic_tags`)).status, 200);
    const node = restFetch({ tls: tlsFor('n1') });
    assert.equal((await node(`${ctl.restUrl}/fw/nodes/${N1}/rulesets?wait=0`)).status, 200);
    assert.equal((await node(`${ctl.restUrl}/fw/nodes/${N2}/rulesets?wait=0`)).status, 404, "another node's feed");
  });
});

describe('SVP: who may read and remove which shootdowns', () => {
  it("a node certificate looks up anything but reads only its own node's log", async () => {
    const n1 = svpClient('n1');
    try {
      assert.equal((await n1.vl3('10.20.0.12', vnet)).status, SvpStatus.OK);
      const own = await n1.logReq(UL[N1]!, 65536);
      assert.equal(own.status, SvpStatus.OK);
      const before = await metric('rhumb_svp_requests_refused_total', 'reason="not_own_node"');
      const other = await n1.logReq(UL[N2]!, 65536);
      assert.equal(other.status, SvpStatus.FATAL);
      assert.equal(other.entries.length, 0);
      assert.equal(await metric('rhumb_svp_requests_refused_total', 'reason="not_own_node"'), before + 1);
    } finally {
      n1.close();
    }
  });

  it("a node certificate cannot remove another node's events (FATAL, all kept); its own it can", async () => {
    const n1 = svpClient('n1');
    const n2 = svpClient('n2');
    try {
      const pending = await n2.logReq(UL[N2]!, 65536);
      assert.ok(pending.entries.length > 0, 'N2 has events');
      const ids = pending.entries.map((e) => e.id);
      assert.equal((await n1.logRm(ids)).status, SvpStatus.FATAL);
      assert.deepEqual((await n2.logReq(UL[N2]!, 65536)).entries.map((e) => e.id), ids, 'nothing removed');
      assert.equal((await n2.logRm(ids)).status, SvpStatus.OK);
      assert.equal((await n2.logReq(UL[N2]!, 65536, { timeoutMs: 3000 })).entries.length, 0);
    } finally {
      n1.close();
      n2.close();
    }
  });

  it("an operator certificate reads any node's log", async () => {
    const ops = svpClient('ops');
    try {
      assert.equal((await ops.logReq(UL[N1]!, 65536)).status, SvpStatus.OK);
      assert.equal((await ops.logReq(UL[N2]!, 65536)).status, SvpStatus.OK);
    } finally {
      ops.close();
    }
  });

  it('the plaintext read-only listener answers lookups, refuses LOG_REQ and LOG_RM', async () => {
    const plain = svpClient('plain', pki, `${plainSvp.host}:${plainSvp.port}`);
    try {
      const vl3 = await plain.vl3('10.20.0.11', vnet);
      assert.equal(vl3.status, SvpStatus.OK);
      assert.equal(vl3.ip, UL[N1]);
      assert.equal((await plain.logReq(UL[N1]!, 65536)).status, SvpStatus.FATAL);
      assert.equal((await plain.logRm(['01234567-89ab-7def-8123-456789abcdef'])).status, SvpStatus.FATAL);
      assert.ok((await metric('rhumb_svp_requests_refused_total', 'reason="read_only"')) >= 2);
    } finally {
      plain.close();
    }
  });

  it('`rhumb svp` with an operator certificate talks TLS', () => {
    const out = cli('svp', 'vl3', '10.20.0.12', String(vnet), '--server', svpAddr(), '--tls-dir', pki, '--cert', 'ops.pem', '--key', 'ops-key.pem', '--json');
    assert.equal(JSON.parse(out).ip, UL[N2]);
  });

  it('`rhumb encryption show` verifies the controller and sends RHUMB_TOKEN; a node certificate may not', () => {
    const run = (env: Record<string, string>, ...extra: string[]) =>
      execFileSync(process.execPath, [CLI, 'encryption', 'show', '--api', ctl.restUrl, '--tls-dir', pki, '--json', ...extra], {
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, RHUMB_TOKEN: '', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    assert.equal(JSON.parse(run({ RHUMB_TOKEN: ADMIN_TOKEN })).mode, 'none');
    assert.equal(JSON.parse(run({}, '--cert', 'ops.pem', '--key', 'ops-key.pem')).mode, 'none', 'an operator certificate');
    assert.throws(() => run({}), /401/);
    assert.throws(() => run({}, '--cert', 'n1.pem', '--key', 'n1-key.pem'), /403/);
  });
});

describe('SVP fuzzing over TLS', () => {
  it('survives ~2 s of random and mutated frames from a node certificate, then still answers', async () => {
    const valid = [
      encodeFrame(SvpOp.PING, 1),
      encodeMessage({ op: SvpOp.VL3_REQ, ip: ipToBytes('10.20.0.11'), type: 1, vnetId: vnet }, 2),
      encodeMessage({ op: SvpOp.LOG_REQ, count: 1024, ip: ipToBytes(UL[N2]!) }, 3),
      encodeMessage({ op: SvpOp.LOG_RM, ids: [uuidToBytes('01234567-89ab-7def-8123-456789abcdef')] }, 4),
    ];
    const rnd = (n: number) => Math.floor(Math.random() * n);
    const mutant = (): Buffer => {
      const b = Buffer.from(valid[rnd(valid.length)]!);
      const k = rnd(3);
      if (k === 0) b[rnd(b.length)] = rnd(256);
      else if (k === 1) {
        b.writeUInt16BE(rnd(20), 2);
        b.writeUInt32BE(0, 12);
        b.writeUInt32BE(crc32(b.subarray(16), crc32(b.subarray(0, 16))) >>> 0, 12);
      } else return b.subarray(0, rnd(b.length));
      return b;
    };
    const deadline = performance.now() + 2000;
    let connections = 0;
    await Promise.all(
      Array.from({ length: 3 }, async () => {
        while (performance.now() < deadline) {
          const raw = await RawSvp.connectTls(ctl.svp!.port, tlsFor('n1'), ctl.svp!.host);
          connections++;
          for (let i = 0; i < 1 + rnd(6) && !raw.isClosed; i++) raw.send(rnd(3) === 0 ? valid[rnd(valid.length)]! : mutant());
          await raw.closesWithin(200);
          raw.destroy();
        }
      }),
    );
    assert.ok(connections > 5, `fuzzed ${connections} connections`);
    const raw = await RawSvp.connectTls(ctl.svp!.port, tlsFor('n2'), ctl.svp!.host);
    try {
      raw.send(encodeMessage({ op: SvpOp.VL3_REQ, ip: ipToBytes('10.20.0.12'), type: 1, vnetId: vnet }, 77));
      const vl3 = decodeMessage(await raw.reply(77));
      assert.equal(vl3.op, SvpOp.VL3_ACK);
      assert.equal((vl3 as { status: number }).status, SvpStatus.OK);
    } finally {
      raw.destroy();
    }
  });
});

describe('SIGHUP re-reads the auth file', () => {
  it('a new token works, a removed one stops; a broken file keeps the tokens in force', async () => {
    const fresh = 'fresh-0123456789abcdef';
    const hup = async () => {
      const n = ctl.stdout.filter((l) => /credentials reloaded/.test(l)).length;
      ctl.proc.kill('SIGHUP');
      for (let i = 0; i < 100 && ctl.stdout.filter((l) => /credentials reloaded/.test(l)).length === n; i++) await new Promise((r) => setTimeout(r, 50));
    };
    assert.equal((await rest(fresh)('GET', '/nics')).status, 401);
    await writeFile(authFile, JSON.stringify({ tokens: [{ token: ADMIN_TOKEN, role: 'admin' }, { token: fresh, role: 'owner', owner_uuid: OWNER }] }));
    await hup();
    assert.equal((await rest(fresh)('GET', '/nics')).status, 200);
    await writeFile(authFile, JSON.stringify({ tokens: [{ token: fresh, role: 'owner', owner_uuid: OWNER }] }));
    await hup();
    assert.equal((await admin('GET', '/nics')).status, 401, 'the removed admin token stops at once');
    await writeFile(authFile, '{"tokens": [');
    await hup();
    const freshOwner = rest(fresh);
    assert.equal((await freshOwner('GET', '/nics')).status, 200, 'a broken file keeps what is in force');
    await writeFile(authFile, JSON.stringify({ tokens: [{ token: ADMIN_TOKEN, role: 'admin' }] }));
    await hup();
    assert.equal((await admin('GET', '/nics')).status, 200);
    assert.ok((await metric('rhumb_auth_reloads_total', 'result="error"')) >= 1);
  });
});

describe('refusals are counted', () => {
  it('REST refusals by reason', async () => {
    await rest()('GET', '/nics');
    assert.ok((await metric('rhumb_rest_refused_total', 'reason="unauthenticated"')) >= 1);
    // A plaintext attempt on the HTTPS port is a failed handshake.
    await new Promise<void>((resolve) => {
      const s = net.connect(Number(new URL(ctl.restUrl).port), '127.0.0.1', () => s.write('GET /ping HTTP/1.1\r\nHost: x\r\n\r\n'));
      s.on('error', () => resolve());
      s.on('close', () => resolve());
      s.resume();
    });
    assert.ok((await metric('rhumb_rest_refused_total', 'reason="tls"')) >= 1);
    // Sanity: tls is what the test thinks it is.
    assert.equal(typeof tls.connect, 'function');
  });
});
