/**
 * SVP lookup benchmark: VL3 lookups/s and p50/p99 latency against an index of N mappings
 * (default 1,000,000 NICs), at 1/16/64 connections × pipeline depth 1/32, and in the same
 * run redis-benchmark GET against a Debian redis-server (started here on a free loopback
 * port, filled with N keys, killed at the end) with the same -c and -P. Prints a table
 * with the ratio, memory per mapping for both, and writes bench/results/svp-lookup.json.
 *
 *   node --import tsx bench/svp-lookup/run.ts [--quick] [--mappings N] [--duration S] [--no-redis]
 *       [--node-client] [--only 64x32,...] [--cpu-prof DIR] [--tls]
 *
 * --tls then measures the cost of TLS: every setting again with the JS generator over
 * plaintext and over TLS (an operator certificate from `rhumb pki`; connections made
 * before measuring, so handshakes are not counted), against a server child each.
 *
 * Method (same as redis-benchmark): each connection writes a batch of `depth` requests,
 * waits for all replies, repeats; a request's latency is from its batch's write to the
 * batch's first read event. Keys are uniform random over all N mappings (all hits), fresh
 * for every batch. The SVP server runs in its own process (bench/svp-lookup/server.ts).
 *
 * The SVP load generator is bench/svp-lookup/loadgen.c (compiled here with cc): C, one
 * thread, epoll, like redis-benchmark, so that on a 2-core machine the generator takes
 * about as much CPU from the server under test on both sides. --node-client uses the
 * older JS generator instead (at depth 1 it used 10-40 µs of CPU per request, about as
 * much as the server, on a 2-core machine where the two share the cores).
 * Each server's CPU time per request is reported too (from /proc/PID/stat over the
 * measured window): it moves much less than the rates when the machine is shared.
 *
 * The SVP server answers lookups in its native front end (the default for plaintext);
 * RHUMB_SVP_NATIVE=0 in the environment measures the TypeScript path instead.
 */
import { type ChildProcess, execFileSync, fork, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { pkiInit, pkiIssue } from '../../src/security/pki.js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Table from 'cli-table3';
import { FrameDecoder, SvpOp, SvpStatus, encodeMessage } from '../../src/svp/codec.js';
import { ipToBytes } from '../../src/net/addr.js';
import { benchNic } from './shape.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');

// ---------------------------------------------------------------------------------------
// Options

const argv = process.argv.slice(2);
const flag = (name: string): boolean => argv.includes(name);
const value = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const quick = flag('--quick');
const MAPPINGS = Number(value('--mappings') ?? (quick ? 100_000 : 1_000_000));
const DURATION_MS = Number(value('--duration') ?? (quick ? 0.5 : 3)) * 1000;
const WARMUP_MS = quick ? 100 : 500;
const WITH_REDIS = !flag('--no-redis');
const NODE_CLIENT = flag('--node-client');
const TLS = flag('--tls');
/** --only 64x32[,16x32...]: run just these settings (profiling, iteration). */
const ONLY = value('--only')?.split(',').map((s) => s.trim());
/**
 * --cpu-prof DIR: the SVP server child records a V8 CPU profile of each run (its warm-up
 * included), not of the index load, as DIR/svp-<c>x<P>.cpuprofile.
 */
const CPU_PROF_DIR = value('--cpu-prof');
const CONNS = [1, 16, 64];
const DEPTHS = [1, 32];

// ---------------------------------------------------------------------------------------
// Latency histogram (1 µs buckets up to 200 ms)

class Histo {
  private readonly b = new Uint32Array(200_001);
  count = 0;
  add(ms: number): void {
    const us = Math.min(200_000, Math.max(0, Math.round(ms * 1000)));
    this.b[us]++;
    this.count++;
  }
  /** Percentile in ms. */
  pct(p: number): number {
    const want = Math.ceil((p / 100) * this.count);
    let acc = 0;
    for (let i = 0; i < this.b.length; i++) {
      acc += this.b[i];
      if (acc >= want) return i / 1000;
    }
    return NaN;
  }
}

// ---------------------------------------------------------------------------------------
// SVP server child

interface ReadyMsg {
  type: 'ready';
  port: number;
  mappings: number;
  loadMs: number;
  index: {
    macMappings: number;
    ipMappings: number;
    tableBytes: number;
    heapPlusArrayBuffersDelta: number;
    bytesPerMapping: number;
    tableBytesPerMapping: number;
  };
}

