/**
 * Follows the routers of the owners whose instances are on this node, and hands the data
 * plane the connected networks whenever they change: the distributed gateway routes
 * between them.
 *
 * One request held at a time: GET /routers/feed?owner_uuids=…&since=VERSION&wait=MS
 * (../napi/routes/router-feed.ts) answers as soon as a router of those owners, or a
 * network of theirs, changes. When an owner arrives or leaves (refresh), the held request
 * is dropped and the new set asked at once. A controller without the feed (404) is read
 * the older way instead: GET /fabrics/:owner/routers and each network, every intervalMs.
 */
import type { EdgeNetwork, EdgeRouter } from '../edge/plan.js';
import type { Logger } from '../log/index.js';
import { ConnectionsRenewedError } from '../security/http-client.js';
import { NapiRequestError, type NapiClient } from './napi-client.js';

interface ApiRouter {
  uuid: string;
  networks: string[];
}

/** A network as GET /networks/:uuid and the feed give it (the fields used here). */
interface ApiFabricNetwork {
  uuid: string;
  subnet: string;
  gateway?: string;
  vnet_id?: number;
  vlan_id?: number;
  mtu?: number;
  internet_nat?: boolean;
  fabric?: boolean;
}

interface FeedAnswer {
  version: string;
  routers: Array<{ uuid: string; owner_uuid: string; networks: ApiFabricNetwork[] }>;
}

export interface RouterFollowerOptions {
  napi: Pick<NapiClient, 'request'>;
  /** Owners with instances on this node now. */
  owners: () => string[];
  apply: (routers: EdgeRouter[]) => Promise<void>;
  /** Between retries after an error, and between reads of a controller without the feed. */
  intervalMs: number;
  /** How long the controller may hold a feed request (ms). Default 30000. */
  waitMs?: number;
  log: Logger;
}

/** What the gateway needs of a fabric network (null: not a fabric network, nothing to route). */
function edgeNetwork(n: ApiFabricNetwork | undefined): EdgeNetwork | null {
  if (!n || !n.fabric || n.vnet_id === undefined) return null;
  return {
    vnet: n.vnet_id,
    vlan: n.vlan_id ?? 0,
    subnet: n.subnet,
    ...(n.gateway ? { gateway: n.gateway } : {}),
    internetNat: n.internet_nat !== false,
    network_uuid: n.uuid,
    ...(n.mtu ? { mtu: n.mtu } : {}),
  };
}

/** Routers connecting at least two routable networks. */
function edgeRouters(list: ReadonlyArray<{ networks: ReadonlyArray<EdgeNetwork | null> }>): EdgeRouter[] {
  const out: EdgeRouter[] = [];
  for (const r of list) {
    const nets = r.networks.filter((n): n is EdgeNetwork => n !== null);
    if (nets.length > 1) out.push({ networks: nets });
  }
  return out;
}

export class RouterFollower {
  private last = '[]';
  private version: string | undefined;
  /** false once the controller answered 404: read the older way. */
  private feed = true;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private abort: AbortController | undefined;
  /** Pokes (refresh calls) so far, and the last one a finished round started after. */
  private pokes = 0;
  private served = 0;
  private readonly waiters: Array<{ seq: number; resolve: () => void }> = [];

  constructor(private readonly o: RouterFollowerOptions) {}

