/**
 * The rhumb CNI plugin's verbs (spec 1.1.0): ADD, DEL, CHECK, VERSION, STATUS, GC. Each
 * translates the runtime's call into the node agent's workload API and holds no state of
 * its own: the agent keeps the attachment (key cni/<container ID>/<ifname>) and the
 * controller its NIC.
 *
 * run() takes the environment and stdin and returns what to print on stdout and the exit
 * status; errors become the spec's error object (code, msg, details) with a non-zero exit.
 */
import type { AgentHealth, WorkloadAttachment, WorkloadCheckResult, WorkloadReleaseResult } from '../agent/workload-api.js';
import { AgentReplyError, AgentUnreachable, type AgentCall, agentClient } from './agent-client.js';
import {
  type CniEnv, LATEST_VERSION, type NetConf, SUPPORTED_VERSIONS, attachmentKey, decodeStdin, networkScope, parseEnv, parseNetConf,
  requestedAddresses, validAttachments,
} from './config.js';
import { CNI, CniError } from './errors.js';
import { buildResult } from './result.js';

export interface PluginOutcome {
  stdout: string;
  exitCode: number;
}

/** STATUS asks with a short bound of its own: it is informational. */
const STATUS_TIMEOUT_MS = 5000;

/** Makes the agent client for a configuration (tests substitute their own). */
export type ClientFactory = (conf: NetConf) => AgentCall;

const defaultClient: ClientFactory = (conf) => agentClient(conf.agent, conf.timeoutMs);

/** An agent failure as a CNI error. */
export function agentErrorToCni(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof AgentUnreachable) return new CniError(CNI.TRY_AGAIN_LATER, 'try again later', err.message);
  if (err instanceof AgentReplyError) {
    const d = err.reason;
    switch (err.code) {
      case 'ControllerUnreachable':
        return new CniError(CNI.TRY_AGAIN_LATER, 'try again later', d);
      case 'SubnetFull':
        return new CniError(CNI.TRY_AGAIN_LATER, 'try again later: the network has no free address', d);
      case 'NetworkNotFound':
      case 'NetworkNotFabric':
      case 'NotAuthorized':
        return new CniError(CNI.INVALID_NETWORK_CONFIG, 'invalid network configuration', d);
      case 'InvalidRequest':
      case 'InvalidParameters':
        return new CniError(CNI.INVALID_NETWORK_CONFIG, 'invalid network configuration', d);
      case 'Conflict':
        return new CniError(CNI.PLUMBING_FAILED, 'the attachment exists with other settings', d);
      default:
        break;
    }
    if (err.status === 422 && /^netns /.test(d)) return new CniError(CNI.INVALID_ENV, 'invalid environment variables', `CNI_NETNS: ${d}`);
    if (err.status === 422 || err.status === 409) return new CniError(CNI.PLUMBING_FAILED, 'the agent could not make the interface', d);
    if (err.status === 503 || err.status === 502) return new CniError(CNI.TRY_AGAIN_LATER, 'try again later', d);
    return new CniError(CNI.INTERNAL, 'the rhumb agent failed', `${err.status} ${err.code}: ${d}`);
  }
  return new CniError(CNI.INTERNAL, 'the rhumb plugin failed', (err as Error)?.message ?? String(err));
}

const keyPath = (key: string) => `/workloads/${encodeURIComponent(key)}`;

async function add(conf: NetConf, env: CniEnv, call: AgentCall): Promise<string> {
  const { mac, ips } = requestedAddresses(conf, env);
  const w = await call<WorkloadAttachment>('POST', '/workloads', {
    key: attachmentKey(env.containerId!, env.ifname!),
    scope: networkScope(conf.name),
    labels: { 'cni.network': conf.name, 'cni.ifname': env.ifname!, ...(env.containerId!.length <= 256 ? { 'cni.container_id': env.containerId! } : {}) },
    ...('uuid' in conf.network ? { network_uuid: conf.network.uuid } : { network_name: conf.network.name }),
    ...(conf.ownerUuid ? { owner_uuid: conf.ownerUuid } : {}),
    netns: env.netns!,
    ifname: env.ifname!,
    ...(mac ? { mac } : {}),
    ...(ips ? { ips } : {}),
  });
  return JSON.stringify(buildResult(conf, env.netns!, env.ifname!, w));
}