function startServerChild(tlsDir?: string): Promise<{ child: ChildProcess; ready: ReadyMsg }> {
  const child = fork(join(here, 'server.ts'), tlsDir ? [String(MAPPINGS), tlsDir] : [String(MAPPINGS)], {
    execArgv: ['--expose-gc', '--max-old-space-size=8192', '--import', 'tsx'],
    cwd: root,
    env: CPU_PROF_DIR ? { ...process.env, SVP_BENCH_CPU_PROF_DIR: CPU_PROF_DIR } : process.env,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`bench server exited with ${code}`)));
    child.on('message', (m: { type: string }) => {
      if (m.type === 'ready') resolve({ child, ready: m as ReadyMsg });
    });
  });
}

function ask<T>(child: ChildProcess, msg: { type: string; label?: string }, replyType: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { type: string }): void => {
      if (m.type !== replyType) return;
      child.off('message', on);
      resolve(m as T);
    };
    child.on('message', on);
    child.send(msg);
  });
}

// ---------------------------------------------------------------------------------------
// SVP load generator

/** Pre-built batches of `depth` VL3_REQs with ids 0..depth-1 and random (hit) keys. */
function makeBatches(depth: number, n: number): Buffer[] {
  const out: Buffer[] = [];
  for (let b = 0; b < n; b++) {
    const frames: Buffer[] = [];
    for (let id = 0; id < depth; id++) {
      const nic = benchNic(Math.floor(Math.random() * MAPPINGS));
      frames.push(encodeMessage({ op: SvpOp.VL3_REQ, ip: ipToBytes(nic.ip), type: 1, vnetId: nic.vnet }, id));
    }
    out.push(Buffer.concat(frames));
  }
  return out;
}

interface RunResult {
  conns: number;
  depth: number;
  requests: number;
  seconds: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  errors: number;
  /** The load generator's CPU time per request (µs), where measured. */
  clientCpuUsPerReq?: number;
  /** The server's CPU time per request (µs), where measured. */
  serverCpuUsPerReq?: number;
}

// ---------------------------------------------------------------------------------------
// C load generator (loadgen.c)

const LOADGEN_SRC = join(here, 'loadgen.c');
const LOADGEN_BIN = join(root, 'bench', 'results', 'bin', 'svp-loadgen');

/** Compiles loadgen.c unless the binary is newer than the source. */
function buildLoadgen(): void {
  if (existsSync(LOADGEN_BIN) && statSync(LOADGEN_BIN).mtimeMs >= statSync(LOADGEN_SRC).mtimeMs) return;
  mkdirSync(dirname(LOADGEN_BIN), { recursive: true });
  execFileSync('cc', ['-O2', '-std=c11', '-D_GNU_SOURCE', '-Wall', '-Wextra', '-Werror', '-o', LOADGEN_BIN, LOADGEN_SRC], { stdio: 'inherit' });
}

interface LoadgenOut {
  requests: number;
  seconds: number;
  p50ms: number;
  p99ms: number;
  errors: number;
  clientCpuMicros: number;
  serverCpuMicros: number;
}

