/** Every NAPI route group; each registers its routes on the app. */
import type { FastifyInstance } from 'fastify';
import { registerFwRoutes } from '../../fw/api.js';
import type { NapiContext } from '../context.js';
import { registerAggregations } from './aggregations.js';
import { registerFabrics } from './fabrics.js';
import { registerIps } from './ips.js';
import { registerNetworks } from './networks.js';
import { registerNicTags } from './nic-tags.js';
import { registerNics } from './nics.js';
import { registerPing } from './ping.js';
import { registerPools } from './pools.js';
import { registerSearch } from './search.js';

export type RouteModule = (app: FastifyInstance, ctx: NapiContext) => void;

export const routeModules: RouteModule[] = [
  registerPing,
  registerNicTags,
  registerNetworks,
  registerPools,
  registerSearch,
  registerAggregations,
  registerFabrics,
  registerIps,
  registerNics,
  // The firewall API (rules, instance registry, agent feed, explain, docker).
  registerFwRoutes,
];
