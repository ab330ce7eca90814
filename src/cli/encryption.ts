/**
 * The encrypted underlay from the command line:
 *
 *   rhumb encryption show                          the deployment's mode and which nodes are ready
 *   rhumb encryption set wireguard [--wait] [--force] [--tunnel-subnet CIDR]
 *   rhumb encryption set none
 *   rhumb node rotate-key [--agent PATH|HOST:PORT] replace that node's WireGuard key (default: the agent's unix socket)
 *
 * `set wireguard` on a running deployment goes through prepare (every node brings up
 * WireGuard and publishes its key while VXLAN stays cleartext) and switches once every
 * node is ready; --wait returns when it has. The controller calls carry the CLI's
 * credentials (--tls-dir/--ca/--cert/--key, RHUMB_TOKEN): setting encryption is an admin's.
 */
import type { Command } from 'commander';
import type { AgentAddress } from '../agent/address.js';
import type { Fetch } from '../security/http-client.js';
import { agentOption, callAgent } from './agent-address.js';
import { DEFAULT_API } from './client.js';
import { type CredentialFlags, addCredentialOptions, credentialedFetch } from './credentials.js';

interface EncryptionState {
  mode: string;
  target?: string;
  tunnel_subnet: string;
  nodes: number;
  ready: number;
  not_ready: Array<{ cn_uuid: string; problem: string }>;
}

async function call<T>(doFetch: Fetch, url: string, method: string, body?: unknown): Promise<T> {
  const res = await doFetch(url, {
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
  const show = enc
    .command('show')
    .option('--api <url>', 'controller REST API (or RHUMB_API)')
    .option('--json', 'raw JSON');
  addCredentialOptions(show).action(async (o: CredentialFlags & { json?: boolean }, cmd: Command) => {
    const s = await call<EncryptionState>(await credentialedFetch(o), `${api(cmd)}/encryption`, 'GET');
    process.stdout.write(o.json ? `${JSON.stringify(s, null, 2)}\n` : describe(s));
  });
  const set = enc
    .command('set')
    .argument('<mode>', 'none, prepare or wireguard')
    .option('--api <url>', 'controller REST API (or RHUMB_API)')
    .option('--force', 'wireguard at once, even with nodes not ready (they are cut off until they are)')
    .option('--tunnel-subnet <cidr>', 'tunnel addresses of the nodes')
    .option('--wait', 'return once the mode is in force (wireguard: every node ready and switched)');
  addCredentialOptions(set).action(async (mode: string, o: CredentialFlags & { force?: boolean; tunnelSubnet?: string; wait?: boolean }, cmd: Command) => {
    const base = api(cmd);
    const doFetch = await credentialedFetch(o);
    let s = await call<EncryptionState>(doFetch, `${base}/encryption`, 'PUT', {
      mode,
      ...(o.force ? { force: true } : {}),
      ...(o.tunnelSubnet ? { tunnel_subnet: o.tunnelSubnet } : {}),
    });
    while (o.wait && s.mode !== mode) {
      await new Promise((r) => setTimeout(r, 500));
      s = await call<EncryptionState>(doFetch, `${base}/encryption`, 'GET');
    }
    process.stdout.write(describe(s));
  });

  const node = program.command('node').description('this compute node (through its agent)');
  node
    .command('rotate-key')
    .description("replace the node's WireGuard key (peers learn the new one first; traffic pauses for a feed round trip)")
    .addOption(agentOption())
    .action(async (o: { agent: AgentAddress }) => {
      const r = await callAgent(o.agent, '/wireguard/rotate-key', {});
      process.stdout.write(`${JSON.stringify(r)}\n`);
    });
}
