/**
 * Real etcd clusters for integration tests: Debian's `etcd` binary (package etcd-server),
 * members on free loopback ports, each in its own temp data dir. Everything started is
 * killed and removed by stop() — and, as a last resort, when the test process exits.
 *
 *   const cluster = await EtcdCluster.start({ members: 3 });
 *   try { ... await cluster.kill(await cluster.leader()); ... } finally { await cluster.stop(); }
 *
 * Tests should skip with `etcdSkipReason` when the binary is missing.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { Etcd3, type IOptions } from 'etcd3';

function findEtcd(): string | null {
  const candidates = [process.env.RHUMB_ETCD_BIN, '/usr/bin/etcd', ...(process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'etcd'))];
  for (const c of candidates) {
    if (!c) continue;
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      /* next */
    }
  }
  return null;
}

export const ETCD_BIN = findEtcd();
/** Set when etcd tests cannot run here; pass as `{ skip: etcdSkipReason }`. */
export const etcdSkipReason: string | undefined = ETCD_BIN
  ? undefined
  : 'etcd binary not found (install Debian package etcd-server, or set RHUMB_ETCD_BIN)';

/**
 * The etcd settings README recommends for a busy site: history compacted automatically
 * (keeping `retention` of it), and a backend quota well above what that history needs.
 * Tests pass a short retention to see compaction happen.
 */
export function busySiteEtcdArgs(retention = '10m', quotaBytes = 8 * 1024 ** 3): string[] {
  return ['--auto-compaction-mode', 'periodic', '--auto-compaction-retention', retention, '--quota-backend-bytes', String(quotaBytes)];
}

/** `rhumb controller` arguments for a replica on this cluster under its own key prefix. */
export function etcdControllerArgs(cluster: EtcdCluster, prefix: string, extra: string[] = []): string[] {
  return ['--store', 'etcd', '--etcd', cluster.endpoints.join(','), '--etcd-prefix', prefix, ...extra];
}

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  proc: ChildProcess | null;
  /** Last lines etcd wrote to stderr, for failure messages. */
  log: string[];
}

export interface EtcdClusterOptions {
  members?: number;
  /** Raft timing; small values make leader elections quick (defaults 50 / 500 ms). */
  heartbeatMs?: number;
  electionMs?: number;
  /** etcd's --max-txn-ops (default: etcd's own, 128; rhumb needs no more). */
  maxTxnOps?: number;
  /** etcd's --max-request-bytes (default: etcd's own, 1.5 MiB). */
  maxRequestBytes?: number;
  /** More etcd flags (e.g. the compaction and quota settings README recommends). */
  extraArgs?: string[];
  /** How long start()/restart() wait for a healthy cluster (default 20 s). */
  readyTimeoutMs?: number;
}

/** Every live etcd child of this process, killed synchronously if the process exits early. */
const live = new Set<ChildProcess>();
const dirs = new Set<string>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const p of live) p.kill('SIGKILL');
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
}

