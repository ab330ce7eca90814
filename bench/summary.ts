/**
 * The headline figures of every benchmark in one table: reads the JSON result each bench
 * wrote under bench/results/ (the .quick.json ones with --quick) and the run list
 * scripts/bench.sh kept (which benches ran, failed or were skipped, and why), prints one
 * table and writes bench/results/summary.json.
 *
 *   node --import tsx bench/summary.ts [--quick] [--runs FILE]
 *
 * A bench whose result file is missing or older than its run shows as such; a figure a
 * result does not carry (an older or partial result) shows as n/a rather than failing.
 */
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Table from 'cli-table3';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const resultsDir = join(root, 'bench', 'results');
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const runsArg = argv.indexOf('--runs');
const runsFile = runsArg >= 0 ? argv[runsArg + 1] : undefined;

/** One headline figure. */
export interface Figure {
  bench: string;
  figure: string;
  value: number | null;
  unit: string;
  /** What the figure is measured against (a reference system, a target, the fresh store…). */
  comparesTo: string;
  /** value ÷ the reference, when the bench measured one. */
  ratio?: number | null;
  /** The goal from the issues, when there is one (e.g. '≥ 2000'). */
  target?: string;
  /** Whether the target is met (undefined: no target or no value). */
  met?: boolean;
}

export interface BenchRun {
  bench: string;
  status: 'ok' | 'failed' | 'skipped';
  reason?: string;
  seconds?: number;
  /** Unix time (s) the bench started: a result file older than that is stale. */
  startedAt?: number;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- bench results are loosely typed JSON
type Json = any;

const num = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);
const ratioOf = (a: unknown, b: unknown): number | null => {
  const x = num(a);
  const y = num(b);
  return x !== null && y !== null && y !== 0 ? x / y : null;
};
const atLeast = (v: number | null, t: number): boolean | undefined => (v === null ? undefined : v >= t);
const atMost = (v: number | null, t: number): boolean | undefined => (v === null ? undefined : v <= t);

