/**
 * The SVP server's lookup fast path (src/svp/connection.ts): PING, VL2_REQ and VL3_REQ are
 * answered straight from the received bytes into one output buffer per read. What it
 * could get wrong: the order and ids of replies when lookups and general-path requests
 * are pipelined together, frames cut across reads anywhere, a bad frame after good ones
 * in the same read, and the write backlog bound when a client pipelines lookups without
 * reading. Also the request counters it keeps in bulk.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { MappingIndex } from '../../src/mapping/index.js';
import { MemoryStore } from '../../src/store/memory.js';
import {
  FrameDecoder,
  SvpOp,
  SvpStatus,
  encodeBulkAck,
  encodeFrame,
  encodeLogRmAck,
  encodeMessage,
  encodePong,
  encodeVl2Ack,
  encodeVl3Ack,
} from '../../src/svp/codec.js';
import { ipToBytes, macToBytes, uuidToBytes } from '../../src/net/addr.js';
import { SvpServer } from '../../src/svp/server.js';
import { CN1, CN2, CN3, putEvents, putNic, putUnderlay } from '../helpers/svp-fixtures.js';
import { RawSvp, metricSum, nextFrames } from '../helpers/svp-raw.js';

const VNET = 4242;
const VM0 = { mac: '00:0a:95:9d:68:16', ip: '10.0.0.1', vnet: VNET, cn: CN1 };
const VM1 = { mac: '00:0a:95:11:11:11', ip: '10.0.0.2', vnet: VNET, cn: CN3 }; // CN3: no underlay record
const VM6 = { mac: '02:00:00:00:00:66', ip: 'fd00::66', vnet: VNET, cn: CN2 };
const UL_CN1 = '192.168.1.1';
const UL_CN2 = '192.168.1.2';
/** A small backlog bound so that the backpressure test needs little traffic to reach it. */
const BACKLOG_BYTES = 16 * 1024;

