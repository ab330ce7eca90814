/**
 * The sandbox's record of what it made, `state.json` in the state directory. It is
 * written before each thing is made (namespaces, links) or right after (processes), so
 * `down` can undo a run that crashed half-way. It is created exclusively (a second `up`
 * finds it and stops) and replaced atomically afterwards (a crash leaves the old or the
 * new content, never half a file).
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { SandboxOptions } from './plan.js';

export const STATE_FILE = 'state.json';
/** Where `rhumb sandbox` keeps its state unless told otherwise (tmpfs: gone at reboot, like namespaces). */
export const DEFAULT_STATE_DIR = '/run/rhumb/sandbox';
/** Environment variable every process the sandbox starts carries (value: the run id). */
export const MARKER_ENV = 'RHUMB_SANDBOX_RUN';
const VERSION = 1;

export interface RecordedProcess {
  role: string;
  pid: number;
  /** /proc/PID/stat start time (clock ticks since boot): tells a reused PID apart. */
  startTime: number;
  log: string;
}

export interface RecordedNode {
  name: string;
  ns: string;
  uuid: string;
  ip: string;
  agentApi?: string;
}

export interface RecordedOwner {
  name: string;
  uuid: string;
  vlanId: number;
  networkUuid?: string;
  networkName?: string;
  vnetId?: number;
}

export interface RecordedInstance {
  name: string;
  ns: string;
  uuid: string;
  owner: string;
  node: string;
  mac?: string;
  ip?: string;
}

export interface SandboxState {
  version: number;
  /** Random id: marks this run's namespaces (lo's alias), links and processes (MARKER_ENV). */
  runId: string;
  createdAt: string;
  phase: 'building' | 'up' | 'failed';
  /** The `sandbox up` process while it builds (so `down` does not pull the rug from under it). */
  upPid?: number;
  upStartTime?: number;
  options: SandboxOptions;
  stateDir: string;
  /** Directories `up` created (the state dir and any missing parents), outermost first. */
  madeDirs: string[];
  /** Namespaces and root links, recorded before creation; only those carrying the mark are removed. */
  namespaces: string[];
  rootLinks: string[];
  processes: RecordedProcess[];
  controller?: { rest: string; svp: string; console: string };
  /** With --auth: the file holding the admin token (the controller's auth file is beside it). */
  adminTokenFile?: string;
  etcd?: { client: string };
  nodes: RecordedNode[];
  owners: RecordedOwner[];
  instances: RecordedInstance[];
  rules: string[];
}

export function newRunId(): string {
  return randomBytes(6).toString('hex');
}

export function statePath(dir: string): string {
  return join(dir, STATE_FILE);
}

/** The mark set as an alias on the sandbox's namespaces' lo and its root links. */
export function markOf(runId: string): string {
  return `rhumb-sandbox:${runId}`;
}

export class StateExistsError extends Error {
  constructor(readonly path: string) {
    super(`a sandbox state file exists at ${path}`);
    this.name = 'StateExistsError';
  }
}

/** Writes the first version of the state; fails with StateExistsError if one exists. */
export async function createState(s: SandboxState): Promise<void> {
  const path = statePath(s.stateDir);
  let fh;
  try {
    fh = await open(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new StateExistsError(path);
    throw err;
  }
  try {
    await fh.writeFile(`${JSON.stringify(s, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Replaces the state atomically (temporary file, fsync, rename). */
export async function saveState(s: SandboxState): Promise<void> {
  const path = statePath(s.stateDir);
  const tmp = `${path}.tmp`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(`${JSON.stringify(s, null, 2)}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}

/** The state in dir, or undefined when there is none. Throws when it does not parse. */
export async function loadState(dir: string): Promise<SandboxState | undefined> {
  let text: string;
  try {
    text = await readFile(statePath(dir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let s: SandboxState;
  try {
    s = JSON.parse(text) as SandboxState;
  } catch (err) {
    throw new Error(`${statePath(dir)} does not parse (${(err as Error).message}); remove what the sandbox made by hand`, { cause: err });
  }
  if (s.version !== VERSION || typeof s.runId !== 'string' || !/^[0-9a-f]{12}$/.test(s.runId)) {
    throw new Error(`${statePath(dir)} is not a rhumb sandbox state file this version understands`);
  }
  return s;
}
