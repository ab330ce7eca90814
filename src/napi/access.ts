/**
 * Who may call NAPI's routes (the rules are enforced by src/rest/auth.ts; a route not
 * listed here is for admins only):
 *
 *   /ping                         anyone
 *   fabric VLANs and networks     an owner, for the owner in the path
 *   NICs                          an owner: its own NICs (owner_uuid), on networks it owns;
 *                                 never an underlay NIC, never check_owner=false.
 *                                 a node: reads NICs; writes only NICs placed on it
 *                                 (cn_uuid), and an underlay NIC only as its own server's
 *   networks (read)               a node (the agent finds the underlay network, a NIC's network)
 *   routers                       an owner, for the owner in the path; a node reads them (its
 *                                 agent routes between the networks they connect)
 */
import type { FastifyRequest } from 'fastify';
import { type RouteAccess, bodyIs, existing, filterBy, forbidFields, param, pathIs, refersToOwn, requireThat } from '../rest/access.js';
import type { RestContext } from '../rest/context.js';
import { notFound } from '../rest/errors.js';
import type { Params } from '../rest/validate.js';
import { Tx } from '../store/txn.js';
import { MSG, loadNic } from './models/nic.js';
import { loadNetworkKv } from './models/network.js';
import { loadPool } from './models/pool.js';

const nicNotFound = () => notFound(MSG.nicNotFound);

async function nicOf(req: FastifyRequest, ctx: RestContext) {
  return loadNic(new Tx(ctx.store), (req.params as Params).mac);
}

/** The owners a network or pool names (none: a public one, which is nobody's to an owner). */
async function provisionOwners(id: string, ctx: RestContext): Promise<readonly string[] | null> {
  const tx = new Tx(ctx.store);
  const net = await loadNetworkKv(tx, id);
  if (net) return net.rec.owner_uuids ?? [];
  if (!/^[0-9a-f-]{36}$/.test(id)) return null;
  const pool = await loadPool(tx, id);
  return pool ? (pool.owner_uuids ?? []) : null;
}

const isTrue = (v: unknown) => v === true || v === 'true';

/** What an owner's NIC write may and may not say. */
const OWNER_NIC_WRITE = [
  bodyIs('owner_uuid'),
  forbidFields('underlay'),
  requireThat((req) => !['false', false].includes(param(req, 'check_owner') as string | boolean), 'check_owner', 'check_owner may not be turned off'),
  refersToOwn('network_uuid', provisionOwners, () => notFound('network not found')),
];

/** A node's NIC writes: placed on it; an underlay NIC only as its own server's. */
const NODE_NIC_WRITE = [
  bodyIs('cn_uuid'),
  requireThat(
    (req, node) => !isTrue(param(req, 'underlay')) || (param(req, 'belongs_to_uuid') === node && param(req, 'belongs_to_type') === 'server'),
    'underlay',
    'an underlay NIC must belong to this node (belongs_to_type server)',
  ),
];

export const NAPI_ACCESS = {
  fabric: { allow: ['owner'], owner: [pathIs('owner_uuid', () => notFound('vlan not found'))] },
  nicList: { allow: ['owner', 'node'], owner: [filterBy('owner_uuid')], node: [] },
  nicCreate: { allow: ['owner', 'node'], owner: OWNER_NIC_WRITE, node: NODE_NIC_WRITE },
  nicGet: {
    allow: ['owner', 'node'],
    owner: [existing(async (req, ctx) => (await nicOf(req, ctx))?.rec.owner_uuid ?? null, nicNotFound)],
    node: [],
  },
  nicUpdate: {
    allow: ['owner', 'node'],
    owner: [existing(async (req, ctx) => (await nicOf(req, ctx))?.rec.owner_uuid ?? null, nicNotFound), ...OWNER_NIC_WRITE],
    node: [existing(async (req, ctx) => nicNode(await nicOf(req, ctx)), nicNotFound), ...NODE_NIC_WRITE],
  },
  nicDelete: {
    allow: ['owner', 'node'],
    owner: [existing(async (req, ctx) => (await nicOf(req, ctx))?.rec.owner_uuid ?? null, nicNotFound)],
    node: [existing(async (req, ctx) => nicNode(await nicOf(req, ctx)), nicNotFound)],
  },
  networkRead: { allow: ['node'], node: [] },
  router: { allow: ['owner'], owner: [pathIs('owner_uuid', () => notFound('router not found'))] },
  routerRead: { allow: ['owner', 'node'], owner: [pathIs('owner_uuid', () => notFound('router not found'))], node: [] },
} satisfies Record<string, RouteAccess>;

/** A NIC's node (undefined: placed nowhere, so no node's); null when there is no such NIC. */
function nicNode(n: Awaited<ReturnType<typeof nicOf>>): string | undefined | null {
  return n ? n.rec.cn_uuid : null;
}