let store: MemoryStore;
let index: MappingIndex;
let registry: Registry;
let server: SvpServer;
let port: number;
const raws: RawSvp[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function connect(): Promise<RawSvp> {
  const r = await RawSvp.connect(port);
  raws.push(r);
  return r;
}

const metric = (name: string, labels: Record<string, string> = {}): Promise<number> => metricSum(registry, name, labels);


/** Frames for a request and the exact reply bytes it must get. */
interface Exchange {
  request: Buffer;
  reply: Buffer;
}

/** One of each kind of request the server answers at once, with arbitrary id bytes. */
function mixedExchanges(firstId: number): Exchange[] {
  let id = firstId;
  const next = (): number => (id = (Math.imul(id, 2654435761) + 0x1234567) >>> 0);
  const ex: Exchange[] = [];
  const add = (request: (i: number) => Buffer, reply: (i: number) => Buffer): void => {
    const i = next();
    ex.push({ request: request(i), reply: reply(i) });
  };
  const vl3 = (ip: string, type: number) => (i: number) => encodeMessage({ op: SvpOp.VL3_REQ, ip: ipToBytes(ip), type, vnetId: VNET }, i);
  const vl2 = (mac: string) => (i: number) => encodeMessage({ op: SvpOp.VL2_REQ, mac: macToBytes(mac), vnetId: VNET }, i);
  add(vl3(VM0.ip, 1), (i) => encodeVl3Ack(i, SvpStatus.OK, macToBytes(VM0.mac), 123, ipToBytes(UL_CN1)));
  add((i) => encodeFrame(SvpOp.PING, i), (i) => encodePong(i));
  add(vl2(VM0.mac), (i) => encodeVl2Ack(i, SvpStatus.OK, 123, ipToBytes(UL_CN1)));
  add((i) => encodeMessage({ op: SvpOp.BULK_REQ, type: 2 }, i), (i) => encodeBulkAck(i, SvpStatus.FATAL, 2)); // general path
  add(vl3(VM6.ip, 2), (i) => encodeVl3Ack(i, SvpStatus.OK, macToBytes(VM6.mac), 4789, ipToBytes(UL_CN2)));
  add(vl3('10.9.9.9', 1), (i) => encodeVl3Ack(i, SvpStatus.NOTFOUND, null, 0, null));
  add((i) => encodeMessage({ op: SvpOp.LOG_RM, ids: [Buffer.alloc(16, 9)] }, i), (i) => encodeLogRmAck(i, SvpStatus.OK)); // unknown id: at once
  add(vl3(VM1.ip, 1), (i) => encodeVl3Ack(i, SvpStatus.NOTFOUND, null, 0, null)); // its node has no underlay
  add(vl3(VM6.ip, 1), (i) => encodeVl3Ack(i, SvpStatus.BADL3TYPE, null, 0, null)); // type 1, not v4-mapped
  add(vl3(VM0.ip, 7), (i) => encodeVl3Ack(i, SvpStatus.BADL3TYPE, null, 0, null));
  add(vl2('00:0a:95:9d:68:17'), (i) => encodeVl2Ack(i, SvpStatus.NOTFOUND, 0, null));
  add(vl2(VM1.mac), (i) => encodeVl2Ack(i, SvpStatus.NOTFOUND, 0, null));
  return ex;
}

before(async () => {
  store = new MemoryStore();
  await putUnderlay(store, CN1, UL_CN1, 123);
  await putUnderlay(store, CN2, UL_CN2, 4789);
  await putNic(store, VM0);
  await putNic(store, VM1);
  await putNic(store, VM6);
  index = new MappingIndex({ store });
  await index.start();
  registry = new Registry();
  server = new SvpServer({ store, index, registry, host: '127.0.0.1', port: 0, logWaitMs: 300, maxWriteBacklogBytes: BACKLOG_BYTES });
  port = (await server.listen()).port;
});

after(async () => {
  for (const r of raws) r.destroy();
  await server.close();
  index.close();
  await store.close();
});

describe('SVP fast path: pipelining', () => {
  it('lookups and general-path requests in one write: every reply in request order, byte for byte', async () => {
    const raw = await connect();
    const ex = [...mixedExchanges(1), ...mixedExchanges(2), ...mixedExchanges(3)];
    raw.send(Buffer.concat(ex.map((e) => e.request)));
    const got = await nextFrames(raw, ex.length);
    got.forEach((f, i) => assert.deepEqual(encodeFrame(f.op, f.id, f.payload), ex[i].reply, `reply ${i}`));
  });

  it('a LOG_REQ answered at once, between lookups, keeps its place', async () => {
    const { ids, revision } = await putEvents(store, [{ type: 'vl2', cn: CN1, vnet: VNET, mac: '02:00:00:00:0f:01' }]);
    await index.waitForRevision(revision, 5000);
    const raw = await connect();
    const before = mixedExchanges(10);
    const afterwards = mixedExchanges(11);
    const logReq = encodeMessage({ op: SvpOp.LOG_REQ, count: 1024, ip: ipToBytes(UL_CN1) }, 0xabcdef01);
    raw.send(Buffer.concat([...before.map((e) => e.request), logReq, ...afterwards.map((e) => e.request)]));
    const got = await nextFrames(raw, before.length + 1 + afterwards.length);
    before.forEach((e, i) => assert.deepEqual(encodeFrame(got[i].op, got[i].id, got[i].payload), e.reply));
    const log = got[before.length];
    assert.equal(log.op, SvpOp.LOG_ACK);
    assert.equal(log.id, 0xabcdef01);
    assert.equal(log.payload.length, 4 + 32, 'status word and the one VL2 entry');
    afterwards.forEach((e, i) => {
      const f = got[before.length + 1 + i];
      assert.deepEqual(encodeFrame(f.op, f.id, f.payload), e.reply);
    });
    await index.removeEvents(ids.map(uuidToBytes));
  });

  it('counts the lookups it answers by op and status', async () => {
    const labels = [
      { op: 'vl3', status: 'ok' },
      { op: 'vl3', status: 'notfound' },
      { op: 'vl3', status: 'badl3type' },
      { op: 'vl2', status: 'ok' },
      { op: 'vl2', status: 'notfound' },
      { op: 'ping', status: 'ok' },
    ];
    const before = await Promise.all(labels.map((l) => metric('rhumb_svp_requests_total', l)));
    const raw = await connect();
    const rounds = 50;
    const ex = Array.from({ length: rounds }, (_, i) => mixedExchanges(100 + i)).flat();
    raw.send(Buffer.concat(ex.map((e) => e.request)));
    await nextFrames(raw, ex.length);
    const after = await Promise.all(labels.map((l) => metric('rhumb_svp_requests_total', l)));
    // Per round: VL3 OK ×2, NOTFOUND ×2, BADL3TYPE ×2; VL2 OK ×1, NOTFOUND ×2; PING ×1.
    assert.deepEqual(
      after.map((a, i) => a - before[i]),
      [2, 2, 2, 1, 2, 1].map((n) => n * rounds),
    );
    assert.match(await registry.metrics(), /rhumb_svp_request_duration_seconds_count\{op="ping"\} [1-9]\d*/);
  });
});

describe('SVP fast path: frames cut across reads', () => {
  it('split at every byte: the same replies, in order', async () => {
    const ex = mixedExchanges(20);
    const bytes = Buffer.concat(ex.map((e) => e.request));
    const raw = await connect();
    for (let i = 0; i < bytes.length; i++) {
      raw.send(bytes.subarray(i, i + 1));
      await sleep(1); // each byte its own read
    }
    const got = await nextFrames(raw, ex.length);
    got.forEach((f, i) => assert.deepEqual(encodeFrame(f.op, f.id, f.payload), ex[i].reply, `reply ${i}`));
  });

  it('split at random points of a long pipeline: every reply, in order', async () => {
    const ex = Array.from({ length: 300 }, (_, i) => mixedExchanges(1000 + i)).flat();
    const bytes = Buffer.concat(ex.map((e) => e.request));
    const raw = await connect();
    let seed = 7;
    for (let off = 0; off < bytes.length; ) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      const n = 1 + (seed % 700);
      raw.send(bytes.subarray(off, off + n));
      off += n;
      if (seed % 5 === 0) await new Promise((r) => setImmediate(r));
    }
    const got = await nextFrames(raw, ex.length, 10000);
    got.forEach((f, i) => assert.deepEqual(encodeFrame(f.op, f.id, f.payload), ex[i].reply, `reply ${i}`));
  });
});

