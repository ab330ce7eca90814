/**
 * Distributed-mode benchmark: the same measurements on the embedded LevelDB store and on
 * an etcd cluster (Debian's etcd with its default limits, started here on loopback ports,
 * /dev/shm data dirs), side by side, through real `rhumb controller` processes:
 *
 *   provision  fabric NIC creates through REST (POST /networks/:uuid/nics, automatic IP
 *              and MAC, 8 nodes on the vnet) at concurrency 1 and 32: creates/s, p50, p99;
 *   scale      a store seeded with N NICs (default 100,000: NIC record + VL2 and VL3
 *              mapping keys each, 100 nodes' underlay records), then a controller started
 *              on it: start-up time (spawn until it serves; the mapping index is rebuilt
 *              from the store), RSS, and SVP VL3 lookups over N random NICs with 32
 *              outstanding through the SvpClient: lookups/s, p50, p99. Start-up and RSS on
 *              an empty store are reported too, so the index's share is visible.
 *
 * Needs a build (dist/) for the controller processes. Prints a table and writes
 * bench/results/distributed.json (.quick.json with --quick).
 *
 *   node --import tsx bench/distributed/run.ts [--quick] [--nics N] [--creates N] [--members 1|3]
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Table from 'cli-table3';
import { EtcdCluster, ETCD_BIN, etcdControllerArgs } from '../../test/helpers/etcd-cluster.js';
import { makeFabric, nicBody } from '../../test/helpers/etcd-replicas.js';
import { makeTempDir, REPO_ROOT, type RunningController, startControllerProcess } from '../../test/helpers/processes.js';
import { EtcdStore } from '../../src/store/etcd.js';
import { LevelStore } from '../../src/store/leveldb.js';
import type { Op, Store } from '../../src/store/types.js';
import { ipMappingKey, macMappingKey, underlayKey } from '../../src/overlay/keys.js';
import { nicKey } from '../../src/napi/keys.js';
import { SvpClient } from '../../src/svp/client.js';
import { SvpStatus } from '../../src/svp/codec.js';

const argv = process.argv.slice(2);
const value = (name: string): string | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const quick = argv.includes('--quick');
const NICS = Number(value('--nics') ?? (quick ? 10_000 : 100_000));
const CREATES = Number(value('--creates') ?? (quick ? 100 : 1000));
const MEMBERS = Number(value('--members') ?? 3);
const LOOKUP_MS = quick ? 1000 : 3000;
const NODES = 100;
const ADMIN = '930896af-bf8c-48d4-885c-6573a94b1853';

type Kind = 'leveldb' | 'etcd';

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}
const r2 = (x: number): number => Number(x.toFixed(2));

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? r2(Number(m[1]) / 1024) : NaN;
}

/**
 * V8 heap in use plus external memory (the index's typed arrays), from the controller's
 * own /metrics: RSS also counts heap V8 has grown to while loading and not returned.
 */
async function heapUsedMiB(ctl: RunningController): Promise<number> {
  const text = await (await fetch(`${ctl.restUrl}/metrics`)).text();
  const metric = (name: string): number => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return r2((metric('rhumb_nodejs_heap_size_used_bytes') + metric('rhumb_nodejs_external_memory_bytes')) / 1048576);
}

/** A place for one controller deployment: a LevelDB dir, or a key prefix on the etcd cluster. */
interface Backend {
  kind: Kind;
  args: string[];
  dataDir?: string;
  open(): Promise<Store>;
  cleanup(): Promise<void>;
}

