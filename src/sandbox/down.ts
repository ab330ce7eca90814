/**
 * `rhumb sandbox down`, and the roll-back of an `up` that failed: ends every process the
 * run started, deletes the namespaces and root links it made (only those carrying its
 * mark), removes its files. Works from whatever the state file holds, so a run that
 * crashed half-way is undone as far as it got.
 */
import { rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SandboxInputError } from './plan.js';
import { DEFAULT_STATE_DIR, MARKER_ENV, type SandboxState, STATE_FILE, loadState, markOf } from './state.js';
import { endMarkedProcesses, ip, isSameProcess, linkAlias, listNamespaces, run } from './system.js';

/** Directories `up` makes inside the state dir. */
export const STATE_SUBDIRS = ['logs', 'controller', 'etcd', 'agents', 'tokens'];

export interface TeardownReport {
  processes: number;
  namespaces: string[];
  links: string[];
  /** What was recorded but not removed, and why. */
  left: string[];
}

export function requireRoot(verb: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new SandboxInputError(`sandbox ${verb} needs root (it manages network namespaces and their processes): run it as root, e.g. with sudo`);
  }
}

export async function teardown(s: SandboxState, log: (line: string) => void = () => {}): Promise<TeardownReport> {
  const report: TeardownReport = { processes: 0, namespaces: [], links: [], left: [] };
  const mark = markOf(s.runId);
  report.processes = await endMarkedProcesses(MARKER_ENV, s.runId);
  if (report.processes > 0) log(`ended ${report.processes} process(es)`);

  const existing = await listNamespaces();
  for (const ns of [...s.namespaces].reverse()) {
    if (!existing.has(ns)) continue;
    const alias = await run('ip', ['-n', ns, '-j', 'link', 'show', 'dev', 'lo'])
      .then((out) => (JSON.parse(out) as Array<{ ifalias?: string }>)[0]?.ifalias ?? '')
      .catch(() => '');
    if (alias !== mark) {
      // Never ours (the name was taken when up tried it), or up stopped between making it and marking it.
      report.left.push(`namespace ${ns}: not marked as made by this sandbox; left in place (remove it with \`ip netns del ${ns}\` if it is yours)`);
      continue;
    }
    await run('ip', ['netns', 'del', ns]);
    report.namespaces.push(ns);
  }
  for (const link of s.rootLinks) {
    // Usually gone with the underlay namespace (a veth pair dies with either end).
    const alias = await linkAlias(null, link);
    if (alias === undefined) continue;
    if (alias !== mark) {
      report.left.push(`link ${link}: not marked as made by this sandbox; left in place`);
      continue;
    }
    await ip(null, 'link', 'del', 'dev', link);
    report.links.push(link);
  }
  if (report.namespaces.length > 0) log(`deleted ${report.namespaces.length} namespace(s)`);

  for (const sub of STATE_SUBDIRS) await rm(join(s.stateDir, sub), { recursive: true, force: true });
  await rm(join(s.stateDir, `${STATE_FILE}.tmp`), { force: true });
  await rm(join(s.stateDir, STATE_FILE), { force: true });
  for (const dir of [...s.madeDirs].reverse()) {
    await rmdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') report.left.push(`directory ${dir}: ${err.code === 'ENOTEMPTY' ? 'holds files the sandbox did not make' : err.message}; left in place`);
    });
  }
  for (const l of report.left) log(`warning: ${l}`);
  return report;
}

export async function sandboxDown(stateDir = DEFAULT_STATE_DIR, log: (line: string) => void = () => {}): Promise<TeardownReport> {
  requireRoot('down');
  const s = await loadState(stateDir);
  if (!s) throw new SandboxInputError(`no sandbox is up: nothing is recorded in ${stateDir} (nothing was removed)`);
  if (s.phase === 'building' && s.upPid !== undefined && s.upStartTime !== undefined && isSameProcess(s.upPid, s.upStartTime)) {
    throw new SandboxInputError(`\`rhumb sandbox up\` (pid ${s.upPid}) is still building this sandbox: interrupt it (it rolls back) or wait, then run down`);
  }
  return teardown(s, log);
}
