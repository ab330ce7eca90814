/**
 * The `nft -c` check that stops a ruleset the kernel would reject before it is stored or
 * published. It runs as root on every rule write, so it is bounded:
 *
 * - one check context: a private network namespace created once and held open by one
 *   helper process (`unshare --net`, waiting on its stdin, so it ends with the controller);
 *   each check runs `nsenter --net=/proc/<helper>/ns/net nft -c -f -` there, so it sees
 *   no real tables and touches nothing — no namespace is created per check;
 * - a queue: at most maxConcurrent checks run at once, the rest wait their turn in order.
 *
 * Without root, or where nft or namespaces are unavailable, checks report `skipped`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { runWithInput } from './nft.js';

export interface CheckResult {
  ok: boolean;
  /** nft's complaint when it rejected the text. */
  error?: string;
  /** Set when no check could run (no nft, not permitted): the text was not verified. */
  skipped?: string;
}

export interface NftCheckerOptions {
  /** Most `nft -c` processes running at once (default 2). */
  maxConcurrent?: number;
  /** The nft executable (default `nft` on PATH). */
  nft?: string;
}

const DEFAULT_MAX_CONCURRENT = 2;
const HOLDER_READY = 'rhumb-nft-check-ready';

type Context = { pid: number } | { skipped: string };

export class NftChecker {
  readonly maxConcurrent: number;
  private readonly nft: string;
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private holder: ChildProcess | undefined;
  private context: Promise<Context> | undefined;
  /** Most checks seen running at once. */
  peak = 0;

  constructor(opts: NftCheckerOptions = {}) {
    this.maxConcurrent = Math.max(1, Math.floor(opts.maxConcurrent ?? DEFAULT_MAX_CONCURRENT));
    this.nft = opts.nft ?? 'nft';
  }

  /** Checks waiting for their turn. */
  get queued(): number {
    return this.waiting.length;
  }

  async check(text: string): Promise<CheckResult> {
    if (typeof process.getuid === 'function' && process.getuid() !== 0) return { ok: true, skipped: 'needs root for nft -c' };
    await this.acquire();
    try {
      // Once more if the helper went away during the check (its namespace with it).
      for (let attempt = 1; ; attempt++) {
        const ctx = await this.ensureContext();
        if ('skipped' in ctx) return { ok: true, skipped: ctx.skipped };
        const res = await this.runIn(ctx.pid, text);
        if (res.ok || attempt > 1 || this.holder?.pid === ctx.pid) return res;
      }
    } finally {
      this.release();
    }
  }

  private async runIn(pid: number, text: string): Promise<CheckResult> {
    const res = await runWithInput('nsenter', [`--net=/proc/${pid}/ns/net`, '--', this.nft, '-c', '-f', '-'], text);
    if (res.spawnError) return { ok: true, skipped: `cannot run nft: ${res.spawnError.message}` };
    if (res.code === 0) return { ok: true };
    if (/failed to execute|No such file or directory.*\bnft\b|command not found|execvp/.test(res.stderr)) return { ok: true, skipped: res.stderr.trim() };
    return { ok: false, error: res.stderr.trim() || `nft exited with ${res.code}` };
  }

  /** Ends the helper process (a later check starts a new one). */
  close(): void {
    this.holder?.kill('SIGKILL');
    this.holder = undefined;
    this.context = undefined;
  }

  private acquire(): Promise<void> {
    if (this.running < this.maxConcurrent) {
      this.running++;
      this.peak = Math.max(this.peak, this.running);
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** Hands the slot to the next waiter (running stays the same), or frees it. */
  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }

  private ensureContext(): Promise<Context> {
    if (!this.context) {
      this.context = this.startHolder();
      // A helper that could not start is retried at the next check.
      void this.context.then((c) => {
        if ('skipped' in c) this.context = undefined;
      });
    }
    return this.context;
  }

  /** `unshare --net` a shell that says it is ready, then waits on stdin (EOF: our exit). */
  private startHolder(): Promise<Context> {
    return new Promise((resolve) => {
      let child: ChildProcess;
      try {
        child = spawn('unshare', ['--net', '--', 'sh', '-c', `echo ${HOLDER_READY}; exec cat >/dev/null`], { stdio: ['pipe', 'pipe', 'pipe'] });
      } catch (err) {
        resolve({ skipped: `cannot create the check namespace: ${(err as Error).message}` });
        return;
      }
      let out = '';
      let err = '';
      let settled = false;
      const settle = (c: Context) => {
        if (settled) return;
        settled = true;
        resolve(c);
      };
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (!out.includes(HOLDER_READY)) return;
        // Ready: from now on neither the helper nor its pipes keep the process alive.
        child.unref();
        for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as { unref?: () => void }).unref?.();
        settle({ pid: child.pid! });
      });
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      child.once('error', (e) => settle({ skipped: `cannot create the check namespace: ${e.message}` }));
      child.once('exit', (code) => {
        if (this.holder === child) {
          this.holder = undefined;
          this.context = undefined;
        }
        settle({ skipped: `cannot create the check namespace: ${err.trim() || `unshare exited with ${code}`}` });
      });
      child.stdin!.on('error', () => undefined);
      this.holder = child;
    });
  }
}

let shared: NftChecker | undefined;

/** The process-wide checker every rule write and publication shares (one queue). */
export function sharedChecker(): NftChecker {
  shared ??= new NftChecker();
  return shared;
}

/** `nft -c -f -` of this text in the shared check context, queued. */
export function checkRuleset(text: string): Promise<CheckResult> {
  return sharedChecker().check(text);
}

/**
 * Checks many rulesets with as few nft runs as possible: all in one file (tables have
 * distinct names), splitting in halves only when that fails, to find the culprits.
 */
export async function checkRulesets(texts: string[], check: (text: string) => Promise<CheckResult> = checkRuleset, chunk = 200): Promise<CheckResult[]> {
  if (texts.length === 0) return [];
  if (texts.length > chunk) {
    // Bounded files: nft's memory grows with the text it parses.
    const out: CheckResult[] = [];
    for (let i = 0; i < texts.length; i += chunk) out.push(...(await checkRulesets(texts.slice(i, i + chunk), check, chunk)));
    return out;
  }
  const joint = await check(texts.join(''));
  if (joint.ok || texts.length === 1) return texts.map(() => joint);
  const mid = texts.length >> 1;
  return [...(await checkRulesets(texts.slice(0, mid), check, chunk)), ...(await checkRulesets(texts.slice(mid), check, chunk))];
}
