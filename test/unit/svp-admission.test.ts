/** The SVP connection caps' bookkeeping: total and per-peer limits, release, peer keys. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PeerAdmission, peerKey } from '../../src/svp/admission.js';

describe('PeerAdmission', () => {
  it('admits up to maxPerPeer from one peer, and others beside it', () => {
    const a = new PeerAdmission({ maxTotal: 10, maxPerPeer: 2 });
    assert.equal(a.admit('10.0.0.1'), null);
    assert.equal(a.admit('10.0.0.1'), null);
    assert.equal(a.admit('10.0.0.1'), 'per_peer');
    assert.equal(a.admit('10.0.0.2'), null);
    assert.equal(a.open, 3);
    assert.equal(a.peers, 2);
  });

  it('refuses over maxTotal whoever asks (total is checked first), and nothing is taken by a refusal', () => {
    const a = new PeerAdmission({ maxTotal: 3, maxPerPeer: 2 });
    for (const p of ['a', 'a', 'b']) assert.equal(a.admit(p), null);
    assert.equal(a.admit('c'), 'total');
    assert.equal(a.admit('a'), 'total');
    assert.equal(a.open, 3);
    assert.equal(a.peers, 2);
  });

  it('gives slots back on release; releasing an unknown peer changes nothing', () => {
    const a = new PeerAdmission({ maxTotal: 2, maxPerPeer: 1 });
    assert.equal(a.admit('a'), null);
    assert.equal(a.admit('b'), null);
    a.release('a');
    assert.equal(a.open, 1);
    assert.equal(a.peers, 1);
    assert.equal(a.admit('a'), null);
    a.release('zzz');
    assert.equal(a.open, 2);
    a.release('a');
    a.release('b');
    assert.equal(a.open, 0);
    assert.equal(a.peers, 0, 'no per-peer entry is left behind');
  });

  it('rejects limits that are not positive integers', () => {
    assert.throws(() => new PeerAdmission({ maxTotal: 0, maxPerPeer: 1 }), /maxTotal must be a positive integer/);
    assert.throws(() => new PeerAdmission({ maxTotal: 1, maxPerPeer: 1.5 }), /maxPerPeer must be a positive integer/);
  });
});

describe('peerKey', () => {
  it('counts an IPv4-mapped IPv6 address as its IPv4 address', () => {
    assert.equal(peerKey('::ffff:198.18.0.1'), '198.18.0.1');
    assert.equal(peerKey('::FFFF:198.18.0.1'), '198.18.0.1');
    assert.equal(peerKey('198.18.0.1'), '198.18.0.1');
    assert.equal(peerKey('fd00::1'), 'fd00::1');
    assert.equal(peerKey('::ffff:1:2'), '::ffff:1:2');
    assert.equal(peerKey(undefined), '?');
  });
});
