/**
 * The agent's attachment state: which namespace (and interface name) each NIC it plumbed
 * lives in, and the instance it belongs to. The kernel keeps the devices across an agent
 * restart but cannot say which namespace path a veth's peer is in, and the firewall needs
 * that path to apply an instance's table — so the agent writes it down.
 *
 * One JSON file, `attachments.json` in the state directory, written through StateFile
 * (./state-file.ts): replaced atomically, 0600 in a 0700 directory, modes narrowed at load.
 * The records say which namespaces the agent (root) enters: only root reads or writes
 * them. Records whose namespace or interface name is not of an accepted shape are dropped
 * at load, like malformed ones.
 */
import { join } from 'node:path';
import { ifnameProblem, netnsPathProblem, sandboxPathProblem } from './plumbing/checks.js';
import { StateFile } from './state-file.js';

export interface AttachmentRecord {
  /** Network namespace path (/run/netns/NAME, /proc/PID/ns/net, or a Docker sandbox key). */
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
  private readonly file: StateFile;

  constructor(readonly dir: string) {
    this.file = new StateFile(join(dir, STATE_FILE));
  }

  /** Narrows the modes of the directory and the file if they exist (0700, 0600). */
  secure(): Promise<void> {
    return this.file.secure();
  }

  /** MAC -> record; empty when there is no file yet. A file that does not parse is an error. */
  async load(): Promise<Map<string, AttachmentRecord>> {
    const out = new Map<string, AttachmentRecord>();
    for (const [mac, v] of await this.file.readEntries('nics')) {
      const r = v as Partial<AttachmentRecord> | null;
      if (!r || typeof r.netns !== 'string' || typeof r.ifname !== 'string') continue;
      if ((netnsPathProblem(r.netns) && sandboxPathProblem(r.netns)) || ifnameProblem(r.ifname)) continue;
      out.set(mac, { netns: r.netns, ifname: r.ifname, ...(typeof r.belongs_to_uuid === 'string' ? { belongs_to_uuid: r.belongs_to_uuid } : {}) });
    }
    return out;
  }

  /** Replaces the file with these records (atomically; saves run one at a time). */
  save(records: ReadonlyMap<string, AttachmentRecord>): Promise<void> {
    const snapshot = Object.fromEntries([...records].sort(([a], [b]) => a.localeCompare(b)));
    return this.file.write(`${JSON.stringify({ version: VERSION, nics: snapshot }, null, 2)}\n`);
  }
}
