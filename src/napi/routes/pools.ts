/**
 * /network_pools and /network_pools/:uuid (sdc-napi lib/endpoints/network-pools.js).
 * Single pools carry an ETag and honour If-Match.
 */
import type { FastifyInstance } from 'fastify';
import type { NapiContext } from '../context.js';
import { notAuthorized } from '../../rest/errors.js';
import { checkIfMatch, requestParams, setEtag } from '../../rest/http.js';
import { poolKey } from '../keys.js';
import { matchesUuid, vFamilyFilter, vStrings, vUuidPrefix } from '../models/params.js';
import {
  createPoolTx,
  isPoolOwner,
  listPoolRecords,
  mustLoadPool,
  serializePool,
  updatePoolTx,
} from '../models/pool.js';
import { Tx, transact } from '../../store/txn.js';
import { isUuid } from '../../net/addr.js';
import {
  type FieldValidator,
  fail,
  paginate,
  paginationFields,
  schema,
  toList,
  vUuid,
  validateParams,
} from '../../rest/validate.js';

const vOneNetwork: FieldValidator<string> = (field, v) => {
  const list = toList(v);
  if (!list || list.length === 0) return fail(field, 'invalid UUID');
  if (list.length > 1) return fail(field, 'Only one network UUID allowed');
  return isUuid(list[0]) ? list[0] : fail(field, 'invalid UUID');
};

const LIST_POOLS_SCHEMA = schema({
  strict: true,
  optional: {
    uuid: vUuidPrefix,
    name: vStrings,
    family: vFamilyFilter,
    provisionable_by: vUuid,
    networks: vOneNetwork,
    ...paginationFields,
  },
});

const GET_POOL_SCHEMA = schema({ optional: { provisionable_by: vUuid } });

export function registerPools(app: FastifyInstance, ctx: NapiContext): void {
  const { store, config } = ctx;

  app.get('/network_pools', async (req) => {
    const c = await validateParams(LIST_POOLS_SCHEMA, requestParams(req));
    const { name: names, family: families, provisionable_by: provBy, networks } = c;
    const pools = (await listPoolRecords(new Tx(store)))
      .filter((p) => matchesUuid(p.uuid, c.uuid))
      .filter((p) => !names || names.includes(p.name))
      .filter((p) => !families || families.includes(p.family))
      .filter((p) => !provBy || !p.owner_uuids || p.owner_uuids.length === 0 || p.owner_uuids.includes(provBy))
      .filter((p) => !networks || p.networks.includes(networks))
      .sort((a, b) => (a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0));
    return paginate(pools, c).map(serializePool);
  });

  app.post('/network_pools', async (req, reply) => {
    const raw = requestParams(req);
    const { value, revision } = await transact(store, (tx) => createPoolTx(tx, config.adminUuid, raw));
    setEtag(reply, revision);
    return serializePool(value);
  });

  app.get('/network_pools/:uuid', async (req, reply) => {
    const raw = requestParams(req);
    const c = await validateParams(GET_POOL_SCHEMA, raw);
    const loaded = await mustLoadPool(new Tx(store), String(raw.uuid));
    if (c.provisionable_by && !isPoolOwner(loaded.rec, c.provisionable_by, config.adminUuid)) {
      throw notAuthorized('owner cannot provision on network pool');
    }
    checkIfMatch(req, loaded.modRevision);
    setEtag(reply, loaded.modRevision);
    return serializePool(loaded.rec);
  });

  app.put('/network_pools/:uuid', async (req, reply) => {
    const raw = requestParams(req);
    const { value, revision } = await transact(store, async (tx) => {
      const loaded = await mustLoadPool(tx, String(raw.uuid));
      checkIfMatch(req, loaded.modRevision);
      return updatePoolTx(tx, config.adminUuid, loaded.rec, raw);
    });
    setEtag(reply, revision);
    return serializePool(value);
  });

  app.delete('/network_pools/:uuid', async (req, reply) => {
    const raw = requestParams(req);
    await transact(store, async (tx) => {
      const loaded = await mustLoadPool(tx, String(raw.uuid));
      checkIfMatch(req, loaded.modRevision);
      tx.del(poolKey(loaded.rec.uuid));
    });
    reply.status(204);
  });
}
