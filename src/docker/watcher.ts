/**
 * Follows the Docker daemon's events and keeps the firewall's view of this node's
 * containers what the containers are (./semantics.ts): on a container's start or a
 * network connect or disconnect, every running container of that network is read again
 * (so a linker follows its target's new endpoint) and re-registered. The same pass, run
 * at start and after the stream reconnects, also resumes what an agent restart
 * interrupted (an attachment Docker joined that was never activated), and a periodic
 * sweep releases attachments Docker no longer has (it removed a container while the agent
 * was away).
 *
 * Container reads happen here, after the daemon is done with the container, never inside
 * a plugin call (see ./engine.ts).
 */
import type { WorkloadAttachment } from '../agent/workload-api.js';
import { type Logger, silentLogger } from '../log/index.js';
import { type DockerDriver, LABEL_ENDPOINT, LABEL_NETWORK, type NetInfo } from './driver.js';
import type { DockerContainer, DockerEngine, DockerEvent, DockerNetwork } from './engine.js';
import { containerSpec, portBindings } from './semantics.js';

export interface WatcherOptions {
  driver: DockerDriver;
  engine: DockerEngine;
  api: { request<T>(method: string, path: string, body?: unknown): Promise<T> };
  pluginName: string;
  logger?: Logger;
  /** Between sweeps for attachments Docker no longer has (ms); 0: never. Default 60000. */
  sweepIntervalMs?: number;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });

export class DockerWatcher {
  private readonly log: Logger;
  private readonly abort = new AbortController();
  private loop: Promise<void> | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  /** Networks to read again, and the pass that does it. */
  private readonly dirty = new Set<string>();
  private pass: Promise<void> | undefined;
  /** Attachments found without a Docker endpoint by the last sweep (released at the next). */
  private suspects = new Set<string>();
  /** Passes completed (tests wait on it). */
  passes = 0;

  constructor(private readonly o: WatcherOptions) {
    this.log = o.logger ?? silentLogger();
  }

  start(): void {
    this.loop = this.follow();
    const every = this.o.sweepIntervalMs ?? 60_000;
    if (every > 0) {
      this.sweeper = setInterval(() => void this.sweep().catch((err: Error) => this.log.warn(`docker sweep: ${err.message}`)), every);
      this.sweeper.unref();
    }
  }

  async stop(): Promise<void> {
    this.abort.abort();
    if (this.sweeper) clearInterval(this.sweeper);
    await this.loop;
    await this.pass;
  }

  private async follow(): Promise<void> {
    let backoff = 500;
    while (!this.abort.signal.aborted) {
      try {
        const stream = this.o.engine.events({ type: ['container', 'network'] }, (e) => this.onEvent(e), this.abort.signal);
        // Everything once the stream is open: whatever happened while it was not is caught up.
        this.markAll();
        await stream;
        backoff = 500;
      } catch (err) {
        if (this.abort.signal.aborted) return;
        this.log.warn(`Docker events: ${(err as Error).message}; retrying`);
      }
      await sleep(backoff, this.abort.signal);
      backoff = Math.min(backoff * 2, 10_000);
    }
  }

  private onEvent(e: DockerEvent): void {
    const attrs = e.Actor?.Attributes ?? {};
    if (e.Type === 'network' && attrs.type === this.o.pluginName) {
      const id = e.Actor?.ID;
      if (!id) return;
      if (e.Action === 'create' && attrs.name) void this.named(id, attrs.name);
      else if (e.Action === 'connect' || e.Action === 'disconnect') this.mark(id);
      // 'destroy' follows DeleteNetwork, which already let go of the network.
    } else if (e.Type === 'container' && (e.Action === 'start' || e.Action === 'die')) {
      this.markAll();
    }
  }

  /** A network the plugin created gets its Docker name in the controller. */
  private async named(id: string, name: string): Promise<void> {
    try {
      const info = await this.o.driver.netInfo(id);
      if (await this.o.driver.fabric.rename(info.owner, info.fabric, name)) {
        this.o.driver.renamed(id, name);
        this.log.info(`fabric network ${info.fabric.uuid} renamed ${name} after its Docker network`);
      }
    } catch (err) {
      this.log.warn(`naming the fabric network of ${name}: ${(err as Error).message}`);
    }
  }

  private mark(networkId: string): void {
    this.dirty.add(networkId);
    this.kick();
  }

