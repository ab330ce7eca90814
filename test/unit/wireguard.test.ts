/**
 * The encrypted underlay's pure parts: key, endpoint and subnet checks, tunnel addressing,
 * the peer views and their problems (overlay/wireguard.ts); the agent's peer plan and its
 * `wg set` arguments, and what a move of a node's underlay address changes (agent/wireguard/plan.ts), the cleartext guard's nftables text
 * (guard.ts), key derivation and the key files (keys.ts).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { guardCounters, guardRuleset } from '../../src/agent/wireguard/guard.js';
import { NodeKeys, publicKeyOf } from '../../src/agent/wireguard/keys.js';
import { type PeerConfig, interfaceAddressSteps, movedPeers, ownRecord, peerCommands, planPeers } from '../../src/agent/wireguard/plan.js';
import { wireguardIfname } from '../../src/agent/wireguard/device.js';
import {
  type PeerView,
  type WireguardNodeRecord,
  endpointProblem,
  parseEndpoint,
  peerViews,
  tunnelAddress,
  tunnelSubnetProblem,
  wireguardKeyProblem,
} from '../../src/overlay/wireguard.js';

// RFC 7748 §6.1: Alice's and Bob's X25519 keys.
const ALICE_PRIV = Buffer.from('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a', 'hex').toString('base64');
const ALICE_PUB = Buffer.from('8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a', 'hex').toString('base64');
const BOB_PUB = Buffer.from('de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f', 'hex').toString('base64');
const K3 = Buffer.alloc(32, 3).toString('base64');
const K4 = Buffer.alloc(32, 4).toString('base64');
const SUBNET = '100.64.0.0/10';

describe('overlay/wireguard: checks', () => {
  test('a WireGuard key is canonical base64 of 32 bytes, not all zeros', () => {
    assert.equal(wireguardKeyProblem(ALICE_PUB), undefined);
    for (const bad of [undefined, 42, '', 'abc', ALICE_PUB.slice(0, 43), `${ALICE_PUB.slice(0, 42)}B=`, Buffer.alloc(31).toString('base64'), `${ALICE_PUB}\n`, Buffer.alloc(32).toString('base64')]) {
      assert.ok(wireguardKeyProblem(bad), `accepted ${JSON.stringify(bad)}`);
    }
    assert.match(wireguardKeyProblem(Buffer.alloc(32).toString('base64'))!, /all zeros/);
  });

  test('endpoints are IP:PORT or [IPv6]:PORT', () => {
    assert.deepEqual(parseEndpoint('198.18.0.1:51820'), { ip: '198.18.0.1', port: 51820 });
    assert.deepEqual(parseEndpoint('[fd00::1]:1'), { ip: 'fd00::1', port: 1 });
    for (const bad of ['198.18.0.1', '198.18.0.1:0', '198.18.0.1:65536', 'host:51820', '[198.18.0.1]:5', '1.2.3.999:5', 'fd00::1:5', '198.18.0.1:5 ']) {
      assert.equal(parseEndpoint(bad), undefined, bad);
    }
    assert.equal(endpointProblem(undefined), 'no endpoint');
    assert.match(endpointProblem('nope')!, /not IP:PORT/);
  });

  test('the tunnel subnet is an IPv4 network /8 to /30', () => {
    assert.equal(tunnelSubnetProblem('100.64.0.0/10'), undefined);
    assert.match(tunnelSubnetProblem('100.64.0.1/10')!, /not a network address/);
    assert.match(tunnelSubnetProblem('fd00::/64')!, /IPv4/);
    assert.match(tunnelSubnetProblem('10.0.0.0/31')!, /\/8 to \/30/);
    assert.match(tunnelSubnetProblem('x')!, /not a CIDR/);
  });

  test("a node's tunnel address is its underlay address's host bits in the subnet", () => {
    assert.equal(tunnelAddress('198.18.7.1', SUBNET), '100.82.7.1');
    assert.equal(tunnelAddress('10.1.2.3', '172.16.0.0/16'), '172.16.2.3');
    assert.throws(() => tunnelAddress('10.1.0.0', '172.16.0.0/16'), /network or broadcast/);
    assert.throws(() => tunnelAddress('10.1.255.255', '172.16.0.0/16'), /network or broadcast/);
    assert.throws(() => tunnelAddress('fd00::1', SUBNET), /IPv4 underlay/);
  });
});

describe('overlay/wireguard: peer views', () => {
  const rec = (public_key: string, endpoint = '198.18.0.1:51820') => ({ public_key, endpoint });

  test('views join underlay and records; a node without a record has no key', () => {
    const views = peerViews(
      new Map([
        ['a', '198.18.0.1'],
        ['b', '198.18.0.2'],
      ]),
      new Map([['a', rec(ALICE_PUB)], ['gone', rec(BOB_PUB)]]),
      SUBNET,
    );
    assert.deepEqual([...views.keys()], ['a', 'b'], 'a record without an underlay address is no node');
    assert.deepEqual(views.get('a'), { cn_uuid: 'a', underlay_ip: '198.18.0.1', tunnel_ip: '100.82.0.1', public_key: ALICE_PUB, endpoint: '198.18.0.1:51820' });
    assert.equal(views.get('b')!.problem, 'no WireGuard key published');
  });

  test('colliding tunnel addresses and shared keys are problems of every node involved', () => {
    const views = peerViews(
      new Map([
        ['a', '198.18.0.1'],
        ['b', '10.18.0.1'], // same low 22 bits as a
        ['c', '198.18.0.3'],
        ['d', '198.18.0.4'],
      ]),
      new Map<string, Partial<WireguardNodeRecord>>([['a', rec(ALICE_PUB)], ['b', rec(BOB_PUB)], ['c', rec(K3)], ['d', { ...rec(K4), next_public_key: K3 }]]),
      SUBNET,
    );
    assert.match(views.get('a')!.problem!, /tunnel address 100\.82\.0\.1 is also that of node\(s\) b/);
    assert.match(views.get('b')!.problem!, /also that of node\(s\) a/);
    assert.match(views.get('c')!.problem!, /also published by node\(s\) d/);
    assert.match(views.get('d')!.problem!, /also published by node\(s\) c/);
  });

  test('a malformed record is a problem naming the field', () => {
    const views = peerViews(new Map([['a', '198.18.0.1']]), new Map([['a', { public_key: 'short', endpoint: '198.18.0.1:51820' }]]), SUBNET);
    assert.match(views.get('a')!.problem!, /^public_key: /);
  });
});

describe('agent/wireguard: peer plan', () => {
  const view = (cn: string, ip: string, key: string | undefined, extra: Partial<PeerView> = {}): PeerView => ({
    cn_uuid: cn,
    underlay_ip: ip,
    tunnel_ip: tunnelAddress(ip, SUBNET),
    ...(key ? { public_key: key, endpoint: `${ip}:51820` } : {}),
    ...extra,
  });

  test('every other node with a good record is a peer with its tunnel address; self is not', () => {
    const plan = planPeers([view('me', '198.18.0.1', ALICE_PUB), view('b', '198.18.0.2', BOB_PUB)], 'me', SUBNET);
    assert.deepEqual([...plan.peers.values()], [{ publicKey: BOB_PUB, endpoint: '198.18.0.2:51820', allowedIps: ['100.82.0.2/32'] }]);
    assert.deepEqual(plan.problems, []);
    assert.equal(plan.tunnels.get('b'), '100.82.0.2');
  });

  test('bad records are left out, each with its reason, whatever the controller said', () => {
    const plan = planPeers(
      [
        view('nokey', '198.18.0.2', undefined),
        view('badkey', '198.18.0.3', 'AAAA'),
        view('noep', '198.18.0.4', K3, { endpoint: undefined }),
        view('badep', '198.18.0.5', K4, { endpoint: 'somewhere' }),
        view('lying', '198.18.0.6', BOB_PUB, { tunnel_ip: '100.64.0.9' }),
      ],
      'me',
      SUBNET,
    );
    assert.equal(plan.peers.size, 0);
    assert.deepEqual(
      plan.problems.map((p) => [p.cn_uuid, p.reason]),
      [
        ['badep', 'bad_record'],
        ['badkey', 'bad_record'],
        ['lying', 'bad_tunnel'],
        ['nokey', 'no_key'],
        ['noep', 'no_endpoint'],
      ].sort((a, b) => (a[0]! < b[0]! ? -1 : 1)),
    );
  });

  test('a key claimed by two nodes configures neither', () => {
    const plan = planPeers([view('b', '198.18.0.2', BOB_PUB), view('c', '198.18.0.3', BOB_PUB), view('d', '198.18.0.4', K3)], 'me', SUBNET);
    assert.deepEqual([...plan.peers.keys()], [K3]);
    assert.deepEqual(plan.problems.map((p) => p.reason), ['duplicate', 'duplicate']);
  });

  test('a rotation: the next key beside the current one with no allowed IPs, then the address moves', () => {
    const during = planPeers([view('b', '198.18.0.2', BOB_PUB, { next_public_key: K3 })], 'me', SUBNET);
    assert.deepEqual(during.peers.get(K3), { publicKey: K3, endpoint: '198.18.0.2:51820', allowedIps: [] });
    assert.deepEqual(during.peers.get(BOB_PUB)!.allowedIps, ['100.82.0.2/32']);
    const afterwards = planPeers([view('b', '198.18.0.2', K3)], 'me', SUBNET);
    assert.deepEqual(peerCommands(during.peers, afterwards.peers), [['peer', BOB_PUB, 'remove', 'peer', K3, 'endpoint', '198.18.0.2:51820', 'allowed-ips', '100.82.0.2/32']]);
  });

  test('wg set arguments: nothing for unchanged peers, removals first, in batches', () => {
    const p = (k: string, ip: string): PeerConfig => ({ publicKey: k, endpoint: `${ip}:51820`, allowedIps: [`${ip}/32`] });
    const cur = new Map([[ALICE_PUB, p(ALICE_PUB, '100.64.0.1')], [BOB_PUB, p(BOB_PUB, '100.64.0.2')]]);
    assert.deepEqual(peerCommands(cur, cur), []);
    const want = new Map([[BOB_PUB, p(BOB_PUB, '100.64.0.2')], [K3, p(K3, '100.64.0.3')], [K4, p(K4, '100.64.0.4')]]);
    assert.deepEqual(peerCommands(cur, want, 2), [
      ['peer', ALICE_PUB, 'remove', 'peer', K3, 'endpoint', '100.64.0.3:51820', 'allowed-ips', '100.64.0.3/32'],
      ['peer', K4, 'endpoint', '100.64.0.4:51820', 'allowed-ips', '100.64.0.4/32'],
    ]);
  });
});

describe('agent/wireguard: guard, names, keys', () => {
  test('the guard drops VXLAN not through the interface: output, then input too', () => {
    assert.equal(guardRuleset(null), 'table inet rhumb_wireguard {}\ndelete table inet rhumb_wireguard\n');
    const out = guardRuleset({ iface: 'rwg0123456789', port: 4789, output: true, input: false });
    assert.match(out, /chain output \{[^}]*oifname != "rwg0123456789" udp dport 4789 counter drop/);
    assert.doesNotMatch(out, /chain input/);
    const both = guardRuleset({ iface: 'rwg0123456789', port: 4789, output: true, input: true });
    assert.match(both, /chain input \{[^}]*iifname != "rwg0123456789" udp dport 4789 counter drop/);
    assert.throws(() => guardRuleset({ iface: 'x"; flush ruleset', port: 4789, output: true, input: true }));
    const json = JSON.stringify({
      nftables: [
        { table: {} },
        { rule: { chain: 'output', expr: [{ match: {} }, { counter: { packets: 7, bytes: 700 } }, { drop: null }] } },
        { rule: { chain: 'input', expr: [{ counter: { packets: 2, bytes: 20 } }] } },
      ],
    });
    assert.deepEqual(guardCounters(json), { output: 7, input: 2 });
    assert.deepEqual(guardCounters('not json'), { output: 0, input: 0 });
  });

  test('interface names are unique per node, stable, and fit 15 characters', () => {
    const a = wireguardIfname('11111111-1111-4111-8111-111111111111');
    assert.match(a, /^rwg[0-9a-f]{10}$/);
    assert.equal(a, wireguardIfname('11111111-1111-4111-8111-111111111111'.toUpperCase()));
    assert.notEqual(a, wireguardIfname('11111111-1111-4111-8111-111111111112'));
  });

  test('public keys are X25519 of the private key (RFC 7748 vector)', () => {
    assert.equal(publicKeyOf(ALICE_PRIV), ALICE_PUB);
    assert.throws(() => publicKeyOf('AAAA'), /32 bytes/);
  });

  test('the key file is made once, 0600 in a 0700 directory; a rotation replaces it', async () => {
    const root = await mkdtemp(join(tmpdir(), 'rhumb-wgkeys-'));
    try {
      const dir = join(root, 'state');
      const keys = new NodeKeys(dir);
      const first = await keys.load();
      assert.equal((await stat(first.file)).mode & 0o777, 0o600);
      assert.equal((await stat(dir)).mode & 0o777, 0o700);
      assert.equal((await keys.load()).publicKey, first.publicKey, 'stable across loads');
      assert.equal(publicKeyOf((await readFile(first.file, 'utf8')).trim()), first.publicKey);
      const next = await keys.makeNext();
      assert.notEqual(next.publicKey, first.publicKey);
      assert.equal((await keys.pendingNext())?.publicKey, next.publicKey);
      const promoted = await keys.promoteNext();
      assert.equal(promoted.publicKey, next.publicKey);
      assert.equal(promoted.file, first.file);
      assert.equal(await keys.pendingNext(), undefined);
      assert.equal((await stat(promoted.file)).mode & 0o777, 0o600);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('agent/wireguard: a node whose underlay address moves', () => {
  const view = (cn: string, ip: string, key: string, endpointIp = ip): PeerView => ({
    cn_uuid: cn,
    underlay_ip: ip,
    tunnel_ip: tunnelAddress(ip, SUBNET),
    public_key: key,
    endpoint: `${endpointIp}:51820`,
  });

  test('its record names the new address as endpoint, with its keys', () => {
    assert.deepEqual(ownRecord({ publicKey: ALICE_PUB }, '198.18.3.120', 51820), { public_key: ALICE_PUB, endpoint: '198.18.3.120:51820' });
    assert.deepEqual(ownRecord({ publicKey: ALICE_PUB, nextPublicKey: K3 }, '198.18.3.120', 51999), {
      public_key: ALICE_PUB,
      next_public_key: K3,
      endpoint: '198.18.3.120:51999',
    });
  });

  test('its interface: the old tunnel address is deleted before the new one (same subnet) is added', () => {
    const from = `${tunnelAddress('198.18.3.2', SUBNET)}/10`;
    const to = `${tunnelAddress('198.18.3.120', SUBNET)}/10`;
    assert.equal(to, '100.82.3.120/10');
    assert.deepEqual(interfaceAddressSteps([from], to), [
      ['addr', 'del', '100.82.3.2/10'],
      ['addr', 'replace', '100.82.3.120/10'],
    ]);
    // In place: nothing. A new interface: the address only. Leftovers of both: the stale one goes.
    assert.deepEqual(interfaceAddressSteps([to], to), []);
    assert.deepEqual(interfaceAddressSteps([], to), [['addr', 'replace', to]]);
    assert.deepEqual(interfaceAddressSteps([from, to], to), [['addr', 'del', from]]);
  });

  test('its peers: the move is seen in the feed and re-configures endpoint and allowed IPs, replacing the old ones', () => {
    const before = new Map([
      ['me', view('me', '198.18.3.1', ALICE_PUB)],
      ['b', view('b', '198.18.3.2', BOB_PUB)],
      ['c', view('c', '198.18.3.3', K3)],
    ]);
    // The API moved b: its view names the new underlay and tunnel address; the endpoint
    // still the old one until b publishes again.
    const apiMoved = new Map(before).set('b', view('b', '198.18.3.120', BOB_PUB, '198.18.3.2'));
    const republished = new Map(before).set('b', view('b', '198.18.3.120', BOB_PUB));
    assert.deepEqual(movedPeers(before, apiMoved, 'me'), [{ cn_uuid: 'b', from: '100.82.3.2', to: '100.82.3.120' }]);
    assert.deepEqual(movedPeers(apiMoved, republished, 'me'), []);
    // Self, a node joining or leaving, an unchanged node: not moves.
    const selfMoved = new Map(before).set('me', view('me', '198.18.3.99', ALICE_PUB));
    assert.deepEqual(movedPeers(before, selfMoved, 'me'), []);
    const joined = new Map(before).set('d', view('d', '198.18.3.4', K4));
    joined.delete('c');
    assert.deepEqual(movedPeers(before, joined, 'me'), []);

    const plan0 = planPeers(before.values(), 'me', SUBNET).peers;
    const plan1 = planPeers(apiMoved.values(), 'me', SUBNET).peers;
    const plan2 = planPeers(republished.values(), 'me', SUBNET).peers;
    // `wg set … allowed-ips` replaces the peer's list: the old tunnel address does not linger.
    assert.deepEqual(peerCommands(plan0, plan1), [['peer', BOB_PUB, 'endpoint', '198.18.3.2:51820', 'allowed-ips', '100.82.3.120/32']]);
    assert.deepEqual(peerCommands(plan1, plan2), [['peer', BOB_PUB, 'endpoint', '198.18.3.120:51820', 'allowed-ips', '100.82.3.120/32']]);
  });
});
