/**
 * A real controller process against abusive SVP clients (issue #17, item 2): slow readers
 * pipelining LOG_REQs for a node with many pending events must not grow its memory, the
 * memory they did use is given back once they close, and connections are capped in total
 * and per peer address (refusals counted in /metrics) while other clients are served.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { LevelStore } from '../../src/store/leveldb.js';
import { SvpOp, SvpStatus, decodeMessage, encodeFrame, encodeMessage } from '../../src/svp/codec.js';
import { ipToBytes, macToBytes } from '../../src/net/addr.js';
import { CLI, http, makeTempDir, type RunningController, startControllerProcess } from '../helpers/processes.js';
import { CN1, type EventSpec, putEvents, putNic, putUnderlay } from '../helpers/svp-fixtures.js';
import { RawSvp } from '../helpers/svp-raw.js';

const VNET = 12340;
const VM0 = { mac: '00:0a:95:9d:68:16', ip: '10.0.0.1', vnet: VNET, cn: CN1 };
const UL_CN1 = '192.168.1.1';
const PENDING_EVENTS = 1000;
const ABUSERS = 4;
const ROUNDS = 2;
/** LOG_REQs each abuser sends (in writes of 1,800 frames, ~64 KB, as in the issue). */
const LOG_REQS_PER_ABUSER = 3600;
/**
 * Most the controller's RSS may grow over its warmed-up baseline while the abusers are
 * connected and after they have gone, over every round. Before the fix the controller grew
 * by ~146 MiB per such connection (issue #17; ~350 MiB for these four); with the backlog
 * and LOG_ACKs bounded it grows by the garbage collector's and malloc's slack only.
 */
const RSS_BOUND_MIB = 64;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  assert.ok(m, 'VmRSS in /proc/PID/status');
  return Number(m[1]) / 1024;
}

async function metricsText(ctl: RunningController): Promise<string> {
  const res = await http(ctl.restUrl, 'GET', '/metrics');
  assert.equal(res.status, 200);
  return String(res.body);
}

/** Sum of a metric's samples whose labels include every given label. */
function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^(\w+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]] as [string, string]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) sum += Number(m[3]);
  }
  return sum;
}

async function waitForMetric(ctl: RunningController, name: string, want: number, labels: Record<string, string> = {}): Promise<void> {
  const deadline = Date.now() + 5000;
  let last = NaN;
  while (Date.now() < deadline) {
    last = metricValue(await metricsText(ctl), name, labels);
    if (last === want) return;
    await sleep(50);
  }
  assert.fail(`${name}${JSON.stringify(labels)} stayed ${last}, want ${want}`);
}

function pendingEvents(n: number): EventSpec[] {
  const evs: EventSpec[] = [];
  for (let i = 0; i < n; i++) {
    const hi = (i >> 8).toString(16).padStart(2, '0');
    const lo = (i & 0xff).toString(16).padStart(2, '0');
    evs.push(i % 2 === 0 ? { type: 'vl2', cn: CN1, vnet: VNET, mac: `02:00:00:00:${hi}:${lo}` } : { type: 'vl3', cn: CN1, vnet: VNET, ip: `10.1.${i >> 8}.${i & 0xff}` });
  }
  return evs;
}

/** A client that pipelines LOG_REQs asking for every byte and never reads a reply. */
function slowReader(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' }, () => {
      s.off('error', reject);
      s.on('error', () => {});
      s.pause();
      resolve(s);
    });
    s.once('error', reject);
  });
}

function logReqBurst(firstId: number, n: number): Buffer {
  const frames: Buffer[] = [];
  for (let i = 0; i < n; i++) frames.push(encodeMessage({ op: SvpOp.LOG_REQ, count: 0xffffffff, ip: ipToBytes(UL_CN1) }, firstId + i));
  return Buffer.concat(frames);
}

