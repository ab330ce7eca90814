/**
 * Driving CNI plugins exactly as a runtime (libcni) does, for tests and benchmarks: the
 * binary exec'd in the runtime's network namespace (`ip netns exec NODE`), the six CNI_*
 * variables always set (empty when unused), the plugin's configuration on stdin, its
 * result or error object read from stdout. runChain() executes a conflist in order as
 * libcni does (ADD and CHECK in list order, each ADD's result the next one's prevResult;
 * DEL in reverse order with the final result; runtimeConfig = capability args the plugin
 * declared; stop at the first error).
 */
import { spawn } from 'node:child_process';

/** Debian's reference plugins (containernetworking-plugins). */
export const DEBIAN_CNI_DIR = '/usr/lib/cni';

export interface PluginRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Wall time of the exec, ms. */
  ms: number;
  /** stdout parsed when it is JSON. */
  json?: Record<string, unknown>;
}

export interface Attachment {
  containerId: string;
  netns: string;
  ifname: string;
  args?: string;
}

/** Runs one plugin binary in the node namespace (null: this namespace) with env + stdin. */
export function execPlugin(
  nodeNs: string | null,
  binary: string,
  vars: { command: string; containerId?: string; netns?: string; ifname?: string; args?: string; path: string },
  stdin: string,
): Promise<PluginRun> {
  const env = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    CNI_COMMAND: vars.command,
    CNI_CONTAINERID: vars.containerId ?? '',
    CNI_NETNS: vars.netns ?? '',
    CNI_IFNAME: vars.ifname ?? '',
    CNI_ARGS: vars.args ?? '',
    CNI_PATH: vars.path,
  };
  const argv = nodeNs ? ['ip', 'netns', 'exec', nodeNs, binary] : [binary];
  const started = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      let json: Record<string, unknown> | undefined;
      try {
        json = stdout ? (JSON.parse(stdout) as Record<string, unknown>) : undefined;
      } catch {
        json = undefined;
      }
      resolve({ exitCode: code ?? -1, stdout, stderr, ms, ...(json ? { json } : {}) });
    });
    child.stdin.end(stdin);
  });
}

export interface ConfList {
  cniVersion: string;
  name: string;
  plugins: Array<Record<string, unknown> & { type: string; capabilities?: Record<string, boolean> }>;
}

export interface ChainOptions {
  nodeNs: string | null;
  /** Plugin search path (CNI_PATH): the first dir holding the type wins. */
  dirs: string[];
  /** Capability args the runtime has (portMappings, bandwidth, mac, ips…). */
  capabilityArgs?: Record<string, unknown>;
  /** The final ADD result, for DEL and CHECK. */
  prevResult?: Record<string, unknown>;
}

/** The request configuration of one plugin of a list (SPEC "Deriving request configuration"). */
export function pluginConfig(list: ConfList, index: number, capabilityArgs: Record<string, unknown>, prevResult?: Record<string, unknown>): Record<string, unknown> {
  const p = list.plugins[index]!;
  const runtimeConfig = Object.fromEntries(Object.entries(capabilityArgs).filter(([k]) => p.capabilities?.[k] === true));
  return {
    ...p,
    cniVersion: list.cniVersion,
    name: list.name,
    ...(Object.keys(runtimeConfig).length > 0 ? { runtimeConfig } : {}),
    ...(prevResult ? { prevResult } : {}),
  };
}

export interface ChainRun {
  ok: boolean;
  /** The last plugin's output (result of ADD; error object of the failing plugin). */
  result?: Record<string, unknown>;
  /** Per plugin in the order run. */
  runs: Array<{ type: string } & PluginRun>;
}

async function findBinary(dirs: string[], type: string): Promise<string> {
  const { access } = await import('node:fs/promises');
  for (const d of dirs) {
    const p = `${d}/${type}`;
    if (await access(p).then(() => true, () => false)) return p;
  }
  throw new Error(`no plugin ${type} in ${dirs.join(':')}`);
}

/** ADD, CHECK or DEL of a whole conflist for one attachment. */
export async function runChain(list: ConfList, command: 'ADD' | 'DEL' | 'CHECK', at: Attachment, o: ChainOptions): Promise<ChainRun> {
  const order = list.plugins.map((_, i) => i);
  if (command === 'DEL') order.reverse();
  const runs: ChainRun['runs'] = [];
  let prev = command === 'ADD' ? undefined : o.prevResult;
  for (const i of order) {
    const type = list.plugins[i]!.type;
    const stdin = JSON.stringify(pluginConfig(list, i, o.capabilityArgs ?? {}, prev));
    const r = await execPlugin(o.nodeNs, await findBinary(o.dirs, type), { command, containerId: at.containerId, netns: at.netns, ifname: at.ifname, args: at.args, path: o.dirs.join(':') }, stdin);
    runs.push({ type, ...r });
    if (r.exitCode !== 0) return { ok: false, ...(r.json ? { result: r.json } : {}), runs };
    if (command === 'ADD') prev = r.json;
  }
  return { ok: true, ...(command === 'ADD' && prev ? { result: prev } : {}), runs };
}
