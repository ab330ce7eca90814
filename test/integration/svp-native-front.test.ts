/**
 * The native SVP front end (native/src/svp_front.c, src/svp/native-front.ts): plaintext
 * connections read and answered in C from the mapping index's own tables, every other
 * frame handed to the JS connection. What it could get wrong beyond what the fast-path and
 * server tests (run on it by default) check: answering differently from the JS path, a
 * mapping change (or a grown table, or a reloaded index) not visible to the next lookup,
 * the order of lookups around a held LOG_REQ whose answer comes later from JS, a client
 * that goes away in the middle of a write, and being turned off.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { MappingIndex } from '../../src/mapping/index.js';
import { MemoryStore } from '../../src/store/memory.js';
import { FrameDecoder, SvpOp, SvpStatus, encodeFrame, encodeMessage, encodeVl2Ack, encodeVl3Ack } from '../../src/svp/codec.js';
import { ipToBytes, macToBytes, uuidToBytes } from '../../src/net/addr.js';
import { SvpServer } from '../../src/svp/server.js';
import { CompactingStore } from '../helpers/compacting-store.js';
import { CN1, CN2, deleteNic, putEvents, putNic, putUnderlay } from '../helpers/svp-fixtures.js';
import { RawSvp, metricSum, nextFrames } from '../helpers/svp-raw.js';

const VNET = 5151;
const UL_CN1 = '192.168.7.1';
const UL_CN2 = '192.168.7.2';

let store: MemoryStore;
let index: MappingIndex;
let registry: Registry;
let server: SvpServer;
let jsServer: SvpServer;
let port: number;
let jsPort: number;
const raws: RawSvp[] = [];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function connect(p = port): Promise<RawSvp> {
  const r = await RawSvp.connect(p);
  raws.push(r);
  return r;
}

const metric = (name: string, labels: Record<string, string> = {}): Promise<number> => metricSum(registry, name, labels);


const vl3 = (ip: string, id: number, type = ip.includes(':') ? 2 : 1, vnet = VNET): Buffer =>
  encodeMessage({ op: SvpOp.VL3_REQ, ip: ipToBytes(ip), type, vnetId: vnet }, id);
const vl2 = (mac: string, id: number, vnet = VNET): Buffer => encodeMessage({ op: SvpOp.VL2_REQ, mac: macToBytes(mac), vnetId: vnet }, id);

/** One VL3 lookup's reply, decoded far enough to compare. */
async function lookup3(raw: RawSvp, ip: string, id: number): Promise<{ status: number; mac: string; ul: string; port: number }> {
  raw.send(vl3(ip, id));
  const f = await raw.reply(id);
  assert.equal(f.op, SvpOp.VL3_ACK);
  const p = f.payload;
  return {
    status: p.readUInt32BE(0),
    mac: [...p.subarray(4, 10)].map((b) => b.toString(16).padStart(2, '0')).join(':'),
    port: p.readUInt16BE(10),
    ul: [...p.subarray(24, 28)].join('.'),
  };
}

function nicMac(i: number): string {
  return `02:00:${((i >> 16) & 0xff).toString(16).padStart(2, '0')}:${((i >> 8) & 0xff).toString(16).padStart(2, '0')}:${(i & 0xff).toString(16).padStart(2, '0')}:01`;
}
function nicIp(i: number): string {
  return `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}`;
}

before(async () => {
  store = new MemoryStore();
  await putUnderlay(store, CN1, UL_CN1, 4789);
  await putUnderlay(store, CN2, UL_CN2, 4790);
  for (let i = 1; i <= 20; i++) await putNic(store, { mac: nicMac(i), ip: nicIp(i), vnet: VNET, cn: i % 2 ? CN1 : CN2 });
  await putNic(store, { mac: '02:00:00:00:66:66', ip: 'fd00::66', vnet: VNET, cn: CN2 });
  index = new MappingIndex({ store });
  await index.start();
  registry = new Registry();
  server = new SvpServer({ store, index, registry, host: '127.0.0.1', port: 0, logWaitMs: 400 });
  port = (await server.listen()).port;
  jsServer = new SvpServer({ store, index, registry: new Registry(), host: '127.0.0.1', port: 0, logWaitMs: 400, nativeFrontEnd: false });
  jsPort = (await jsServer.listen()).port;
});

after(async () => {
  for (const r of raws) r.destroy();
  await server.close();
  await jsServer.close();
  index.close();
  await store.close();
});

