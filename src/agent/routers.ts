/**
 * Follows the routers of the owners whose instances are on this node (GET
 * /fabrics/:owner/routers, then each connected network), and hands the data plane the
 * connected networks whenever they change: the distributed gateway routes between them.
 * Refreshed after each attach and detach, and polled (a router written elsewhere reaches
 * the node within one interval).
 */
import type { EdgeNetwork, EdgeRouter } from '../edge/plan.js';
import type { Logger } from '../log/index.js';
import type { NapiClient } from './napi-client.js';

interface ApiRouter {
  uuid: string;
  networks: string[];
}

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

export interface RouterFollowerOptions {
  napi: Pick<NapiClient, 'request'>;
  /** Owners with instances on this node now. */
  owners: () => string[];
  apply: (routers: EdgeRouter[]) => Promise<void>;
  intervalMs: number;
  log: Logger;
}

export class RouterFollower {
  private last = '[]';
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;

  constructor(private readonly o: RouterFollowerOptions) {}

  start(): void {
    this.timer = setInterval(() => void this.refresh().catch((err: Error) => this.o.log.warn(`routers: ${err.message}`)), this.o.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Reads the routers now and applies them if they changed; calls overlapping one run fold into one more. */
  async refresh(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.once();
        } while (this.again);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }

  private async once(): Promise<void> {
    const networks = new Map<string, EdgeNetwork | null>();
    const network = async (uuid: string): Promise<EdgeNetwork | null> => {
      if (!networks.has(uuid)) {
        const n = await this.o.napi.request<ApiFabricNetwork>('GET', `/networks/${encodeURIComponent(uuid)}`).catch(() => undefined);
        networks.set(uuid, n && n.fabric && n.vnet_id !== undefined ? { vnet: n.vnet_id, vlan: n.vlan_id ?? 0, subnet: n.subnet, ...(n.gateway ? { gateway: n.gateway } : {}), internetNat: n.internet_nat !== false, network_uuid: n.uuid, ...(n.mtu ? { mtu: n.mtu } : {}) } : null);
      }
      return networks.get(uuid)!;
    };
    const routers: EdgeRouter[] = [];
    for (const owner of [...new Set(this.o.owners())].sort()) {
      const list = await this.o.napi.request<ApiRouter[]>('GET', `/fabrics/${encodeURIComponent(owner)}/routers`);
      for (const r of list) {
        const nets = (await Promise.all(r.networks.map(network))).filter((n): n is EdgeNetwork => n !== null);
        if (nets.length > 1) routers.push({ networks: nets });
      }
    }
    const text = JSON.stringify(routers);
    if (text === this.last) return;
    await this.o.apply(routers);
    this.last = text;
    this.o.log.info(`routers: ${routers.length} connecting networks of this node's owners`);
  }
}
