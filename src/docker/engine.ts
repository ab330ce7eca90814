/**
 * The local Docker Engine API, read-only: networks, containers and the event stream
 * (`--docker-host`, default unix:///var/run/docker.sock; tcp://HOST:PORT also works).
 * node:http, every call bounded; failures to reach the daemon are DockerUnreachable,
 * answers >= 400 DockerApiError with the daemon's message.
 *
 * Never ask the daemon about a container from inside a plugin call for it: the daemon
 * holds the container's lock while it connects it (Join), so an inspect waits until the
 * call it is part of times out. Network reads are safe there; container reads are made
 * from the event stream, after the fact.
 */
import { type IncomingMessage, request } from 'node:http';

export type EngineAddress = { socketPath: string } | { host: string; port: number };

export const DEFAULT_DOCKER_HOST = 'unix:///var/run/docker.sock';

/** `unix:///path` or `tcp://host:port` (Docker's -H forms) -> where to connect. */
export function parseDockerHost(text: string): EngineAddress {
  if (text.startsWith('unix://')) {
    const path = text.slice('unix://'.length);
    if (!path.startsWith('/')) throw new Error(`--docker-host ${text}: a unix socket needs an absolute path (unix:///path)`);
    return { socketPath: path };
  }
  const m = /^(?:tcp|http):\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})\/?$/.exec(text);
  if (m && Number(m[2]) > 0 && Number(m[2]) < 65536) return { host: m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) };
  throw new Error(`--docker-host ${text}: expected unix:///path/to/docker.sock or tcp://HOST:PORT`);
}

export function describeEngine(a: EngineAddress): string {
  return 'socketPath' in a ? `unix://${a.socketPath}` : `tcp://${a.host}:${a.port}`;
}

export class DockerUnreachable extends Error {
  constructor(where: string, cause: string) {
    super(`the Docker Engine API at ${where} is not reachable (${cause})`);
    this.name = 'DockerUnreachable';
  }
}

export class DockerApiError extends Error {
  constructor(
    readonly status: number,
    readonly path: string,
    message: string,
  ) {
    super(`Docker API ${path}: ${status} ${message}`);
    this.name = 'DockerApiError';
  }
}

/** The slices of Docker's API objects rhumb reads. */
export interface DockerNetwork {
  Id: string;
  Name: string;
  Driver: string;
  IPAM?: { Driver?: string; Options?: Record<string, string> | null; Config?: Array<{ Subnet?: string; Gateway?: string }> | null };
  Options?: Record<string, string> | null;
  Containers?: Record<string, { EndpointID?: string; MacAddress?: string; IPv4Address?: string }> | null;
}

export interface DockerContainer {
  Id: string;
  Name: string;
  State?: { Running?: boolean; Pid?: number };
  Config?: { ExposedPorts?: Record<string, unknown> | null; Env?: string[] | null };
  HostConfig?: { Links?: string[] | null; PortBindings?: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null> | null; PublishAllPorts?: boolean };
  NetworkSettings?: {
    SandboxKey?: string;
    Networks?: Record<string, { NetworkID?: string; EndpointID?: string; Links?: string[] | null; MacAddress?: string; IPAddress?: string }> | null;
  };
}

export interface DockerEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
}

export class DockerEngine {
  readonly where: string;

  constructor(
    private readonly address: EngineAddress,
    private readonly timeoutMs = 10_000,
  ) {
    this.where = describeEngine(address);
  }

  private open(path: string, timeoutMs: number | undefined, signal?: AbortSignal): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          ...('socketPath' in this.address ? { socketPath: this.address.socketPath } : { host: this.address.host, port: this.address.port }),
          method: 'GET',
          path,
          headers: { accept: 'application/json', host: 'docker' },
          ...(signal ? { signal } : {}),
        },
        resolve,
      );
      if (timeoutMs !== undefined) req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
      req.on('error', (err) => reject(signal?.aborted ? err : new DockerUnreachable(this.where, err.message)));
      req.end();
    });
  }

  /** GET path -> parsed JSON (404: DockerApiError with status 404). */
  async get<T>(path: string): Promise<T> {
    const res = await this.open(path, this.timeoutMs);
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', resolve);
      res.on('error', (err) => reject(new DockerUnreachable(this.where, err.message)));
    });
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    if ((res.statusCode ?? 500) >= 400) {
      const msg = body && typeof body === 'object' && 'message' in body ? String((body as { message: unknown }).message) : String(body);
      throw new DockerApiError(res.statusCode ?? 500, path, msg);
    }
    return body as T;
  }

  /** Networks, filtered as the API filters them (e.g. {driver: ['rhumb']}). */
  networks(filters: Record<string, string[]> = {}): Promise<DockerNetwork[]> {
    return this.get(`/networks?${new URLSearchParams({ filters: JSON.stringify(filters) })}`);
  }

  /** One network (404 when the daemon does not have it, e.g. during its CreateNetwork). */
  network(id: string): Promise<DockerNetwork> {
    return this.get(`/networks/${encodeURIComponent(id)}`);
  }

  /** Never from inside a plugin call for that container (see the header). */
  container(id: string): Promise<DockerContainer> {
    return this.get(`/containers/${encodeURIComponent(id)}/json`);
  }

  /** Container ids, filtered as the API filters them (e.g. {network: [id]}, all states). */
  async containerIds(filters: Record<string, string[]> = {}): Promise<string[]> {
    const list = await this.get<Array<{ Id: string }>>(`/containers/json?${new URLSearchParams({ all: '1', filters: JSON.stringify(filters) })}`);
    return list.map((c) => c.Id);
  }

  ping(): Promise<unknown> {
    return this.get('/_ping');
  }

  /**
   * Follows the event stream (filtered) until it ends, the signal aborts or the daemon
   * goes away; each event is handed to onEvent in order. Resolves when the stream ends.
   */
  async events(filters: Record<string, string[]>, onEvent: (e: DockerEvent) => void, signal: AbortSignal): Promise<void> {
    const res = await this.open(`/events?${new URLSearchParams({ filters: JSON.stringify(filters) })}`, undefined, signal);
    if ((res.statusCode ?? 500) >= 400) throw new DockerApiError(res.statusCode ?? 500, '/events', 'event stream refused');
    let buf = '';
    await new Promise<void>((resolve) => {
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (!line) continue;
          try {
            onEvent(JSON.parse(line) as DockerEvent);
          } catch {
            /* not an event: skipped */
          }
        }
      });
      res.on('end', resolve);
      res.on('error', () => resolve());
      res.on('close', resolve);
    });
  }
}