describe('SVP fast path: bad frames', () => {
  const good = mixedExchanges(30);
  const badCrc = Buffer.from(good[0].request);
  badCrc[20] ^= 0xff;
  const cases: { name: string; cause: string; bad: Buffer }[] = [
    { name: 'a VL3_REQ with a bad CRC', cause: 'bad_crc', bad: badCrc },
    { name: 'a VL3_REQ one byte short', cause: 'bad_size', bad: encodeFrame(SvpOp.VL3_REQ, 5, Buffer.alloc(23)) },
    { name: 'a PING with a payload', cause: 'bad_size', bad: encodeFrame(SvpOp.PING, 5, Buffer.alloc(4)) },
    { name: 'a VL3_ACK (response op)', cause: 'response_op', bad: encodeFrame(SvpOp.VL3_ACK, 5, Buffer.alloc(28)) },
  ];
  for (const c of cases)
    for (const split of [false, true])
      it(`${c.name}${split ? ', cut across reads,' : ''} after good requests in the same write: those are answered, then only that connection closes`, async () => {
        const other = await connect();
        const raw = await connect();
        const closedBefore = await metric('rhumb_svp_connections_closed_for_cause_total', { cause: c.cause });
        const after = encodeFrame(SvpOp.PING, 0x7777);
        const bytes = Buffer.concat([...good.map((e) => e.request), c.bad, after]);
        if (split) {
          const cut = bytes.length - after.length - c.bad.length + 9; // inside the bad frame's header
          raw.send(bytes.subarray(0, cut));
          await sleep(20);
          raw.send(bytes.subarray(cut));
        } else raw.send(bytes);
        assert.ok(await raw.closesWithin(2000), 'the connection is closed');
        assert.equal(raw.frames.length, good.length, 'the good requests before the bad frame were answered');
        raw.frames.forEach((f, i) => assert.deepEqual(encodeFrame(f.op, f.id, f.payload), good[i].reply));
        assert.equal((await metric('rhumb_svp_connections_closed_for_cause_total', { cause: c.cause })) - closedBefore, 1);
        other.send(encodeFrame(SvpOp.PING, 0x8888));
        assert.equal((await other.reply(0x8888)).op, SvpOp.PONG, 'other connections keep working');
      });
});

