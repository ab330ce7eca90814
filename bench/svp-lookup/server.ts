/**
 * Bench child process: loads a MappingIndex with N NICs (an ovl/mac and an ovl/ip key each,
 * exactly as the NAPI write path writes them, plus underlay records for 100 nodes) through
 * its normal paged range + feed path from a SyntheticStore, measures the memory the index
 * adds, and serves SVP on a free loopback port. Talks to run.ts over IPC.
 *
 * Run by run.ts: node --expose-gc --import tsx bench/svp-lookup/server.ts <mappings>
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { MappingIndex } from '../../src/mapping/index.js';
import { SvpServer } from '../../src/svp/server.js';
import { loadServerTls } from '../../src/security/tls.js';
import { SyntheticStore } from './synthetic-store.js';

const mappings = Number(process.argv[2] ?? 1_000_000);
/** A `rhumb pki init` directory: serve SVP over TLS (the --tls comparison). */
const tlsDir = process.argv[3];
const send = (msg: unknown): void => {
  process.send?.(msg);
};

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) for (let i = 0; i < 3; i++) g();
}

function used(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

async function main(): Promise<void> {
  const store = new SyntheticStore(mappings);
  gc();
  const before = used();
  const t1 = performance.now();
  const index = new MappingIndex({ store });
  await index.start();
  const loadMs = performance.now() - t1;
  gc();
  const after = used();
  const stats = index.stats();
  if (stats.ipMappings !== mappings || stats.macMappings !== mappings) throw new Error(`index holds ${stats.ipMappings} IP mappings, want ${mappings}`);

  // Every benchmark connection comes from 127.0.0.1: lift the per-peer cap (64 by default)
  // so a run at 64 connections is never refused while the previous run's are still closing.
  const server = new SvpServer({ store, index, registry: new Registry(), host: '127.0.0.1', port: 0, maxConnectionsPerPeer: 4096, ...(tlsDir ? { tls: await loadServerTls(tlsDir) } : {}) });
  const addr = await server.listen();
  send({
    type: 'ready',
    port: addr.port,
    mappings,
    loadMs,
    index: {
      macMappings: stats.macMappings,
      ipMappings: stats.ipMappings,
      tableBytes: stats.tableBytes,
      heapPlusArrayBuffersDelta: after - before,
      bytesPerMapping: (after - before) / mappings,
      tableBytesPerMapping: stats.tableBytes / mappings,
    },
  });

  const profiler = profileWindows(process.env.SVP_BENCH_CPU_PROF_DIR);
  let cpuMark = process.cpuUsage();
  process.on('message', (msg: { type: string; label?: string }) => {
    if (msg.type === 'cpu-mark') {
      profiler?.start(msg.label ?? 'run');
      cpuMark = process.cpuUsage();
      send({ type: 'cpu-marked' });
    } else if (msg.type === 'cpu-read') {
      const d = process.cpuUsage(cpuMark);
      profiler?.stop();
      send({ type: 'cpu', micros: d.user + d.system, userMicros: d.user, systemMicros: d.system });
    } else if (msg.type === 'stop') {
      void server.close().then(() => {
        index.close();
        process.exit(0);
      });
    }
  });
}

/** V8 CPU profiles of the runs only (not the index load), one file per run. */
function profileWindows(dir: string | undefined): { start(label: string): void; stop(): void } | null {
  if (!dir) return null;
  const session = new Session();
  session.connect();
  let label = 'run';
  return {
    start(l) {
      label = l;
      session.post('Profiler.enable', () => session.post('Profiler.start'));
    },
    stop() {
      session.post('Profiler.stop', (err, res) => {
        if (!err) writeFileSync(join(dir, `svp-${label}.cpuprofile`), JSON.stringify(res.profile));
      });
    },
  };
}

main().catch((err: Error) => {
  process.stderr.write(`bench server: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
