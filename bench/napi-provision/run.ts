/**
 * NAPI provisioning benchmark: NIC creates per second and p50/p99 latency, through real
 * HTTP (node:http keep-alive) against a controller in a child process on a LevelDB store
 * (fsync per group commit, as in production), at concurrency 1 and 32, on:
 *   - a fresh store, and
 *   - a store already holding 100,000 NICs (90 /22 networks × 1,000 plus 10,000 on the
 *     target /16), seeded with direct store batches.
 * Every create is POST /networks/<target>/nics with automatic IP and MAC allocation.
 * Prints a table and writes bench/results/napi-provision.json (.quick.json with --quick).
 *
 *   node --import tsx bench/napi-provision/run.ts [--quick] [--creates N] [--seed N]
 *        [--only fresh|seeded] [--cpu-prof DIR] [--tls] [--log-level LEVEL]
 * --tls also runs the fresh store with REST over HTTPS (certificates from `rhumb pki
 * init`), right after the same runs over plaintext: the cost of TLS, as a ratio.
 * --log-level runs the controller at that pino level (default warn; a controller's own
 * default is info), its log lines going to /dev/null.
 * --cpu-prof writes a V8 CPU profile of each measured run (store × concurrency, the
 * controller child only) into DIR; summarise one with bench/cpuprofile-summary.ts.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { Agent, request } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { readFileSync } from 'node:fs';
import { pkiInit } from '../../src/security/pki.js';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Table from 'cli-table3';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const argv = process.argv.slice(2);
const value = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const quick = argv.includes('--quick');
const CREATES = Number(value('--creates') ?? (quick ? 200 : 2000));
const SEED = Number(value('--seed') ?? (quick ? 10_000 : 100_000));
const CONCURRENCY = [1, 32];
const ONLY = value('--only');
const PROFILE_DIR = value('--cpu-prof');
const TLS = argv.includes('--tls');
const LOG_LEVEL = value('--log-level');
const ADMIN = '930896af-bf8c-48d4-885c-6573a94b1853';

interface Child {
  proc: ChildProcess;
  port: number;
  /** The CA to trust when the child serves HTTPS. */
  ca?: Buffer;
  call(msg: object): Promise<Record<string, unknown>>;
}

/** A controller child; with tlsDir its REST API is HTTPS. */
async function startChild(dir: string, tlsDir?: string): Promise<Child> {
  const proc = fork(join(here, 'server.ts'), tlsDir ? [dir, tlsDir] : [dir], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', LOG_LEVEL ? 'ignore' : 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...(LOG_LEVEL ? { RHUMB_BENCH_LOG_LEVEL: LOG_LEVEL } : {}) },
  });
  const queue: Array<(m: Record<string, unknown>) => void> = [];
  proc.on('message', (m) => queue.shift()?.(m as Record<string, unknown>));
  const first = await new Promise<Record<string, unknown>>((resolve, reject) => {
    queue.push(resolve);
    proc.once('exit', (code) => reject(new Error(`controller exited ${code}`)));
  });
  const call = (msg: object) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      queue.push((m) => (m.ok ? resolve(m) : reject(new Error(String(m.error)))));
      proc.send(msg);
    });
  return { proc, port: first.port as number, call, ...(tlsDir ? { ca: readFileSync(join(tlsDir, 'ca.pem')) } : {}) };
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

interface RunResult {
  store: string;
  concurrency: number;
  creates: number;
  errors: number;
  creates_per_s: number;
  p50_ms: number;
  p99_ms: number;
  /** Controller CPU time (user + system) per create, in microseconds. */
  cpu_us_per_create: number;
  /** The load generator's own CPU time per create (it shares the machine). */
  client_cpu_us_per_create: number;
  /** Store commits that failed a precondition (each one a transaction retry), per create. */
  conflicts_per_create: number;
  /** Commits per synced LevelDB write batch (group commit). */
  commits_per_batch: number;
  /** LevelDB point-read batches (thread-pool round trips), per create: in transactions, and by the writer. */
  reads_per_create: number;
  group_reads_per_create: number;
}

