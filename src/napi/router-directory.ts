/**
 * The controller's view of every router and network, in memory (two StoreViews, one of
 * napi/routers/ and one of napi/networks/: one view of both would make etcd stream the
 * NIC records that sort between them), answering agents' router feed: for the owners with
 * instances on a node, their routers with the networks each connects, and a version (a
 * hash of that answer). A poll naming the version it has is held until a router of those
 * owners, or a network of theirs, changes the answer (or the wait ends), so a router
 * written anywhere reaches the nodes as it commits, and a quiet fabric costs one held
 * request per node.
 */
import { createHash } from 'node:crypto';
import { EventEmitter, on } from 'node:events';
import type { ChangeSet, KeyValue, Store } from '../store/types.js';
import { StoreView } from '../store/view.js';
import { NETWORK_PREFIX, ROUTER_PREFIX } from './keys.js';
import type { NetworkRecord, RouterRecord } from './models/records.js';

/** A connected network as the feed gives it (what the distributed gateway needs). */
export interface FeedNetwork {
  uuid: string;
  subnet: string;
  gateway?: string;
  vnet_id?: number;
  vlan_id: number;
  mtu: number;
  internet_nat: boolean;
  fabric: boolean;
}

export interface FeedRouter {
  uuid: string;
  owner_uuid: string;
  /** The router's networks that exist, in the router's order. */
  networks: FeedNetwork[];
}

export interface RouterFeed {
  /** Changes whenever the answer would. */
  version: string;
  routers: FeedRouter[];
}

export interface RouterDirectoryOptions {
  onError?: (err: Error) => void;
}

function parse<T>(value: string | undefined): T | undefined {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value) as T;
  } catch {
    return undefined;
  }
}

/** napi/routers/<owner>/<uuid> → [owner, uuid]; napi/networks/<uuid> → uuid (other keys: none). */
function routerKeyParts(key: string): [string, string] | undefined {
  const rest = key.slice(ROUTER_PREFIX.length).split('/');
  return rest.length === 2 && rest[0] && rest[1] ? [rest[0], rest[1]] : undefined;
}
function networkKeyUuid(key: string): string | undefined {
  const rest = key.slice(NETWORK_PREFIX.length);
  return rest && !rest.includes('/') ? rest : undefined;
}

function feedNetwork(n: NetworkRecord): FeedNetwork {
  return {
    uuid: n.uuid,
    subnet: n.subnet,
    ...(n.gateway ? { gateway: n.gateway } : {}),
    ...(n.vnet_id !== undefined ? { vnet_id: n.vnet_id } : {}),
    vlan_id: n.vlan_id,
    mtu: n.mtu,
    internet_nat: n.internet_nat !== false,
    fabric: n.fabric === true,
  };
}

export class RouterDirectory {
  /** owner -> router uuid -> record. */
  private readonly routers = new Map<string, Map<string, RouterRecord>>();
  private readonly networks = new Map<string, NetworkRecord>();
  private readonly events = new EventEmitter();
  private readonly views: StoreView[];
  private stopped = false;

  constructor(store: Store, private readonly opts: RouterDirectoryOptions = {}) {
    this.events.setMaxListeners(0);
    this.views = [
      this.follow(store, ROUTER_PREFIX, () => this.routers.clear()),
      this.follow(store, NETWORK_PREFIX, () => this.networks.clear()),
    ];
  }

  /** A view of one prefix; a (re)load replaces what it holds (clear), then applies the records. */
  private follow(store: Store, prefix: string, clear: () => void): StoreView {
    let loading: KeyValue[] = [];
    return new StoreView(
      {
        store,
        prefixes: [prefix],
        name: `router directory (${prefix})`,
        logger: {
          warn: (obj, msg) => this.opts.onError?.(new Error(`${msg ?? 'router directory'}: ${JSON.stringify(obj)}`)),
          info: () => undefined,
        },
      },
      {
        beginLoad: () => {
          loading = [];
        },
        loadPage: (kvs) => {
          loading.push(...kvs);
        },
        endLoad: (_revision, reload) => {
          clear();
          for (const kv of loading) this.applyRecord(kv.key, kv.value);
          loading = [];
          // A lost feed: whatever changed meanwhile, every held poll looks again.
          if (reload) this.events.emit('change', null);
        },
        apply: (set) => this.apply(set),
      },
    );
  }