describe('SVP native front end: the same answers as the JS path', () => {
  it('is on by default for plaintext listeners, and off when asked', () => {
    assert.equal(server.nativeFrontEnd, true);
    assert.equal(jsServer.nativeFrontEnd, false);
  });

  it('a long random pipeline of lookups, PINGs, bad types, misses and general-path requests, cut at random: byte-identical reply streams', async () => {
    let seed = 99;
    const rnd = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const frames: Buffer[] = [];
    for (let id = 1; id <= 3000; id++) {
      const k = rnd(9);
      if (k === 0) frames.push(vl3(nicIp(1 + rnd(25)), id));
      else if (k === 1) frames.push(vl3(nicIp(1 + rnd(25)), id, 2));
      else if (k === 2) frames.push(vl3('fd00::66', id, rnd(3) + 1));
      else if (k === 3) frames.push(vl2(nicMac(1 + rnd(25)), id, VNET + rnd(2)));
      else if (k === 4) frames.push(encodeFrame(SvpOp.PING, id));
      else if (k === 5) frames.push(encodeMessage({ op: SvpOp.BULK_REQ, type: rnd(3) }, id));
      else if (k === 6) frames.push(encodeMessage({ op: SvpOp.LOG_RM, ids: [Buffer.alloc(16, rnd(255))] }, id));
      else if (k === 7) frames.push(encodeMessage({ op: SvpOp.LOG_REQ, count: 1024, ip: ipToBytes('192.168.9.9') }, id)); // unknown node: FATAL at once
      else frames.push(vl3(nicIp(1 + rnd(25)), id, 1, VNET + 1));
    }
    const bytes = Buffer.concat(frames);
    const streams = await Promise.all(
      [port, jsPort].map(async (p) => {
        const s = net.connect({ port: p, host: '127.0.0.1', noDelay: true });
        const got: Buffer[] = [];
        let total = 0;
        s.on('data', (c: Buffer) => {
          got.push(c);
          total += c.length;
        });
        await new Promise<void>((r) => s.once('connect', () => r()));
        let local = 7;
        for (let off = 0; off < bytes.length; ) {
          local = (Math.imul(local, 1103515245) + 12345) >>> 0;
          const n = 1 + ((local >>> 8) % 700);
          s.write(bytes.subarray(off, off + n));
          off += n;
          if ((local & 7) === 0) await sleep(1);
        }
        const deadline = Date.now() + 10_000;
        // Every request has a reply here (none is held): wait until the stream stops growing.
        let last = -1;
        while (Date.now() < deadline && total !== last) {
          last = total;
          await sleep(100);
        }
        s.destroy();
        return Buffer.concat(got);
      }),
    );
    const decoded = new FrameDecoder({ role: 'client', maxFrameBytes: 1 << 20 }).push(streams[0]);
    assert.equal(decoded.error, undefined);
    assert.equal(decoded.frames.length, frames.length, 'a reply for every request');
    assert.ok(streams[0].equals(streams[1]), 'native and JS reply streams are byte for byte the same');
  });
});