describe('SVP fast path: backpressure', () => {
  it('a client pipelining lookups without reading stops being read; then gets every reply, in order', async () => {
    // Enough VL3_REQs that their replies overflow the kernel's socket buffers and the backlog.
    const total = 400_000;
    const frame = encodeMessage({ op: SvpOp.VL3_REQ, ip: ipToBytes(VM0.ip), type: 1, vnetId: VNET }, 0);
    const reply0 = encodeVl3Ack(0, SvpStatus.OK, macToBytes(VM0.mac), 123, ipToBytes(UL_CN1));
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('error', () => {});
    await new Promise<void>((resolve) => s.once('connect', () => resolve()));
    s.pause();
    try {
      const pausesBefore = await metric('rhumb_svp_backlog_pauses_total');
      const answeredBefore = await metric('rhumb_svp_requests_total', { op: 'vl3' });
      const chunk = 10_000;
      for (let first = 0; first < total; first += chunk) {
        const frames: Buffer[] = [];
        for (let id = first; id < first + chunk; id++) frames.push(encodeFrame(SvpOp.VL3_REQ, id, frame.subarray(16)));
        s.write(Buffer.concat(frames));
      }
      for (let i = 0; i < 500 && (await metric('rhumb_svp_backlog_pauses_total')) === pausesBefore; i++) await sleep(10);
      assert.ok((await metric('rhumb_svp_backlog_pauses_total')) > pausesBefore, 'the connection was paused');
      // It stops: once the kernel's buffers are full nothing more is answered while nobody
      // reads, and far from everything was.
      const answered = async (): Promise<number> => (await metric('rhumb_svp_requests_total', { op: 'vl3' })) - answeredBefore;
      let last = -1;
      let now = await answered();
      for (let i = 0; i < 20 && now !== last; i++) {
        last = now;
        await sleep(250);
        now = await answered();
      }
      process.stdout.write(`# ${now} of ${total} lookups answered while the client did not read\n`);
      assert.equal(now, last, 'answering stopped while the client does not read');
      assert.ok(now < total / 2, `${now} of ${total} answered while nobody read`);
      // Other clients are served meanwhile.
      const other = await connect();
      other.send(encodeFrame(SvpOp.PING, 0x9999));
      assert.equal((await other.reply(0x9999)).op, SvpOp.PONG);
      // Reading again: every reply, in request order.
      const decoder = new FrameDecoder({ role: 'client' });
      let next = 0;
      let wrong = 0;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${next} of ${total} replies within 30 s`)), 30000);
        s.on('data', (c: Buffer) => {
          const { frames, error } = decoder.push(c);
          if (error) reject(error);
          for (const f of frames) {
            if (f.id !== next || f.op !== SvpOp.VL3_ACK || !f.payload.equals(reply0.subarray(16))) wrong++;
            next++;
          }
          if (next === total) {
            clearTimeout(timer);
            resolve();
          }
        });
        s.resume();
      });
      assert.equal(wrong, 0, 'replies out of order or wrong');
    } finally {
      s.destroy();
    }
  });
});