async function del(env: CniEnv, call: AgentCall): Promise<string> {
  await call<WorkloadReleaseResult>('DELETE', keyPath(attachmentKey(env.containerId!, env.ifname!)));
  return '';
}

async function check(conf: NetConf, env: CniEnv, call: AgentCall): Promise<string> {
  if (!conf.prevResult) throw new CniError(CNI.INVALID_NETWORK_CONFIG, 'invalid network configuration', 'CHECK needs "prevResult"');
  let r: WorkloadCheckResult;
  try {
    r = await call<WorkloadCheckResult>('GET', `${keyPath(attachmentKey(env.containerId!, env.ifname!))}/check`);
  } catch (err) {
    if (err instanceof AgentReplyError && err.status === 404) {
      throw new CniError(CNI.UNKNOWN_CONTAINER, 'unknown container', `no rhumb attachment for container ${env.containerId} interface ${env.ifname}`);
    }
    throw err;
  }
  if (!r.ok) throw new CniError(CNI.CHECK_FAILED, 'the attachment is not as it was made', r.problems.join('; '));
  return '';
}

async function status(call: AgentCall): Promise<string> {
  let h: AgentHealth;
  try {
    h = await call<AgentHealth>('GET', '/health', undefined, STATUS_TIMEOUT_MS);
  } catch (err) {
    // Without its agent a node neither plumbs nor answers misses: existing containers suffer too.
    const why = err instanceof Error ? err.message : String(err);
    throw new CniError(CNI.LIMITED_CONNECTIVITY, 'the rhumb agent is not available', why);
  }
  if (!h.controller.reachable) {
    throw new CniError(CNI.LIMITED_CONNECTIVITY, 'the rhumb agent does not reach its controller', h.controller.error ?? 'controller unreachable');
  }
  return '';
}

async function gc(conf: NetConf, call: AgentCall): Promise<string> {
  const valid = validAttachments(conf.raw);
  if (!valid) throw new CniError(CNI.INVALID_NETWORK_CONFIG, 'invalid network configuration', 'GC needs "cni.dev/valid-attachments"');
  const held = await call<WorkloadAttachment[]>('GET', `/workloads?${new URLSearchParams({ scope: networkScope(conf.name) })}`);
  const failures: string[] = [];
  for (const w of held) {
    if (valid.has(w.key)) continue;
    // Keep going past failures; report them all at the end (spec: GC continues on errors).
    await call<WorkloadReleaseResult>('DELETE', keyPath(w.key)).catch((err: Error) => failures.push(`${w.key}: ${err.message}`));
  }
  if (failures.length > 0) throw new CniError(CNI.TRY_AGAIN_LATER, 'try again later: some stale attachments were not released', failures.join('; '));
  return '';
}

/** VERSION: the versions rhumb speaks, echoing the asked version when it is one of them. */
function version(stdin: string): string {
  let asked: unknown;
  try {
    asked = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
  } catch {
    asked = undefined;
  }
  const cniVersion = typeof asked === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(asked) ? asked : LATEST_VERSION;
  return JSON.stringify({ cniVersion, supportedVersions: [...SUPPORTED_VERSIONS] });
}

/** The version an error object is stamped with: the configuration's, when it can be read. */
function errorVersion(stdin: string): string {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    if (typeof v === 'string' && (SUPPORTED_VERSIONS as readonly string[]).includes(v)) return v;
  } catch {
    /* not JSON */
  }
  return LATEST_VERSION;
}

export async function run(envVars: NodeJS.ProcessEnv, stdin: string, makeClient: ClientFactory = defaultClient): Promise<PluginOutcome> {
  try {
    const env = parseEnv(envVars);
    if (env.command === 'VERSION') return { stdout: version(stdin), exitCode: 0 };
    const conf = parseNetConf(decodeStdin(stdin));
    const call = makeClient(conf);
    let out: string;
    switch (env.command) {
      case 'ADD':
        out = await add(conf, env, call);
        break;
      case 'DEL':
        out = await del(env, call);
        break;
      case 'CHECK':
        out = await check(conf, env, call);
        break;
      case 'STATUS':
        out = await status(call);
        break;
      case 'GC':
        out = await gc(conf, call);
        break;
    }
    return { stdout: out, exitCode: 0 };
  } catch (err) {
    const e = agentErrorToCni(err);
    return { stdout: JSON.stringify(e.toJSON(errorVersion(stdin))), exitCode: 1 };
  }
}
