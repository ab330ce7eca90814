/**
 * Network namespaces for test/netns: a Lab names everything with a per-run prefix (so
 * parallel runs never collide), remembers what it made, and removes all of it in
 * cleanup() — call that from `after`, it also runs when a test failed half-way. Daemons
 * left running inside the lab's namespaces (wireguard-go) are ended by pid first.
 *
 *   const skip = netnsSkipReason();           // string when not root / no `ip`
 *   const lab = new NetnsLab('tr');
 *   const a = await lab.addNetns('a');         // "tr1x2k-a"
 *   await lab.ip(a, 'link', 'set', 'lo', 'up');
 *   const child = lab.spawnIn(a, [process.execPath, ...]);
 *   await lab.cleanup();
 *
 * In a test file: `if (!requireRoot(t)) return;` skips with the reason. Labs that were not
 * cleaned up (a crash, SIGINT/SIGTERM from the runner) are removed on process exit.
 * Underlay addresses come from 198.18.0.0/15 (RFC 2544 benchmarking): underlayAddr(n).
 */
import { type ChildProcess, type SpawnOptions, execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TestContext } from 'node:test';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

let cachedSkip: string | false | undefined;

/** Why netns tests cannot run here (not root, no iproute2, no netns support), or false. */
export function netnsSkipReason(): string | false {
  if (cachedSkip !== undefined) return cachedSkip;
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return (cachedSkip = 'needs root (network namespaces)');
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' });
  } catch {
    return (cachedSkip = 'needs iproute2 (`ip`)');
  }
  const probe = `rhprobe${process.pid.toString(36)}`;
  try {
    execFileSync('ip', ['netns', 'add', probe], { stdio: 'ignore' });
    execFileSync('ip', ['netns', 'del', probe], { stdio: 'ignore' });
  } catch {
    return (cachedSkip = 'cannot create network namespaces here');
  }
  return (cachedSkip = false);
}

/** Skips the test (with the reason) when netns tests cannot run; true when they can. */
export function requireRoot(t: TestContext): boolean {
  const reason = netnsSkipReason();
  if (reason) t.skip(reason);
  return !reason;
}

/** Host n (1 … 131070) of the underlay range 198.18.0.0/15. */
export function underlayAddr(n: number): string {
  if (!Number.isInteger(n) || n < 1 || n > 0x1fffe) throw new RangeError(`underlay host number out of range: ${n}`);
  return `198.${18 + (n >> 16)}.${(n >> 8) & 0xff}.${n & 0xff}`;
}

/** Labs not yet cleaned up; removed synchronously if the process exits first. */
const liveLabs = new Set<NetnsLab>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const lab of liveLabs) lab.cleanupSync();
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const lab of liveLabs) lab.cleanupSync();
      process.kill(process.pid, signal); // our handler is gone: default action now
    });
  }
}