async function svpRunC(port: number, conns: number, depth: number, child: ChildProcess): Promise<RunResult> {
  // The server child profiles the same window when --cpu-prof is given.
  if (CPU_PROF_DIR) await ask(child, { type: 'cpu-mark', label: `${conns}x${depth}` }, 'cpu-marked');
  const out = await new Promise<string>((resolve, reject) => {
    const args = [port, conns, depth, MAPPINGS, WARMUP_MS, DURATION_MS, child.pid ?? 0].map(String);
    const gen = spawn(LOADGEN_BIN, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    gen.stdout.on('data', (d: Buffer) => (text += d.toString()));
    gen.once('error', reject);
    gen.once('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`svp-loadgen exited with ${code}`))));
  });
  if (CPU_PROF_DIR) await ask(child, { type: 'cpu-read' }, 'cpu');
  const r = JSON.parse(out) as LoadgenOut;
  return {
    conns,
    depth,
    requests: r.requests,
    seconds: r.seconds,
    rps: r.requests / r.seconds,
    p50ms: r.p50ms,
    p99ms: r.p99ms,
    errors: r.errors,
    clientCpuUsPerReq: r.clientCpuMicros / r.requests,
    serverCpuUsPerReq: r.serverCpuMicros >= 0 ? r.serverCpuMicros / r.requests : undefined,
  };
}

const ACK_BYTES = 16 + 28;

/** The JS load generator (--node-client): one event loop for every connection. */
/** Client credentials for SVP over TLS (svpRunNode). */
interface ClientTls {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

async function svpRunNode(port: number, conns: number, depth: number, child: ChildProcess, clientTls?: ClientTls): Promise<RunResult> {
  const batches = makeBatches(depth, 4096);
  const histo = new Histo();
  let requests = 0;
  let errors = 0;
  let recording = false;
  let stopping = false;
  let nextBatch = 0;
  // Check a sample of replies fully (CRC, id, op) with the real decoder.
  const verifier = new FrameDecoder({ role: 'client' });
  let verified = 0;

  const sockets = await Promise.all(
    Array.from(
      { length: conns },
      () =>
        new Promise<net.Socket>((resolve, reject) => {
          const s: net.Socket = clientTls
            ? tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ...clientTls }, () => {
                s.setNoDelay(true);
                resolve(s);
              })
            : net.connect({ port, host: '127.0.0.1', noDelay: true }, () => resolve(s));
          s.once('error', reject);
        }),
    ),
  );
  let running = conns;
  let allDone!: () => void;
  const done = new Promise<void>((r) => (allDone = r));

  for (const s of sockets) {
    let sentAt = 0;
    /** From the batch's write to its first read event (redis-benchmark's definition). */
    let latency = -1;
    let remaining = 0;
    let leftover: Buffer | null = null;
    const send = (): void => {
      if (stopping) {
        if (--running === 0) allDone();
        return;
      }
      remaining = depth;
      latency = -1;
      sentAt = performance.now();
      s.write(batches[nextBatch++ & 4095]);
    };
    s.on('data', (chunk: Buffer) => {
      if (latency < 0) latency = performance.now() - sentAt;
      let buf = chunk;
      if (leftover) {
        buf = Buffer.concat([leftover, chunk]);
        leftover = null;
      }
      let off = 0;
      for (; off + ACK_BYTES <= buf.length; off += ACK_BYTES) {
        if (buf.readUInt16BE(off + 2) !== SvpOp.VL3_ACK || buf.readUInt32BE(off + 16) !== SvpStatus.OK) errors++;
        if (verified < 2000) {
          const r = verifier.push(buf.subarray(off, off + ACK_BYTES));
          if (r.error || r.frames.length !== 1 || r.frames[0].id >= depth) errors++;
          verified++;
        }
        if (recording) {
          histo.add(latency);
          requests++;
        }
        remaining--;
      }
      if (off < buf.length) leftover = Buffer.from(buf.subarray(off));
      if (remaining === 0) send();
    });
    s.on('error', () => {
      errors++;
    });
    send();
  }

  await sleep(WARMUP_MS);
  await ask(child, { type: 'cpu-mark', label: `${conns}x${depth}` }, 'cpu-marked');
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  recording = true;
  await sleep(DURATION_MS);
  recording = false;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const server = await ask<{ micros: number }>(child, { type: 'cpu-read' }, 'cpu');
  stopping = true;
  await done;
  for (const s of sockets) s.destroy();
  return {
    conns,
    depth,
    requests,
    seconds,
    rps: requests / seconds,
    p50ms: histo.pct(50),
    p99ms: histo.pct(99),
    errors,
    clientCpuUsPerReq: (cpu.user + cpu.system) / requests,
    serverCpuUsPerReq: server.micros / requests,
  };
}

// ---------------------------------------------------------------------------------------
// redis

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function which(bin: string): string | null {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = join(dir, bin);
    if (existsSync(p)) return p;
  }
  return null;
}

