/**
 * `rhumb sandbox` for tests: the compiled CLI run as a user would, with a per-run prefix,
 * underlay /24 and state directory so it never meets a real sandbox (or another test's),
 * and an independent look at what is left afterwards (namespaces, links, processes,
 * files) — not the sandbox's own bookkeeping.
 */
import { type SpawnOptions, execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI } from './processes.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `rhumb ARGS…` to completion. */
export function rhumb(args: string[], opts: SpawnOptions = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A sandbox's identity for one test run. */
export class TestSandbox {
  readonly prefix = `t${randomBytes(3).toString('hex')}`;
  readonly stateDir = join(tmpdir(), `rhumb-sandbox-test-${process.pid}-${randomBytes(3).toString('hex')}`);
  subnet = TestSandbox.randomSubnet();
  /** Set once `up` wrote its state. */
  runId: string | undefined;

  static randomSubnet(): string {
    return `198.19.${randomInt(1, 250)}.0/24`;
  }

  get stateFlags(): string[] {
    return ['--state-dir', this.stateDir];
  }

  /**
   * `sandbox up` with this run's names; picks another /24 when the chosen one is in use
   * on this machine (another test's underlay).
   */
  async up(extra: string[]): Promise<CliResult> {
    for (let attempt = 0; ; attempt++) {
      const r = await rhumb(['sandbox', 'up', '--prefix', this.prefix, '--subnet', this.subnet, ...this.stateFlags, ...extra]);
      if (r.code !== 0 && /is already in use here/.test(r.stderr) && attempt < 3) {
        this.subnet = TestSandbox.randomSubnet();
        continue;
      }
      this.runId = this.readState()?.runId;
      return r;
    }
  }

  /** `rhumb sandbox SUBCOMMAND --state-dir … REST…` (the flag before a `--` command). */
  run(args: string[]): Promise<CliResult> {
    return rhumb(['sandbox', args[0]!, ...this.stateFlags, ...args.slice(1)]);
  }

  readState(): { runId: string; [k: string]: unknown } | undefined {
    try {
      return JSON.parse(readFileSync(join(this.stateDir, 'state.json'), 'utf8'));
    } catch {
      return undefined;
    }
  }

  /** Everything of this run still on the machine; empty when it is all gone. */
  leftovers(): string[] {
    const left: string[] = [];
    const namespaces = (JSON.parse(execFileSync('ip', ['-j', 'netns', 'list'], { encoding: 'utf8' }) || '[]') as Array<{ name: string }>).map((n) => n.name);
    for (const ns of namespaces) if (ns.startsWith(`${this.prefix}-`)) left.push(`namespace ${ns}`);
    const links = JSON.parse(execFileSync('ip', ['-j', 'link', 'show'], { encoding: 'utf8' })) as Array<{ ifname: string }>;
    for (const l of links) if (l.ifname.startsWith(this.prefix)) left.push(`link ${l.ifname}`);
    if (this.runId) for (const pid of markedProcesses(this.runId)) left.push(`process ${pid}: ${cmdline(pid)}`);
    if (existsSync(this.stateDir)) left.push(`directory ${this.stateDir}: ${readdirSync(this.stateDir).join(', ')}`);
    return left;
  }

  /** Last resort for `after`: down, then whatever is still there by name. */
  async cleanup(): Promise<void> {
    if (existsSync(this.stateDir)) await this.run(['down']).catch(() => undefined);
    if (this.runId) for (const pid of markedProcesses(this.runId)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    const namespaces = (JSON.parse(execFileSync('ip', ['-j', 'netns', 'list'], { encoding: 'utf8' }) || '[]') as Array<{ name: string }>).map((n) => n.name);
    for (const ns of namespaces) if (ns.startsWith(`${this.prefix}-`)) try { execFileSync('ip', ['netns', 'del', ns]); } catch { /* gone */ }
    try {
      execFileSync('ip', ['link', 'del', `${this.prefix}-c`], { stdio: 'ignore' });
    } catch {
      /* gone with its namespace */
    }
    execFileSync('rm', ['-rf', this.stateDir]);
  }
}

/** PIDs whose environment carries RHUMB_SANDBOX_RUN=runId (zombies have none). */
export function markedProcesses(runId: string): number[] {
  const needle = `RHUMB_SANDBOX_RUN=${runId}`;
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/environ`, 'latin1').split('\0').includes(needle)) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** The process runs (exists and is not a zombie waiting for init to reap it). */
export function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return '?';
  }
}
