/**
 * The agent's attachment state: which namespace (and interface name) each NIC it plumbed
 * lives in, and the instance it belongs to. The kernel keeps the devices across an agent
 * restart but cannot say which namespace path a veth's peer is in, and the firewall needs
 * that path to apply an instance's table — so the agent writes it down.
 *
 * One JSON file, `attachments.json` in the state directory, replaced atomically (write to a
 * temporary file, fsync, rename), so a crash leaves either the old or the new content.
 */
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';

export interface AttachmentRecord {
  /** Network namespace path (/run/netns/NAME, /proc/PID/ns/net). */
  netns: string;
  ifname: string;
  /** The instance the NIC belongs to (NAPI belongs_to_uuid). */
  belongs_to_uuid?: string;
}

export const STATE_FILE = 'attachments.json';
const VERSION = 1;

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

  /** MAC -> record; empty when there is no file yet. A file that does not parse is an error. */
  async load(): Promise<Map<string, AttachmentRecord>> {
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
      out.set(mac, { netns: r.netns, ifname: r.ifname, ...(typeof r.belongs_to_uuid === 'string' ? { belongs_to_uuid: r.belongs_to_uuid } : {}) });
    }
    return out;
  }

  /** Replaces the file with these records (atomically). */
  save(records: ReadonlyMap<string, AttachmentRecord>): Promise<void> {
    const snapshot = Object.fromEntries([...records].sort(([a], [b]) => a.localeCompare(b)));
    const run = async () => {
      await mkdir(this.dir, { recursive: true, mode: 0o755 });
      const tmp = `${this.file}.${process.pid}.tmp`;
      const fh = await open(tmp, 'w', 0o644);
      try {
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