function ensureRedis(): void {
  if (which('redis-server') && which('redis-benchmark')) return;
  process.stdout.write('installing redis-server (apt-get)…\n');
  const sudo = process.getuid?.() === 0 ? [] : ['sudo'];
  const run = (args: string[]): void => {
    const [cmd, ...rest] = [...sudo, ...args];
    execFileSync(cmd, rest, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  };
  run(['apt-get', 'install', '-y', 'redis-server']);
  if (!which('redis-server') || !which('redis-benchmark')) throw new Error('redis-server / redis-benchmark still missing after apt-get');
}

/** A minimal RESP connection: send commands, await the n-th reply line. */
class Resp {
  private buf = '';
  private waiters: { n: number; resolve: (lines: string[]) => void }[] = [];
  private lines: string[] = [];
  private constructor(private readonly s: net.Socket) {
    s.setEncoding('latin1');
    s.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\r\n')) >= 0) {
        this.lines.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 2);
      }
      this.flush();
    });
  }
  static connect(port: number): Promise<Resp> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host: '127.0.0.1' }, () => resolve(new Resp(s)));
      s.once('error', reject);
    });
  }
  private flush(): void {
    while (this.waiters.length > 0 && this.lines.length >= this.waiters[0].n) {
      const w = this.waiters.shift()!;
      w.resolve(this.lines.splice(0, w.n));
    }
  }
  write(text: string): void {
    this.s.write(text, 'latin1');
  }
  read(n: number): Promise<string[]> {
    return new Promise((resolve) => {
      this.waiters.push({ n, resolve });
      this.flush();
    });
  }
  close(): void {
    this.s.destroy();
  }
}

const respCmd = (...parts: string[]): string => `*${parts.length}\r\n${parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join('')}`;

async function redisUsedMemory(r: Resp): Promise<number> {
  r.write(respCmd('INFO', 'memory'));
  const [len] = await r.read(1); // $<n>
  const body: string[] = [];
  let got = 0;
  const want = Number(len.slice(1));
  while (got < want) {
    const [line] = await r.read(1);
    body.push(line);
    got += line.length + 2;
  }
  if (got === want) await r.read(1); // the body ended with CRLF: the bulk terminator is an empty line
  const m = /used_memory:(\d+)/.exec(body.join('\n'));
  return m ? Number(m[1]) : NaN;
}

interface RedisInfo {
  child: ChildProcess;
  port: number;
  bytesPerKey: number;
  version: string;
}

async function startRedis(): Promise<RedisInfo> {
  ensureRedis();
  const version = execFileSync('redis-server', ['--version']).toString().trim();
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  let r: Resp | null = null;
  for (let i = 0; i < 100 && !r; i++) {
    try {
      r = await Resp.connect(port);
    } catch {
      await sleep(50);
    }
  }
  if (!r) throw new Error('redis-server did not come up');
  const before = await redisUsedMemory(r);
  // Same key space redis-benchmark -r uses (key:%012d); a 24-byte value, the size of a
  // VL3 answer (MAC 6 + port 2 + underlay IP 16).
  const val = 'x'.repeat(24);
  const CHUNK = 10_000;
  for (let start = 0; start < MAPPINGS; start += CHUNK) {
    let text = '';
    const end = Math.min(start + CHUNK, MAPPINGS);
    for (let i = start; i < end; i++) text += respCmd('SET', `key:${String(i).padStart(12, '0')}`, val);
    r.write(text);
    await r.read(end - start);
  }
  const after = await redisUsedMemory(r);
  r.close();
  return { child, port, bytesPerKey: (after - before) / MAPPINGS, version };
}

/** CPU time (user + system) a process has used, in µs, from /proc/PID/stat. */
function procCpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
  const ticks = Number(f[11]) + Number(f[12]); // utime, stime: fields 14 and 15
  return (ticks * 1e6) / CLOCK_TICKS;
}
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU time (µs) used by this process's children that have been waited for (cutime + cstime). */
function waitedChildrenCpuMicros(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[13]) + Number(f[14])) * 1e6) / CLOCK_TICKS; // fields 16 and 17
}