describe('SVP native front end: mapping changes reach the next lookup', () => {
  it('a new NIC, a moved NIC, a changed underlay and a deleted NIC, each visible at once', async () => {
    const raw = await connect();
    const nic = { mac: '02:00:00:0a:0b:0c', ip: '10.77.0.1', vnet: VNET, cn: CN1 };
    assert.equal((await lookup3(raw, nic.ip, 1)).status, SvpStatus.NOTFOUND);
    await index.waitForRevision(await putNic(store, nic), 5000);
    assert.deepEqual(await lookup3(raw, nic.ip, 2), { status: SvpStatus.OK, mac: nic.mac, ul: UL_CN1, port: 4789 });
    await index.waitForRevision(await putNic(store, { ...nic, cn: CN2 }), 5000);
    assert.deepEqual(await lookup3(raw, nic.ip, 3), { status: SvpStatus.OK, mac: nic.mac, ul: UL_CN2, port: 4790 });
    await index.waitForRevision(await putUnderlay(store, CN2, '192.168.7.22', 4800), 5000);
    assert.deepEqual(await lookup3(raw, nic.ip, 4), { status: SvpStatus.OK, mac: nic.mac, ul: '192.168.7.22', port: 4800 });
    raw.send(vl2(nic.mac, 5));
    assert.deepEqual(encodeFrame(SvpOp.VL2_ACK, 5, (await raw.reply(5)).payload), encodeVl2Ack(5, SvpStatus.OK, 4800, ipToBytes('192.168.7.22')));
    await index.waitForRevision(await putUnderlay(store, CN2, UL_CN2, 4790), 5000);
    await index.waitForRevision(await deleteNic(store, nic), 5000);
    assert.equal((await lookup3(raw, nic.ip, 6)).status, SvpStatus.NOTFOUND);
    raw.send(vl2(nic.mac, 7));
    assert.equal((await raw.reply(7)).payload.readUInt16BE(0), SvpStatus.NOTFOUND);
  });

  it('tables that grow (past their first capacity) are still read right', async () => {
    const raw = await connect();
    const first = 1000;
    const n = 3000;
    let rev = 0;
    for (let i = first; i < first + n; i += 100) {
      const ops = [];
      for (let j = i; j < i + 100; j++) ops.push(putNic(store, { mac: nicMac(j), ip: nicIp(j), vnet: VNET + 7, cn: CN1 }));
      rev = Math.max(rev, ...(await Promise.all(ops)));
    }
    await index.waitForRevision(rev, 10_000);
    raw.send(Buffer.concat(Array.from({ length: n }, (_, k) => vl3(nicIp(first + k), k + 1, 1, VNET + 7))));
    const got = await nextFrames(raw, n, 10_000);
    got.forEach((f, k) => assert.deepEqual(encodeFrame(f.op, f.id, f.payload), encodeVl3Ack(k + 1, SvpStatus.OK, macToBytes(nicMac(first + k)), 4789, ipToBytes(UL_CN1)), `lookup ${k}`));
  });

  it('an index that reloads (its feed compacted away) answers from the reloaded state', async () => {
    // After the first range read more commits land and history is compacted: the index
    // reloads, and the server (made before the index started) follows each state.
    const s = new CompactingStore((st) => putNic(st, { mac: '02:00:00:00:00:01', ip: '10.0.0.1', vnet: 5, cn: CN1 }));
    await putUnderlay(s, CN1, UL_CN1, 4789);
    const ix = new MappingIndex({ store: s });
    const srv = new SvpServer({ store: s, index: ix, registry: new Registry(), host: '127.0.0.1', port: 0 });
    try {
      const p = (await srv.listen()).port;
      await ix.start();
      for (let i = 0; i < 100 && ix.stats().reloads < 1; i++) await sleep(10);
      assert.equal(ix.stats().reloads, 1);
      const raw = await connect(p);
      raw.send(encodeMessage({ op: SvpOp.VL3_REQ, ip: ipToBytes('10.0.0.1'), type: 1, vnetId: 5 }, 1));
      assert.deepEqual(encodeFrame(SvpOp.VL3_ACK, 1, (await raw.reply(1)).payload), encodeVl3Ack(1, SvpStatus.OK, macToBytes('02:00:00:00:00:01'), 4789, ipToBytes(UL_CN1)));
      const r2 = await putNic(s, { mac: '02:00:00:00:00:02', ip: '10.0.0.2', vnet: 5, cn: CN1 });
      assert.ok(await ix.waitForRevision(r2, 2000));
      raw.send(encodeMessage({ op: SvpOp.VL3_REQ, ip: ipToBytes('10.0.0.2'), type: 1, vnetId: 5 }, 2));
      assert.equal((await raw.reply(2)).payload.readUInt32BE(0), SvpStatus.OK, 'and it keeps following after the reload');
      raw.destroy();
    } finally {
      await srv.close();
      ix.close();
      await s.close();
    }
  });
});

describe('SVP native front end: JS requests among native lookups', () => {
  it('lookups after a held LOG_REQ are answered at once; its LOG_ACK follows when the event arrives', async () => {
    const raw = await connect();
    const held = encodeMessage({ op: SvpOp.LOG_REQ, count: 1024, ip: ipToBytes(UL_CN2) }, 0x77);
    raw.send(Buffer.concat([vl3(nicIp(1), 1), held, vl3(nicIp(2), 2), encodeFrame(SvpOp.PING, 3)]));
    const got = await nextFrames(raw, 3);
    assert.deepEqual(
      got.map((f) => [f.op, f.id]),
      [
        [SvpOp.VL3_ACK, 1],
        [SvpOp.VL3_ACK, 2],
        [SvpOp.PONG, 3],
      ],
    );
    const { ids } = await putEvents(store, [{ type: 'vl2', cn: CN2, vnet: VNET, mac: '02:00:00:00:0e:01' }]);
    const ack = await raw.reply(0x77, 3000);
    assert.equal(ack.op, SvpOp.LOG_ACK);
    assert.equal(ack.payload.length, 4 + 32, 'the one event');
    // Still served natively afterwards.
    assert.equal((await lookup3(raw, nicIp(3), 4)).status, SvpStatus.OK);
    await index.removeEvents(ids.map(uuidToBytes));
  });
});

