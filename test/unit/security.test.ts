/**
 * The pure pieces of src/security and the controller's exposure warnings: the auth file,
 * bearer headers, principals from certificates, the rate limiter and in-flight counter,
 * SAN and client-name checks, the SVP policy of each principal.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLoopbackHost, startupWarnings } from '../../src/controller/warnings.js';
import { principalFromCert } from '../../src/security/identity.js';
import { InFlight, RateLimiter } from '../../src/security/limits.js';
import { clientNameProblem, sanEntries } from '../../src/security/pki.js';
import { AuthFileError, bearerToken, parseAuthFile } from '../../src/security/tokens.js';
import { policyFor } from '../../src/svp/server.js';

const UUID = 'aaaaaaaa-0000-4000-8000-00000000000a';
const T = '0123456789abcdef0123';

describe('auth file', () => {
  it('parses the three roles; tokens are kept as digests', () => {
    const m = parseAuthFile(
      JSON.stringify({
        tokens: [
          { token: `a${T}`, role: 'admin', name: 'ops' },
          { token: `n${T}`, role: 'node', node_uuid: UUID.toUpperCase() },
          { token: `o${T}`, role: 'owner', owner_uuid: UUID },
        ],
      }),
    );
    assert.deepEqual([...m.values()], [
      { role: 'admin', name: 'token:ops' },
      { role: 'node', node: UUID, name: 'token:1' },
      { role: 'owner', owner: UUID, name: 'token:2' },
    ]);
    for (const k of m.keys()) assert.match(k, /^[0-9a-f]{64}$/);
  });

  it('refuses every mistake, saying where', () => {
    const bad: Array<[unknown, RegExp]> = [
      ['nope', /not JSON/],
      [{}, /expected \{"tokens"/],
      [{ tokens: [{ token: 'short', role: 'admin' }] }, /tokens\[0\]\.token must be 16-512/],
      [{ tokens: [{ token: `has space ${T}`, role: 'admin' }] }, /visible ASCII/],
      [{ tokens: [{ token: T, role: 'root' }] }, /role must be admin, node or owner/],
      [{ tokens: [{ token: T, role: 'node' }] }, /needs node_uuid/],
      [{ tokens: [{ token: T, role: 'owner', owner_uuid: 'x' }] }, /needs owner_uuid/],
      [{ tokens: [{ token: T, role: 'admin', owner_uuid: UUID }] }, /takes no owner_uuid/],
      [{ tokens: [{ token: T, role: 'owner', owner_uuid: UUID, node_uuid: UUID }] }, /takes no node_uuid/],
      [{ tokens: [{ token: T, role: 'admin', extra: 1 }] }, /unknown field\(s\) extra/],
      [{ tokens: [{ token: T, role: 'admin' }, { token: T, role: 'admin' }] }, /tokens\[1\]: the same token is listed twice/],
      [{ tokens: [null] }, /tokens\[0\] must be an object/],
    ];
    for (const [doc, re] of bad) {
      assert.throws(() => parseAuthFile(typeof doc === 'string' ? doc : JSON.stringify(doc)), (e: Error) => e instanceof AuthFileError && re.test(e.message), JSON.stringify(doc));
    }
  });

  it('reads Bearer headers only', () => {
    assert.equal(bearerToken(`Bearer ${T}`), T);
    assert.equal(bearerToken(`bearer   ${T} `), T);
    assert.equal(bearerToken(`Basic ${T}`), undefined);
    assert.equal(bearerToken('Bearer a b'), undefined);
    assert.equal(bearerToken(undefined), undefined);
  });
});

describe('principals from certificates', () => {
  it('a node URI makes a node, the admin URI an admin, anything else a client with no role', () => {
    assert.deepEqual(principalFromCert({ subject: { CN: 'n1' }, subjectaltname: `URI:urn:rhumb:node:${UUID}` }), { role: 'node', node: UUID, name: 'cert:n1' });
    assert.deepEqual(principalFromCert({ subject: { CN: 'ops' }, subjectaltname: 'URI:urn:rhumb:admin' }), { role: 'admin', name: 'cert:ops' });
    for (const san of [undefined, 'DNS:localhost', `URI:urn:rhumb:node:${UUID}, URI:urn:rhumb:admin`, `URI:urn:rhumb:node:${UUID}, URI:urn:rhumb:node:${UUID.replace('a', 'b')}`, 'URI:urn:rhumb:node:not-a-uuid']) {
      assert.equal(principalFromCert({ subject: { CN: 'x' }, subjectaltname: san }).role, 'client', String(san));
    }
  });

  it('on SVP: operators anything, nodes their own log, role-less certificates lookups only', () => {
    assert.deepEqual(policyFor({ role: 'admin', name: 'a' }), { readOnly: false, node: undefined });
    assert.deepEqual(policyFor({ role: 'node', node: UUID, name: 'n' }), { readOnly: false, node: UUID });
    assert.deepEqual(policyFor({ role: 'client', name: 'c' }), { readOnly: true, node: undefined });
    assert.deepEqual(policyFor({ role: 'owner', owner: UUID, name: 'o' }), { readOnly: true, node: undefined });
  });
});

describe('limits bookkeeping', () => {
  it('a token bucket per client: a burst, then the sustained rate; clients apart', () => {
    const r = new RateLimiter({ perSecond: 10, burst: 5 });
    let t = 1000;
    const taken = Array.from({ length: 8 }, () => r.take('a', t)).filter(Boolean).length;
    assert.equal(taken, 5);
    assert.equal(r.take('b', t), true, 'another client has its own bucket');
    t += 100; // one token back
    assert.equal(r.take('a', t), true);
    assert.equal(r.take('a', t), false);
    t += 10_000;
    assert.equal(Array.from({ length: 8 }, () => r.take('a', t)).filter(Boolean).length, 5, 'refills to the burst, no more');
  });

  it('remembers a bounded number of clients (the least recently seen go first)', () => {
    const r = new RateLimiter({ perSecond: 1, burst: 1, maxClients: 3 });
    for (const k of ['a', 'b', 'c', 'd']) r.take(k, 0);
    assert.equal(r.clients, 3);
    assert.equal(r.take('a', 0), true, 'a was forgotten: it starts full');
    assert.equal(r.take('d', 0), false, 'd is remembered');
  });

  it('in flight: at most max, released slots reusable', () => {
    const f = new InFlight(2);
    assert.equal(f.tryEnter(), true);
    assert.equal(f.tryEnter(), true);
    assert.equal(f.tryEnter(), false);
    f.leave();
    assert.equal(f.tryEnter(), true);
    assert.throws(() => new InFlight(0), RangeError);
  });
});

describe('PKI input checks', () => {
  it('SANs are IP addresses or DNS names, nothing that could break openssl arguments', () => {
    assert.deepEqual(sanEntries(['10.0.0.1,ctl.example', '::1', 'IP:10.0.0.1', 'DNS:Other.Example']), ['IP:10.0.0.1', 'DNS:ctl.example', 'IP:::1', 'DNS:other.example']);
    for (const bad of ['a,b=c', 'x y', 'email:a@b', 'ctl.example/x', 'URI:urn:rhumb:admin', '-bad']) assert.throws(() => sanEntries([bad]), /--san takes/, bad);
  });

  it('client names are plain file names', () => {
    assert.equal(clientNameProblem('n1.node-7_x'), undefined);
    for (const bad of ['', '.hidden', '-x', '../n1', 'a/b', 'a b', 'ca', 'server', 'x'.repeat(65), '/CN=x']) assert.ok(clientNameProblem(bad), bad);
  });
});

describe('start-up warnings', () => {
  const base = { rest: { host: '127.0.0.1' }, svp: '127.0.0.1', svpPlaintext: undefined, tls: false, tokens: false, metricsOpen: false };

  it('none on loopback', () => {
    assert.deepEqual(startupWarnings(base), []);
    for (const h of ['127.0.0.1', '127.9.9.9', '::1', 'localhost', '::ffff:127.0.0.1', '[::1]']) assert.ok(isLoopbackHost(h), h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '198.18.0.1']) assert.ok(!isLoopbackHost(h), h);
  });

  it('beyond loopback: without TLS, without tokens, an open plaintext SVP listener', () => {
    const w = startupWarnings({ ...base, rest: { host: '0.0.0.0' }, svp: '0.0.0.0', svpPlaintext: '0.0.0.0' });
    assert.equal(w.length, 3);
    assert.match(w[0]!, /REST and SVP listen beyond loopback without TLS/);
    assert.match(w[1]!, /without --auth-file/);
    assert.match(w[2]!, /plaintext SVP listener/);
    assert.deepEqual(startupWarnings({ ...base, rest: { host: '0.0.0.0' }, svp: '0.0.0.0', tls: true, tokens: true }), []);
  });
});
