/**
 * SvpClient against real SvpServers and scripted fake servers on loopback: typed results,
 * pipelining, round robin, failover of outstanding queries, timeouts, reconnect backoff,
 * keepalive, and a host name resolving to several addresses.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { MappingIndex } from '../../src/mapping/index.js';
import { MemoryStore } from '../../src/store/memory.js';
import { type Frame, FrameDecoder, SvpOp, SvpStatus, encodePong } from '../../src/svp/codec.js';
import { SvpClient, SvpClosedError, SvpTimeoutError, parseServer } from '../../src/svp/client.js';
import { SvpServer } from '../../src/svp/server.js';
import { CN1, putEvents, putNic, putUnderlay } from '../helpers/svp-fixtures.js';

const VNET = 4001;
const VM = { mac: '02:00:0a:00:00:01', ip: '10.0.0.1', vnet: VNET, cn: CN1 };

/** A TCP server that decodes SVP requests and lets the test decide what to do with each. */
class FakeServer {
  readonly server: net.Server;
  readonly sockets = new Set<net.Socket>();
  readonly seen: Frame[] = [];
  constructor(onFrame: (f: Frame, s: net.Socket) => void) {
    this.server = net.createServer((s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {});
      const d = new FrameDecoder({ role: 'server' });
      s.on('data', (c: Buffer) => {
        for (const f of d.push(c).frames) {
          this.seen.push(f);
          onFrame(f, s);
        }
      });
    });
  }
  async listen(host = '127.0.0.1', port = 0): Promise<number> {
    await new Promise<void>((r) => this.server.listen(port, host, r));
    return (this.server.address() as net.AddressInfo).port;
  }
  dropConnections(): void {
    for (const s of this.sockets) s.destroy();
  }
  async close(): Promise<void> {
    this.dropConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

let store: MemoryStore;
let index: MappingIndex;
const servers: SvpServer[] = [];
const fakes: FakeServer[] = [];
const clients: SvpClient[] = [];

async function realServer(host = '127.0.0.1', port = 0): Promise<{ srv: SvpServer; port: number; label: string }> {
  const srv = new SvpServer({ store, index, registry: new Registry(), host, port, logWaitMs: 300 });
  servers.push(srv);
  const addr = await srv.listen();
  return { srv, port: addr.port, label: `${host}:${addr.port}` };
}

function client(opts: ConstructorParameters<typeof SvpClient>[0]): SvpClient {
  const c = new SvpClient({ backoffBaseMs: 50, backoffMaxMs: 400, ...opts });
  clients.push(c);
  return c;
}

const once = <T extends unknown[]>(c: SvpClient, ev: 'connect' | 'disconnect'): Promise<T> =>
  new Promise((resolve) => c.once(ev, (...args: unknown[]) => resolve(args as T)));

before(async () => {
  store = new MemoryStore();
  await putUnderlay(store, CN1, '192.168.1.1', 4789);
  await putNic(store, VM);
  index = new MappingIndex({ store });
  await index.start();
});

after(async () => {
  for (const c of clients) c.close();
  for (const s of servers) await s.close();
  for (const f of fakes) await f.close();
  index.close();
  await store.close();
});

describe('parseServer', () => {
  it('parses host:port, [v6]:port, bare names and addresses', () => {
    assert.deepEqual(parseServer('10.1.2.3:99'), { host: '10.1.2.3', port: 99 });
    assert.deepEqual(parseServer('[::1]:1297'), { host: '::1', port: 1297 });
    assert.deepEqual(parseServer('portolan.example'), { host: 'portolan.example', port: 1296 });
    assert.deepEqual(parseServer('fd00::1'), { host: 'fd00::1', port: 1296 });
    assert.throws(() => parseServer('host:0'), TypeError);
    assert.throws(() => parseServer(':80'), TypeError);
  });
});

describe('SvpClient against SvpServer', { timeout: 20000 }, () => {
  it('ping, vl2, vl3, logReq, logRm with typed results', async () => {
    const { label } = await realServer();
    const c = client({ servers: [label] });
    const ping = await c.ping();
    assert.equal(ping.server, label);
    assert.ok(ping.rttMs >= 0);
    assert.deepEqual(await c.vl2(VM.mac, VNET), { server: label, status: SvpStatus.OK, statusName: 'OK', ip: '192.168.1.1', port: 4789 });
    assert.deepEqual(await c.vl2(VM.mac, VNET + 1), { server: label, status: SvpStatus.NOTFOUND, statusName: 'NOTFOUND', ip: null, port: 0 });
    assert.deepEqual(await c.vl3(VM.ip, VNET), {
      server: label,
      status: SvpStatus.OK,
      statusName: 'OK',
      mac: VM.mac,
      ip: '192.168.1.1',
      port: 4789,
    });
    assert.equal((await c.vl3(VM.ip, VNET, { type: 7 })).statusName, 'BADL3TYPE');
    const { ids } = await putEvents(store, [
      { type: 'vl2', cn: CN1, vnet: VNET, mac: VM.mac },
      { type: 'vl3', cn: CN1, vnet: VNET, ip: VM.ip, vlan: 3 },
    ]);
    const log = await c.logReq('192.168.1.1', 1024);
    assert.equal(log.status, SvpStatus.OK);
    assert.equal(log.bytes, 4 + 32 + 44);
    assert.deepEqual(log.entries, [
      { type: 'vl2', id: ids[0], mac: VM.mac, vnetId: VNET },
      { type: 'vl3', id: ids[1], ip: VM.ip, vlan: 3, vnetId: VNET },
    ]);
    assert.equal((await c.logRm(ids)).status, SvpStatus.OK);
    const empty = await c.logReq('192.168.1.1', 1024); // held ~300 ms then empty
    assert.deepEqual(empty.entries, []);
    assert.equal((await c.logReq('192.168.200.1')).statusName, 'FATAL');
  });

  it('pipelines: many queries outstanding on one connection, all answered correctly', async () => {
    const { srv, label } = await realServer();
    const c = client({ servers: [label] });
    await c.ready();
    const qs = Array.from({ length: 300 }, (_, i) => (i % 2 ? c.vl3(VM.ip, VNET) : c.vl2(VM.mac, VNET)));
    assert.equal(c.endpoints()[0].inflight, 300, 'all 300 sent before any reply');
    const rs = await Promise.all(qs);
    assert.ok(rs.every((r) => r.status === SvpStatus.OK && r.ip === '192.168.1.1'));
    assert.equal(srv.connectionCount, 1);
  });

  it('round robin over several endpoints', async () => {
    const a = await realServer();
    const b = await realServer();
    const c = client({ servers: [`${a.label},${b.label}`] });
    await c.ready();
    while (c.endpoints().some((e) => e.state !== 'active')) await new Promise((r) => setTimeout(r, 10));
    const used = new Set((await Promise.all(Array.from({ length: 10 }, () => c.ping()))).map((p) => p.server));
    assert.deepEqual([...used].sort(), [a.label, b.label].sort());
  });

  it('a host name resolving to several addresses gets one connection per address', async () => {
    const a = await realServer('127.0.0.1');
    const b = await realServer('127.0.0.2', a.port);
    const c = client({ servers: [`svp.test:${a.port}`], lookup: async () => ['127.0.0.1', '127.0.0.2'] });
    await c.ready();
    while (c.endpoints().some((e) => e.state !== 'active')) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(c.endpoints().map((e) => e.server).sort(), [a.label, b.label].sort());
    const used = new Set((await Promise.all(Array.from({ length: 6 }, () => c.vl2(VM.mac, VNET)))).map((p) => p.server));
    assert.equal(used.size, 2);
  });
});

describe('SvpClient failure handling', { timeout: 20000 }, () => {
  it('moves outstanding queries to another endpoint when a connection fails', async () => {
    const hole = new FakeServer(() => {}); // accepts and never answers
    fakes.push(hole);
    const holePort = await hole.listen();
    const good = await realServer();
    const c = client({ servers: [`127.0.0.1:${holePort}`, good.label], timeoutMs: 3000 });
    await c.ready();
    while (c.endpoints().some((e) => e.state !== 'active')) await new Promise((r) => setTimeout(r, 10));
    const qs = Array.from({ length: 10 }, () => c.vl2(VM.mac, VNET));
    while (hole.seen.length < 5) await new Promise((r) => setTimeout(r, 5));
    const down = once<[string, string]>(c, 'disconnect');
    hole.dropConnections();
    assert.equal((await down)[0], `127.0.0.1:${holePort}`);
    const rs = await Promise.all(qs);
    assert.ok(rs.every((r) => r.status === SvpStatus.OK && r.server === good.label));
  });

  it('times a query out, and tears down a connection that answers nothing', async () => {
    const hole = new FakeServer(() => {});
    fakes.push(hole);
    const port = await hole.listen();
    const c = client({ servers: [`127.0.0.1:${port}`], timeoutMs: 150, keepaliveMs: 0 });
    await c.ready();
    const down = once<[string, string]>(c, 'disconnect');
    const t0 = performance.now();
    await assert.rejects(c.vl2(VM.mac, VNET), SvpTimeoutError);
    assert.ok(performance.now() - t0 >= 140);
    assert.match((await down)[1], /no reply/);
  });

  it('a query waits for a connection while none is up, and times out if none comes', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r())); // nothing listens there now
    const c = client({ servers: [`127.0.0.1:${port}`], timeoutMs: 200 });
    await assert.rejects(c.ping(), SvpTimeoutError);
  });

  it('reconnects with backoff after the server comes back', async () => {
    const first = await realServer();
    const c = client({ servers: [first.label], backoffBaseMs: 30, timeoutMs: 2000 });
    await c.ready();
    const down = once(c, 'disconnect');
    await first.srv.close();
    await down;
    await new Promise((r) => setTimeout(r, 150)); // a few failed attempts with backoff
    const up = once<[string]>(c, 'connect');
    await realServer('127.0.0.1', first.port);
    assert.equal((await up)[0], first.label);
    assert.equal((await c.vl2(VM.mac, VNET)).status, SvpStatus.OK);
  });

  it('sends keepalive PINGs when idle, and drops a connection whose PINGs go unanswered', async () => {
    let answer = true;
    const fake = new FakeServer((f, s) => {
      if (f.op === SvpOp.PING && answer) s.write(encodePong(f.id));
    });
    fakes.push(fake);
    const port = await fake.listen();
    const c = client({ servers: [`127.0.0.1:${port}`], keepaliveMs: 60, timeoutMs: 150 });
    await c.ready();
    await new Promise((r) => setTimeout(r, 300));
    const pings = fake.seen.filter((f) => f.op === SvpOp.PING).length;
    assert.ok(pings >= 2, `saw ${pings} keepalive PINGs`);
    answer = false;
    const [, reason] = await once<[string, string]>(c, 'disconnect');
    assert.match(reason, /keepalive|no reply/);
  });

  it('reconnect() replaces every connection at once (no back-off) and its queries are answered on the new one', async () => {
    // The first connection is dead-silent, as one that left from an address now gone.
    let conns = 0;
    const first = new WeakSet<net.Socket>();
    const fake = new FakeServer((f, s) => {
      if (f.op === SvpOp.PING && !first.has(s)) s.write(encodePong(f.id));
    });
    fake.server.on('connection', (s: net.Socket) => {
      if (++conns === 1) first.add(s);
    });
    fakes.push(fake);
    const port = await fake.listen();
    const c = client({ servers: [`127.0.0.1:${port}`], backoffBaseMs: 60_000, backoffMaxMs: 60_000, timeoutMs: 10_000, keepaliveMs: 0 });
    await c.ready();
    const pending = c.ping();
    while (fake.seen.length < 1) await new Promise((r) => setTimeout(r, 5));
    const down = once<[string, string]>(c, 'disconnect');
    const up = once<[string]>(c, 'connect');
    c.reconnect('an address of this node is gone');
    assert.equal((await down)[1], 'an address of this node is gone');
    await up;
    const r = await pending;
    assert.equal(r.server, `127.0.0.1:${port}`);
    assert.equal(conns, 2);
  });

  it('close() rejects waiting queries', async () => {
    const c = client({ servers: ['127.0.0.1:9'], timeoutMs: 5000 });
    const p = c.ping();
    c.close();
    await assert.rejects(p, SvpClosedError);
  });
});
