/**
 * The instance registry: what the compiler knows about an instance besides its NICs.
 *
 *   GET    /fw/instances                 list (with NIC addresses and nodes; owner_uuid, limit, offset)
 *   PUT    /fw/instances/:uuid           {owner_uuid, tags, firewall_enabled}; an owned
 *                                        instance keeps its owner (another → 403)
 *   GET    /fw/instances/:uuid           the instance as the compiler sees it
 *   DELETE /fw/instances/:uuid           (owner_uuid, when given, must match → 403)
 *   GET    /fw/instances/:uuid/ruleset   compiled policy and its node-side nft text
 *
 * Route name: /fw/instances, not FWAPI's VMAPI lookups — rhumb has no VMAPI, so owner,
 * tags and firewall_enabled are registered here and addresses come from NICs.
 */
import type { FastifyInstance } from 'fastify';
import { notFound } from '../../rest/errors.js';
import { requestParams } from '../../rest/http.js';
import { paginate } from '../../rest/validate.js';
import { transact } from '../../store/txn.js';
import { assertInstanceOwner, pageParams, requireUuid } from '../api-params.js';
import { buildInstanceRecord, instanceKey } from '../registry.js';
import type { InstanceRecord } from '../types.js';
import { access } from '../../rest/access.js';
import { type FwRouteDeps, serializeInstance } from './common.js';

export function registerInstanceRoutes(app: FastifyInstance, deps: FwRouteDeps): void {
  const { store, engine } = deps;
  const a = deps.access;

  app.get('/fw/instances', access(a.instanceList), async (req) => {
    const params = requestParams(req);
    const page = await pageParams(params);
    const owner = params.owner_uuid === undefined ? undefined : requireUuid('owner_uuid', params.owner_uuid, 'Invalid owner UUID');
    await engine.sync();
    // An owner filter keeps the instances wholly the owner's (record and NICs alike).
    const uuids = owner === undefined ? engine.world.instanceUuids() : engine.world.instanceUuids().filter((u) => engine.instanceOwner(u) === owner);
    return paginate(uuids, page).map((u) => serializeInstance(engine.world.getInstance(u)!));
  });

  app.put('/fw/instances/:uuid', access(a.instanceWrite), async (req) => {
    const { uuid: raw, ...params } = requestParams(req);
    const uuid = requireUuid('uuid', raw, 'Invalid instance UUID');
    const { value } = await transact(store, async (tx) => {
      const base = await tx.getJson<InstanceRecord>(instanceKey(uuid));
      // An instance keeps its owner: a PUT naming another one is refused, not a transfer.
      if (base?.owner_uuid !== undefined) assertInstanceOwner(base.owner_uuid, params.owner_uuid);
      const rec = buildInstanceRecord(uuid, params, base);
      tx.putJson(instanceKey(uuid), rec);
      return rec;
    });
    return value;
  });

  app.get('/fw/instances/:uuid', access(a.instanceRead), async (req) => {
    const params = requestParams(req);
    const uuid = requireUuid('uuid', params.uuid, 'Invalid instance UUID');
    await engine.sync();
    const inst = engine.world.getInstance(uuid);
    if (!inst) throw notFound('Instance not found');
    assertInstanceOwner(inst.owner_uuid, params.owner_uuid);
    return serializeInstance(inst);
  });

  app.delete('/fw/instances/:uuid', access(a.instanceRead), async (req, reply) => {
    const params = requestParams(req);
    const uuid = requireUuid('uuid', params.uuid, 'Invalid instance UUID');
    await transact(store, async (tx) => {
      const rec = await tx.getJson<InstanceRecord>(instanceKey(uuid));
      if (!rec) throw notFound('Instance not found');
      assertInstanceOwner(rec.owner_uuid, params.owner_uuid);
      tx.del(instanceKey(uuid));
    });
    reply.status(204);
    return reply.send();
  });

  app.get('/fw/instances/:uuid/ruleset', access(a.instanceRead), async (req) => {
    const uuid = requireUuid('uuid', requestParams(req).uuid, 'Invalid instance UUID');
    await engine.sync();
    if (!engine.world.getInstance(uuid)) throw notFound('Instance not found');
    const rejected = engine.rejections.get(uuid);
    // text: the node-side table, on the ports the controller knows (an agent adds those it plumbed since).
    return { uuid, policy: engine.policy(uuid), text: engine.rulesetText(uuid), ...(rejected ? { rejected } : {}) };
  });
}