/** Extracts the headline figures from one bench's result. */
const extractors: Record<string, (r: Json) => Figure[]> = {
  'napi-provision': (r) => {
    const rows: Json[] = r.results ?? [];
    const fresh = (c: number) => rows.find((x) => x.store === 'fresh' && x.concurrency === c);
    const seeded = (c: number) => rows.find((x) => String(x.store).endsWith('NICs') && x.concurrency === c);
    const https = (c: number) => rows.find((x) => x.store === 'fresh, HTTPS' && x.concurrency === c);
    const b = 'napi-provision';
    const seedLabel = seeded(32)?.store ?? 'seeded store';
    const c32 = num(fresh(32)?.creates_per_s);
    const c1 = num(fresh(1)?.creates_per_s);
    const p99 = num(fresh(32)?.p99_ms);
    const big = ratioOf(seeded(32)?.creates_per_s, fresh(32)?.creates_per_s);
    const big1 = ratioOf(seeded(1)?.creates_per_s, fresh(1)?.creates_per_s);
    return [
      { bench: b, figure: 'NIC creates/s, concurrency 32', value: c32, unit: '/s', comparesTo: 'issue #15 target', target: '≥ 2000', met: atLeast(c32, 2000) },
      { bench: b, figure: 'NIC creates/s, concurrency 1', value: c1, unit: '/s', comparesTo: 'issue #15 target', target: '≥ 600', met: atLeast(c1, 600) },
      { bench: b, figure: 'NIC create p99, concurrency 32', value: p99, unit: 'ms', comparesTo: 'issue #15 target', target: '≤ 50', met: atMost(p99, 50) },
      { bench: b, figure: 'controller CPU per create, concurrency 32', value: num(fresh(32)?.cpu_us_per_create), unit: 'µs', comparesTo: 'steadier than rates on a shared machine' },
      { bench: b, figure: `creates/s c=32 on ${seedLabel}`, value: num(seeded(32)?.creates_per_s), unit: '/s', comparesTo: 'fresh store', ratio: big, target: '≥ 0.8×', met: atLeast(big, 0.8) },
      { bench: b, figure: `creates/s c=1 on ${seedLabel}`, value: num(seeded(1)?.creates_per_s), unit: '/s', comparesTo: 'fresh store', ratio: big1, target: '≥ 0.8×', met: atLeast(big1, 0.8) },
      ...[1, 32]
        .filter((c) => https(c))
        .map((c) => ({ bench: b, figure: `creates/s c=${c} over HTTPS`, value: num(https(c)?.creates_per_s), unit: '/s', comparesTo: 'plaintext (the cost of TLS)', ratio: ratioOf(https(c)?.creates_per_s, fresh(c)?.creates_per_s) })),
    ];
  },
  'svp-lookup': (r) => {
    const runs: Json[] = r.runs ?? [];
    const out: Figure[] = runs.map((x) => {
      const ratio = num(x.ratio) ?? ratioOf(x.svp?.rps, x.redis?.rps);
      return {
        bench: 'svp-lookup',
        figure: `VL3 lookups/s, ${x.conns} conn × depth ${x.depth}`,
        value: num(x.svp?.rps) === null ? null : Math.round(x.svp.rps),
        unit: '/s',
        comparesTo: 'redis GET (redis-benchmark, same -c/-P)',
        ratio,
        target: '≥ 0.8×',
        met: atLeast(ratio, 0.8),
      };
    });
    for (const x of (r.tls ?? []) as Json[]) {
      out.push({ bench: 'svp-lookup', figure: `VL3 lookups/s over TLS, ${x.conns} × ${x.depth}`, value: num(x.tls?.rps) === null ? null : Math.round(x.tls.rps), unit: '/s', comparesTo: 'plaintext, JS generator (the cost of TLS)', ratio: num(x.ratio) });
    }
    const worst = runs.find((x) => x.conns === 64 && x.depth === 32);
    if (worst) {
      const p = ratioOf(worst.svp?.p99ms, worst.redis?.p99ms);
      out.push({ bench: 'svp-lookup', figure: 'VL3 p99, 64 × 32', value: num(worst.svp?.p99ms), unit: 'ms', comparesTo: 'redis GET p99', ratio: p, target: '≤ 1.5×', met: atMost(p, 1.5) });
    }
    return out;
  },
  convergence: (r) => {
    const p50 = num(r.convergence_ms?.p50);
    const p99 = num(r.convergence_ms?.p99);
    const poll = 'Triton varpd log poll 5–10 s';
    return [
      { bench: 'convergence', figure: 'NIC move → first packet at new node, p50', value: p50, unit: 'ms', comparesTo: poll },
      { bench: 'convergence', figure: 'NIC move → first packet at new node, p99', value: p99, unit: 'ms', comparesTo: `issue #15 target; ${poll}`, target: '≤ 100', met: atMost(p99, 100) },
    ];
  },
  dataplane: (r) => {
    const rows: Json[] = r.results ?? [];
    const base = rows.find((x) => x.plane === 'kernel-vxlan');
    const us = rows.find((x) => x.plane === 'userspace');
    const out: Figure[] = [];
    for (const [k, label] of [['tcp1', '1 TCP stream'], ['tcp4', '4 TCP streams']] as const) {
      const ratio = num(us?.ratioToKernelVxlan?.[k]) ?? ratioOf(us?.[`${k}Gbps`], base?.[`${k}Gbps`]);
      out.push({ bench: 'dataplane', figure: `userspace backend, ${label}`, value: num(us?.[`${k}Gbps`]), unit: 'Gbit/s', comparesTo: 'kernel vxlan (static)', ratio, target: '≥ 0.6×', met: atLeast(ratio, 0.6) });
    }
    const udp = num(us?.ratioToKernelVxlan?.udp64) ?? ratioOf(us?.udp64Pps, base?.udp64Pps);
    out.push({ bench: 'dataplane', figure: 'userspace backend, 64-byte UDP', value: num(us?.udp64Pps) === null ? null : Math.round(us.udp64Pps), unit: 'pkt/s', comparesTo: 'kernel vxlan (static)', ratio: udp });
    // The distributed gateway (issue #12): routed and NATed next to the same subnet, through each backend's agents.
    for (const backend of ['kernel', 'userspace']) {
      const same = rows.find((x) => x.plane === `${backend}-agent-same`);
      for (const path of ['routed', 'nat']) {
        const r = rows.find((x) => x.plane === `${backend}-agent-${path}`);
        if (!r) continue;
        out.push({ bench: 'dataplane', figure: `${backend} backend, ${path === 'nat' ? 'NATed' : 'routed'}, 1 TCP stream`, value: num(r.tcp1Gbps), unit: 'Gbit/s', comparesTo: `same subnet, ${backend} agents`, ratio: ratioOf(r.tcp1Gbps, same?.tcp1Gbps) });
      }
    }
    return out;
  },
  cni: (r) => [
    { bench: 'cni', figure: 'CNI ADD p50 (rhumb plugin)', value: num(r.rhumb?.add?.p50), unit: 'ms', comparesTo: 'bridge + host-local plugins', ratio: ratioOf(r.rhumb?.add?.p50, r.bridge_host_local?.add?.p50) },
    { bench: 'cni', figure: 'CNI DEL p50 (rhumb plugin)', value: num(r.rhumb?.del?.p50), unit: 'ms', comparesTo: 'bridge + host-local plugins', ratio: ratioOf(r.rhumb?.del?.p50, r.bridge_host_local?.del?.p50) },
  ],
  docker: (r) => {
    const s = r.summary ?? {};
    const bridge = s['Docker bridge, one node'];
    return [
      ['rhumb kernel, across nodes', 'across nodes, kernel backend'],
      ['rhumb userspace, across nodes', 'across nodes, userspace backend'],
      ['rhumb kernel, one node', 'one node, kernel backend'],
    ].map(([key, label]) => ({
      bench: 'docker',
      figure: `docker run → first ping p50, ${label}`,
      value: num(s[key!]?.run_to_ping_p50_ms),
      unit: 'ms',
      comparesTo: "Docker's bridge, one node",
      ratio: ratioOf(s[key!]?.run_to_ping_p50_ms, bridge?.run_to_ping_p50_ms),
    }));
  },
  'fw-compile': (r) => [
    { bench: 'fw-compile', figure: `full compile, ${r.rules ?? '?'} rules × ${r.instances ?? '?'} instances`, value: num(r.full_compile?.total_ms), unit: 'ms', comparesTo: '—' },
    { bench: 'fw-compile', figure: 'one-rule change, median', value: num(r.one_rule_change?.median_ms), unit: 'ms', comparesTo: '—' },
    { bench: 'fw-compile', figure: 'apply per instance (nft -f), p50', value: num(r.apply?.p50_ms), unit: 'ms', comparesTo: '—' },
  ],
  distributed: (r) => {
    const prov: Json[] = r.provision ?? [];
    const scale: Json[] = r.scale ?? [];
    const p = (store: string, c: number) => prov.find((x) => x.store === store && x.concurrency === c);
    const s = (store: string) => scale.find((x) => x.store === store);
    const members = r.etcd_members ?? 3;
    return [
      { bench: 'distributed', figure: `fabric NIC creates/s c=32 on etcd (${members})`, value: num(p('etcd', 32)?.creates_per_s), unit: '/s', comparesTo: 'LevelDB', ratio: ratioOf(p('etcd', 32)?.creates_per_s, p('leveldb', 32)?.creates_per_s) },
      { bench: 'distributed', figure: `controller start-up on etcd, ${r.nics ?? '?'} NICs`, value: num(s('etcd')?.startup_ms), unit: 'ms', comparesTo: 'LevelDB', ratio: ratioOf(s('etcd')?.startup_ms, s('leveldb')?.startup_ms) },
    ];
  },
  scale: (r) => {
    const rows: Json[] = r.results ?? [];
    const out: Figure[] = [];
    for (const x of rows) {
      out.push(
        { bench: 'scale', figure: `${x.store}: move → every node notified, p99 (${r.nodes ?? '?'} nodes)`, value: num(x.churn?.all_p99_ms), unit: 'ms', comparesTo: 'Triton varpd log poll 5–10 s' },
        { bench: 'scale', figure: `${x.store}: VL3 lookups/s under churn`, value: num(x.lookups?.lookups_per_s), unit: '/s', comparesTo: '—' },
      );
    }
    return out;
  },
};

