/** GET/HEAD /ping: health of the API and its store; never gated. */
import type { FastifyInstance } from 'fastify';
import type { NapiContext } from '../context.js';
import { ANYONE, access } from '../../rest/access.js';

export function registerPing(app: FastifyInstance, ctx: NapiContext): void {
  app.get('/ping', access(ANYONE), async () => {
    const storeUp = await ctx.store.healthy().catch(() => false);
    return {
      config: { fabrics_enabled: ctx.config.overlay.enabled, subnet_alloc_enabled: false },
      healthy: storeUp,
      services: { store: storeUp ? 'online' : 'offline', store_kind: ctx.store.kind },
      status: storeUp ? 'OK' : 'unhealthy',
    };
  });
}