async function backend(kind: Kind, cluster: EtcdCluster | null, tag: string): Promise<Backend> {
  if (kind === 'leveldb') {
    const dir = await makeTempDir(`bench-dist-${tag}`);
    return {
      kind,
      args: [],
      dataDir: dir,
      open: () => LevelStore.open(dir),
      cleanup: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const prefix = `bench-${tag}/`;
  return {
    kind,
    args: etcdControllerArgs(cluster!, prefix),
    open: () => EtcdStore.open({ endpoints: cluster!.endpoints, prefix }),
    cleanup: async () => undefined, // the whole cluster is removed at the end
  };
}

async function startCtl(b: Backend): Promise<{ ctl: RunningController; startMs: number }> {
  const t0 = performance.now();
  const ctl = await startControllerProcess({ dataDir: b.dataDir, args: [...b.args, '--log-level', 'warn', '--rest-rate', '0'], timeoutMs: 120_000 });
  return { ctl, startMs: performance.now() - t0 };
}

// ---- provisioning ---------------------------------------------------------------------

interface ProvisionResult {
  store: Kind;
  concurrency: number;
  creates: number;
  errors: number;
  creates_per_s: number;
  p50_ms: number;
  p99_ms: number;
}

async function provision(b: Backend): Promise<ProvisionResult[]> {
  const { ctl } = await startCtl(b);
  try {
    const fabric = await makeFabric(ctl.restUrl, { nodes: 8, vlanId: 60, subnet: '10.60.0.0/16', provisionStart: '10.60.0.10', provisionEnd: '10.60.250.250' });
    let vm = 0;
    const run = async (concurrency: number, total: number): Promise<ProvisionResult> => {
      const lat: number[] = [];
      let errors = 0;
      let left = total;
      const url = `${ctl.restUrl}/networks/${fabric.networkUuid}/nics`;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (left-- > 0) {
            const body = JSON.stringify(nicBody(vm++, 8));
            const s = performance.now();
            const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
            await res.text();
            lat.push(performance.now() - s);
            if (res.status !== 200) errors++;
          }
        }),
      );
      const secs = (performance.now() - t0) / 1000;
      lat.sort((x, y) => x - y);
      return { store: b.kind, concurrency, creates: total, errors, creates_per_s: Math.round(total / secs), p50_ms: r2(pct(lat, 50)), p99_ms: r2(pct(lat, 99)) };
    };
    await run(4, Math.min(50, CREATES)); // warm-up: JIT, connections, allocation hints
    const out: ProvisionResult[] = [];
    for (const c of [1, 32]) {
      const r = await run(c, CREATES);
      process.stdout.write(`  ${b.kind} provision c=${c}: ${r.creates_per_s}/s p50 ${r.p50_ms} ms p99 ${r.p99_ms} ms errors ${r.errors}\n`);
      out.push(r);
    }
    return out;
  } finally {
    await ctl.stop();
  }
}

// ---- scale ----------------------------------------------------------------------------

const nodeUuid = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

function benchNic(i: number): { vnet: number; mac: string; ip: string; node: number } {
  const ip4 = (0x0a000000 + i) >>> 0;
  const ip = `${ip4 >>> 24}.${(ip4 >>> 16) & 255}.${(ip4 >>> 8) & 255}.${ip4 & 255}`;
  const m = i.toString(16).padStart(10, '0');
  const mac = `02:${m.slice(0, 2)}:${m.slice(2, 4)}:${m.slice(4, 6)}:${m.slice(6, 8)}:${m.slice(8, 10)}`;
  return { vnet: 10000 + (i % 16), mac, ip, node: i % NODES };
}

