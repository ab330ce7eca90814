/**
 * SvpServer on loopback over a real LevelStore, driven with raw frames: answers, ids,
 * pipelining, LOG_REQ/LOG_RM, long-poll deadline, and every bad-input case.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { crc32 } from 'node:zlib';
import { Registry } from 'prom-client';
import { MappingIndex } from '../../src/mapping/index.js';
import { nodeStateKey } from '../../src/overlay/keys.js';
import { LevelStore } from '../../src/store/leveldb.js';
import {
  LogType,
  SvpOp,
  SvpStatus,
  decodeMessage,
  encodeFrame,
  encodeMessage,
  FrameDecoder,
  type SvpMessage,
} from '../../src/svp/codec.js';
import { ipToBytes, macFromBytes, macToBytes, uuidFromBytes, uuidToBytes } from '../../src/net/addr.js';
import { DEFAULT_MAX_LOG_ACK_BYTES, SvpServer } from '../../src/svp/server.js';
import { CN1, CN2, CN3, type EventSpec, putEvents, putNic, putUnderlay } from '../helpers/svp-fixtures.js';
import { RawSvp, metricSum } from '../helpers/svp-raw.js';

const VNET = 12340;
const VM0 = { mac: '00:0a:95:9d:68:16', ip: '10.0.0.1', vnet: VNET, cn: CN1 };
const VM1 = { mac: '00:0a:95:11:11:11', ip: '10.0.0.2', vnet: VNET, cn: CN3 }; // CN3: no underlay record
const VM6 = { mac: '02:00:00:00:00:66', ip: 'fd00::66', vnet: VNET, cn: CN2 };
const UL_CN1 = '192.168.1.1';
const UL_CN2 = '192.168.1.2';

let dir: string;
let store: LevelStore;
let index: MappingIndex;
let registry: Registry;
let server: SvpServer;
let port: number;
const raws: RawSvp[] = [];

async function connect(): Promise<RawSvp> {
  const r = await RawSvp.connect(port);
  raws.push(r);
  return r;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let nextId = 1000;
async function ask(raw: RawSvp, msg: SvpMessage, id = nextId++): Promise<SvpMessage> {
  raw.send(encodeMessage(msg, id));
  const f = await raw.reply(id);
  return decodeMessage(f);
}

const metric = (name: string, labels: Record<string, string> = {}): Promise<number> => metricSum(registry, name, labels);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rhumb-svp-'));
  store = await LevelStore.open(dir, { sync: false });
  await putUnderlay(store, CN1, UL_CN1, 123);
  await putUnderlay(store, CN2, UL_CN2, 4789);
  await putNic(store, VM0);
  await putNic(store, VM1);
  await putNic(store, VM6);
  index = new MappingIndex({ store });
  await index.start();
  registry = new Registry();
  server = new SvpServer({ store, index, registry, host: '127.0.0.1', port: 0, logWaitMs: 400 });
  port = (await server.listen()).port;
});

after(async () => {
  for (const r of raws) r.destroy();
  await server.close();
  index.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('SvpServer: lookups', () => {
  it('PING -> PONG echoing arbitrary id bytes', async () => {
    const raw = await connect();
    for (const idBytes of ['deadbeef', '00000000', 'ffffffff', '01000000']) {
      const id = Buffer.from(idBytes, 'hex').readUInt32BE(0);
      raw.send(encodeFrame(SvpOp.PING, id));
      const f = await raw.reply(id);
      assert.equal(f.op, SvpOp.PONG);
      assert.equal(f.payload.length, 0);
    }
  });

  it('VL2: OK with the port from the underlay record; NOTFOUND zero-filled', async () => {
    const raw = await connect();
    const ok = await ask(raw, { op: SvpOp.VL2_REQ, mac: macToBytes(VM0.mac), vnetId: VNET });
    assert.deepEqual(ok, { op: SvpOp.VL2_ACK, status: SvpStatus.OK, port: 123, ip: ipToBytes(UL_CN1) });
    const notFound = { op: SvpOp.VL2_ACK, status: SvpStatus.NOTFOUND, port: 0, ip: Buffer.alloc(16) };
    assert.deepEqual(await ask(raw, { op: SvpOp.VL2_REQ, mac: macToBytes('00:0a:95:9d:68:17'), vnetId: VNET }), notFound, 'unknown MAC');
    assert.deepEqual(await ask(raw, { op: SvpOp.VL2_REQ, mac: macToBytes(VM0.mac), vnetId: VNET + 1 }), notFound, 'unknown vnet');
    assert.deepEqual(await ask(raw, { op: SvpOp.VL2_REQ, mac: macToBytes(VM1.mac), vnetId: VNET }), notFound, 'no underlay');
  });

  it('VL3: OK for type 1, type 2 with a v4-mapped address, and IPv6; NOTFOUND cases', async () => {
    const raw = await connect();
    const want = { op: SvpOp.VL3_ACK, status: SvpStatus.OK, mac: macToBytes(VM0.mac), port: 123, ip: ipToBytes(UL_CN1) };
    assert.deepEqual(await ask(raw, { op: SvpOp.VL3_REQ, ip: ipToBytes(VM0.ip), type: 1, vnetId: VNET }), want);
    assert.deepEqual(await ask(raw, { op: SvpOp.VL3_REQ, ip: ipToBytes(VM0.ip), type: 2, vnetId: VNET }), want);
    assert.deepEqual(await ask(raw, { op: SvpOp.VL3_REQ, ip: ipToBytes(VM6.ip), type: 2, vnetId: VNET }), {
      op: SvpOp.VL3_ACK,
      status: SvpStatus.OK,
      mac: macToBytes(VM6.mac),
      port: 4789,
      ip: ipToBytes(UL_CN2),
    });
    const notFound = { op: SvpOp.VL3_ACK, status: SvpStatus.NOTFOUND, mac: Buffer.alloc(6), port: 0, ip: Buffer.alloc(16) };
    assert.deepEqual(await ask(raw, { op: SvpOp.VL3_REQ, ip: ipToBytes('10.0.0.99'), type: 1, vnetId: VNET }), notFound);
    assert.deepEqual(await ask(raw, { op: SvpOp.VL3_REQ, ip: ipToBytes(VM0.ip), type: 1, vnetId: 1 }), notFound);
    assert.deepEqual(await ask(raw, { op: SvpOp.VL3_REQ, ip: ipToBytes(VM1.ip), type: 1, vnetId: VNET }), notFound);
  });

  it('VL3: other types, and type 1 with a non-IPv4 address, get BADL3TYPE', async () => {
    const raw = await connect();
    const bad = { op: SvpOp.VL3_ACK, status: SvpStatus.BADL3TYPE, mac: Buffer.alloc(6), port: 0, ip: Buffer.alloc(16) };
    assert.deepEqual(await ask(raw, { op: SvpOp.VL3_REQ, ip: ipToBytes(VM0.ip), type: 3, vnetId: VNET }), bad);
    assert.deepEqual(await ask(raw, { op: SvpOp.VL3_REQ, ip: ipToBytes(VM0.ip), type: 0, vnetId: VNET }), bad);
    assert.deepEqual(await ask(raw, { op: SvpOp.VL3_REQ, ip: ipToBytes(VM6.ip), type: 1, vnetId: VNET }), bad);
    assert.ok(!raw.isClosed);
  });

  it('BULK_REQ -> BULK_ACK FATAL echoing the type', async () => {
    const raw = await connect();
    assert.deepEqual(await ask(raw, { op: SvpOp.BULK_REQ, type: 2 }), {
      op: SvpOp.BULK_ACK,
      status: SvpStatus.FATAL,
      type: 2,
      data: Buffer.alloc(0),
    });
  });

  it('answers a change as soon as the index has its revision (no stale answers)', async () => {
    const raw = await connect();
    const vm = { mac: '02:00:00:00:00:77', ip: '10.0.0.77', vnet: VNET, cn: CN1 };
    let rev = await putNic(store, vm);
    assert.ok(await index.waitForRevision(rev, 2000));
    assert.equal(((await ask(raw, { op: SvpOp.VL2_REQ, mac: macToBytes(vm.mac), vnetId: VNET })) as { port: number }).port, 123);
    rev = await putNic(store, { ...vm, cn: CN2 });
    assert.ok(await index.waitForRevision(rev, 2000));
    const moved = await ask(raw, { op: SvpOp.VL3_REQ, ip: ipToBytes(vm.ip), type: 1, vnetId: VNET });
    assert.deepEqual((moved as { ip: Buffer }).ip, ipToBytes(UL_CN2));
  });

  it('pipelined requests in one write are all answered, matched by arbitrary id bytes', async () => {
    const raw = await connect();
    const sent: { id: number; msg: SvpMessage; expect: (m: SvpMessage) => void }[] = [];
    const used = new Set<number>();
    for (let i = 0; i < 200; i++) {
      let id: number;
      do id = (Math.random() * 0x100000000) >>> 0;
      while (used.has(id));
      used.add(id);
      const kind = i % 4;
      if (kind === 0)
        sent.push({
          id,
          msg: { op: SvpOp.VL2_REQ, mac: macToBytes(VM0.mac), vnetId: VNET },
          expect: (m) => assert.equal((m as { port: number }).port, 123),
        });
      else if (kind === 1)
        sent.push({
          id,
          msg: { op: SvpOp.VL3_REQ, ip: ipToBytes(VM6.ip), type: 2, vnetId: VNET },
          expect: (m) => assert.deepEqual((m as { mac: Buffer }).mac, macToBytes(VM6.mac)),
        });
      else if (kind === 2)
        sent.push({
          id,
          msg: { op: SvpOp.VL3_REQ, ip: ipToBytes('10.9.9.9'), type: 1, vnetId: VNET },
          expect: (m) => assert.equal((m as { status: number }).status, SvpStatus.NOTFOUND),
        });
      else sent.push({ id, msg: { op: SvpOp.PING }, expect: (m) => assert.equal(m.op, SvpOp.PONG) });
    }
    raw.send(Buffer.concat(sent.map((s) => encodeMessage(s.msg, s.id))));
    for (const s of sent) s.expect(decodeMessage(await raw.reply(s.id)));
    assert.equal(raw.frames.length, 0, 'no extra replies');
  });

  it('a held LOG_REQ does not delay later requests on the same connection (out-of-order answers)', async () => {
    const raw = await connect();
    const order: number[] = [];
    raw.send(encodeMessage({ op: SvpOp.LOG_REQ, count: 1024, ip: ipToBytes(UL_CN2) }, 1)); // CN2's queue is empty
    raw.send(encodeMessage({ op: SvpOp.VL2_REQ, mac: macToBytes(VM0.mac), vnetId: VNET }, 2));
    const p1 = raw.reply(1).then(() => order.push(1));
    const p2 = raw.reply(2).then(() => order.push(2));
    await Promise.all([p1, p2]);
    assert.deepEqual(order, [2, 1]);
  });
});

describe('SvpServer: LOG_REQ / LOG_RM', () => {
  it('unknown underlay IP -> LOG_ACK FATAL with no entries', async () => {
    const raw = await connect();
    raw.send(encodeMessage({ op: SvpOp.LOG_REQ, count: 1024, ip: ipToBytes('192.168.99.99') }, 5));
    const f = await raw.reply(5);
    assert.equal(f.op, SvpOp.LOG_ACK);
    assert.equal(f.payload.length, 4);
    assert.equal(f.payload.readUInt32BE(0), SvpStatus.FATAL);
  });

  it('returns oldest first and never more than count bytes including the status word', async () => {
    const raw = await connect();
    const evs = [];
    for (let i = 0; i < 40; i++)
      evs.push(
        i % 3 === 0
          ? { type: 'vl3' as const, cn: CN1, vnet: VNET, ip: `10.0.1.${i}`, vlan: i }
          : { type: 'vl2' as const, cn: CN1, vnet: VNET, mac: `02:00:00:00:01:${i.toString(16).padStart(2, '0')}` },
      );
    const { ids, revision } = await putEvents(store, evs);
    await index.waitForRevision(revision, 2000);
    try {
      for (const count of [1024, 36, 35, 4, 80, 1000, 1028, 76, 77]) {
        const id = nextId++;
        raw.send(encodeMessage({ op: SvpOp.LOG_REQ, count, ip: ipToBytes(UL_CN1) }, id));
        const f = await raw.reply(id);
        assert.ok(f.payload.length <= count, `count ${count}: got ${f.payload.length} bytes`);
        const msg = decodeMessage(f);
        assert.ok(msg.op === SvpOp.LOG_ACK);
        assert.equal(msg.status, SvpStatus.OK);
        // Greedy oldest-first packing: the next entry would not have fit.
        const got = msg.entries.map((e) => uuidFromBytes(e.id));
        assert.deepEqual(got, ids.slice(0, got.length), `count ${count}: oldest first`);
        const nextSize = got.length < ids.length ? (evs[got.length].type === 'vl2' ? 32 : 44) : 0;
        if (nextSize) assert.ok(f.payload.length + nextSize > count, `count ${count}: room was left`);
        if (msg.entries[0]?.type === LogType.VL3) assert.equal(msg.entries[0].vlan, 0);
        if (msg.entries[1]?.type === LogType.VL2) assert.equal(macFromBytes(msg.entries[1].mac), '02:00:00:00:01:01');
      }
    } finally {
      assert.equal(await index.removeEvents(ids.map(uuidToBytes)), ids.length);
    }
  });

  it('a long-polled LOG_REQ returns within 50 ms of the event commit', async () => {
    const raw = await connect();
    raw.send(encodeMessage({ op: SvpOp.LOG_REQ, count: 1024, ip: ipToBytes(UL_CN2) }, 77));
    await new Promise((r) => setTimeout(r, 100)); // the request is now held
    assert.equal(raw.frames.length, 0);
    const replied = raw.reply(77);
    // A vnet only CN2 is on.
    const { ids } = await putEvents(store, [{ type: 'vl2', cn: CN2, vnet: VNET + 1, mac: VM6.mac }]);
    const committedAt = performance.now();
    const f = await replied;
    const elapsed = performance.now() - committedAt;
    assert.ok(elapsed < 50, `answered ${elapsed.toFixed(1)} ms after the commit`);
    const msg = decodeMessage(f);
    assert.ok(msg.op === SvpOp.LOG_ACK && msg.entries.length === 1);
    assert.equal(uuidFromBytes(msg.entries[0].id), ids[0]);
    assert.equal(await index.removeEvents(ids.map(uuidToBytes)), 1);
  });

  it('an empty queue answers OK with no entries when the wait expires', async () => {
    const raw = await connect();
    const t0 = performance.now();
    const msg = await ask(raw, { op: SvpOp.LOG_REQ, count: 1024, ip: ipToBytes(UL_CN2) });
    assert.deepEqual(msg, { op: SvpOp.LOG_ACK, status: SvpStatus.OK, entries: [] });
    assert.ok(performance.now() - t0 >= 350, 'was held for logWaitMs');
  });

  it('LOG_RM records the removal in the store, is idempotent, and the events are not served again', async () => {
    const raw = await connect();
    const { ids, revision } = await putEvents(store, [
      { type: 'vl2', cn: CN1, vnet: VNET, mac: VM0.mac },
      { type: 'vl3', cn: CN1, vnet: VNET, ip: VM0.ip },
    ]);
    await index.waitForRevision(revision, 2000);
    const removedBefore = await metric('rhumb_svp_log_events_removed_total');
    const unknown = '0190a6f4-1c2b-7def-8abc-0123456789ab';
    const ack = await ask(raw, { op: SvpOp.LOG_RM, ids: [uuidToBytes(ids[0]), uuidToBytes(unknown), uuidToBytes(ids[0])] });
    assert.deepEqual(ack, { op: SvpOp.LOG_RM_ACK, status: SvpStatus.OK });
    assert.ok(await store.get(nodeStateKey(CN1)), 'the node state is stored');
    // A second index on the same store (a replica, or this one restarted) agrees.
    const replica = new MappingIndex({ store });
    await replica.start();
    try {
      assert.deepEqual(
        replica.pendingEvents(CN1).map((e) => uuidFromBytes(e.id)),
        [ids[1]],
      );
    } finally {
      replica.close();
    }
    // Right after the ack, the removed event is no longer served.
    const log = await ask(raw, { op: SvpOp.LOG_REQ, count: 1024, ip: ipToBytes(UL_CN1) });
    assert.ok(log.op === SvpOp.LOG_ACK);
    assert.deepEqual(
      log.entries.map((e) => uuidFromBytes(e.id)),
      [ids[1]],
    );
    assert.deepEqual(await ask(raw, { op: SvpOp.LOG_RM, ids: [uuidToBytes(ids[0])] }), { op: SvpOp.LOG_RM_ACK, status: 0 });
    assert.deepEqual(await ask(raw, { op: SvpOp.LOG_RM, ids: [uuidToBytes(ids[1])] }), { op: SvpOp.LOG_RM_ACK, status: 0 });
    assert.deepEqual(await ask(raw, { op: SvpOp.LOG_RM, ids: [] }), { op: SvpOp.LOG_RM_ACK, status: 0 });
    assert.equal(index.pendingEvents(CN1).length, 0);
    assert.equal((await metric('rhumb_svp_log_events_removed_total')) - removedBefore, 2);
  });
});

describe('SvpServer: what one connection can make the server hold is bounded', () => {
  const manyEvents = (n: number): EventSpec[] =>
    Array.from({ length: n }, (_, i): EventSpec =>
      i % 3 === 0
        ? { type: 'vl3', cn: CN1, vnet: VNET, ip: `10.2.${i >> 8}.${i & 0xff}` }
        : { type: 'vl2', cn: CN1, vnet: VNET, mac: `02:00:00:02:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}` },
    );
  const logReqAll = (id: number, ul = UL_CN1) => encodeMessage({ op: SvpOp.LOG_REQ, count: 0xffffffff, ip: ipToBytes(ul) }, id);

  it('a LOG_ACK never exceeds the cap whatever count asks; the client gets the rest by asking again', async () => {
    const raw = await connect();
    const evs = manyEvents(1000);
    const { ids, revision } = await putEvents(store, evs);
    await index.waitForRevision(revision, 5000);
    try {
      const got: string[] = [];
      while (got.length < ids.length) {
        const id = nextId++;
        raw.send(logReqAll(id));
        const f = await raw.reply(id);
        assert.ok(f.payload.length <= DEFAULT_MAX_LOG_ACK_BYTES, `LOG_ACK of ${f.payload.length} bytes`);
        const msg = decodeMessage(f);
        assert.ok(msg.op === SvpOp.LOG_ACK && msg.status === SvpStatus.OK && msg.entries.length > 0);
        const batch = msg.entries.map((e) => uuidFromBytes(e.id));
        const left = ids.length - got.length - batch.length;
        // Packed as full as the cap allows: the next entry would not have fit.
        if (left > 0) assert.ok(f.payload.length + 44 > DEFAULT_MAX_LOG_ACK_BYTES - 32, `only ${f.payload.length} bytes`);
        got.push(...batch);
        assert.deepEqual(await ask(raw, { op: SvpOp.LOG_RM, ids: msg.entries.map((e) => e.id) }), { op: SvpOp.LOG_RM_ACK, status: 0 });
      }
      assert.deepEqual(got, ids, 'every event, oldest first, over several LOG_ACKs');
    } finally {
      await index.removeEvents(ids.map(uuidToBytes));
    }
  });

  it('a reader that stops reading stops being served (and read) until it reads again; then every request is answered', async () => {
    const { ids, revision } = await putEvents(store, manyEvents(1000));
    await index.waitForRevision(revision, 5000);
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('error', () => {});
    await new Promise<void>((resolve) => s.once('connect', () => resolve()));
    s.pause();
    try {
      const pausesBefore = await metric('rhumb_svp_backlog_pauses_total');
      const handledBefore = await metric('rhumb_svp_requests_total', { op: 'log_req' });
      const total = 3600;
      for (let i = 0; i < total; i += 1800) s.write(Buffer.concat(Array.from({ length: 1800 }, (_, k) => logReqAll(2_000_000 + i + k))));
      for (let i = 0; i < 200 && (await metric('rhumb_svp_backlog_pauses_total')) === pausesBefore; i++) await sleep(10);
      assert.equal((await metric('rhumb_svp_backlog_pauses_total')) - pausesBefore, 1, 'the connection was paused once');
      await sleep(200);
      const handled = (await metric('rhumb_svp_requests_total', { op: 'log_req' })) - handledBefore;
      // Only what the kernel's socket buffers and the bounded backlog hold was answered.
      assert.ok(handled < 1800, `${handled} of ${total} LOG_REQs answered while nobody read`);
      // Reading again resumes the connection: every request gets its (capped) answer.
      const decoder = new FrameDecoder({ role: 'client', maxFrameBytes: 1 << 20 });
      const answered = new Set<number>();
      await new Promise<void>((resolve, reject) => {
        s.on('data', (chunk: Buffer) => {
          const { frames, error } = decoder.push(chunk);
          if (error) reject(error);
          for (const f of frames) {
            assert.equal(f.op, SvpOp.LOG_ACK);
            assert.ok(f.payload.length <= DEFAULT_MAX_LOG_ACK_BYTES);
            answered.add(f.id);
          }
          if (answered.size === total) resolve();
        });
        s.resume();
      });
      assert.equal(answered.size, total);
    } finally {
      s.destroy();
      await index.removeEvents(ids.map(uuidToBytes));
    }
  });

  it('holds at most maxHeldLogReqsPerConnection long-polls; more are answered at once; closing releases them', async () => {
    const reg = new Registry();
    const srv = new SvpServer({ store, index, registry: reg, port: 0, logWaitMs: 60_000, maxHeldLogReqsPerConnection: 4 });
    const held = async () => (await reg.getSingleMetric('rhumb_svp_log_reqs_held')!.get()).values[0]?.value ?? 0;
    const p = (await srv.listen()).port;
    const a = await RawSvp.connect(p);
    const b = await RawSvp.connect(p);
    let eventId: string | undefined;
    try {
      // CN2's queue is empty: 4 of a's 50 LOG_REQs are held, 46 answered OK with no entries.
      a.send(Buffer.concat(Array.from({ length: 50 }, (_, i) => logReqAll(i, UL_CN2))));
      const early = await Promise.all(Array.from({ length: 50 }, (_, i) => i).slice(4).map((i) => a.reply(i, 5000)));
      for (const f of early) assert.deepEqual(decodeMessage(f), { op: SvpOp.LOG_ACK, status: SvpStatus.OK, entries: [] });
      assert.equal(await held(), 4);
      assert.equal(a.frames.length, 0, 'the first four are still held');
      // Each connection has its own share.
      b.send(Buffer.concat(Array.from({ length: 6 }, (_, i) => logReqAll(100 + i, UL_CN2))));
      await b.reply(104, 5000);
      await b.reply(105, 5000);
      assert.equal(await held(), 8);
      // An event answers the held ones with it.
      // A vnet only CN2 is on.
      const { ids } = await putEvents(store, [{ type: 'vl2', cn: CN2, vnet: VNET + 1, mac: VM6.mac }]);
      eventId = ids[0];
      for (let i = 0; i < 4; i++) {
        const msg = decodeMessage(await a.reply(i, 5000));
        assert.ok(msg.op === SvpOp.LOG_ACK && msg.entries.length === 1 && uuidFromBytes(msg.entries[0].id) === eventId);
      }
      await index.removeEvents([uuidToBytes(eventId)]);
      eventId = undefined;
      // b's were answered too; hold four more on b, then reset it: nothing stays held.
      for (let i = 0; i < 4; i++) await b.reply(100 + i, 5000);
      await sleep(50);
      assert.equal(await held(), 0);
      b.send(Buffer.concat(Array.from({ length: 4 }, (_, i) => logReqAll(200 + i, UL_CN2))));
      for (let i = 0; i < 100 && (await held()) < 4; i++) await sleep(10);
      assert.equal(await held(), 4);
      // A reset, not a half-close: a half-closed client still gets the answers it waits for.
      b.socket.resetAndDestroy();
      for (let i = 0; i < 100 && (await held()) > 0; i++) await sleep(10);
      assert.equal(await held(), 0, 'closing the connection released its held LOG_REQs');
    } finally {
      a.destroy();
      b.destroy();
      if (eventId) await index.removeEvents([uuidToBytes(eventId)]);
      await srv.close();
    }
  });

  it('closes a connection that pipelines more LOG_RMs than maxPendingPerConnection (default 64)', async () => {
    const { ids, revision } = await putEvents(store, manyEvents(200));
    await index.waitForRevision(revision, 5000);
    try {
      const raw = await connect();
      const before = await metric('rhumb_svp_connections_closed_for_cause_total', { cause: 'too_many_pending' });
      // Every LOG_RM names real events, so each one is a store commit in progress.
      raw.send(Buffer.concat(Array.from({ length: 100 }, (_, i) => encodeMessage({ op: SvpOp.LOG_RM, ids: [uuidToBytes(ids[i])] }, 3_000_000 + i))));
      assert.ok(await raw.closesWithin(3000), 'the connection is closed');
      assert.equal((await metric('rhumb_svp_connections_closed_for_cause_total', { cause: 'too_many_pending' })) - before, 1);
    } finally {
      await index.removeEvents(ids.map(uuidToBytes));
    }
  });

  it('rejects a LOG_ACK cap too small for one entry', () => {
    assert.throws(() => new SvpServer({ store, index, registry: new Registry(), port: 0, maxLogAckBytes: 47 }), /maxLogAckBytes must be an integer of at least 48/);
  });
});

describe('SvpServer: bad input closes only that connection', () => {
  const ping = encodeFrame(SvpOp.PING, 1);
  const vl2 = encodeMessage({ op: SvpOp.VL2_REQ, mac: macToBytes(VM0.mac), vnetId: VNET }, 2);
  const mutate = (b: Buffer, fn: (c: Buffer) => void): Buffer => {
    const c = Buffer.from(b);
    fn(c);
    return c;
  };
  const oversize = Buffer.from(ping);
  oversize.writeUInt32BE(64 * 1024 + 1, 4);
  const logRmBad = encodeFrame(SvpOp.LOG_RM, 3, Buffer.concat([Buffer.from('00000002', 'hex'), Buffer.alloc(16)]));
  const cases: { name: string; cause: string; bytes: Buffer; thenEnd?: boolean }[] = [
    { name: 'wrong version', cause: 'bad_version', bytes: encodeFrame(SvpOp.PING, 1, undefined, 2) },
    { name: 'bad CRC', cause: 'bad_crc', bytes: mutate(vl2, (c) => (c[20] ^= 0xff)) },
    { name: 'oversize size field', cause: 'oversize', bytes: oversize.subarray(0, 16) },
    { name: 'unknown op', cause: 'unknown_op', bytes: encodeFrame(0x2a, 1) },
    { name: 'response-type op', cause: 'response_op', bytes: encodeFrame(SvpOp.VL2_ACK, 1, Buffer.alloc(20)) },
    { name: 'truncated frame then EOF', cause: 'truncated', bytes: vl2.subarray(0, 21), thenEnd: true },
    { name: 'LOG_RM with a wrong payload length', cause: 'bad_size', bytes: logRmBad },
    { name: 'VL2_REQ with a short payload', cause: 'bad_size', bytes: encodeFrame(SvpOp.VL2_REQ, 1, Buffer.alloc(8)) },
    { name: 'SHOOTDOWN', cause: 'shootdown', bytes: encodeFrame(SvpOp.SHOOTDOWN, 1, Buffer.alloc(12)) },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const good = await connect();
      const bad = await connect();
      const before = await metric('rhumb_svp_connections_closed_for_cause_total', { cause: c.cause });
      // A valid request first: it is answered, then the bad bytes close the connection.
      bad.send(ping);
      await bad.reply(1);
      bad.send(c.bytes);
      if (c.thenEnd) bad.socket.end();
      assert.ok(await bad.closesWithin(2000), 'the offending connection is closed');
      assert.equal((await metric('rhumb_svp_connections_closed_for_cause_total', { cause: c.cause })) - before, 1);
      const ok = await ask(good, { op: SvpOp.VL2_REQ, mac: macToBytes(VM0.mac), vnetId: VNET });
      assert.equal((ok as { status: number }).status, SvpStatus.OK, 'other connections keep working');
      good.destroy();
    });
  }

  it('a clean half-close after complete requests still gets its answers', async () => {
    const raw = await connect();
    raw.send(Buffer.concat([ping, vl2]));
    raw.socket.end();
    const f = await raw.reply(2);
    assert.equal(f.op, SvpOp.VL2_ACK);
    assert.ok(await raw.closesWithin(2000));
  });
});

describe('SvpServer: fuzz', () => {
  it('survives ~3 s of random and mutated frames, then still answers correctly', async () => {
    const valid: Buffer[] = [
      encodeFrame(SvpOp.PING, 1),
      encodeMessage({ op: SvpOp.VL2_REQ, mac: macToBytes(VM0.mac), vnetId: VNET }, 2),
      encodeMessage({ op: SvpOp.VL3_REQ, ip: ipToBytes(VM0.ip), type: 1, vnetId: VNET }, 3),
      encodeMessage({ op: SvpOp.LOG_REQ, count: 1024, ip: ipToBytes(UL_CN1) }, 4),
      encodeMessage({ op: SvpOp.LOG_RM, ids: [Buffer.alloc(16, 7)] }, 5),
      encodeMessage({ op: SvpOp.BULK_REQ, type: 1 }, 6),
    ];
    const rnd = (n: number): number => Math.floor(Math.random() * n);
    const mutant = (): Buffer => {
      const kind = rnd(4);
      if (kind === 0) {
        const b = Buffer.alloc(rnd(80));
        for (let i = 0; i < b.length; i++) b[i] = rnd(256);
        return b;
      }
      const b = Buffer.from(valid[rnd(valid.length)]);
      if (kind === 1) b[rnd(b.length)] = rnd(256); // one flipped byte: almost always a bad CRC
      else if (kind === 2) {
        // Edit a header field and fix the CRC, so it reaches the op handlers.
        const field = rnd(3);
        if (field === 0) b.writeUInt16BE(rnd(20), 2);
        else if (field === 1) b.writeUInt32BE(rnd(2) ? rnd(64) : rnd(0x7fffffff), 4);
        else b.writeUInt16BE(rnd(3), 0);
        b.writeUInt32BE(0, 12);
        const payload = b.subarray(16);
        b.writeUInt32BE(crc32(payload, crc32(b.subarray(0, 16))) >>> 0, 12);
      } else return b.subarray(0, rnd(b.length)); // truncated
      return b;
    };
    const deadline = performance.now() + 3000;
    let connections = 0;
    const workers = Array.from({ length: 4 }, async () => {
      while (performance.now() < deadline) {
        const raw = await RawSvp.connect(port);
        connections++;
        for (let i = 0; i < 1 + rnd(6) && !raw.isClosed; i++) {
          raw.send(rnd(3) === 0 ? valid[rnd(valid.length)] : mutant());
          await new Promise((r) => setImmediate(r));
        }
        if (rnd(2)) raw.socket.end();
        else raw.destroy();
        await raw.closesWithin(500);
        raw.destroy();
      }
    });
    await Promise.all(workers);
    assert.ok(connections > 20, `fuzzed ${connections} connections`);
    const raw = await connect();
    const vl3 = await ask(raw, { op: SvpOp.VL3_REQ, ip: ipToBytes(VM0.ip), type: 1, vnetId: VNET });
    assert.deepEqual(vl3, { op: SvpOp.VL3_ACK, status: SvpStatus.OK, mac: macToBytes(VM0.mac), port: 123, ip: ipToBytes(UL_CN1) });
    // Wait until the fuzz connections are gone from the gauge (only ours remains, plus stragglers closing).
    for (let i = 0; i < 100 && server.connectionCount > raws.filter((r) => !r.isClosed).length; i++)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.connectionCount, raws.filter((r) => !r.isClosed).length);
  });
});

describe('SvpServer: metrics', () => {
  it('counts lookups by op and status, latency, and open connections', async () => {
    assert.ok((await metric('rhumb_svp_requests_total', { op: 'vl2', status: 'ok' })) > 0);
    assert.ok((await metric('rhumb_svp_requests_total', { op: 'vl3', status: 'notfound' })) > 0);
    assert.ok((await metric('rhumb_svp_requests_total', { op: 'vl3', status: 'badl3type' })) > 0);
    assert.ok((await metric('rhumb_svp_log_events_served_total')) > 0);
    const text = await registry.metrics();
    assert.match(text, /rhumb_svp_request_duration_seconds_bucket\{le="0.001",op="vl3"\} \d+/);
    assert.match(text, /rhumb_svp_request_duration_seconds_count\{op="vl3"\} [1-9]\d*/);
    assert.match(text, /rhumb_svp_connections \d+/);
  });
});
