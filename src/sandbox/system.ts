/**
 * The sandbox's dealings with the host: `ip` commands, marks on namespaces and links (an
 * alias, so `down` removes only what a sandbox run made), detached processes that outlive
 * the CLI, and finding and ending every process a run started (they all carry the run's
 * marker in their environment, children included, also after a crash of the CLI).
 */
import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export class CommandError extends Error {
  constructor(
    readonly cmd: string,
    readonly stderr: string,
  ) {
    super(`${cmd}: ${stderr || 'failed'}`);
    this.name = 'CommandError';
  }
}

export async function run(cmd: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync(cmd, args, { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string; code?: string };
    if (e.code === 'ENOENT') throw new CommandError(cmd, `${cmd} is not installed`);
    throw new CommandError(`${cmd} ${args.join(' ')}`, e.stderr?.trim() || e.message);
  }
}

/** `ip …` in the root namespace, or `ip -n ns …`. */
export function ip(ns: string | null, ...args: string[]): Promise<string> {
  return run('ip', ns ? ['-n', ns, ...args] : args);
}

export async function listNamespaces(): Promise<Set<string>> {
  const out = await run('ip', ['-j', 'netns', 'list']).catch(() => '[]');
  const parsed = out.trim() ? (JSON.parse(out) as Array<{ name: string }>) : [];
  return new Set(parsed.map((n) => n.name));
}

export async function rootLinkNames(): Promise<Set<string>> {
  const links = JSON.parse(await ip(null, '-j', 'link', 'show')) as Array<{ ifname: string }>;
  return new Set(links.map((l) => l.ifname));
}

/** The alias (ifalias) of a link, '' when it has none, undefined when the link is absent. */
export async function linkAlias(ns: string | null, link: string): Promise<string | undefined> {
  try {
    const [l] = JSON.parse(await ip(ns, '-j', 'link', 'show', 'dev', link)) as Array<{ ifalias?: string }>;
    return l?.ifalias ?? '';
  } catch {
    return undefined;
  }
}

export async function setLinkAlias(ns: string | null, link: string, alias: string): Promise<void> {
  await ip(ns, 'link', 'set', 'dev', link, 'alias', alias);
}

/** Addresses and routes in the root namespace, as "what: cidr" strings. */
export async function rootAddressesAndRoutes(): Promise<Array<{ what: string; cidr: string }>> {
  const out: Array<{ what: string; cidr: string }> = [];
  const addrs = JSON.parse(await ip(null, '-j', '-4', 'addr', 'show')) as Array<{ ifname: string; addr_info?: Array<{ local: string; prefixlen: number }> }>;
  for (const a of addrs) for (const i of a.addr_info ?? []) out.push({ what: `address ${i.local}/${i.prefixlen} on ${a.ifname}`, cidr: `${i.local}/${i.prefixlen}` });
  const routes = JSON.parse(await ip(null, '-j', '-4', 'route', 'show')) as Array<{ dst: string; dev?: string }>;
  for (const r of routes) {
    if (r.dst === 'default') continue;
    out.push({ what: `route ${r.dst}${r.dev ? ` dev ${r.dev}` : ''}`, cidr: r.dst.includes('/') ? r.dst : `${r.dst}/32` });
  }
  return out;
}

// ---- processes -----------------------------------------------------------------------

/** The start time of a process (clock ticks since boot), or undefined when it is gone. */
export function processStartTime(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]);
  } catch {
    return undefined;
  }
}

/** True when pid is the process that was recorded (same PID and start time). */
export function isSameProcess(pid: number, startTime: number): boolean {
  return processStartTime(pid) === startTime;
}

/** PIDs of running processes whose environment has name=value (never this process). */
export function processesWithEnv(name: string, value: string): number[] {
  const needle = Buffer.from(`${name}=${value}\0`);
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${pid}/environ`);
      // The environment starts with a variable or has it after a NUL.
      if (env.subarray(0, needle.length).equals(needle) || env.includes(Buffer.concat([Buffer.from([0]), needle]))) found.push(pid);
    } catch {
      // Gone meanwhile, or a kernel thread.
    }
  }
  return found;
}

export interface SpawnedProcess {
  pid: number;
  startTime: number;
}

/**
 * Starts argv detached (its own session: it survives the CLI and the CLI's terminal),
 * with stdout and stderr appended to logFile and `env` added to the environment.
 */
export function spawnDetached(argv: string[], logFile: string, env: Record<string, string>): SpawnedProcess {
  const fd = openSync(logFile, 'a', 0o600);
  try {
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
    // A program that cannot be started reports it as an event; pid is then undefined.
    child.once('error', () => undefined);
    if (child.pid === undefined) throw new Error(`could not start ${argv[0]}`);
    child.unref();
    const startTime = processStartTime(child.pid);
    if (startTime === undefined) throw new Error(`${argv.join(' ')} exited at once; see ${logFile}`);
    return { pid: child.pid, startTime };
  } finally {
    closeSync(fd);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The program's path on $PATH, or undefined. */
export function onPath(program: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = `${dir || '.'}/${program}`;
    if (existsSync(p)) return p;
  }
  return undefined;
}

/**
 * Ends every process carrying the marker: SIGTERM, then SIGKILL for those still there
 * after graceMs. Resolves with how many there were; throws if some survive SIGKILL.
 */
export async function endMarkedProcesses(name: string, value: string, graceMs = 5000): Promise<number> {
  const first = processesWithEnv(name, value);
  for (const pid of first) signal(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && processesWithEnv(name, value).length > 0) await sleep(50);
  // Children started during the grace time are caught here too.
  for (let round = 0; round < 40; round++) {
    const left = processesWithEnv(name, value).filter((pid) => !isZombie(pid));
    if (left.length === 0) return first.length;
    for (const pid of left) signal(pid, 'SIGKILL');
    await sleep(50);
  }
  const stuck = processesWithEnv(name, value).filter((pid) => !isZombie(pid));
  if (stuck.length > 0) throw new Error(`processes ${stuck.join(', ')} survived SIGKILL`);
  return first.length;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}
