/**
 * The encrypted underlay from the command line:
 *
 *   rhumb encryption show                          the deployment's mode and which nodes are ready
 *   rhumb encryption set wireguard [--wait] [--force] [--tunnel-subnet CIDR]
 *   rhumb encryption set none
 *   rhumb node rotate-key [--agent HOST:PORT]      replace that node's WireGuard key (default agent 127.0.0.1:8090)
 *
 * `set wireguard` on a running deployment goes through prepare (every node brings up
 * WireGuard and publishes its key while VXLAN stays cleartext) and switches once every
 * node is ready; --wait returns when it has.
 */
import type { Command } from 'commander';
import { DEFAULT_AGENT_API } from '../agent/defaults.js';
import { DEFAULT_API } from './client.js';
import { formatHostPort, type HostPort, parseHostPort } from './hostport.js';

interface EncryptionState {
  mode: string;
  target?: string;
  tunnel_subnet: string;
  nodes: number;
  ready: number;
  not_ready: Array<{ cn_uuid: string; problem: string }>;
}

async function call<T>(url: string, method: string, body?: unknown): Promise<T> {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(60_000),
  });
  const parsed = (await res.json().catch(() => ({}))) as T & { message?: string };
  if (res.status >= 400) throw new Error(`${method} ${url}: ${res.status} ${parsed.message ?? ''}`);
  return parsed;
}

function describe(s: EncryptionState): string {
  const lines = [`mode: ${s.mode}${s.target ? ` (switching to ${s.target} once every node is ready)` : ''}`, `tunnel subnet: ${s.tunnel_subnet}`, `nodes ready: ${s.ready}/${s.nodes}`];
  for (const n of s.not_ready) lines.push(`  ${n.cn_uuid}: ${n.problem}`);
  return `${lines.join('\n')}\n`;
}

export function registerEncryptionCommands(program: Command): void {
  const api = (cmd: Command): string => String(cmd.optsWithGlobals().api ?? process.env.RHUMB_API ?? DEFAULT_API).replace(/\/+$/, '');
  const enc = program.command('encryption').description("the deployment's underlay encryption (WireGuard)");
  enc
    .command('show')
    .option('--api <url>', 'controller REST API (or RHUMB_API)')
    .option('--json', 'raw JSON')
    .action(async (o: { json?: boolean }, cmd: Command) => {
      const s = await call<EncryptionState>(`${api(cmd)}/encryption`, 'GET');
      process.stdout.write(o.json ? `${JSON.stringify(s, null, 2)}\n` : describe(s));
    });
  enc
    .command('set')
    .argument('<mode>', 'none, prepare or wireguard')
    .option('--api <url>', 'controller REST API (or RHUMB_API)')
    .option('--force', 'wireguard at once, even with nodes not ready (they are cut off until they are)')
    .option('--tunnel-subnet <cidr>', 'tunnel addresses of the nodes')
    .option('--wait', 'return once the mode is in force (wireguard: every node ready and switched)')
    .action(async (mode: string, o: { force?: boolean; tunnelSubnet?: string; wait?: boolean }, cmd: Command) => {
      const base = api(cmd);
      let s = await call<EncryptionState>(`${base}/encryption`, 'PUT', {
        mode,
        ...(o.force ? { force: true } : {}),
        ...(o.tunnelSubnet ? { tunnel_subnet: o.tunnelSubnet } : {}),
      });
      while (o.wait && s.mode !== mode) {
        await new Promise((r) => setTimeout(r, 500));
        s = await call<EncryptionState>(`${base}/encryption`, 'GET');
      }
      process.stdout.write(describe(s));
    });

  const node = program.command('node').description('this compute node (through its agent)');
  node
    .command('rotate-key')
    .description("replace the node's WireGuard key (peers learn the new one first; traffic pauses for a feed round trip)")
    .option('--agent <host:port>', 'the agent API', (v) => parseHostPort(v), parseHostPort(DEFAULT_AGENT_API))
    .action(async (o: { agent: HostPort }) => {
      const r = await call<{ public_key: string }>(`http://${formatHostPort(o.agent)}/wireguard/rotate-key`, 'POST', {});
      process.stdout.write(`${JSON.stringify(r)}\n`);
    });
}
