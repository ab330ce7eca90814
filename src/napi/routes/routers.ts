/**
 * /fabrics/:owner_uuid/routers[/:uuid] (issue #12): an owner's routers, each connecting
 * some of its fabric networks through the distributed gateway. NAPI style: 428 while the
 * overlay is disabled, strict list parameters with limit/offset, ETags and If-Match on
 * single routers, creates answer 200 with the object, deletes 204.
 */
import type { FastifyInstance } from 'fastify';
import type { NapiContext } from '../context.js';
import { NAPI_ACCESS } from '../access.js';
import { access } from '../../rest/access.js';
import { checkIfMatch, requestParams, setEtag } from '../../rest/http.js';
import { routerKey } from '../keys.js';
import { overlayDisabled } from '../models/fabric.js';
import { createRouterTx, listRouterRecords, mustLoadRouter, serializeRouter, updateRouterTx } from '../models/router.js';
import { Tx, transact } from '../../store/txn.js';
import { type Params, paginate, paginationFields, schema, vString, vUuid, validateParams } from '../../rest/validate.js';

const OWNER_PATH_SCHEMA = schema({ required: { owner_uuid: vUuid } });
const LIST_ROUTERS_SCHEMA = schema({
  strict: true,
  allowed: ['owner_uuid'],
  optional: { name: vString, network: vUuid, ...paginationFields },
});

export function registerRouters(app: FastifyInstance, ctx: NapiContext): void {
  const { store, config } = ctx;
  const base = '/fabrics/:owner_uuid/routers';
  // An owner manages its own routers; a node (its agent) reads them.
  const READ = access(NAPI_ACCESS.routerRead);
  const WRITE = access(NAPI_ACCESS.router);

  async function owner(raw: Params): Promise<string> {
    if (!config.overlay.enabled) throw overlayDisabled();
    return (await validateParams(OWNER_PATH_SCHEMA, { owner_uuid: raw.owner_uuid })).owner_uuid;
  }

  app.get(base, READ, async (req) => {
    const raw = requestParams(req);
    const o = await owner(raw);
    const c = await validateParams(LIST_ROUTERS_SCHEMA, raw);
    const routers = (await listRouterRecords(new Tx(store), o))
      .filter((r) => c.name === undefined || r.name === c.name)
      .filter((r) => c.network === undefined || r.networks.includes(c.network))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.uuid < b.uuid ? -1 : 1));
    return paginate(routers, c).map(serializeRouter);
  });

  app.post(base, WRITE, async (req, reply) => {
    const raw = requestParams(req);
    await owner(raw);
    const { value, revision } = await transact(store, (tx) => createRouterTx(tx, raw));
    setEtag(reply, revision);
    return serializeRouter(value);
  });

  app.get(`${base}/:uuid`, READ, async (req, reply) => {
    const raw = requestParams(req);
    const r = await mustLoadRouter(new Tx(store), await owner(raw), raw.uuid);
    checkIfMatch(req, r.modRevision);
    setEtag(reply, r.modRevision);
    return serializeRouter(r.rec);
  });

  app.put(`${base}/:uuid`, WRITE, async (req, reply) => {
    const raw = requestParams(req);
    const o = await owner(raw);
    const { value, revision } = await transact(store, async (tx) => {
      const r = await mustLoadRouter(tx, o, raw.uuid);
      checkIfMatch(req, r.modRevision);
      const params = { ...raw };
      for (const k of ['owner_uuid', 'uuid']) delete params[k];
      return updateRouterTx(tx, r.rec, params);
    });
    setEtag(reply, revision);
    return serializeRouter(value);
  });

  app.delete(`${base}/:uuid`, WRITE, async (req, reply) => {
    const raw = requestParams(req);
    const o = await owner(raw);
    await transact(store, async (tx) => {
      const r = await mustLoadRouter(tx, o, raw.uuid);
      checkIfMatch(req, r.modRevision);
      tx.del(routerKey(o, r.rec.uuid));
    });
    reply.status(204);
  });
}
