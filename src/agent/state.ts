/**
 * The agent's attachment state: which namespace (and interface name) each NIC it plumbed
 * lives in, and the instance it belongs to. The kernel keeps the devices across an agent
 * restart but cannot say which namespace path a veth's peer is in, and the firewall needs
 * that path to apply an instance's table — so the agent writes it down.
 *
 * One JSON file, `attachments.json` in the state directory, replaced atomically (write to a
 * temporary file, fsync, rename), so a crash leaves either the old or the new content.
 *
 * The records say which namespaces the agent (root) enters: only root reads or writes
 * them. The directory is 0700 and the file 0600, also when an older agent left them with
 * wider modes (fixed at load). Records whose namespace or interface name is not of an
 * accepted shape are dropped at load, like malformed ones.
 */
import { chmod, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ifnameProblem, netnsPathProblem } from './kernel/checks.js';

export interface AttachmentRecord {
  /** Network namespace path (/run/netns/NAME, /proc/PID/ns/net). */
  netns: string;
  ifname: string;
  /** The instance the NIC belongs to (NAPI belongs_to_uuid). */
  belongs_to_uuid?: string;
}

export const STATE_FILE = 'attachments.json';
const VERSION = 1;
export const STATE_DIR_MODE = 0o700;
export const STATE_FILE_MODE = 0o600;

async function chmodIfPresent(path: string, mode: number): Promise<void> {
  try {
    await chmod(path, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Default state directory of the agent for a node. */
export function defaultStateDir(nodeUuid: string): string {
  return `/var/lib/rhumb/agent-${nodeUuid}`;
}

export class AttachmentState {
  private readonly file: string;
  /** Saves run one at a time, each writing the map as it is when it starts. */
  private chain: Promise<void> = Promise.resolve();

  constructor(readonly dir: string) {
    this.file = join(dir, STATE_FILE);
  }

  /** Narrows the modes of the directory and the file if they exist (0700, 0600). */
  async secure(): Promise<void> {
    await chmodIfPresent(this.dir, STATE_DIR_MODE);
    await chmodIfPresent(this.file, STATE_FILE_MODE);
  }

  /** MAC -> record; empty when there is no file yet. A file that does not parse is an error. */
  async load(): Promise<Map<string, AttachmentRecord>> {
    await this.secure();
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw err;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new Error(`${this.file}: not JSON (${(err as Error).message})`);
    }
    const nics = (parsed as { nics?: unknown })?.nics;
    if (!nics || typeof nics !== 'object' || Array.isArray(nics)) throw new Error(`${this.file}: no "nics" object`);
    const out = new Map<string, AttachmentRecord>();
    for (const [mac, v] of Object.entries(nics as Record<string, unknown>)) {
      const r = v as Partial<AttachmentRecord> | null;
      if (!r || typeof r.netns !== 'string' || typeof r.ifname !== 'string') continue;
      if (netnsPathProblem(r.netns) || ifnameProblem(r.ifname)) continue;
      out.set(mac, { netns: r.netns, ifname: r.ifname, ...(typeof r.belongs_to_uuid === 'string' ? { belongs_to_uuid: r.belongs_to_uuid } : {}) });
    }
    return out;
  }

  /** Replaces the file with these records (atomically). */
  save(records: ReadonlyMap<string, AttachmentRecord>): Promise<void> {
    const snapshot = Object.fromEntries([...records].sort(([a], [b]) => a.localeCompare(b)));
    const run = async () => {
      await mkdir(this.dir, { recursive: true, mode: STATE_DIR_MODE });
      await chmod(this.dir, STATE_DIR_MODE);
      const tmp = `${this.file}.${process.pid}.tmp`;
      // A leftover temporary file may have any mode: start afresh, exclusively.
      await rm(tmp, { force: true });
      const fh = await open(tmp, 'wx', STATE_FILE_MODE);
      try {
        await fh.chmod(STATE_FILE_MODE);
        await fh.writeFile(`${JSON.stringify({ version: VERSION, nics: snapshot }, null, 2)}\n`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      try {
        await rename(tmp, this.file);
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }
}
