/**
 * `rhumb pki init` and `rhumb pki issue` through the CLI: the files, their modes, what the
 * certificates say (openssl reads them back), and refusals that change nothing.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CLI } from '../helpers/processes.js';

const NODE = '11111111-2222-4333-8444-555555555555';
let dir: string;

const rhumb = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
const openssl = (...args: string[]) => spawnSync('openssl', args, { encoding: 'utf8' });

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rhumb-pki-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('rhumb pki', () => {
  it('init: a CA and the controller certificate with the SANs asked for; keys 0600, directory 0700', async () => {
    const pki = join(dir, 'a');
    const r = rhumb('pki', 'init', pki, '--san', '198.18.3.254', '--san', 'ctl.example,127.0.0.1');
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual((await readdir(pki)).sort(), ['ca-key.pem', 'ca.pem', 'server-key.pem', 'server.pem']);
    assert.equal((await stat(pki)).mode & 0o777, 0o700);
    for (const [f, mode] of [['ca-key.pem', 0o600], ['server-key.pem', 0o600], ['ca.pem', 0o644], ['server.pem', 0o644]] as const) {
      assert.equal((await stat(join(pki, f))).mode & 0o777, mode, f);
    }
    assert.match(openssl('verify', '-CAfile', join(pki, 'ca.pem'), join(pki, 'server.pem')).stdout, /OK/);
    const text = openssl('x509', '-in', join(pki, 'server.pem'), '-noout', '-text').stdout;
    assert.match(text, /IP Address:198\.18\.3\.254, DNS:ctl\.example, IP Address:127\.0\.0\.1/);
    assert.match(text, /TLS Web Server Authentication/);
    assert.match(openssl('x509', '-in', join(pki, 'ca.pem'), '-noout', '-text').stdout, /CA:TRUE/);
  });

  it('issue: a node certificate names its node; an operator certificate is admin; both chain to the CA', () => {
    const pki = join(dir, 'a');
    assert.equal(rhumb('pki', 'issue', pki, '--name', 'n1', '--node', NODE.toUpperCase()).status, 0);
    assert.equal(rhumb('pki', 'issue', pki, '--name', 'ops').status, 0);
    const n1 = openssl('x509', '-in', join(pki, 'n1.pem'), '-noout', '-text').stdout;
    assert.match(n1, new RegExp(`URI:urn:rhumb:node:${NODE}`));
    assert.match(n1, /TLS Web Client Authentication/);
    assert.match(n1, /Subject: CN ?= ?n1/);
    assert.match(openssl('x509', '-in', join(pki, 'ops.pem'), '-noout', '-text').stdout, /URI:urn:rhumb:admin/);
    for (const f of ['n1.pem', 'ops.pem']) assert.match(openssl('verify', '-CAfile', join(pki, 'ca.pem'), join(pki, f)).stdout, /OK/);
  });

  it('refuses to overwrite, bad names, bad SANs and a missing CA, changing nothing', async () => {
    const pki = join(dir, 'a');
    const before = (await readdir(pki)).sort();
    const cases: Array<[string[], RegExp]> = [
      [['pki', 'init', pki], /exists already: nothing was changed/],
      [['pki', 'issue', pki, '--name', 'n1'], /n1\.pem exists already/],
      [['pki', 'issue', pki, '--name', '../evil'], /--name must be/],
      [['pki', 'issue', pki, '--name', 'x', '--node', 'not-a-uuid'], /--node must be a UUID/],
      [['pki', 'issue', join(dir, 'none'), '--name', 'x'], /ca\.pem is missing: run `rhumb pki init/],
      [['pki', 'init', join(dir, 'b'), '--san', 'a,b=c'], /--san takes IP addresses and DNS names/],
    ];
    for (const [args, re] of cases) {
      const r = rhumb(...args);
      assert.notEqual(r.status, 0, args.join(' '));
      assert.match(r.stderr, re, args.join(' '));
    }
    assert.deepEqual((await readdir(pki)).sort(), before, 'no file added or left half-made');
    assert.deepEqual((await readdir(dir)).sort(), ['a'], 'a refused init made no directory');
  });
});