/** N NICs as the NIC write path leaves them: the NIC record and its two mapping keys. */
async function seed(store: Store, n: number): Promise<void> {
  const now = new Date().toISOString();
  let ops: Op[] = [];
  for (let c = 0; c < NODES; c++) {
    ops.push({ type: 'put', key: underlayKey(nodeUuid(c)), value: JSON.stringify({ cn_uuid: nodeUuid(c), ip: `192.168.${c >> 8}.${(c & 255) + 1}`, port: 4789 }) });
  }
  for (let i = 0; i < n; i++) {
    const x = benchNic(i);
    const cn = nodeUuid(x.node);
    const vm = `5eed0000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
    ops.push(
      {
        type: 'put',
        key: nicKey(x.mac),
        value: JSON.stringify({
          mac: x.mac, owner_uuid: ADMIN, belongs_to_uuid: vm, belongs_to_type: 'zone', primary: true, state: 'running', cn_uuid: cn,
          created_timestamp: now, modified_timestamp: now, nic_tag: 'sdc_overlay', ip: x.ip, vlan_id: 0, network_uuid: '5eed0000-0000-4000-8000-000000000000',
        }),
      },
      { type: 'put', key: macMappingKey(x.vnet, x.mac), value: JSON.stringify({ mac: x.mac, vnet_id: x.vnet, cn_uuid: cn, vlan_id: 0, ip: x.ip }) },
      { type: 'put', key: ipMappingKey(x.vnet, x.ip), value: JSON.stringify({ ip: x.ip, mac: x.mac, vnet_id: x.vnet, cn_uuid: cn, vlan_id: 0 }) },
    );
    if (ops.length >= 3000) {
      await store.commit({ ops });
      ops = [];
    }
  }
  if (ops.length > 0) await store.commit({ ops });
}

interface LookupResult {
  lookups: number;
  errors: number;
  lookups_per_s: number;
  p50_ms: number;
  p99_ms: number;
}

async function lookups(ctl: RunningController, n: number, ms: number): Promise<LookupResult> {
  const svp = new SvpClient({ servers: [`${ctl.svp!.host}:${ctl.svp!.port}`], timeoutMs: 5000 });
  try {
    await svp.start();
    await svp.ready();
    const lat: number[] = [];
    let errors = 0;
    const run = async (until: number, record: boolean): Promise<void> => {
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (performance.now() < until) {
            const x = benchNic(Math.floor(Math.random() * n));
            const s = performance.now();
            const r = await svp.vl3(x.ip, x.vnet);
            if (!record) continue;
            lat.push(performance.now() - s);
            if (r.status !== SvpStatus.OK || r.mac !== x.mac) errors++;
          }
        }),
      );
    };
    await run(performance.now() + 200, false);
    const t0 = performance.now();
    await run(t0 + ms, true);
    const secs = (performance.now() - t0) / 1000;
    lat.sort((x, y) => x - y);
    return { lookups: lat.length, errors, lookups_per_s: Math.round(lat.length / secs), p50_ms: r2(pct(lat, 50)), p99_ms: r2(pct(lat, 99)) };
  } finally {
    svp.close();
  }
}

interface ScaleResult {
  store: Kind;
  nics: number;
  seed_s: number;
  startup_empty_ms: number;
  startup_ms: number;
  rss_empty_mib: number;
  rss_mib: number;
  rss_after_lookups_mib: number;
  heap_used_empty_mib: number;
  heap_used_mib: number;
  lookup: LookupResult;
}

async function scale(kind: Kind, cluster: EtcdCluster | null): Promise<ScaleResult> {
  // Start-up and RSS on an empty store: the baseline.
  const empty = await backend(kind, cluster, 'empty');
  let startupEmpty: number;
  let rssEmpty: number;
  let heapEmpty: number;
  try {
    const { ctl, startMs } = await startCtl(empty);
    startupEmpty = startMs;
    rssEmpty = rssMiB(ctl.proc.pid!);
    heapEmpty = await heapUsedMiB(ctl);
    await ctl.stop({ keepData: true });
  } finally {
    await empty.cleanup();
  }

  const b = await backend(kind, cluster, 'scale');
  try {
    const t0 = performance.now();
    const store = await b.open();
    try {
      await seed(store, NICS);
    } finally {
      await store.close();
    }
    const seedS = (performance.now() - t0) / 1000;
    process.stdout.write(`  ${kind}: seeded ${NICS.toLocaleString()} NICs in ${seedS.toFixed(1)} s\n`);
    const { ctl, startMs } = await startCtl(b);
    try {
      const rss = rssMiB(ctl.proc.pid!);
      const heap = await heapUsedMiB(ctl);
      const lookup = await lookups(ctl, NICS, LOOKUP_MS);
      const rssAfter = rssMiB(ctl.proc.pid!);
      process.stdout.write(
        `  ${kind}: start-up ${Math.round(startMs)} ms (empty ${Math.round(startupEmpty)} ms), RSS ${rss} MiB (empty ${rssEmpty} MiB), ` +
          `heap+external ${heap} MiB (empty ${heapEmpty} MiB), VL3 ${lookup.lookups_per_s}/s p50 ${lookup.p50_ms} ms p99 ${lookup.p99_ms} ms errors ${lookup.errors}\n`,
      );
      return {
        store: kind,
        nics: NICS,
        seed_s: r2(seedS),
        startup_empty_ms: Math.round(startupEmpty),
        startup_ms: Math.round(startMs),
        rss_empty_mib: rssEmpty,
        rss_mib: rss,
        rss_after_lookups_mib: rssAfter,
        heap_used_empty_mib: heapEmpty,
        heap_used_mib: heap,
        lookup,
      };
    } finally {
      await ctl.stop({ keepData: true });
    }
  } finally {
    await b.cleanup();
  }
}

// ---- main -----------------------------------------------------------------------------

async function main(): Promise<void> {
  if (!ETCD_BIN) throw new Error('etcd binary not found (Debian package etcd-server, or RHUMB_ETCD_BIN)');
  process.stdout.write(`distributed bench: ${CREATES} creates per run, ${NICS.toLocaleString()} NICs at scale, etcd ${MEMBERS} member(s)${quick ? ' (quick)' : ''}\n`);
  const cluster = await EtcdCluster.start({ members: MEMBERS });
  const provisionResults: ProvisionResult[] = [];
  const scaleResults: ScaleResult[] = [];
  try {
    for (const kind of ['leveldb', 'etcd'] as const) {
      const b = await backend(kind, cluster, 'provision');
      try {
        provisionResults.push(...(await provision(b)));
      } finally {
        await b.cleanup();
      }
    }
    for (const kind of ['leveldb', 'etcd'] as const) scaleResults.push(await scale(kind, cluster));
  } finally {
    await cluster.stop();
  }

  const p = new Table({ head: ['provision (fabric NIC creates)', 'LevelDB', `etcd (${MEMBERS} members)`] });
  for (const c of [1, 32]) {
    const l = provisionResults.find((r) => r.store === 'leveldb' && r.concurrency === c)!;
    const e = provisionResults.find((r) => r.store === 'etcd' && r.concurrency === c)!;
    p.push([`c=${c} creates/s`, l.creates_per_s, e.creates_per_s]);
    p.push([`c=${c} p50 / p99 ms`, `${l.p50_ms} / ${l.p99_ms}`, `${e.p50_ms} / ${e.p99_ms}`]);
    if (l.errors + e.errors > 0) p.push([`c=${c} errors`, l.errors, e.errors]);
  }
  const [sl, se] = [scaleResults[0]!, scaleResults[1]!];
  const s = new Table({ head: [`${NICS.toLocaleString()} NICs`, 'LevelDB', `etcd (${MEMBERS} members)`] });
  s.push(['seed (direct batches) s', sl.seed_s, se.seed_s]);
  s.push(['controller start-up ms (empty store)', `${sl.startup_ms} (${sl.startup_empty_ms})`, `${se.startup_ms} (${se.startup_empty_ms})`]);
  s.push(['RSS MiB after start (empty store)', `${sl.rss_mib} (${sl.rss_empty_mib})`, `${se.rss_mib} (${se.rss_empty_mib})`]);
  s.push(['RSS MiB after lookups', sl.rss_after_lookups_mib, se.rss_after_lookups_mib]);
  s.push(['V8 heap used + external MiB (empty store)', `${sl.heap_used_mib} (${sl.heap_used_empty_mib})`, `${se.heap_used_mib} (${se.heap_used_empty_mib})`]);
  s.push(['SVP VL3 lookups/s (32 outstanding)', sl.lookup.lookups_per_s, se.lookup.lookups_per_s]);
  s.push(['VL3 p50 / p99 ms', `${sl.lookup.p50_ms} / ${sl.lookup.p99_ms}`, `${se.lookup.p50_ms} / ${se.lookup.p99_ms}`]);
  s.push(['VL3 errors', sl.lookup.errors, se.lookup.errors]);
  process.stdout.write(`${p.toString()}\n${s.toString()}\n`);

  const outDir = join(REPO_ROOT, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, quick ? 'distributed.quick.json' : 'distributed.json');
  writeFileSync(
    file,
    `${JSON.stringify({ bench: 'distributed', quick, creates: CREATES, nics: NICS, etcd_members: MEMBERS, etcd_max_txn_ops: 'etcd default (128)', node: process.version, date: new Date().toISOString(), provision: provisionResults, scale: scaleResults }, null, 2)}\n`,
  );
  process.stdout.write(`wrote ${file}\n`);
}

await main();