function redisRun(redis: RedisInfo, conns: number, depth: number, n: number): RunResult {
  const port = redis.port;
  const cpu0 = procCpuMicros(redis.child.pid!);
  const gen0 = waitedChildrenCpuMicros();
  const out = execFileSync(
    'redis-benchmark',
    ['-h', '127.0.0.1', '-p', String(port), '-c', String(conns), '-P', String(depth), '-t', 'get', '-r', String(MAPPINGS), '-n', String(n), '--csv'],
    { maxBuffer: 1 << 20 },
  ).toString();
  const line = out
    .trim()
    .split('\n')
    .find((l) => l.startsWith('"GET"'));
  if (!line) throw new Error(`unexpected redis-benchmark output: ${out}`);
  const f = line.split(',').map((x) => Number(x.replace(/"/g, '')));
  const rps = f[1];
  const serverCpuUsPerReq = (procCpuMicros(redis.child.pid!) - cpu0) / n;
  const clientCpuUsPerReq = (waitedChildrenCpuMicros() - gen0) / n; // redis-benchmark's, set-up included
  return { conns, depth, requests: n, seconds: n / rps, rps, p50ms: f[4], p99ms: f[6], errors: 0, serverCpuUsPerReq, clientCpuUsPerReq };
}

/** Runs redis-benchmark sized to last about DURATION_MS (one short calibration run first). */
function redisRunTimed(redis: RedisInfo, conns: number, depth: number): RunResult {
  const probeN = Math.max(conns * depth * 20, 20_000);
  const probe = redisRun(redis, conns, depth, probeN);
  const n = Math.max(probeN, Math.round((probe.rps * DURATION_MS) / 1000));
  return redisRun(redis, conns, depth, n);
}

// ---------------------------------------------------------------------------------------

interface TlsRow {
  conns: number;
  depth: number;
  plain: RunResult;
  tls: RunResult;
}

/** Each setting with the JS generator over plaintext, then over TLS, one server child each. */
async function tlsComparison(): Promise<TlsRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'rhumb-bench-svp-tls-'));
  try {
    await pkiInit(dir);
    await pkiIssue(dir, { name: 'bench' });
    const read = (f: string) => readFileSync(join(dir, f));
    const clientTls = { ca: read('ca.pem'), cert: read('bench.pem'), key: read('bench-key.pem') };
    const settings = DEPTHS.flatMap((depth) => CONNS.map((conns) => ({ conns, depth }))).filter(({ conns, depth }) => !ONLY || ONLY.includes(`${conns}x${depth}`));
    const plain: RunResult[] = [];
    const secure: RunResult[] = [];
    for (const [out, tlsDir] of [[plain, undefined], [secure, dir]] as const) {
      const { child, ready } = await startServerChild(tlsDir);
      try {
        for (const { conns, depth } of settings) out.push(await svpRunNode(ready.port, conns, depth, child, tlsDir ? clientTls : undefined));
      } finally {
        child.send({ type: 'stop' });
      }
    }
    return settings.map(({ conns, depth }, i) => ({ conns, depth, plain: plain[i]!, tls: secure[i]! }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  process.stdout.write(`svp-lookup bench: ${MAPPINGS.toLocaleString()} mappings, ${DURATION_MS / 1000} s per run${quick ? ' (quick)' : ''}\n`);
  if (!NODE_CLIENT) buildLoadgen();
  const { child, ready } = await startServerChild();
  process.stdout.write(
    `index: loaded ${(ready.index.ipMappings).toLocaleString()} VL3 + ${(ready.index.macMappings).toLocaleString()} VL2 mappings in ${(ready.loadMs / 1000).toFixed(1)} s; ` +
      `${ready.index.bytesPerMapping.toFixed(1)} B/mapping (heap+arraybuffers delta), ${ready.index.tableBytesPerMapping.toFixed(1)} B/mapping in hash tables\n`,
  );
  let redis: RedisInfo | null = null;
  const rows: { svp: RunResult; redis: RunResult | null }[] = [];
  try {
    if (WITH_REDIS) {
      redis = await startRedis();
      process.stdout.write(`redis: ${redis.version.split(' ').slice(0, 3).join(' ')} on 127.0.0.1:${redis.port}, ${redis.bytesPerKey.toFixed(1)} B/key\n`);
    }
    for (const depth of DEPTHS) {
      for (const conns of CONNS) {
        if (ONLY && !ONLY.includes(`${conns}x${depth}`)) continue;
        const svp = NODE_CLIENT ? await svpRunNode(ready.port, conns, depth, child) : await svpRunC(ready.port, conns, depth, child);
        const red = redis ? redisRunTimed(redis, conns, depth) : null;
        rows.push({ svp, redis: red });
        process.stdout.write(
          `  c=${conns} P=${depth}: svp ${Math.round(svp.rps).toLocaleString()}/s` +
            (red ? `, redis ${Math.round(red.rps).toLocaleString()}/s` : '') +
            (svp.errors ? `, ${svp.errors} ERRORS` : '') +
            '\n',
        );
      }
    }
  } finally {
    child.send({ type: 'stop' });
    if (redis) redis.child.kill('SIGTERM');
  }

  const us = (v: number | undefined): string => (v === undefined ? '-' : v.toFixed(2));
  const t = new Table({
    head: ['conns', 'depth', 'SVP VL3/s', 'p50 ms', 'p99 ms', 'srv µs/req', 'gen µs/req', 'redis GET/s', 'p50 ms', 'p99 ms', 'srv µs/req', 'gen µs/req', 'SVP/redis', 'p99 SVP/redis'],
    style: { head: [], border: [] },
  });
  for (const { svp, redis: r } of rows)
    t.push([
      svp.conns,
      svp.depth,
      Math.round(svp.rps).toLocaleString(),
      svp.p50ms.toFixed(3),
      svp.p99ms.toFixed(3),
      us(svp.serverCpuUsPerReq),
      us(svp.clientCpuUsPerReq),
      r ? Math.round(r.rps).toLocaleString() : '-',
      r ? r.p50ms.toFixed(3) : '-',
      r ? r.p99ms.toFixed(3) : '-',
      r ? us(r.serverCpuUsPerReq) : '-',
      r ? us(r.clientCpuUsPerReq) : '-',
      r ? (svp.rps / r.rps).toFixed(2) : '-',
      r ? (svp.p99ms / r.p99ms).toFixed(2) : '-',
    ]);
  process.stdout.write(`${t.toString()}\n`);
  process.stdout.write(
    `load generator: ${NODE_CLIENT ? 'JS (--node-client)' : 'svp-loadgen (C)'}; µs/req = CPU time per request over the measured window; ` +
      `load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}\n`,
  );
  process.stdout.write(
    `memory: SVP index ${ready.index.bytesPerMapping.toFixed(1)} B/mapping (one MAC + one IP mapping per NIC)` +
      (redis ? `; redis ${redis.bytesPerKey.toFixed(1)} B/key (24-byte values)` : '') +
      '\n',
  );

  const result = {
    bench: 'svp-lookup',
    date: new Date().toISOString(),
    quick,
    mappings: MAPPINGS,
    durationSeconds: DURATION_MS / 1000,
    node: process.version,
    cpus: (await import('node:os')).cpus().length,
    loadAverage: (await import('node:os')).loadavg(),
    loadGenerator: NODE_CLIENT ? 'node' : 'svp-loadgen',
    index: { ...ready.index, loadMs: ready.loadMs },
    redis: redis ? { version: redis.version, bytesPerKey: redis.bytesPerKey } : null,
    runs: rows.map(({ svp, redis: r }) => ({ conns: svp.conns, depth: svp.depth, svp, redis: r, ratio: r ? svp.rps / r.rps : null })),
  };
  if (TLS) {
    const tlsRows = await tlsComparison();
    const tt = new Table({ head: ['conns', 'depth', 'plain VL3/s', 'p99 ms', 'srv µs/req', 'TLS VL3/s', 'p99 ms', 'srv µs/req', 'TLS/plain'], style: { head: [], border: [] } });
    for (const r of tlsRows) {
      tt.push([r.conns, r.depth, Math.round(r.plain.rps).toLocaleString(), r.plain.p99ms.toFixed(3), us(r.plain.serverCpuUsPerReq), Math.round(r.tls.rps).toLocaleString(), r.tls.p99ms.toFixed(3), us(r.tls.serverCpuUsPerReq), (r.tls.rps / r.plain.rps).toFixed(2)]);
    }
    process.stdout.write(`the cost of TLS (JS generator on both sides of the comparison):\n${tt.toString()}\n`);
    Object.assign(result, { tls: tlsRows.map((r) => ({ ...r, ratio: r.tls.rps / r.plain.rps })) });
  }
  const outDir = join(root, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, quick ? 'svp-lookup.quick.json' : 'svp-lookup.json');
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`wrote ${file}\n`);
  if (rows.some((r) => r.svp.errors > 0)) process.exitCode = 1;
}

main().catch((err: Error) => {
  process.stderr.write(`svp-lookup bench failed: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