/** profile: a file to write the controller's CPU profile of this run to. */
async function measure(child: Child, network: string, concurrency: number, total: number, label: string, profile?: string): Promise<RunResult> {
  const port = child.port;
  const lat: number[] = [];
  let errors = 0;
  let next = 0;
  const path = `/networks/${network}/nics`;
  // node:http with keep-alive: a lighter load generator than fetch, which matters when
  // client and controller share two cores.
  // Over HTTPS: the same keep-alive connections, so handshakes are not what is measured.
  const agent = child.ca ? new HttpsAgent({ keepAlive: true, maxSockets: concurrency, ca: child.ca }) : new Agent({ keepAlive: true, maxSockets: concurrency });
  const send = child.ca ? httpsRequest : request;
  const post = (body: string): Promise<{ status: number; text: string }> =>
    new Promise((resolve, reject) => {
      const req = send(
        { agent, host: '127.0.0.1', servername: 'localhost', port, path, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const worker = async (w: number): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= total) return;
      const body = JSON.stringify({
        belongs_to_uuid: `be0c0000-0000-4000-8000-${(w * 1_000_000 + i).toString(16).padStart(12, '0')}`,
        belongs_to_type: 'zone',
        owner_uuid: ADMIN,
      });
      const t0 = performance.now();
      const { status, text } = await post(body);
      lat.push(performance.now() - t0);
      if (status !== 200) {
        errors++;
        if (errors <= 3) process.stderr.write(`  error ${status}: ${text.slice(0, 200)}\n`);
      }
    }
  };
  if (profile) await child.call({ cmd: 'profile-start' });
  const stats0 = (await child.call({ cmd: 'stats' })).stats as Record<string, number>;
  const cpu0 = (await child.call({ cmd: 'cpu' })).cpu_us as number;
  const own0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const secs = (performance.now() - t0) / 1000;
  agent.destroy();
  const own = process.cpuUsage(own0);
  const cpu = ((await child.call({ cmd: 'cpu' })).cpu_us as number) - cpu0;
  const stats = (await child.call({ cmd: 'stats' })).stats as Record<string, number>;
  const delta = (k: string): number => (stats[k] ?? 0) - (stats0[k] ?? 0);
  if (profile) await child.call({ cmd: 'profile-stop', file: profile });
  lat.sort((a, b) => a - b);
  return {
    store: label,
    concurrency,
    creates: total,
    errors,
    creates_per_s: Math.round(total / secs),
    p50_ms: Number(pct(lat, 50).toFixed(2)),
    p99_ms: Number(pct(lat, 99).toFixed(2)),
    cpu_us_per_create: Math.round(cpu / total),
    client_cpu_us_per_create: Math.round((own.user + own.system) / total),
    conflicts_per_create: Number((delta('failedCommits') / total).toFixed(3)),
    commits_per_batch: Number((delta('commits') / Math.max(1, delta('writeBatches'))).toFixed(1)),
    reads_per_create: Number((delta('readBatches') / total).toFixed(2)),
    group_reads_per_create: Number((delta('groupReads') / total).toFixed(2)),
  };
}

async function scenario(label: string, seed: number, tls = false): Promise<RunResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'rhumb-bench-napi-'));
  let tlsDir: string | undefined;
  if (tls) {
    tlsDir = join(dir, 'pki');
    await pkiInit(tlsDir);
  }
  const child = await startChild(join(dir, 'db'), tlsDir);
  try {
    const target = (await child.call({
      cmd: 'network',
      body: { name: 'bench-target', nic_tag: 'sdc_underlay', vlan_id: 0, subnet: '10.128.0.0/16', provision_start_ip: '10.128.0.1', provision_end_ip: '10.128.255.254' },
    })).network as { uuid: string; provision_start_ip: string };
    if (seed > 0) {
      const t0 = performance.now();
      const onTarget = Math.min(seed, Math.round(seed / 10));
      await child.call({ cmd: 'seed', network: target, count: onTarget });
      let left = seed - onTarget;
      for (let i = 0; left > 0; i++) {
        const net = (await child.call({
          cmd: 'network',
          body: {
            name: `seed-${i}`, nic_tag: 'sdc_underlay', vlan_id: 0, subnet: `10.${i >> 6}.${(i & 63) * 4}.0/22`,
            provision_start_ip: `10.${i >> 6}.${(i & 63) * 4}.1`, provision_end_ip: `10.${i >> 6}.${(i & 63) * 4 + 3}.254`,
          },
        })).network as { uuid: string; provision_start_ip: string };
        const n = Math.min(1000, left);
        await child.call({ cmd: 'seed', network: net, count: n });
        left -= n;
      }
      const seedS = (performance.now() - t0) / 1000;
      const settled = await child.call({ cmd: 'settle' });
      process.stdout.write(
        `  seeded ${seed.toLocaleString()} NICs in ${seedS.toFixed(1)} s; then LevelDB compaction ${settled.compact_ms} ms, ` +
          `firewall engine and mapping index caught up ${settled.followers_ms} ms later\n`,
      );
    }
    const out: RunResult[] = [];
    // A warm-up (JIT, connections) that is not measured, at both concurrencies measured
    // (group commit has its own paths): with less, the first few hundred creates measure
    // V8 optimising the code (its compiler threads' CPU included), not the controller.
    await measure(child, target.uuid, 32, quick ? 1000 : 2000, label);
    await measure(child, target.uuid, 1, quick ? 100 : 200, label);
    for (const c of CONCURRENCY) {
      const profile = PROFILE_DIR ? join(PROFILE_DIR, `napi-provision-${label.replace(/[^a-z0-9]+/gi, '_')}-c${c}.cpuprofile`) : undefined;
      const r = await measure(child, target.uuid, c, CREATES, label, profile);
      process.stdout.write(
        `  ${label} c=${c}: ${r.creates_per_s}/s p50 ${r.p50_ms} ms p99 ${r.p99_ms} ms controller CPU ${r.cpu_us_per_create} µs/create (client ${r.client_cpu_us_per_create}), ` +
          `${r.conflicts_per_create} conflicts/create, ${r.commits_per_batch} commits/batch, ` +
          `LevelDB reads/create ${r.reads_per_create} + ${r.group_reads_per_create} by the writer, errors ${r.errors}\n`,
      );
      out.push(r);
    }
    return out;
  } finally {
    const exited = new Promise<void>((resolve) => child.proc.once('exit', () => resolve()));
    await child.call({ cmd: 'stop' }).catch(() => undefined);
    // Let it exit by itself, then make sure.
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    child.proc.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (PROFILE_DIR) mkdirSync(PROFILE_DIR, { recursive: true });
  process.stdout.write(`napi-provision bench: ${CREATES} creates per run${quick ? ' (quick)' : ''}\n`);
  const results = [
    ...(ONLY === 'seeded' ? [] : await scenario('fresh', 0)),
    ...(TLS && ONLY !== 'seeded' ? await scenario('fresh, HTTPS', 0, true) : []),
    ...(ONLY === 'fresh' ? [] : await scenario(`${SEED.toLocaleString()} NICs`, SEED)),
  ];
  const t = new Table({ head: ['store', 'concurrency', 'creates/s', 'p50 ms', 'p99 ms', 'CPU µs/create', 'errors'] });
  for (const r of results) t.push([r.store, r.concurrency, r.creates_per_s, r.p50_ms, r.p99_ms, r.cpu_us_per_create, r.errors]);
  process.stdout.write(`${t.toString()}\n`);
  for (const r of results.filter((x) => x.store === 'fresh, HTTPS')) {
    const plain = results.find((x) => x.store === 'fresh' && x.concurrency === r.concurrency);
    if (plain) process.stdout.write(`  TLS at c=${r.concurrency}: ${(r.creates_per_s / plain.creates_per_s).toFixed(2)}× the plaintext rate, CPU ${(r.cpu_us_per_create / plain.cpu_us_per_create).toFixed(2)}×\n`);
  }
  const outDir = join(root, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, quick ? 'napi-provision.quick.json' : 'napi-provision.json');
  writeFileSync(file, `${JSON.stringify({ bench: 'napi-provision', quick, creates: CREATES, seed: SEED, node: process.version, date: new Date().toISOString(), loadavg: loadavg(), results }, null, 2)}\n`);
  process.stdout.write(`wrote ${file}\n`);
}

await main();
