/**
 * The server fast path's pure pieces: the JS CRC-32 against zlib's, and the in-place ack
 * writers against the codec's encoders (golden frames from the spec included).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import {
  FrameDecoder,
  SvpOp,
  SvpStatus,
  checkFrameHeader,
  encodeFrame,
  encodePong,
  encodeVl2Ack,
  encodeVl3Ack,
  frameCrc,
} from '../../src/svp/codec.js';
import { ipToBytes, macToBytes } from '../../src/net/addr.js';
import { crc32Range, crc32Zero4, frameCrcAt } from '../../src/svp/crc32.js';
import { putPong, putVl2Ack, putVl3Ack } from '../../src/svp/frame-put.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const ID1 = Buffer.from('01000000', 'hex');

let seed = 99;
const rnd = (n: number): number => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed % n;
};
const randomBytes = (n: number): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = rnd(256);
  return b;
};

describe('svp crc32 (JS tables)', () => {
  it('equals zlib crc32 over any range, short and long, and when continued', () => {
    const buf = randomBytes(2048);
    for (let k = 0; k < 3000; k++) {
      const start = rnd(1024);
      const end = start + rnd(k % 10 === 0 ? 1024 : 64);
      assert.equal(crc32Range(buf, start, end), crc32(buf.subarray(start, end)), `[${start}, ${end})`);
      const mid = start + rnd(end - start + 1);
      assert.equal(crc32Range(buf, mid, end, crc32Range(buf, start, mid)), crc32(buf.subarray(start, end)));
    }
  });

  it('crc32Zero4 continues over four zero bytes', () => {
    const buf = randomBytes(40);
    const c = crc32Range(buf, 0, 12);
    assert.equal(crc32Zero4(c), crc32(Buffer.alloc(4), c));
  });

  it('frameCrcAt: the spec CRC of a frame anywhere in a buffer, crc field ignored', () => {
    const ping = hex('00 01 00 01 00 00 00 00 00 00 00 07 3a f6 95 28');
    const vl3 = hex('00 01 00 05 00 00 00 18 01 00 00 00 31 8a 83 5a 00 00 00 00 00 00 00 00 00 00 ff ff 0a 00 00 01 00 00 00 01 00 00 30 34');
    const buf = Buffer.concat([randomBytes(3), ping, vl3]);
    assert.equal(frameCrcAt(buf, 3, 0), 0x3af69528);
    assert.equal(frameCrcAt(buf, 19, 24), 0x318a835a);
    buf.writeUInt32BE(0xdeadbeef, 19 + 12); // the crc field itself does not count
    assert.equal(frameCrcAt(buf, 19, 24), 0x318a835a);
    assert.equal(frameCrc(vl3.subarray(0, 16), vl3.subarray(16)), 0x318a835a);
  });
});

describe('svp frame-put', () => {
  it('golden frames: VL2_ACK OK and NOTFOUND, VL3_ACK OK, PONG', () => {
    const out = Buffer.alloc(200, 0xee);
    let o = putVl2Ack(out, 0, ID1, 0, SvpStatus.OK, 4789, ipToBytes('192.168.1.1'));
    assert.deepEqual(
      out.subarray(0, o),
      hex('00 01 00 04 00 00 00 14 01 00 00 00 13 cc c0 29 00 00 12 b5 00 00 00 00 00 00 00 00 00 00 ff ff c0 a8 01 01'),
    );
    const o2 = putVl2Ack(out, o, ID1, 0, SvpStatus.NOTFOUND, 0, null);
    assert.deepEqual(out.subarray(o, o2), hex('00 01 00 04 00 00 00 14 01 00 00 00 da 45 f2 e9 00 02 00 00' + '00'.repeat(16)));
    o = putVl3Ack(out, o2, ID1, 0, SvpStatus.OK, macToBytes('00:0a:95:9d:68:16'), 4789, ipToBytes('192.168.1.1'));
    assert.deepEqual(
      out.subarray(o2, o),
      hex('00 01 00 06 00 00 00 1c 01 00 00 00 8c 2a c5 11 00 00 00 00 00 0a 95 9d 68 16 12 b5 00 00 00 00 00 00 00 00 00 00 ff ff c0 a8 01 01'),
    );
    const o3 = putPong(out, o, Buffer.from('00000007', 'hex'), 0);
    assert.deepEqual(out.subarray(o, o3), encodePong(7));
    assert.ok(out.subarray(o3).every((b) => b === 0xee), 'nothing written past the frames');
  });

  it('the same bytes as the codec encoders for random ids, statuses and addresses, at any offset', () => {
    for (let k = 0; k < 500; k++) {
      const idBytes = randomBytes(4);
      const id = idBytes.readUInt32BE(0);
      const mac = randomBytes(6);
      const ip = randomBytes(16);
      const port = rnd(65536);
      const status = rnd(5);
      const zero = rnd(2) === 0;
      const at = rnd(50);
      const out = Buffer.alloc(at + 44 + 8, 0xee);
      const end3 = putVl3Ack(out, at, idBytes, 0, status, zero ? null : mac, port, zero ? null : ip);
      assert.equal(end3, at + 44);
      assert.deepEqual(out.subarray(at, end3), encodeVl3Ack(id, status, zero ? null : mac, port, zero ? null : ip));
      assert.ok(out.subarray(0, at).every((b) => b === 0xee) && out.subarray(end3).every((b) => b === 0xee));
      const end2 = putVl2Ack(out, at, idBytes, 0, status, port, zero ? null : ip);
      assert.equal(end2, at + 36);
      assert.deepEqual(out.subarray(at, end2), encodeVl2Ack(id, status, port, zero ? null : ip));
      const src = Buffer.concat([randomBytes(5), idBytes]);
      assert.deepEqual(out.subarray(at, putPong(out, at, src, 5)), encodePong(id));
    }
  });

  it('checkFrameHeader refuses what the decoder refuses, for the same reason', () => {
    const cases: [Buffer, string | undefined][] = [
      [encodeFrame(SvpOp.PING, 1, undefined, 2), 'bad_version'],
      [encodeFrame(0x2a, 1), 'unknown_op'],
      [encodeFrame(SvpOp.VL3_ACK, 1, Buffer.alloc(28)), 'response_op'],
      [encodeFrame(SvpOp.VL3_REQ, 1, Buffer.alloc(24)), undefined],
    ];
    const oversize = encodeFrame(SvpOp.LOG_RM, 1, Buffer.alloc(4));
    oversize.writeUInt32BE(70_000, 4);
    cases.push([oversize.subarray(0, 16), 'oversize']);
    for (const [frame, want] of cases) {
      const got = checkFrameHeader(frame.readUInt16BE(0), frame.readUInt16BE(2), frame.readUInt32BE(4), 'server', 65536);
      assert.equal(got?.reason, want);
      assert.equal(new FrameDecoder({ role: 'server' }).push(frame).error?.reason, want);
    }
  });
});
