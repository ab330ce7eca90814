/** Every NAPI route group; each registers its routes on the app. */
import type { RouteModule } from '../../rest/context.js';
import type { NapiContext } from '../context.js';
import { registerAggregations } from './aggregations.js';
import { registerFabrics } from './fabrics.js';
import { registerIps } from './ips.js';
import { registerNetworks } from './networks.js';
import { registerNicTags } from './nic-tags.js';
import { registerNics } from './nics.js';
import { registerPing } from './ping.js';
import { registerPools } from './pools.js';
import { registerRouters } from './routers.js';
import { registerSearch } from './search.js';

export const routeModules: Array<RouteModule<NapiContext>> = [
  registerPing,
  registerNicTags,
  registerNetworks,
  registerPools,
  registerSearch,
  registerAggregations,
  registerFabrics,
  registerRouters,
  registerIps,
  registerNics,
];
