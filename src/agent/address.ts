/**
 * Where the node agent's local API is, for the agent and every local client (`rhumb agent
 * attach|detach`, the CNI and Docker plugins): a unix socket path (the default; mode 0600,
 * so only root reaches it) or HOST:PORT (TCP, when asked for). One parser, one way to
 * describe it, one small client, all on node:http only so a plugin started once per
 * container loads it in a few milliseconds. Imports nothing from rhumb but its defaults.
 */
import { request } from 'node:http';
import { DEFAULT_AGENT_API } from './defaults.js';

/** The agent API's socket when `rhumb agent --api` is not given. */
export const DEFAULT_AGENT_SOCKET = DEFAULT_AGENT_API;

/** Longest unix socket path Linux accepts (sun_path is 108 bytes with its NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;

export type AgentAddress = { socketPath: string } | { host: string; port: number };

export class AgentAddressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentAddressError';
  }
}

/**
 * An absolute path (optionally `unix:` or `unix://` before it) is a unix socket;
 * `HOST:PORT`, `[V6]:PORT` or `http://HOST:PORT` is TCP. Port 0 is accepted when
 * `listening` (the agent binds any free port), never for a client.
 */
export function parseAgentAddress(text: unknown, opts: { listening?: boolean } = {}): AgentAddress {
  const shape = 'the agent API is a unix socket path (/run/rhumb/agent.sock) or HOST:PORT';
  if (typeof text !== 'string' || text.trim() === '') throw new AgentAddressError(shape);
  let t = text.trim();
  const unix = /^unix:(?:\/\/)?(\/.*)$/.exec(t);
  if (unix) t = unix[1]!;
  if (t.startsWith('/')) {
    if (Buffer.byteLength(t) > MAX_SOCKET_PATH_BYTES) throw new AgentAddressError(`a unix socket path is at most ${MAX_SOCKET_PATH_BYTES} bytes: ${t}`);
    if (t.includes('\0')) throw new AgentAddressError(`${shape}; got a path with a NUL byte`);
    return { socketPath: t };
  }
  if (t.startsWith('http://')) t = t.slice('http://'.length).replace(/\/+$/, '');
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(t);
  const port = m ? Number(m[3]) : NaN;
  const min = opts.listening ? 0 : 1;
  if (!m || port < min || port > 65535) throw new AgentAddressError(`${shape}, got ${JSON.stringify(text).slice(0, 120)}`);
  return { host: m[1] ?? m[2]!, port };
}

export function isUnixAddress(a: AgentAddress): a is { socketPath: string } {
  return 'socketPath' in a;
}

/** `unix:/run/rhumb/agent.sock`, `127.0.0.1:8090` or `[::1]:8090` (what the agent prints). */
export function describeAgentAddress(a: AgentAddress): string {
  if (isUnixAddress(a)) return `unix:${a.socketPath}`;
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** The agent could not be reached at all (no socket, refused, no answer in time). */
export class AgentUnreachableError extends Error {
  constructor(
    readonly where: string,
    readonly reason: string,
  ) {
    super(`the rhumb agent at ${where} is not reachable (${reason})`);
    this.name = 'AgentUnreachableError';
  }
}

export interface AgentReply<T = unknown> {
  status: number;
  /** Parsed JSON, or the text when it is not JSON, or undefined when empty. */
  body: T;
}

/** Largest answer read from the agent (a status of thousands of NICs fits easily). */
const MAX_REPLY_BYTES = 64 * 1024 * 1024;

/**
 * One JSON request to the agent's API; resolves with any status (the caller decides what
 * a 4xx means), rejects with AgentUnreachableError when there is no answer in timeoutMs.
 */
export function agentRequest<T = unknown>(
  address: AgentAddress,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  body?: unknown,
  timeoutMs = 60_000,
): Promise<AgentReply<T>> {
  const where = describeAgentAddress(address);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (reason: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new AgentUnreachableError(where, reason));
    };
    const req = request(
      {
        ...(isUnixAddress(address) ? { socketPath: address.socketPath } : { host: address.host, port: address.port }),
        method,
        path,
        agent: false,
        headers: {
          accept: 'application/json',
          ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_REPLY_BYTES) req.destroy(new Error(`answer larger than ${MAX_REPLY_BYTES} bytes`));
          else chunks.push(c);
        });
        res.on('error', (err) => fail(err.message));
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown = text === '' ? undefined : text;
          try {
            if (text !== '') parsed = JSON.parse(text);
          } catch {
            /* not JSON: the text */
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T });
        });
      },
    );
    const timer = setTimeout(() => req.destroy(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => fail(err.code && !err.message.includes(err.code) ? `${err.code}: ${err.message}` : err.message));
    req.end(payload);
  });
}
