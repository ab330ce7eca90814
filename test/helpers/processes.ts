/**
 * Real processes for integration tests: the compiled `rhumb` CLI started on ephemeral
 * loopback ports, its announced addresses read from stdout, killed (and its data dir
 * removed) when the test ends — also when it fails.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const CLI = join(REPO_ROOT, 'dist/src/cli/main.js');

export interface RunningController {
  proc: ChildProcess;
  dataDir: string;
  restUrl: string;
  svp: { host: string; port: number } | null;
  stdout: string[];
  /** SIGKILL, for crash tests; the data dir stays. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Stop (SIGTERM) and remove the data dir unless keepData. */
  stop(opts?: { keepData?: boolean }): Promise<void>;
}

export async function makeTempDir(tag: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `rhumb-${tag}-${process.pid}-`));
}

export async function startControllerProcess(opts: { dataDir?: string; args?: string[]; timeoutMs?: number; /** node's own flags (e.g. --cpu-prof) */ nodeArgs?: string[] } = {}): Promise<RunningController> {
  const ownDir = opts.dataDir === undefined;
  const dataDir = opts.dataDir ?? (await makeTempDir('ctl'));
  const args = [
    ...(opts.nodeArgs ?? []),
    CLI,
    'controller',
    '--data',
    dataDir,
    '--listen',
    '127.0.0.1:0',
    '--svp-listen',
    '127.0.0.1:0',
    '--log-level',
    'warn',
    ...(opts.args ?? []),
  ];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: string[] = [];
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));

  const starting = new Promise<{ restUrl: string; svp: RunningController['svp'] }>((res, rej) => {
    let restUrl: string | null = null;
    let svp: RunningController['svp'] = null;
    let buf = '';
    const timer = setTimeout(() => rej(new Error(`controller did not start in time; stderr: ${stderr}`)), opts.timeoutMs ?? 20000);
    proc.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        stdout.push(line);
        const rest = /REST (https?:\/\/\S+)/.exec(line);
        if (rest) restUrl = rest[1]!;
        const s = /SVP (\S+):(\d+)$/.exec(line);
        if (s) svp = { host: s[1]!.replace(/^\[|\]$/g, ''), port: Number(s[2]) };
        if (/store /.test(line) && restUrl) {
          clearTimeout(timer);
          res({ restUrl, svp });
        }
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`controller exited with ${code}; stderr: ${stderr}`));
    });
  });

  let ready: { restUrl: string; svp: RunningController['svp'] };
  try {
    ready = await starting;
  } catch (err) {
    // A controller that failed to start leaves neither a process nor a directory behind.
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
    if (ownDir) await rm(dataDir, { recursive: true, force: true });
    throw err;
  }

  let removed = false;
  return {
    proc,
    dataDir,
    restUrl: ready.restUrl,
    svp: ready.svp,
    stdout,
    async kill(signal = 'SIGKILL') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await exited;
    },
    async stop(o = {}) {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      if (!o.keepData && !removed) {
        removed = true;
        await rm(dataDir, { recursive: true, force: true });
      }
    },
  };
}

/** fetch + JSON for tests (doFetch: one carrying TLS and a token, src/security/http-client.ts). */
export async function http(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  doFetch: typeof fetch = fetch,
): Promise<{ status: number; headers: Headers; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await doFetch(base + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON (e.g. /metrics) */
  }
  return { status: res.status, headers: res.headers, body: parsed };
}