  /** Loads and follows; resolves once caught up with the store. */
  async start(): Promise<void> {
    await Promise.all(this.views.map((v) => v.start()));
  }

  /** Stops following; held polls are answered now. Idempotent. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const v of this.views) v.close();
    this.events.emit('change', null);
  }

  /** The answer for these owners now. */
  answer(owners: readonly string[]): RouterFeed {
    const routers: FeedRouter[] = [];
    for (const owner of [...new Set(owners)].sort()) {
      const mine = [...(this.routers.get(owner)?.values() ?? [])].sort((a, b) => (a.uuid < b.uuid ? -1 : 1));
      for (const r of mine) {
        const networks = r.networks.flatMap((u) => {
          const n = this.networks.get(u);
          return n ? [feedNetwork(n)] : [];
        });
        routers.push({ uuid: r.uuid, owner_uuid: r.owner_uuid, networks });
      }
    }
    const version = createHash('sha256').update(JSON.stringify(routers)).digest('hex').slice(0, 20);
    return { version, routers };
  }

  /**
   * The answer for these owners; when it is still the version the caller has, waits up to
   * waitMs for a change of theirs to make it another.
   */
  async feed(owners: readonly string[], since: string | undefined, waitMs: number): Promise<RouterFeed> {
    let now = this.answer(owners);
    if (waitMs <= 0 || now.version !== since || this.stopped) return now;
    const wanted = new Set(owners);
    // A timer of its own (AbortSignal.timeout's does not keep the process alive).
    const ended = new AbortController();
    const timer = setTimeout(() => ended.abort(), waitMs);
    try {
      for await (const [touched] of on(this.events, 'change', { signal: ended.signal }) as AsyncIterable<[Set<string> | null]>) {
        if (this.stopped) break;
        if (touched && ![...touched].some((o) => wanted.has(o))) continue;
        now = this.answer(owners);
        if (now.version !== since) break;
      }
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err;
      now = this.answer(owners); // the wait ended
    } finally {
      clearTimeout(timer);
    }
    return now;
  }

  private apply(set: ChangeSet): void {
    const touched = new Set<string>();
    for (const ch of set.changes) for (const owner of this.applyRecord(ch.key, ch.type === 'put' ? ch.value : undefined)) touched.add(owner);
    if (touched.size > 0) this.events.emit('change', touched);
  }

  /** Applies one put (value) or delete (undefined); returns the owners whose answer it may change. */
  private applyRecord(key: string, value: string | undefined): string[] {
    if (key.startsWith(ROUTER_PREFIX)) {
      const parts = routerKeyParts(key);
      if (!parts) return [];
      const [owner, uuid] = parts;
      const rec = parse<RouterRecord>(value);
      let mine = this.routers.get(owner);
      if (rec && Array.isArray(rec.networks)) {
        if (!mine) this.routers.set(owner, (mine = new Map()));
        mine.set(uuid, { ...rec, owner_uuid: owner, uuid });
      } else if (mine) {
        mine.delete(uuid);
        if (mine.size === 0) this.routers.delete(owner);
      }
      return [owner];
    }
    const uuid = networkKeyUuid(key);
    if (!uuid) return [];
    const before = this.networks.get(uuid);
    const rec = parse<NetworkRecord>(value);
    if (rec && typeof rec.subnet === 'string') this.networks.set(uuid, rec);
    else this.networks.delete(uuid);
    // Only an owner's fabric networks can be in its routers.
    return [...new Set([...(before?.owner_uuids ?? []), ...(rec?.owner_uuids ?? [])])];
  }
}
