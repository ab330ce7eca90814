/**
 * The agent's local API, on a unix socket (default /run/rhumb/agent.sock, mode 0600: root
 * only) or TCP when asked (./address.ts):
 *   GET  /metrics   Prometheus
 *   GET  /status    node, vnets, attached NICs, cache sizes
 *   GET  /vnets/:vnet/entries   the data plane's IP -> MAC and MAC -> underlay entries
 *   POST /attach    {mac, netns, ifname?}  plumb a NIC placed on this node; netns is
 *                   /run/netns/NAME, /var/run/netns/NAME or /proc/PID/ns/net, ifname a
 *                   plain interface name (./plumbing/checks.ts): anything else is a 400
 *   POST /detach    {mac}                  undo it
 *   GET  /published-ports                 MAC -> [{protocol, port, host_port}] of the NICs here
 *   PUT  /published-ports/:mac  {ports: [{protocol: tcp|udp, port, host_port}]}  publish the
 *                   NIC's ports on the node's external address (DNAT; [] withdraws them)
 *   POST /wireguard/rotate-key             replace the node's WireGuard key (encrypted underlay)
 *   /workloads…, /health   workload attachments (CNI, Docker): ./workload-routes.ts
 * Errors: {code, message} with 400/404/409/422 (AgentError) or 500.
 */
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { type AgentAddress, describeAgentAddress, isUnixAddress } from './address.js';
import { instrumentHttp } from '../metrics/index.js';
import { type Agent, AgentError } from './agent.js';
import { ifnameProblem, netnsPathProblem } from './plumbing/checks.js';
import { canonicalMac } from '../net/addr.js';
import { registerWorkloadRoutes } from './workload-routes.js';
import { timedOperation } from './step-times.js';
import type { WorkloadManager } from './workloads.js';

/** Where the agent's API listens unless told otherwise (`rhumb agent --api`), and where its clients look. */
export { DEFAULT_AGENT_API } from './defaults.js';

function str(body: unknown, field: string, required: boolean): string | undefined {
  const v = body && typeof body === 'object' ? (body as Record<string, unknown>)[field] : undefined;
  if (v === undefined || v === null || v === '') {
    if (required) throw new AgentError(400, `${field} is required`);
    return undefined;
  }
  if (typeof v !== 'string') throw new AgentError(400, `${field} must be a string`);
  return v;
}

export interface AgentApiOptions {
  workloads?: WorkloadManager;
  /** Rotates the node's WireGuard key; absent: 404. */
  rotateKey?: () => Promise<{ public_key: string }>;
}

export function buildAgentApi(agent: Agent, registry: Registry, opts: AgentApiOptions = {}): FastifyInstance {
  // Workload keys travel in the path, URL-encoded (up to 512 characters, each up to 3 encoded).
  const app = Fastify({ logger: false, maxParamLength: 2048 });
  instrumentHttp(app, registry);
  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof AgentError) return reply.status(err.status).send({ code: err.code, message: err.message });
    const status = (err as { statusCode?: number }).statusCode;
    if (status && status >= 400 && status < 500) return reply.status(status).send({ code: 'BadRequest', message: (err as Error).message });
    return reply.status(500).send({ code: 'InternalError', message: (err as Error).message });
  });
  app.get('/status', async () => agent.status());
  app.get('/vnets/:vnet/entries', async (req) => {
    const vnet = Number((req.params as { vnet: string }).vnet);
    if (!Number.isInteger(vnet) || vnet < 0 || vnet > 0xffffff) throw new AgentError(400, 'vnet must be a 24-bit integer');
    return agent.entries(vnet);
  });
  app.post('/attach', async (req) => {
    const mac = str(req.body, 'mac', true)!;
    const netns = str(req.body, 'netns', true)!;
    const ifname = str(req.body, 'ifname', false);
    // These reach root's ip and nft input: refuse any other shape here, before anything runs.
    try {
      canonicalMac(mac);
    } catch (err) {
      throw new AgentError(400, (err as Error).message);
    }
    const problem = netnsPathProblem(netns) ?? (ifname === undefined ? undefined : ifnameProblem(ifname));
    if (problem) throw new AgentError(400, problem);
    return timedOperation('attach', { mac }, () => agent.attach({ mac, netns, ifname }));
  });
  app.post('/detach', async (req) => {
    const mac = str(req.body, 'mac', true)!;
    // The orchestrator's detach (a move): answered once the NIC's interface is gone.
    return timedOperation('detach', { mac }, () => agent.detach(mac, { deferTeardown: true }));
  });
  app.get('/published-ports', async () => agent.publishedPorts());
  app.put('/published-ports/:mac', async (req) => ({ ports: await agent.publish((req.params as { mac: string }).mac, req.body) }));
  app.post('/wireguard/rotate-key', async () => {
    if (!opts.rotateKey) throw new AgentError(404, 'this agent has no encrypted underlay');
    try {
      return await opts.rotateKey();
    } catch (err) {
      throw new AgentError(409, (err as Error).message);
    }
  });
  if (opts.workloads) registerWorkloadRoutes(app, opts.workloads);
  return app;
}

/** Mode of the API socket: the API plumbs namespaces as root, so only root may call it. */
export const AGENT_SOCKET_MODE = 0o600;

/** Whether something accepts connections on this unix socket (false: nothing, or a stale file). */
function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ path });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Serves the app at the address: TCP, or a unix socket made 0600 before anyone can use it
 * (bound under a 0077 umask). A stale socket left by a previous agent is replaced; a live
 * one, or a path that is not a socket, is refused. Resolves with the bound address.
 */
export async function listenAgentApi(app: FastifyInstance, address: AgentAddress): Promise<AgentAddress> {
  if (!isUnixAddress(address)) {
    await app.listen({ host: address.host, port: address.port });
    const a = app.server.address();
    return a && typeof a === 'object' ? { host: a.address, port: a.port } : address;
  }
  const path = address.socketPath;
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const existing = await lstat(path).catch(() => undefined);
  if (existing) {
    if (!existing.isSocket()) throw new Error(`${path} exists and is not a socket: refusing to replace it`);
    if (await socketInUse(path)) throw new Error(`another process serves ${describeAgentAddress(address)} (is an agent already running?)`);
    await unlink(path);
  }
  const mask = process.umask(0o077);
  try {
    await app.listen({ path });
  } finally {
    process.umask(mask);
  }
  // The umask made it 0600 already; say so explicitly. The server's close removes the file.
  await chmod(path, AGENT_SOCKET_MODE);
  return address;
}
