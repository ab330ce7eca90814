/**
 * The workload attachments this node holds, on disk: `workloads.json` in the agent's state
 * directory, written through StateFile (atomic, 0600 in a 0700 directory). A record is
 * written *before* the NIC is created (phase "creating") and again once it is plumbed
 * ("attached"), so an agent that crashed or was killed half-way finds, at its next start,
 * every NIC it may have created and rolls the unfinished ones back: nothing leaks.
 *
 * Records that do not have the accepted shapes (keys, namespaces, interface names) are
 * dropped at load, like malformed ones.
 */
import { join } from 'node:path';
import { isUuid, tryCanonicalMac } from '../net/addr.js';
import { ifnameProblem, netnsPathProblem, sandboxPathProblem } from './plumbing/checks.js';
import { StateFile } from './state-file.js';
import { keyProblem, labelsProblem, scopeProblem } from './workload-api.js';

export interface WorkloadRecord {
  key: string;
  scope?: string;
  labels?: Record<string, string>;
  phase: 'creating' | 'attached' | 'releasing';
  belongs_to_uuid: string;
  network_uuid: string;
  owner_uuid: string;
  /** '' while staged (the runtime has not given the namespace yet); may be a Docker sandbox key. */
  netns: string;
  ifname: string;
  /** Unknown until the NIC exists (phase creating). */
  mac?: string;
  /** ISO time the record was first written. */
  created: string;
}

export const WORKLOAD_STATE_FILE = 'workloads.json';
const VERSION = 1;

function validRecord(key: string, v: unknown): WorkloadRecord | undefined {
  const r = v as Partial<WorkloadRecord> | null;
  if (!r || typeof r !== 'object' || r.key !== key || keyProblem(key)) return undefined;
  if (r.phase !== 'creating' && r.phase !== 'attached' && r.phase !== 'releasing') return undefined;
  if (!isUuid(r.belongs_to_uuid) || !isUuid(r.network_uuid) || !isUuid(r.owner_uuid)) return undefined;
  const staged = r.netns === '' && (r.phase !== 'attached' || (typeof r.ifname === 'string' && /^rs[0-9a-f]{12}$/.test(r.ifname)));
  if (!staged && netnsPathProblem(r.netns) && sandboxPathProblem(r.netns)) return undefined;
  if (r.ifname !== '' && ifnameProblem(r.ifname)) return undefined;
  if (r.mac !== undefined && tryCanonicalMac(r.mac) !== r.mac) return undefined;
  if (r.scope !== undefined && scopeProblem(r.scope)) return undefined;
  if (r.labels !== undefined && labelsProblem(r.labels)) return undefined;
  return {
    key,
    ...(r.scope !== undefined ? { scope: r.scope } : {}),
    ...(r.labels !== undefined ? { labels: r.labels } : {}),
    phase: r.phase,
    belongs_to_uuid: r.belongs_to_uuid!,
    network_uuid: r.network_uuid!,
    owner_uuid: r.owner_uuid!,
    netns: r.netns!,
    ifname: r.ifname!,
    ...(r.mac !== undefined ? { mac: r.mac } : {}),
    created: typeof r.created === 'string' ? r.created : new Date(0).toISOString(),
  };
}

export class WorkloadState {
  private readonly file: StateFile;

  constructor(readonly dir: string) {
    this.file = new StateFile(join(dir, WORKLOAD_STATE_FILE));
  }

  get path(): string {
    return this.file.path;
  }

  /** key -> record; empty when there is no file. A file that does not parse is an error. */
  async load(): Promise<Map<string, WorkloadRecord>> {
    const out = new Map<string, WorkloadRecord>();
    for (const [key, v] of await this.file.readEntries('workloads')) {
      const r = validRecord(key, v);
      if (r) out.set(key, r);
    }
    return out;
  }

  /** Replaces the file with these records (no records: the file is removed). */
  save(records: ReadonlyMap<string, WorkloadRecord>): Promise<void> {
    if (records.size === 0) return this.file.remove();
    const snapshot = Object.fromEntries([...records].sort(([a], [b]) => a.localeCompare(b)));
    return this.file.write(`${JSON.stringify({ version: VERSION, workloads: snapshot }, null, 1)}\n`);
  }
}