  private markAll(): void {
    this.dirty.add('*');
    this.kick();
  }

  private kick(): void {
    if (this.pass) return;
    this.pass = (async () => {
      while (this.dirty.size > 0 && !this.abort.signal.aborted) {
        const all = this.dirty.has('*');
        const ids = [...this.dirty];
        this.dirty.clear();
        try {
          const nets = await this.o.driver.dockerNetworks();
          for (const n of nets) if (all || ids.includes(n.Id)) await this.syncNetwork(n);
        } catch (err) {
          this.log.warn(`Docker semantics: ${(err as Error).message}`);
        }
        this.passes++;
      }
      this.pass = undefined;
    })();
  }

  /** Re-registers every container on a network (links resolved within it); resumes interrupted activations. */
  private async syncNetwork(n: DockerNetwork): Promise<void> {
    let info: NetInfo;
    try {
      info = await this.o.driver.netInfo(n);
    } catch (err) {
      this.log.warn(`Docker network ${n.Name}: ${(err as Error).message}`);
      return;
    }
    const ours = new Map<string, WorkloadAttachment>();
    for (const w of this.o.driver.dockerWorkloads()) {
      const ep = w.labels?.[LABEL_ENDPOINT];
      if (ep && w.labels?.[LABEL_NETWORK] === n.Id) ours.set(ep, w);
    }
    const containers: DockerContainer[] = [];
    for (const id of await this.o.engine.containerIds({ network: [n.Id], status: ['running'] })) {
      const c = await this.o.engine.container(id).catch(() => undefined);
      if (c) containers.push(c);
    }
    const uuidByName = new Map<string, string>();
    for (const c of containers) {
      const ep = c.NetworkSettings?.Networks?.[n.Name]?.EndpointID;
      const w = ep ? ours.get(ep) : undefined;
      if (w) uuidByName.set(c.Name.replace(/^\//, ''), w.belongs_to_uuid);
    }
    for (const c of containers) {
      const ep = c.NetworkSettings?.Networks?.[n.Name]?.EndpointID;
      const w = ep ? ours.get(ep) : undefined;
      if (!ep || !w) continue;
      const spec = containerSpec(c, { name: n.Name, owner: info.owner, fabricUuid: info.fabric.uuid, endpointId: ep }, (name) => uuidByName.get(name));
      try {
        await this.o.api.request('POST', `/fw/docker/containers/${encodeURIComponent(w.belongs_to_uuid)}`, spec);
      } catch (err) {
        this.log.warn(`container ${c.Name} on ${n.Name}: firewall registration: ${(err as Error).message}`);
      }
      const sandbox = c.NetworkSettings?.SandboxKey;
      if (sandbox && !this.o.driver.endpointOf(ep)?.netns) {
        await this.o.driver.resume(w, ep, sandbox, portBindings(c)).catch((err: Error) => this.log.warn(`container ${c.Name}: resuming: ${err.message}`));
      }
    }
  }

  /**
   * Releases attachments Docker no longer has: on no network of the daemon, or whose
   * endpoint the daemon does not list — each only when two sweeps in a row found it so
   * (one may race a container being created).
   */
  async sweep(): Promise<number> {
    const nets = await this.o.driver.dockerNetworks();
    const live = new Set<string>();
    const detailed = await Promise.all(nets.map((n) => this.o.engine.network(n.Id).catch(() => n)));
    for (const n of detailed) for (const c of Object.values(n.Containers ?? {})) if (c.EndpointID) live.add(c.EndpointID);
    const netIds = new Set(nets.map((n) => n.Id));
    const now = new Set<string>();
    let released = 0;
    for (const w of this.o.driver.dockerWorkloads()) {
      const ep = w.labels?.[LABEL_ENDPOINT];
      const gone = !netIds.has(w.labels?.[LABEL_NETWORK] ?? '') || !ep || !live.has(ep);
      if (!gone) continue;
      if (!this.suspects.has(w.key)) {
        now.add(w.key);
        continue;
      }
      this.log.info(`attachment ${w.key}: Docker no longer has its endpoint; releasing it`);
      await this.o.driver.release(w).then(() => released++, (err: Error) => this.log.warn(`releasing ${w.key}: ${err.message}`));
    }
    this.suspects = now;
    return released;
  }
}