async function freePorts(n: number): Promise<number[]> {
  // Hold every listener until all are bound so no port is handed out twice.
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

/** Status client for one endpoint: no retries, short deadlines. */
function probeClient(url: string): Etcd3 {
  const noRetry = { execute: <T>(fn: (ctx: unknown) => T) => fn({}) } as unknown as NonNullable<IOptions['faultHandling']>['global'];
  return new Etcd3({ hosts: [url], faultHandling: { global: noRetry }, defaultCallOptions: () => ({ deadline: Date.now() + 1000 }) });
}

export interface MemberStatus {
  member: EtcdMember;
  id: string;
  leaderId: string;
}

export class EtcdCluster {
  private stopped = false;

  private constructor(
    readonly members: EtcdMember[],
    private readonly baseArgs: (m: EtcdMember) => string[],
    private readonly readyTimeoutMs: number,
    private readonly baseDir: string,
  ) {}

  /** Client URLs of every member (also the stopped ones: clients should know them all). */
  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  static async start(opts: EtcdClusterOptions = {}): Promise<EtcdCluster> {
    if (!ETCD_BIN) throw new Error(etcdSkipReason);
    installExitHook();
    const n = opts.members ?? 1;
    const ports = await freePorts(2 * n);
    // /dev/shm keeps etcd's fsyncs cheap; the data is throwaway.
    const base = await mkdtemp(join(process.platform === 'linux' ? '/dev/shm' : tmpdir(), `rhumb-etcd-${process.pid}-`)).catch(() =>
      mkdtemp(join(tmpdir(), `rhumb-etcd-${process.pid}-`)),
    );
    dirs.add(base);
    const members: EtcdMember[] = Array.from({ length: n }, (_, i) => ({
      name: `m${i}`,
      clientUrl: `http://127.0.0.1:${ports[2 * i]}`,
      peerUrl: `http://127.0.0.1:${ports[2 * i + 1]}`,
      dataDir: join(base, `m${i}`),
      proc: null,
      log: [],
    }));
    const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
    const token = `rhumb-test-${process.pid}-${ports[0]}`;
    const args = (m: EtcdMember): string[] => [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', m.clientUrl,
      '--advertise-client-urls', m.clientUrl,
      '--listen-peer-urls', m.peerUrl,
      '--initial-advertise-peer-urls', m.peerUrl,
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', token,
      '--heartbeat-interval', String(opts.heartbeatMs ?? 50),
      '--election-timeout', String(opts.electionMs ?? 500),
      ...(opts.maxTxnOps !== undefined ? ['--max-txn-ops', String(opts.maxTxnOps)] : []),
      ...(opts.maxRequestBytes !== undefined ? ['--max-request-bytes', String(opts.maxRequestBytes)] : []),
      ...(opts.extraArgs ?? []),
      '--logger', 'zap',
      '--log-outputs', 'stderr',
      '--log-level', 'warn',
    ];
    const cluster = new EtcdCluster(members, args, opts.readyTimeoutMs ?? 20_000, base);
    try {
      for (const m of members) cluster.spawn(m);
      await cluster.waitHealthy();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  private spawn(m: EtcdMember): void {
    const proc = spawn(ETCD_BIN as string, this.baseArgs(m), { stdio: ['ignore', 'ignore', 'pipe'] });
    m.proc = proc;
    live.add(proc);
    proc.stderr?.on('data', (d: Buffer) => {
      m.log.push(...d.toString().split('\n').filter(Boolean));
      if (m.log.length > 50) m.log.splice(0, m.log.length - 50);
    });
    proc.once('exit', () => {
      live.delete(proc);
      if (m.proc === proc) m.proc = null;
    });
  }

  isRunning(m: EtcdMember): boolean {
    return m.proc !== null && m.proc.exitCode === null && m.proc.signalCode === null;
  }

  /** Status of every running member that answers. */
  async statuses(): Promise<MemberStatus[]> {
    const out = await Promise.all(
      this.members.filter((m) => this.isRunning(m)).map(async (m) => {
        const c = probeClient(m.clientUrl);
        try {
          const s = await c.maintenance.status();
          return { member: m, id: s.header.member_id, leaderId: s.leader };
        } catch {
          return null;
        } finally {
          c.close();
        }
      }),
    );
    return out.filter((s): s is MemberStatus => s !== null);
  }

  /** Waits until every running member answers and they agree on a (running) leader. */
  async waitHealthy(timeoutMs = this.readyTimeoutMs): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const running = (): EtcdMember[] => this.members.filter((m) => this.isRunning(m));
    for (;;) {
      const st = await this.statuses();
      const leaders = new Set(st.map((s) => s.leaderId));
      const leaderId = [...leaders][0];
      if (st.length === running().length && st.length > 0 && leaders.size === 1 && leaderId !== '0' && st.some((s) => s.id === leaderId)) {
        return;
      }
      if (running().length < this.members.length && this.members.every((m) => !this.isRunning(m))) {
        throw new Error(`no etcd member is running: ${this.members.map((m) => m.log.slice(-3).join(' | ')).join(' || ')}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`etcd cluster not healthy after ${timeoutMs} ms; last log lines: ${this.members.map((m) => `${m.name}: ${m.log.slice(-3).join(' | ')}`).join(' || ')}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** The member the running members agree is leader. */
  async leader(): Promise<EtcdMember> {
    const deadline = Date.now() + this.readyTimeoutMs;
    for (;;) {
      const st = await this.statuses();
      const leaderId = st[0]?.leaderId;
      const leader = st.find((s) => s.id === leaderId && st.every((o) => o.leaderId === leaderId));
      if (leader && leaderId !== '0') return leader.member;
      if (Date.now() > deadline) throw new Error('etcd cluster has no agreed leader');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Each running member's backend size (allocated, in use) in bytes. */
  async dbSizes(): Promise<Array<{ member: EtcdMember; size: number; inUse: number }>> {
    return Promise.all(
      this.members.filter((m) => this.isRunning(m)).map(async (m) => {
        const c = probeClient(m.clientUrl);
        try {
          const s = await c.maintenance.status();
          return { member: m, size: Number(s.dbSize), inUse: Number(s.dbSizeInUse) };
        } finally {
          c.close();
        }
      }),
    );
  }

  /** Defragments every running member, one at a time (what an operator's cron job does). */
  async defragment(): Promise<void> {
    for (const m of this.members.filter((x) => this.isRunning(x))) {
      const c = new Etcd3({ hosts: [m.clientUrl], defaultCallOptions: () => ({ deadline: Date.now() + 30_000 }) });
      try {
        await c.maintenance.defragment();
      } finally {
        c.close();
      }
    }
  }

  /** Kills a member (SIGKILL by default) and waits for it to exit; its data dir stays. */
  async kill(m: EtcdMember, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = m.proc;
    if (!proc || !this.isRunning(m)) return;
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
    await exited;
  }

  /** Starts a stopped member again on the same ports and data dir; waits for a healthy cluster. */
  async restart(m: EtcdMember): Promise<void> {
    if (this.stopped) throw new Error('cluster is stopped');
    if (this.isRunning(m)) await this.kill(m);
    this.spawn(m);
    await this.waitHealthy();
  }

  /** Kills every member and removes all data. Safe to call twice. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.members.map((m) => this.kill(m)));
    await rm(this.baseDir, { recursive: true, force: true });
    dirs.delete(this.baseDir);
  }
}
