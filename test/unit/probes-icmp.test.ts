import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import {
  ICMP_ECHO_REPLY,
  PROBE_MAGIC,
  encodeEchoRequest,
  internetChecksum,
  isEchoReply,
  parseEcho,
} from '../../src/agent/probes.js';

const hex = (s: string) => Buffer.from(s.replace(/\s/g, ''), 'hex');

/** A 20-byte IPv4 header in front of an ICMP message, as a raw IPv4 socket delivers it. */
function withIpv4Header(icmp: Buffer, extra = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + icmp.length, 2);
  h[8] = 64;
  h[9] = 1;
  h.set([198, 18, 0, 2], 12);
  h.set([198, 18, 0, 1], 16);
  return Buffer.concat([h, icmp, extra]);
}

/** Turns an echo request into the reply a peer would send (type 0, checksum adjusted). */
function toReply(req: Buffer): Buffer {
  const rep = Buffer.from(req);
  rep[0] = ICMP_ECHO_REPLY;
  rep.writeUInt16BE(0, 2);
  rep.writeUInt16BE(internetChecksum(rep), 2);
  return rep;
}

describe('internet checksum', () => {
  it('matches the RFC 1071 worked example', () => {
    // RFC 1071 §3: the sum of 0001 f203 f4f5 f6f7 is ddf2 (after end-around carry).
    assert.equal(internetChecksum(hex('0001 f203 f4f5 f6f7')), ~0xddf2 & 0xffff);
  });

  it('pads an odd length with a zero byte', () => {
    assert.equal(internetChecksum(hex('0001 f203 f4f5 f6')), internetChecksum(hex('0001 f203 f4f5 f600')));
  });

  it('of a message carrying its own checksum is zero', () => {
    const pkt = encodeEchoRequest(4, { id: 0xbeef, seq: 42, payload: Buffer.from('hello, underlay!') });
    assert.equal(internetChecksum(pkt), 0);
  });

  it('agrees with raw-socket createChecksum on many lengths', () => {
    const raw = createRequire(import.meta.url)('raw-socket') as { createChecksum(b: Buffer): number };
    for (let len = 1; len < 80; len++) {
      const b = Buffer.from(Array.from({ length: len }, (_, i) => (i * 37 + len * 11) & 0xff));
      assert.equal(internetChecksum(b), raw.createChecksum(b), `length ${len}`);
    }
  });
});

describe('ICMP echo encode', () => {
  it('encodes a minimal IPv4 echo request byte for byte', () => {
    // type 8, code 0, checksum ~(0x0800 + 0x0001 + 0x0001) = 0xf7fd, id 1, seq 1.
    assert.deepEqual(encodeEchoRequest(4, { id: 1, seq: 1, payload: Buffer.alloc(0) }), hex('0800 f7fd 0001 0001'));
  });

  it('leaves the ICMPv6 checksum to the kernel', () => {
    const pkt = encodeEchoRequest(6, { id: 0x1234, seq: 0xffff, payload: hex('aabb') });
    assert.deepEqual(pkt, hex('8000 0000 1234 ffff aabb'));
  });

  it('refuses ids and sequence numbers outside 16 bits', () => {
    assert.throws(() => encodeEchoRequest(4, { id: 0x10000, seq: 0, payload: Buffer.alloc(0) }), RangeError);
    assert.throws(() => encodeEchoRequest(4, { id: 0, seq: -1, payload: Buffer.alloc(0) }), RangeError);
  });
});

describe('ICMP echo parse', () => {
  const payload = Buffer.concat([PROBE_MAGIC, Buffer.alloc(16)]);
  const req = encodeEchoRequest(4, { id: 0x4242, seq: 7, payload });

  it('parses an IPv4 echo reply behind its IP header', () => {
    const msg = parseEcho(4, withIpv4Header(toReply(req)));
    assert.ok(msg);
    assert.equal(msg.type, ICMP_ECHO_REPLY);
    assert.equal(msg.id, 0x4242);
    assert.equal(msg.seq, 7);
    assert.equal(msg.checksumOk, true);
    assert.deepEqual(msg.payload, payload);
    assert.equal(isEchoReply(4, msg), true);
  });

  it('honours the IP header length and total length', () => {
    // IHL 6 (one option word) and trailing junk after the IP total length.
    const icmp = toReply(req);
    const h = Buffer.alloc(24);
    h[0] = 0x46;
    h.writeUInt16BE(24 + icmp.length, 2);
    const msg = parseEcho(4, Buffer.concat([h, icmp, hex('deadbeef')]));
    assert.equal(msg?.seq, 7);
    assert.equal(msg?.checksumOk, true);
  });

  it('flags a corrupted checksum', () => {
    const rep = toReply(req);
    rep[rep.length - 1] ^= 0x01;
    assert.equal(parseEcho(4, withIpv4Header(rep))?.checksumOk, false);
  });

  it('tells requests from replies', () => {
    const msg = parseEcho(4, withIpv4Header(req));
    assert.equal(msg?.type, 8);
    assert.equal(isEchoReply(4, msg!), false);
  });

  it('parses ICMPv6 echo replies without an IP header', () => {
    const msg = parseEcho(6, hex('8100 0000 0102 0304 cafe'));
    assert.equal(msg?.id, 0x0102);
    assert.equal(msg?.seq, 0x0304);
    assert.equal(isEchoReply(6, msg!), true);
  });

  it('returns null for other ICMP types and for short or malformed input', () => {
    const unreachable = hex('0301 0000 0000 0000');
    assert.equal(parseEcho(4, withIpv4Header(unreachable)), null);
    assert.equal(parseEcho(6, hex('8700 0000 0000 0000')), null);
    assert.equal(parseEcho(4, Buffer.alloc(0)), null);
    assert.equal(parseEcho(4, withIpv4Header(toReply(req)).subarray(0, 27)), null);
    assert.equal(parseEcho(4, hex('6000 0000')), null);
    const badIhl = withIpv4Header(toReply(req));
    badIhl[0] = 0x44;
    assert.equal(parseEcho(4, badIhl), null);
    for (let len = 0; len < 40; len++) {
      assert.doesNotThrow(() => parseEcho(4, withIpv4Header(toReply(req)).subarray(0, len)));
      assert.doesNotThrow(() => parseEcho(6, toReply(req).subarray(0, len)));
    }
  });
});