/** A well-behaved client is answered: PING, a VL2 lookup and a small LOG_REQ. */
async function servedNormally(raw: RawSvp, id: number): Promise<void> {
  raw.send(encodeFrame(SvpOp.PING, id));
  assert.equal((await raw.reply(id, 5000)).op, SvpOp.PONG);
  raw.send(encodeMessage({ op: SvpOp.VL2_REQ, mac: macToBytes(VM0.mac), vnetId: VNET }, id + 1));
  const vl2 = decodeMessage(await raw.reply(id + 1, 5000));
  assert.ok(vl2.op === SvpOp.VL2_ACK && vl2.status === SvpStatus.OK);
  raw.send(encodeMessage({ op: SvpOp.LOG_REQ, count: 1024, ip: ipToBytes(UL_CN1) }, id + 2));
  const log = decodeMessage(await raw.reply(id + 2, 5000));
  assert.ok(log.op === SvpOp.LOG_ACK && log.status === SvpStatus.OK && log.entries.length > 0);
}

describe('SVP slow readers do not exhaust controller memory', { timeout: 90000 }, () => {
  let ctl: RunningController;
  const sockets: net.Socket[] = [];
  const raws: RawSvp[] = [];

  before(async () => {
    // Seed the store before the controller opens it: one node with 1,000 pending events.
    const dataDir = await makeTempDir('svp-limits');
    try {
      const store = await LevelStore.open(dataDir, { sync: false });
      try {
        await putUnderlay(store, CN1, UL_CN1);
        await putNic(store, VM0);
        await putEvents(store, pendingEvents(PENDING_EVENTS));
      } finally {
        await store.close();
      }
      ctl = await startControllerProcess({ dataDir, args: ['--log-wait', '500'] });
    } catch (err) {
      await rm(dataDir, { recursive: true, force: true });
      throw err;
    }
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    for (const r of raws) r.destroy();
    await ctl?.stop();
  });

  it(`${ABUSERS} connections pipelining ${LOG_REQS_PER_ABUSER} LOG_REQs each without reading, ${ROUNDS} rounds: RSS grows < ${RSS_BOUND_MIB} MiB, others served, memory back after close`, async () => {
    const pid = ctl.proc.pid!;
    const port = ctl.svp!.port;
    const good = await RawSvp.connect(port);
    raws.push(good);
    // Warm up what the abusers exercise (a client asking for everything, and reading it),
    // so the baseline includes compiled code and a grown young generation.
    for (let i = 0; i < 20; i++) await servedNormally(good, 100 + 10 * i);
    const reader = await RawSvp.connect(port);
    raws.push(reader);
    reader.send(logReqBurst(500_000, 1800));
    await reader.reply(500_000 + 1799, 20000);
    reader.frames.length = 0;
    await sleep(500);
    const before = await rssMiB(pid);

    const notes: string[] = [];
    let worst = 0;
    let nextId = 1_000_000;
    for (let round = 0; round < ROUNDS; round++) {
      for (let a = 0; a < ABUSERS; a++) {
        const s = await slowReader(port);
        sockets.push(s);
        for (let sent = 0; sent < LOG_REQS_PER_ABUSER; sent += 1800) {
          s.write(logReqBurst(nextId, 1800));
          nextId += 1800;
        }
      }
      // While they wait to be read, the controller serves everyone else; sample its RSS.
      let peak = 0;
      for (let i = 0; i < 15; i++) {
        await servedNormally(good, 10_000 + 10 * i);
        peak = Math.max(peak, await rssMiB(pid));
        await sleep(100);
      }
      await waitForMetric(ctl, 'rhumb_svp_connections', ABUSERS + 2);
      for (const s of sockets.splice(0)) s.destroy();
      await waitForMetric(ctl, 'rhumb_svp_connections', 2);
      await sleep(500);
      await servedNormally(good, 20_000);
      const closed = await rssMiB(pid);
      worst = Math.max(worst, peak - before, closed - before);
      notes.push(`round ${round}: peak ${peak.toFixed(1)} (+${(peak - before).toFixed(1)}), after close ${closed.toFixed(1)} (+${(closed - before).toFixed(1)})`);
    }
    const text = await metricsText(ctl);
    const note = `RSS MiB: before ${before.toFixed(1)}; ${notes.join('; ')}`;
    process.stdout.write(`# ${note}\n`);
    assert.ok(worst < RSS_BOUND_MIB, `grew by ${worst.toFixed(1)} MiB: ${note}`);
    // The abusers were stopped being read, not served without bound.
    assert.ok(metricValue(text, 'rhumb_svp_backlog_pauses_total') >= ABUSERS * ROUNDS);
    assert.ok(metricValue(text, 'rhumb_svp_requests_total', { op: 'log_req' }) < ABUSERS * ROUNDS * LOG_REQS_PER_ABUSER);
  });
});