/** Runs a command; rejects with its stderr in the message. */
export async function run(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync(cmd, args, { encoding: 'utf8' });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

/**
 * For tests that run a userspace backend in the test's own namespace: removes the
 * backend's node-wide NIC bridge tables, unless a NIC bridge (another test's, on this
 * host) still needs them.
 */
export async function removeNicBridgeTablesIfUnused(): Promise<void> {
  const bridges = JSON.parse(await run('ip', ['-j', 'link', 'show', 'type', 'bridge'])) as Array<{ ifname: string }>;
  if (bridges.some((b) => /^rn[0-9a-f]{12}$/.test(b.ifname))) return;
  for (const family of ['inet', 'arp']) await run('nft', ['delete', 'table', family, 'rhumb_nic_bridges']).catch(() => undefined);
}

export class NetnsLab {
  /** Short, unique per run: interface names must stay within 15 characters. */
  readonly prefix: string;
  private readonly namespaces: string[] = [];
  private readonly rootLinks: string[] = [];
  private readonly children = new Set<ChildProcess>();

  constructor(tag: string) {
    if (!/^[a-z]{1,3}$/.test(tag)) throw new Error('lab tag: 1-3 lower-case letters');
    this.prefix = `${tag}${randomBytes(3).toString('hex')}`;
    liveLabs.add(this);
    installExitHook();
  }

  /** A name under this lab's prefix (≤ 15 characters when suffix is short). */
  name(suffix: string): string {
    const n = `${this.prefix}${suffix}`;
    if (n.length > 15) throw new Error(`name too long for an interface: ${n}`);
    return n;
  }

  async addNetns(suffix: string): Promise<string> {
    const ns = `${this.prefix}-${suffix}`;
    await run('ip', ['netns', 'add', ns]);
    this.namespaces.push(ns);
    liveLabs.add(this);
    await this.ip(ns, 'link', 'set', 'lo', 'up');
    return ns;
  }

  /** `ip -n ns …` (ns null: the root namespace). */
  async ip(ns: string | null, ...args: string[]): Promise<string> {
    return run('ip', ns ? ['-n', ns, ...args] : args);
  }

  /** `ip netns exec ns cmd …`. */
  async exec(ns: string, cmd: string, ...args: string[]): Promise<string> {
    return run('ip', ['netns', 'exec', ns, cmd, ...args]);
  }

  /**
   * A veth pair with each end in a namespace (null: root, then it is removed at cleanup).
   * Returns the two interface names.
   */
  async addVeth(a: { ns: string | null; name: string }, b: { ns: string | null; name: string }): Promise<[string, string]> {
    const args = ['link', 'add', a.name];
    if (a.ns) args.push('netns', a.ns);
    args.push('type', 'veth', 'peer', 'name', b.name);
    if (b.ns) args.push('netns', b.ns);
    await run('ip', args);
    if (!a.ns) this.rootLinks.push(a.name);
    else if (!b.ns) this.rootLinks.push(b.name);
    liveLabs.add(this);
    return [a.name, b.name];
  }

  /** Spawns a process inside ns; killed at cleanup if still running. */
  spawnIn(ns: string, argv: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /**
   * Spawns a process in ns's network namespace only (`nsenter --net`), sharing this mount
   * namespace (`ip netns exec` gives it a private one, so it would not see mounts made
   * later, such as Docker's sandbox namespaces); killed at cleanup if still running.
   */
  spawnNetOnly(ns: string, argv: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('nsenter', [`--net=/run/netns/${ns}`, '--', ...argv], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Kills children, deletes namespaces (and so everything inside them) and root links. */
  async cleanup(): Promise<void> {
    await Promise.all(
      [...this.children].map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
    await this.endDaemons();
    for (const link of this.rootLinks.splice(0)) await run('ip', ['link', 'del', link]).catch(() => undefined);
    for (const ns of this.namespaces.splice(0).reverse()) await run('ip', ['netns', 'del', ns]).catch(() => undefined);
    liveLabs.delete(this);
  }

  /**
   * Processes still running inside our namespaces that are not our children (daemons a
   * test started there, e.g. wireguard-go, which would keep a deleted namespace alive):
   * SIGTERM by pid, SIGKILL after 2 s.
   */
  private async endDaemons(): Promise<void> {
    const pids = new Set<number>();
    for (const ns of this.namespaces) {
      const out = await run('ip', ['netns', 'pids', ns]).catch(() => '');
      for (const p of out.split(/\s+/).filter(Boolean)) pids.add(Number(p));
    }
    if (pids.size === 0) return;
    // Gone, or a zombie waiting for whoever adopted it.
    const alive = (pid: number) => {
      try {
        return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 2000;
    while ([...pids].some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  }

  /** Last-resort cleanup from a process 'exit' handler: synchronous, best effort. */
  cleanupSync(): void {
    liveLabs.delete(this);
    for (const child of this.children) child.kill('SIGKILL');
    this.children.clear();
    for (const ns of this.namespaces) {
      try {
        const out = execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
        for (const p of out.split(/\s+/).filter(Boolean)) process.kill(Number(p), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    for (const link of this.rootLinks.splice(0)) {
      try {
        execFileSync('ip', ['link', 'del', link], { stdio: 'ignore' });
      } catch {
        /* already gone */
      }
    }
    for (const ns of this.namespaces.splice(0).reverse()) {
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
      } catch {
        /* already gone */
      }
    }
  }
}
