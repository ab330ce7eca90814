import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FrameDecoder,
  LogType,
  SvpOp,
  SvpProtocolError,
  SvpStatus,
  decodeMessage,
  encodeBulkAck,
  encodeFrame,
  encodeLogAck,
  encodeLogEntry,
  encodeLogRmAck,
  encodeMessage,
  encodePong,
  encodeVl2Ack,
  encodeVl3Ack,
  frameCrc,
  type SvpMessage,
} from '../../src/svp/codec.js';
import { canonicalIp, ipFromBytes, ipToBytes, isV4Mapped, macFromBytes, macToBytes, uuidFromBytes, uuidToBytes } from '../../src/net/addr.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const ID1 = 0x01000000; // varpd's id 1 on x86: bytes 01 00 00 00

describe('svp codec: golden frames from the spec', () => {
  it('VL2_REQ', () => {
    const frame = encodeMessage({ op: SvpOp.VL2_REQ, mac: macToBytes('00:0a:95:9d:68:16'), vnetId: 12340 }, ID1);
    assert.deepEqual(frame, hex('00 01 00 03 00 00 00 0c 01 00 00 00 8e 78 82 8c 00 0a 95 9d 68 16 00 00 00 00 30 34'));
  });
  it('VL2_ACK OK', () => {
    const want = hex(
      '00 01 00 04 00 00 00 14 01 00 00 00 13 cc c0 29 00 00 12 b5 00 00 00 00 00 00 00 00 00 00 ff ff c0 a8 01 01',
    );
    assert.deepEqual(encodeVl2Ack(ID1, SvpStatus.OK, 4789, ipToBytes('192.168.1.1')), want);
    assert.deepEqual(encodeMessage({ op: SvpOp.VL2_ACK, status: 0, port: 4789, ip: ipToBytes('192.168.1.1') }, ID1), want);
  });
  it('VL2_ACK NOTFOUND', () => {
    const want = hex('00 01 00 04 00 00 00 14 01 00 00 00 da 45 f2 e9 00 02 00 00' + '00'.repeat(16));
    assert.deepEqual(encodeVl2Ack(ID1, SvpStatus.NOTFOUND, 0, null), want);
  });
  it('VL3_REQ', () => {
    const frame = encodeMessage({ op: SvpOp.VL3_REQ, ip: ipToBytes('10.0.0.1'), type: 1, vnetId: 12340 }, ID1);
    assert.deepEqual(
      frame,
      hex(
        '00 01 00 05 00 00 00 18 01 00 00 00 31 8a 83 5a 00 00 00 00 00 00 00 00 00 00 ff ff 0a 00 00 01 00 00 00 01 00 00 30 34',
      ),
    );
  });
  it('VL3_ACK OK', () => {
    const want = hex(
      '00 01 00 06 00 00 00 1c 01 00 00 00 8c 2a c5 11 00 00 00 00 00 0a 95 9d 68 16 12 b5 00 00 00 00 00 00 00 00 00 00 ff ff c0 a8 01 01',
    );
    assert.deepEqual(encodeVl3Ack(ID1, SvpStatus.OK, macToBytes('00:0a:95:9d:68:16'), 4789, ipToBytes('192.168.1.1')), want);
  });
  it('PING with id bytes 00 00 00 07', () => {
    assert.deepEqual(encodeFrame(SvpOp.PING, 7), hex('00 01 00 01 00 00 00 00 00 00 00 07 3a f6 95 28'));
  });
  it('CRC is zlib CRC-32 over the header with a zeroed crc field, then the payload', () => {
    const frame = hex('00 01 00 01 00 00 00 00 00 00 00 07 ff ff ff ff');
    assert.equal(frameCrc(frame.subarray(0, 16), Buffer.alloc(0)), 0x3af69528);
  });
});

