/**
 * Caps on requests held open by a long-poll route: so many in all, and so many per node
 * principal (one node cannot take every slot). Beyond either, 429 (the agent retries).
 */
import type { FastifyRequest } from 'fastify';
import { tooManyRequests } from './errors.js';

export interface WaiterCapOptions {
  /** Requests that may wait at once. */
  max: number;
  /** Requests one node (a node token or certificate) may have waiting at once. */
  maxPerNode: number;
  /** What is waited on, for the 429's message ("peers", "routers"). */
  what: string;
}

export class WaiterCaps {
  private waiting = 0;
  private readonly byNode = new Map<string, number>();

  constructor(private readonly o: WaiterCapOptions) {}

  /** Runs wait() as one held request of req's principal, or throws 429 over a cap. */
  async hold<T>(req: FastifyRequest, wait: () => Promise<T>): Promise<T> {
    if (this.waiting >= this.o.max) throw tooManyRequests(`too many requests are waiting on ${this.o.what} (at most ${this.o.max}); retry later`);
    const who = req.principal?.role === 'node' ? req.principal.node : undefined;
    const mine = who === undefined ? 0 : (this.byNode.get(who) ?? 0);
    if (mine >= this.o.maxPerNode) throw tooManyRequests(`too many requests of this node are waiting on ${this.o.what} (at most ${this.o.maxPerNode}); retry later`);
    this.waiting++;
    if (who !== undefined) this.byNode.set(who, mine + 1);
    try {
      return await wait();
    } finally {
      this.waiting--;
      if (who !== undefined) {
        const left = (this.byNode.get(who) ?? 1) - 1;
        if (left > 0) this.byNode.set(who, left);
        else this.byNode.delete(who);
      }
    }
  }
}
