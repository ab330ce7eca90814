/**
 * Child process for bench/napi-provision: a real controller on a LevelDB directory
 * (REST on an ephemeral loopback port), plus a seeding command that fills the store with
 * NICs directly through store batches (records, index keys and IP records exactly as
 * the NIC model writes them), so 100,000 NICs take seconds rather than minutes.
 *
 * IPC: parent sends {cmd:'seed', network, count}, {cmd:'network', body}, {cmd:'settle'}
 * (compact the LevelDB after seeding), {cmd:'cpu'} (the process's CPU time so far), {cmd:'stats'} (the store's commit counters),
 * {cmd:'profile-start'} / {cmd:'profile-stop', file} (a V8 CPU profile of what runs in
 * between, written to file) or {cmd:'stop'};
 * the child answers {ok:true, ...} or {ok:false, error}.
 */
import { Session } from 'node:inspector/promises';
import { writeFileSync } from 'node:fs';
import { startController } from '../../src/controller/index.js';
import { ipKey, nicIndexKey, nicKey } from '../../src/napi/keys.js';
import { bigIntToIp, ipToBigInt } from '../../src/napi/ipmath.js';
import type { IpRecord, NicRecord } from '../../src/napi/models/records.js';
import type { Op } from '../../src/store/types.js';

const ADMIN = '930896af-bf8c-48d4-885c-6573a94b1853';
const dir = process.argv[2];
/** A `rhumb pki init` directory: REST over HTTPS (the --tls comparison). */
const tlsDir = process.argv[3];
if (!dir) throw new Error('usage: server.ts <data dir> [tls dir]');

const ctl = await startController({
  store: { kind: 'leveldb', dir },
  listen: { host: '127.0.0.1', port: 0 },
  svpListen: { host: '127.0.0.1', port: 0 },
  adminUuid: ADMIN,
  overlayMtu: 1400,
  // --log-level in run.ts: production's default is info (fastify logs every request).
  logLevel: process.env.RHUMB_BENCH_LOG_LEVEL ?? 'warn',
  // One load generator is one client: measure the controller, not the per-client rate limit.
  restLimits: { maxInFlight: 4096, rate: null },
  ...(tlsDir ? { tlsDir } : {}),
});

async function post(url: string, body: unknown): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await ctl.app.inject({ method: 'POST', url, payload: body as object });
  return { status: r.statusCode, body: JSON.parse(r.body) };
}

let macCounter = 0x100000;
/** Writes `count` NICs on a network starting at its provision_start_ip. */
async function seedNetwork(net: { uuid: string; provision_start_ip: string }, count: number): Promise<void> {
  const now = new Date().toISOString();
  const start = ipToBigInt(net.provision_start_ip);
  let ops: Op[] = [];
  for (let i = 0; i < count; i++) {
    const n = macCounter++;
    const mac = `02:00:${[16, 8, 0].map((s) => ((n >>> s) & 255).toString(16).padStart(2, '0')).join(':')}:00`;
    const vm = `5eed0000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
    const ip = bigIntToIp(start + BigInt(i), 'ipv4');
    const nic: NicRecord = {
      mac, owner_uuid: ADMIN, belongs_to_uuid: vm, belongs_to_type: 'zone', primary: true, state: 'running',
      created_timestamp: now, modified_timestamp: now, nic_tag: 'sdc_underlay', ip, network_uuid: net.uuid,
    };
    const rec: IpRecord = { ip, network_uuid: net.uuid, reserved: false, belongs_to_uuid: vm, belongs_to_type: 'zone', owner_uuid: ADMIN, modified_timestamp: now };
    ops.push(
      { type: 'put', key: nicKey(mac), value: JSON.stringify(nic) },
      { type: 'put', key: nicIndexKey('belongs_to', vm, mac), value: '' },
      { type: 'put', key: nicIndexKey('network', net.uuid, mac), value: '' },
      { type: 'put', key: ipKey(net.uuid, ip), value: JSON.stringify(rec) },
    );
    if (ops.length >= 8000) {
      await ctl.store.commit({ ops });
      ops = [];
    }
  }
  if (ops.length > 0) await ctl.store.commit({ ops });
}

/** LevelDB compaction of the whole key range (the bench reaches into LevelStore's handle). */
function compactAll(): Promise<void> {
  const db = (ctl.store as unknown as { db: { compactRange(start: string, end: string, cb: (err?: Error) => void): void } }).db;
  return new Promise((resolve, reject) => db.compactRange('\u0000', '\uffff', (err) => (err ? reject(err) : resolve())));
}

/** The inspector session of a CPU profile being taken (profile-start .. profile-stop). */
let profiler: Session | null = null;

process.on('message', async (msg: { cmd: string; [k: string]: unknown }) => {
  try {
    if (msg.cmd === 'network') {
      const r = await post('/networks', msg.body);
      if (r.status !== 200) throw new Error(`network create: ${r.status} ${JSON.stringify(r.body)}`);
      process.send!({ ok: true, network: r.body });
    } else if (msg.cmd === 'seed') {
      await seedNetwork(msg.network as { uuid: string; provision_start_ip: string }, msg.count as number);
      process.send!({ ok: true });
    } else if (msg.cmd === 'settle') {
      // A store that holds 100,000 NICs in steady state is not compacting a burst of
      // seed writes: compact everything once, so the measurement does not pay for the seeding.
      // Likewise the controller's followers of the store (firewall engine, mapping index)
      // finish digesting the seed before anything is measured.
      const t0 = performance.now();
      await compactAll();
      const compactMs = Math.round(performance.now() - t0);
      const rev = await ctl.store.revision();
      await ctl.fwEngine.sync(300_000);
      await ctl.index.waitForRevision(rev, 300_000);
      process.send!({ ok: true, compact_ms: compactMs, followers_ms: Math.round(performance.now() - t0) - compactMs });
    } else if (msg.cmd === 'cpu') {
      // CPU time is a steadier cost measure than wall time on a shared machine.
      const u = process.cpuUsage();
      process.send!({ ok: true, cpu_us: u.user + u.system });
    } else if (msg.cmd === 'stats') {
      // Group commit's counters: commits, failed (precondition) commits, write batches.
      const stats = (ctl.store as unknown as { stats?: () => Record<string, number> }).stats?.() ?? {};
      process.send!({ ok: true, stats }); if (process.env.PROBE) console.error(JSON.stringify(stats));
    } else if (msg.cmd === 'profile-start') {
      profiler = new Session();
      profiler.connect();
      await profiler.post('Profiler.enable');
      await profiler.post('Profiler.setSamplingInterval', { interval: 200 });
      await profiler.post('Profiler.start');
      process.send!({ ok: true });
    } else if (msg.cmd === 'profile-stop') {
      if (!profiler) throw new Error('no profile is being taken');
      const { profile } = await profiler.post('Profiler.stop');
      profiler.disconnect();
      profiler = null;
      writeFileSync(msg.file as string, JSON.stringify(profile));
      process.send!({ ok: true });
    } else if (msg.cmd === 'stop') {
      await ctl.close();
      process.send!({ ok: true });
      process.exit(0);
    }
  } catch (err) {
    process.send!({ ok: false, error: (err as Error).message });
  }
});

process.send!({ ok: true, port: ctl.restAddress.port });