  start(): void {
    if (this.loop) return;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.abort?.abort();
    await this.loop;
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  /**
   * The owners changed: asks again now. Resolves once a round that started after this
   * call has ended (applied, or failed and logged). Before start(), runs one round itself.
   */
  async refresh(): Promise<void> {
    if (!this.loop) {
      await this.round(0);
      return;
    }
    const seq = ++this.pokes;
    this.abort?.abort();
    await new Promise<void>((resolve) => this.waiters.push({ seq, resolve }));
  }

  private async run(): Promise<void> {
    let first = true;
    while (!this.stopped) {
      const seq = this.pokes;
      const asked = first || seq !== this.served;
      first = false;
      let failed = false;
      try {
        if (asked) await this.round(0);
        else if (!this.feed) {
          await this.pause(this.o.intervalMs);
          if (this.pokes === seq && !this.stopped) await this.round(0);
        } else if (this.o.owners().length > 0) await this.round(this.o.waitMs ?? 30_000);
        // Nothing to follow until an owner arrives (its attach pokes).
        else await this.pause(this.o.intervalMs);
      } catch (err) {
        if (this.stopped) break;
        // Aborted for a refresh, or dropped with the node's old address: ask again at once.
        if (!this.abort?.signal.aborted && !(err instanceof ConnectionsRenewedError)) {
          failed = true;
          this.o.log.warn(`routers: ${(err as Error).message}`);
        }
      }
      // A refresh returns after its round, applied or failed (and logged).
      if (asked) this.settle(seq);
      if (failed) await this.pause(this.o.intervalMs);
    }
  }

  /** Rounds up to seq have run: their refresh() calls return. */
  private settle(seq: number): void {
    this.served = Math.max(this.served, seq);
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (w.seq <= this.served) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  /** Waits ms, or less when poked or stopped. */
  private pause(ms: number): Promise<void> {
    const ctl = (this.abort = new AbortController());
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      ctl.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Reads the routers (holding up to waitMs for a change) and applies them if they changed. */
  private async round(waitMs: number): Promise<void> {
    const owners = [...new Set(this.o.owners())].sort();
    let routers: EdgeRouter[];
    if (owners.length === 0) routers = [];
    else if (this.feed) {
      const got = await this.fromFeed(owners, waitMs);
      if (got === undefined) return this.round(0);
      routers = got;
    } else routers = await this.fromNetworks(owners);
    const text = JSON.stringify(routers);
    if (text === this.last) return;
    await this.o.apply(routers);
    this.last = text;
    this.o.log.info(`routers: ${routers.length} connecting networks of this node's owners`);
  }

  /** The feed's answer (undefined: the controller has no feed; read the older way from now on). */
  private async fromFeed(owners: string[], waitMs: number): Promise<EdgeRouter[] | undefined> {
    const ctl = (this.abort = new AbortController());
    const q = new URLSearchParams({ owner_uuids: owners.join(','), wait: String(waitMs) });
    if (waitMs > 0 && this.version !== undefined) q.set('since', this.version);
    let res: FeedAnswer;
    try {
      res = await this.o.napi.request<FeedAnswer>('GET', `/routers/feed?${q}`, undefined, waitMs + 15_000, ctl.signal);
    } catch (err) {
      if (err instanceof NapiRequestError && err.status === 404) {
        this.feed = false;
        this.o.log.info('routers: the controller has no router feed; reading routers every interval');
        return undefined;
      }
      throw err;
    }
    this.version = res.version;
    return edgeRouters(res.routers.map((r) => ({ networks: r.networks.map(edgeNetwork) })));
  }

  /** The older way: each owner's routers, then each network they connect. */
  private async fromNetworks(owners: string[]): Promise<EdgeRouter[]> {
    const networks = new Map<string, EdgeNetwork | null>();
    const network = async (uuid: string): Promise<EdgeNetwork | null> => {
      if (!networks.has(uuid)) {
        const n = await this.o.napi.request<ApiFabricNetwork>('GET', `/networks/${encodeURIComponent(uuid)}`).catch(() => undefined);
        networks.set(uuid, edgeNetwork(n));
      }
      return networks.get(uuid)!;
    };
    const list: Array<{ networks: Array<EdgeNetwork | null> }> = [];
    for (const owner of owners) {
      for (const r of await this.o.napi.request<ApiRouter[]>('GET', `/fabrics/${encodeURIComponent(owner)}/routers`)) {
        list.push({ networks: await Promise.all(r.networks.map(network)) });
      }
    }
    return edgeRouters(list);
  }
}