describe('svp codec: every message round trips', () => {
  const id = Buffer.from('deadbeef', 'hex');
  const uuid = uuidToBytes('0190a6f4-1c2b-7def-8abc-0123456789ab');
  const messages: SvpMessage[] = [
    { op: SvpOp.PING },
    { op: SvpOp.PONG },
    { op: SvpOp.VL2_REQ, mac: macToBytes('02:00:00:00:00:01'), vnetId: 0xffffff },
    { op: SvpOp.VL2_ACK, status: SvpStatus.NOTFOUND, port: 0, ip: Buffer.alloc(16) },
    { op: SvpOp.VL3_REQ, ip: ipToBytes('fd00::1'), type: 2, vnetId: 7 },
    { op: SvpOp.VL3_ACK, status: SvpStatus.BADL3TYPE, mac: Buffer.alloc(6), port: 0, ip: Buffer.alloc(16) },
    { op: SvpOp.BULK_REQ, type: 1 },
    { op: SvpOp.BULK_ACK, status: SvpStatus.FATAL, type: 2, data: Buffer.alloc(0) },
    { op: SvpOp.LOG_REQ, count: 1024, ip: ipToBytes('192.168.7.9') },
    {
      op: SvpOp.LOG_ACK,
      status: SvpStatus.OK,
      entries: [
        { type: LogType.VL2, id: uuid, mac: macToBytes('02:00:00:00:00:02'), vnetId: 12340 },
        { type: LogType.VL3, id: uuid, ip: ipToBytes('10.1.2.3'), vlan: 42, vnetId: 12340 },
      ],
    },
    { op: SvpOp.LOG_RM, ids: [uuid, Buffer.alloc(16, 0xab)] },
    { op: SvpOp.LOG_RM_ACK, status: SvpStatus.OK },
    { op: SvpOp.SHOOTDOWN, mac: macToBytes('02:00:00:00:00:03'), vnetId: 99 },
  ];
  for (const msg of messages) {
    it(SvpOp[msg.op], () => {
      const frame = encodeMessage(msg, id.readUInt32BE(0));
      assert.deepEqual(frame.subarray(8, 12), id, 'id bytes are echoed verbatim');
      const { frames, error } = new FrameDecoder().push(frame);
      assert.equal(error, undefined);
      assert.equal(frames.length, 1);
      assert.deepEqual(frames[0].payload.length, frame.length - 16);
      assert.deepEqual(decodeMessage(frames[0]), msg);
    });
  }

  it('log entry sizes are 32 (VL2) and 44 (VL3) bytes', () => {
    assert.equal(encodeLogEntry({ type: LogType.VL2, id: uuid, mac: Buffer.alloc(6), vnetId: 1 }).length, 32);
    assert.equal(encodeLogEntry({ type: LogType.VL3, id: uuid, ip: Buffer.alloc(16), vlan: 0, vnetId: 1 }).length, 44);
  });

  it('fast encoders match the message encoder', () => {
    const e = encodeLogEntry({ type: LogType.VL2, id: uuid, mac: macToBytes('02:00:00:00:00:02'), vnetId: 5 });
    assert.deepEqual(
      encodeLogAck(9, 0, [e]),
      encodeMessage(
        { op: SvpOp.LOG_ACK, status: 0, entries: [{ type: LogType.VL2, id: uuid, mac: macToBytes('02:00:00:00:00:02'), vnetId: 5 }] },
        9,
      ),
    );
    assert.deepEqual(encodeLogRmAck(3, 1), encodeMessage({ op: SvpOp.LOG_RM_ACK, status: 1 }, 3));
    assert.deepEqual(encodeBulkAck(3, 1, 2), encodeMessage({ op: SvpOp.BULK_ACK, status: 1, type: 2, data: Buffer.alloc(0) }, 3));
    assert.deepEqual(encodePong(0xffffffff), encodeMessage({ op: SvpOp.PONG }, 0xffffffff));
  });
});

