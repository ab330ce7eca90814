/**
 * The plugin's only peer: the node agent's API, over a unix socket or TCP (node:http: it
 * loads in a few milliseconds, which a process started once per container wants). Every
 * call is bounded; a failure to reach the agent is AgentUnreachable, an answer >= 400 an
 * AgentReplyError with the agent's {code, message}.
 */
import { request } from 'node:http';
import type { AgentAddress } from './config.js';

export class AgentUnreachable extends Error {
  constructor(where: string, cause: string) {
    super(`the rhumb agent at ${where} is not reachable (${cause})`);
    this.name = 'AgentUnreachable';
  }
}

export class AgentReplyError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly reason: string,
  ) {
    super(`agent answered ${status} ${code}: ${reason}`);
    this.name = 'AgentReplyError';
  }
}

export function describeAddress(a: AgentAddress): string {
  return 'socketPath' in a ? `unix:${a.socketPath}` : `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

export interface AgentCall {
  <T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, timeoutMs?: number): Promise<T>;
}

/** A caller of the agent at this address; each call bounded by timeoutMs (the default or its own). */
export function agentClient(address: AgentAddress, defaultTimeoutMs: number): AgentCall {
  const where = describeAddress(address);
  return <T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, timeoutMs = defaultTimeoutMs): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        {
          ...('socketPath' in address ? { socketPath: address.socketPath } : { host: address.host, port: address.port }),
          method,
          path,
          headers: { accept: 'application/json', ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) },
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) => reject(new AgentUnreachable(where, err.message)));
          res.on('end', () => {
            clearTimeout(timer);
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              parsed = undefined;
            }
            const status = res.statusCode ?? 0;
            if (status >= 400) {
              const b = (parsed ?? {}) as { code?: unknown; message?: unknown };
              reject(new AgentReplyError(status, typeof b.code === 'string' ? b.code : 'Error', typeof b.message === 'string' ? b.message : text.slice(0, 200)));
            } else resolve(parsed as T);
          });
        },
      );
      const timer = setTimeout(() => {
        req.destroy(new Error(`no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(new AgentUnreachable(where, (err as NodeJS.ErrnoException).code ?? err.message));
      });
      req.end(payload);
    });
}