describe('SVP connection caps (--svp-max-conns, --svp-max-conns-per-peer)', { timeout: 60000 }, () => {
  let ctl: RunningController;
  const raws: RawSvp[] = [];
  let nextId = 1;

  const connect = async (from: string): Promise<RawSvp> => {
    const r = await RawSvp.connect(ctl.svp!.port, '127.0.0.1', from);
    raws.push(r);
    return r;
  };
  const pong = async (r: RawSvp): Promise<void> => {
    const id = nextId++;
    r.send(encodeFrame(SvpOp.PING, id));
    assert.equal((await r.reply(id, 5000)).op, SvpOp.PONG);
  };
  const refused = async (r: RawSvp): Promise<void> => {
    r.send(encodeFrame(SvpOp.PING, nextId++));
    assert.ok(await r.closesWithin(5000), 'the refused connection is closed');
    assert.equal(r.frames.length, 0, 'and nothing was answered on it');
  };

  before(async () => {
    ctl = await startControllerProcess({ args: ['--svp-max-conns', '5', '--svp-max-conns-per-peer', '2'] });
  });

  after(async () => {
    for (const r of raws) r.destroy();
    await ctl?.stop();
  });

  it('refuses a third connection from one address, counts it, and serves the others', async () => {
    const a1 = await connect('127.0.0.1');
    const a2 = await connect('127.0.0.1');
    await pong(a1);
    await pong(a2);
    await refused(await connect('127.0.0.1'));
    const b1 = await connect('127.0.0.2');
    await pong(b1);
    await pong(a1);
    const text = await metricsText(ctl);
    assert.equal(metricValue(text, 'rhumb_svp_connections_refused_total', { reason: 'per_peer' }), 1);
    assert.equal(metricValue(text, 'rhumb_svp_connections_refused_total', { reason: 'total' }), 0);
    assert.equal(metricValue(text, 'rhumb_svp_connections'), 3);
  });

  it('refuses a connection over the total from any address, and admits again once one closes', async () => {
    const b2 = await connect('127.0.0.2');
    const c1 = await connect('127.0.0.3');
    await pong(b2);
    await pong(c1); // 5 open: a1, a2, b1, b2, c1
    await refused(await connect('127.0.0.4'));
    let text = await metricsText(ctl);
    assert.equal(metricValue(text, 'rhumb_svp_connections_refused_total', { reason: 'total' }), 1);
    assert.equal(metricValue(text, 'rhumb_svp_connections'), 5);
    // A slot and the peer's share come back when a connection closes.
    raws[0].destroy(); // a1
    await waitForMetric(ctl, 'rhumb_svp_connections', 4);
    const a3 = await connect('127.0.0.1');
    await pong(a3);
    for (const r of [raws[1], raws[3], b2, c1]) await pong(r); // a2, b1, b2, c1 still served
    text = await metricsText(ctl);
    assert.equal(metricValue(text, 'rhumb_svp_connections_refused_total'), 2);
  });

  it('rejects a bad cap value with a clear error', async () => {
    const r = spawnSync(process.execPath, [CLI, 'controller', '--svp-max-conns', '0'], { encoding: 'utf8', timeout: 20000 });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /--svp-max-conns.*expected an integer from 1/);
  });
});