describe('svp codec: addresses', () => {
  it('IPv4 travels v4-mapped and comes back as a dotted quad', () => {
    const b = ipToBytes('10.0.0.1');
    assert.deepEqual(b, hex('00000000000000000000ffff0a000001'));
    assert.ok(isV4Mapped(b));
    assert.equal(ipFromBytes(b), '10.0.0.1');
    assert.equal(ipFromBytes(ipToBytes('::ffff:10.0.0.1')), '10.0.0.1');
  });
  it('IPv6 comes back in RFC 5952 form', () => {
    assert.equal(ipFromBytes(ipToBytes('FD00:0:0:0:0:0:0:1')), 'fd00::1');
    assert.equal(canonicalIp('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
    assert.ok(!isV4Mapped(ipToBytes('fd00::1')));
  });
  it('rejects garbage', () => {
    assert.throws(() => ipToBytes('10.0.0.256'), TypeError);
    assert.throws(() => macToBytes('00:11:22:33:44'), TypeError);
    assert.throws(() => uuidToBytes('not-a-uuid'), TypeError);
  });
  it('MACs and UUIDs round trip', () => {
    assert.equal(macFromBytes(macToBytes('00-0A-95-9D-68-16')), '00:0a:95:9d:68:16');
    const u = '0190a6f4-1c2b-7def-8abc-0123456789ab';
    assert.equal(uuidFromBytes(uuidToBytes(u)), u);
  });
});

describe('svp codec: streaming decoder', () => {
  const ping = encodeFrame(SvpOp.PING, 1);
  const vl2 = encodeMessage({ op: SvpOp.VL2_REQ, mac: macToBytes('02:00:00:00:00:01'), vnetId: 1 }, 2);

  it('reassembles frames split at every byte boundary', () => {
    const stream = Buffer.concat([ping, vl2, ping]);
    for (let cut = 1; cut < stream.length; cut++) {
      const d = new FrameDecoder({ role: 'server' });
      const a = d.push(stream.subarray(0, cut));
      const b = d.push(stream.subarray(cut));
      assert.equal(a.error ?? b.error, undefined);
      assert.deepEqual(
        [...a.frames, ...b.frames].map((f) => [f.op, f.id]),
        [
          [SvpOp.PING, 1],
          [SvpOp.VL2_REQ, 2],
          [SvpOp.PING, 1],
        ],
      );
      assert.equal(d.buffered, 0);
      assert.equal(d.end(), undefined);
    }
  });

  it('keeps its own copy of a partial frame', () => {
    const d = new FrameDecoder();
    const chunk = Buffer.from(vl2.subarray(0, 20));
    d.push(chunk);
    chunk.fill(0); // the socket may reuse nothing, but the decoder must not depend on it
    const { frames, error } = d.push(vl2.subarray(20));
    assert.equal(error, undefined);
    assert.equal(frames[0].payload.readUInt32BE(8), 1);
  });

  const bad = (mutate: (b: Buffer) => Buffer, opts = {}): SvpProtocolError | undefined => {
    const d = new FrameDecoder({ role: 'server', ...opts });
    return d.push(mutate(Buffer.from(vl2))).error;
  };

  it('bad version', () => {
    assert.equal(bad((b) => (b.writeUInt16BE(2, 0), b))?.reason, 'bad_version');
  });
  it('bad CRC', () => {
    assert.equal(bad((b) => (b[b.length - 1] ^= 1, b))?.reason, 'bad_crc');
  });
  it('oversize size field, refused before the payload arrives', () => {
    const h = Buffer.from(ping);
    h.writeUInt32BE(65 * 1024, 4);
    const d = new FrameDecoder({ role: 'server' });
    assert.equal(d.push(h.subarray(0, 16)).error?.reason, 'oversize');
    assert.equal(bad((b) => b, { maxFrameBytes: 8 })?.reason, 'oversize');
  });
  it('unknown op', () => {
    assert.equal(new FrameDecoder().push(encodeFrame(0x0e, 1)).error?.reason, 'unknown_op');
    assert.equal(new FrameDecoder().push(encodeFrame(0, 1)).error?.reason, 'unknown_op');
  });
  it('a response op sent to a server, a request op sent to a client', () => {
    assert.equal(new FrameDecoder({ role: 'server' }).push(encodePong(1)).error?.reason, 'response_op');
    assert.equal(new FrameDecoder({ role: 'client' }).push(ping).error?.reason, 'request_op');
  });
  it('truncated then end of stream', () => {
    const d = new FrameDecoder();
    assert.equal(d.push(vl2.subarray(0, 20)).error, undefined);
    assert.equal(d.end()?.reason, 'truncated');
  });
  it('frames before a fault are still delivered; the decoder stays failed', () => {
    const d = new FrameDecoder({ role: 'server' });
    const r = d.push(Buffer.concat([ping, encodePong(5), ping]));
    assert.equal(r.frames.length, 1);
    assert.equal(r.error?.reason, 'response_op');
    assert.equal(d.push(ping).error?.reason, 'response_op');
  });
  it('payload length must fit the op', () => {
    assert.throws(() => decodeMessage({ op: SvpOp.VL2_REQ, payload: Buffer.alloc(11) }), /bad_size|12 bytes/);
    assert.throws(
      () => decodeMessage({ op: SvpOp.LOG_RM, payload: Buffer.concat([hex('00000002'), Buffer.alloc(16)]) }),
      (e: unknown) => e instanceof SvpProtocolError && e.reason === 'bad_size',
    );
    assert.throws(
      () => decodeMessage({ op: SvpOp.LOG_ACK, payload: Buffer.concat([hex('00000000 00000001'), Buffer.alloc(10)]) }),
      (e: unknown) => e instanceof SvpProtocolError && e.reason === 'bad_size',
    );
  });
});