describe('SVP native front end: clients that go away', () => {
  it('a client that pipelines without reading and resets mid-write: the connection and its held LOG_REQ are released, others still served', async () => {
    const heldBefore = await metric('rhumb_svp_log_reqs_held');
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('error', () => undefined);
    await new Promise<void>((r) => s.once('connect', () => r()));
    s.pause();
    s.write(encodeMessage({ op: SvpOp.LOG_REQ, count: 1024, ip: ipToBytes(UL_CN1) }, 1));
    const burst = Buffer.concat(Array.from({ length: 4000 }, (_, k) => vl3(nicIp(1 + (k % 20)), k + 2)));
    for (let i = 0; i < 100; i++) s.write(burst); // 16 MB: more than the kernel buffers both ways hold
    for (let i = 0; i < 200 && (await metric('rhumb_svp_log_reqs_held')) === heldBefore; i++) await sleep(5);
    assert.equal((await metric('rhumb_svp_log_reqs_held')) - heldBefore, 1, 'the LOG_REQ is held');
    for (let i = 0; i < 600 && (await metric('rhumb_svp_backlog_pauses_total')) === 0; i++) await sleep(5);
    assert.ok((await metric('rhumb_svp_backlog_pauses_total')) > 0, 'the server stopped reading it');
    s.resetAndDestroy();
    for (let i = 0; i < 400 && server.connectionCount > raws.filter((r) => !r.socket.destroyed).length; i++) await sleep(5);
    assert.equal(server.connectionCount, raws.filter((r) => !r.socket.destroyed).length, 'the reset connection is gone');
    assert.equal(await metric('rhumb_svp_log_reqs_held'), heldBefore, 'its held LOG_REQ released');
    const raw = await connect();
    assert.equal((await lookup3(raw, nicIp(5), 1)).status, SvpStatus.OK);
  });

  it('a client that half-closes after its requests gets every answer, then the server ends the connection', async () => {
    const raw = await connect();
    raw.socket.end(Buffer.concat(Array.from({ length: 500 }, (_, k) => vl3(nicIp(1 + (k % 20)), k + 1))));
    assert.ok(await raw.closesWithin(3000), 'the server closes once it has answered');
    assert.equal(raw.frames.length, 500);
  });

  it('a connection with no traffic either way is closed after idleTimeoutMs; one that talks is not', async () => {
    const reg = new Registry();
    // idleTimeoutMs is raised to logWaitMs + 5 s: the shortest idle timeout there is.
    const srv = new SvpServer({ store, index, registry: reg, host: '127.0.0.1', port: 0, logWaitMs: 100, idleTimeoutMs: 1 });
    try {
      const p = (await srv.listen()).port;
      const quiet = await connect(p);
      const talker = await connect(p);
      let id = 1;
      const started = Date.now();
      while (Date.now() - started < 5600) {
        talker.send(encodeFrame(SvpOp.PING, id));
        await talker.reply(id++);
        await sleep(400);
      }
      assert.ok(await quiet.closesWithin(1500), 'the quiet connection was closed');
      assert.equal(talker.socket.destroyed, false, 'the talking one is open');
      const m = await reg.getSingleMetric('rhumb_svp_connections_closed_for_cause_total')!.get();
      assert.equal(m.values.find((v) => v.labels.cause === 'idle_timeout')?.value, 1);
    } finally {
      await srv.close();
    }
  });

  it('closing the server closes its native connections', async () => {
    const registry2 = new Registry();
    const srv = new SvpServer({ store, index, registry: registry2, host: '127.0.0.1', port: 0 });
    const p = (await srv.listen()).port;
    const raw = await connect(p);
    assert.equal((await lookup3(raw, nicIp(1), 1)).status, SvpStatus.OK);
    await srv.close();
    assert.ok(await raw.closesWithin(2000));
  });
});