export const BENCHES = Object.keys(extractors);

function readRuns(): BenchRun[] {
  if (!runsFile || !existsSync(runsFile)) return BENCHES.map((bench) => ({ bench, status: 'ok' }));
  // bench.sh's run list: bench \t status \t seconds \t started-at \t reason
  return readFileSync(runsFile, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [bench, status, seconds, startedAt, ...reason] = l.split('\t');
      const run: BenchRun = { bench: bench!, status: status as BenchRun['status'] };
      if (seconds) run.seconds = Number(seconds);
      if (startedAt) run.startedAt = Number(startedAt);
      if (reason.length > 0 && reason.join('\t').trim() !== '') run.reason = reason.join('\t').trim();
      return run;
    });
}

function resultFile(bench: string): string {
  return join(resultsDir, `${bench}${quick ? '.quick' : ''}.json`);
}

function fmt(v: number | null | undefined, digits = 2): string {
  if (v === null || v === undefined) return 'n/a';
  if (Math.abs(v) >= 100) return Math.round(v).toLocaleString('en-US');
  return Number(v.toFixed(digits)).toString();
}

function main(): void {
  const runs = readRuns();
  const figures: Figure[] = [];
  const notes: Array<{ bench: string; note: string }> = [];
  for (const run of runs) {
    const extract = extractors[run.bench];
    if (run.status === 'skipped') {
      notes.push({ bench: run.bench, note: `skipped: ${run.reason ?? 'no reason given'}` });
      continue;
    }
    if (run.status === 'failed') notes.push({ bench: run.bench, note: `failed${run.reason ? `: ${run.reason}` : ''} (figures below are from its result file, if any)` });
    const file = resultFile(run.bench);
    if (!existsSync(file)) {
      if (run.status !== 'failed') notes.push({ bench: run.bench, note: `no result file ${file}` });
      continue;
    }
    if (run.startedAt !== undefined && statSync(file).mtimeMs / 1000 < run.startedAt) {
      notes.push({ bench: run.bench, note: `result file is from an earlier run (${statSync(file).mtime.toISOString()}): not shown` });
      continue;
    }
    if (!extract) {
      notes.push({ bench: run.bench, note: 'ran; no headline figures defined in bench/summary.ts' });
      continue;
    }
    try {
      figures.push(...extract(JSON.parse(readFileSync(file, 'utf8'))));
    } catch (err) {
      notes.push({ bench: run.bench, note: `unreadable result: ${(err as Error).message}` });
    }
  }

  const t = new Table({ head: ['bench', 'figure', 'value', 'compared to', 'ratio', 'target', 'met'] });
  for (const f of figures) {
    t.push([f.bench, f.figure, `${fmt(f.value)} ${f.unit}`, f.comparesTo, f.ratio === undefined ? '' : `${fmt(f.ratio)}×`, f.target ?? '', f.met === undefined ? '' : f.met ? 'yes' : 'NO']);
  }
  process.stdout.write(`\nbench summary${quick ? ' (--quick: short runs, small data; not the issue figures)' : ''}\n${t.toString()}\n`);
  for (const n of notes) process.stdout.write(`  ${n.bench}: ${n.note}\n`);
  const load = loadavg().map((x) => x.toFixed(2)).join(' ');
  process.stdout.write(`load average now ${load} (2 cores shared: rates move with it; CPU-time figures in each bench's own table move less)\n`);

  mkdirSync(resultsDir, { recursive: true });
  const out = join(resultsDir, 'summary.json');
  writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), quick, loadavg: loadavg(), runs, figures, notes }, null, 2)}\n`);
  process.stdout.write(`wrote ${out}\n`);
}

main();
