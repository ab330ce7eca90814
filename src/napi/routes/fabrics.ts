/**
 * /fabrics/:owner_uuid/vlans[/:vlan_id] and …/vlans/:vlan_id/networks[/:uuid]
 * (sdc-napi lib/endpoints/fabrics). Every route answers 428 while the overlay is
 * disabled; network routes first need the VLAN to exist (404 "vlan not found").
 * Fabric networks are ordinary networks with fabric:true, the overlay nic tag and MTU,
 * the owner's vnet_id and exactly one owner; here they serialize with `owner_uuid`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { NapiConfig, NapiContext } from '../context.js';
import { NAPI_ACCESS } from '../access.js';
import { access } from '../../rest/access.js';
import { inUse, notFound } from '../../rest/errors.js';
import { checkIfMatch, requestParams, setEtag } from '../../rest/http.js';
import { vlanKey, vlanPrefix } from '../keys.js';
import { VLAN_FIELDS, ensureFabric, mustLoadVlan, overlayDisabled, serializeVlan } from '../models/fabric.js';
import {
  FABRIC_NETWORK_FIELDS,
  deleteNetwork,
  listNetworkRecords,
  loadNetworkKv,
  serializeNetwork,
  sortByName,
  usedByNoField,
  watchNetworkGeneration,
} from '../models/network.js';
import { createNetworkTx, updateNetworkTx } from '../models/network-write.js';
import { vFields } from '../models/params.js';
import type { FabricVlanRecord, NetworkRecord } from '../models/records.js';
import { Tx, transact } from '../../store/txn.js';
import {
  type Params,
  paginate,
  paginationFields,
  schema,
  vString,
  vUuid,
  validateParams,
} from '../../rest/validate.js';
import { vVlan } from '../validate.js';
import { NETWORK_LIST_SCHEMA, fieldsOf, filterNetworks } from './networks.js';

interface FabricPath {
  owner: string;
  vlan: number;
}

const OWNER_PATH_SCHEMA = schema({ required: { owner_uuid: vUuid } });
const VLAN_PATH_SCHEMA = schema({ required: { owner_uuid: vUuid, vlan_id: vVlan } });

const LIST_VLANS_SCHEMA = schema({ optional: { fields: vFields(VLAN_FIELDS), ...paginationFields } });
const GET_VLAN_SCHEMA = schema({ optional: { fields: vFields(VLAN_FIELDS) } });
const CREATE_VLAN_SCHEMA = schema({
  required: { owner_uuid: vUuid, vlan_id: vVlan },
  optional: { name: vString, description: vString, fields: vFields(VLAN_FIELDS) },
});
const UPDATE_VLAN_SCHEMA = schema({ optional: { name: vString, description: vString, fields: vFields(VLAN_FIELDS) } });

const GET_NETWORK_SCHEMA = schema({ optional: { fields: vFields(FABRIC_NETWORK_FIELDS) } });

/** Fabric routes: an owner reaches those of the owner in the path. */
const OWNER_PATH = access(NAPI_ACCESS.fabric);

export function registerFabrics(app: FastifyInstance, ctx: NapiContext): void {
  registerFabricVlans(app, ctx);
  registerFabricNetworks(app, ctx);
}

/** Every fabric route answers 428 while the overlay is disabled. */
function guard(config: NapiConfig): void {
  if (!config.overlay.enabled) throw overlayDisabled();
}

/** Validates the path's owner (and VLAN id when present). */
async function fabricPath(raw: Params, withVlan: boolean): Promise<FabricPath> {
  const pathParams = { owner_uuid: raw.owner_uuid, vlan_id: raw.vlan_id };
  if (!withVlan) return { owner: (await validateParams(OWNER_PATH_SCHEMA, pathParams)).owner_uuid, vlan: -1 };
  const c = await validateParams(VLAN_PATH_SCHEMA, pathParams);
  return { owner: c.owner_uuid, vlan: c.vlan_id };
}

const dupVlan = () =>
  inUse('VLAN ID is already in use', [{ field: 'vlan_id', code: 'Duplicate', message: 'VLAN ID is already in use' }]);

/** /fabrics/:owner_uuid/vlans[/:vlan_id]: list, create, get, update, delete. */
function registerFabricVlans(app: FastifyInstance, ctx: NapiContext): void {
  const { store, config } = ctx;

  app.get('/fabrics/:owner_uuid/vlans', OWNER_PATH, async (req) => {
    guard(config);
    const raw = requestParams(req);
    const p = await fabricPath(raw, false);
    const c = await validateParams(LIST_VLANS_SCHEMA, raw);
    const vlans = (await store.range({ prefix: vlanPrefix(p.owner) })).kvs.map((kv) => JSON.parse(kv.value) as FabricVlanRecord);
    return paginate(vlans, c).map((v) => serializeVlan(v, c.fields));
  });

  app.post('/fabrics/:owner_uuid/vlans', OWNER_PATH, async (req, reply) => {
    guard(config);
    const raw = requestParams(req);
    const { value, revision } = await transact(store, async (tx) => {
      const c = await validateParams(CREATE_VLAN_SCHEMA, raw);
      const owner = c.owner_uuid;
      const vlanId = c.vlan_id;
      if (await tx.get(vlanKey(owner, vlanId))) throw dupVlan();
      const fabric = await ensureFabric(tx, owner);
      const rec: FabricVlanRecord = { owner_uuid: owner, vlan_id: vlanId, vnet_id: fabric.vnet_id };
      if (c.name !== undefined) rec.name = c.name;
      if (c.description !== undefined) rec.description = c.description;
      tx.putJson(vlanKey(owner, vlanId), rec);
      return { rec, fields: c.fields };
    });
    setEtag(reply, revision);
    return serializeVlan(value.rec, value.fields);
  });

  app.get('/fabrics/:owner_uuid/vlans/:vlan_id', OWNER_PATH, async (req, reply) => {
    guard(config);
    const raw = requestParams(req);
    const p = await fabricPath(raw, true);
    const c = await validateParams(GET_VLAN_SCHEMA, raw);
    const v = await mustLoadVlan(new Tx(store), p.owner, p.vlan);
    checkIfMatch(req, v.modRevision);
    setEtag(reply, v.modRevision);
    return serializeVlan(v.rec, c.fields);
  });

  app.put('/fabrics/:owner_uuid/vlans/:vlan_id', OWNER_PATH, async (req, reply) => {
    guard(config);
    const raw = requestParams(req);
    const p = await fabricPath(raw, true);
    const { value, revision } = await transact(store, async (tx) => {
      const v = await mustLoadVlan(tx, p.owner, p.vlan);
      checkIfMatch(req, v.modRevision);
      const c = await validateParams(UPDATE_VLAN_SCHEMA, raw);
      const next: FabricVlanRecord = { ...v.rec };
      if (c.name !== undefined) next.name = c.name;
      if (c.description !== undefined) next.description = c.description;
      tx.putJson(vlanKey(p.owner, p.vlan), next);
      return { rec: next, fields: c.fields };
    });
    setEtag(reply, revision);
    return serializeVlan(value.rec, value.fields);
  });

  app.delete('/fabrics/:owner_uuid/vlans/:vlan_id', OWNER_PATH, async (req, reply) => {
    guard(config);
    const p = await fabricPath(requestParams(req), true);
    await transact(store, async (tx) => {
      await mustLoadVlan(tx, p.owner, p.vlan);
      await watchNetworkGeneration(tx);
      const nets = (await listNetworkRecords(tx))
        .filter((n) => isOwnersFabricNet(n, p.owner) && n.vlan_id === p.vlan)
        .sort((a, b) => (a.uuid < b.uuid ? -1 : 1));
      if (nets.length > 0) throw inUse('VLAN must have no networks', nets.map((n) => usedByNoField('network', n.uuid)));
      tx.del(vlanKey(p.owner, p.vlan));
    });
    reply.status(204);
  });
}

/** Guard, path and VLAN existence (read through tx so it is a precondition). */
async function networkPrelude(
  config: NapiConfig,
  req: FastifyRequest,
  tx: Tx,
): Promise<{ raw: Params; p: FabricPath; vlan: FabricVlanRecord }> {
  guard(config);
  const raw = requestParams(req);
  const p = await fabricPath(raw, true);
  const vlan = (await mustLoadVlan(tx, p.owner, p.vlan)).rec;
  return { raw, p, vlan };
}

async function mustLoadFabricNet(tx: Tx, p: FabricPath, uuid: unknown) {
  const n = await loadNetworkKv(tx, String(uuid));
  if (!n || !isOwnersFabricNet(n.rec, p.owner)) throw notFound('network not found');
  return n;
}

/** …/vlans/:vlan_id/networks[/:uuid]: the VLAN must exist first (404 "vlan not found"). */
function registerFabricNetworks(app: FastifyInstance, ctx: NapiContext): void {
  const { store, config } = ctx;
  const base = '/fabrics/:owner_uuid/vlans/:vlan_id/networks';
  const prelude = (req: FastifyRequest, tx: Tx) => networkPrelude(config, req, tx);

  app.get(base, OWNER_PATH, async (req) => {
    const tx = new Tx(store);
    const { raw, p } = await prelude(req, tx);
    const c = await validateParams(NETWORK_LIST_SCHEMA, raw);
    c.fabric = true;
    const nets = filterNetworks(await listNetworkRecords(tx), c)
      .filter((n) => isOwnersFabricNet(n, p.owner) && n.vlan_id === p.vlan)
      .sort(sortByName);
    return paginate(nets, c).map((n) => serializeNetwork(n, { fabricDisplay: true }));
  });

  app.post(base, OWNER_PATH, async (req, reply) => {
    let fields: string[] | undefined;
    const { value, revision } = await transact(store, async (tx) => {
      const { raw, p, vlan } = await prelude(req, tx);
      const params: Params = {
        ...raw,
        fabric: true,
        mtu: config.overlay.defaultOverlayMTU,
        nic_tag: config.overlay.overlayNicTag,
        vnet_id: vlan.vnet_id,
        owner_uuids: [p.owner],
        vlan_id: p.vlan,
      };
      delete params.owner_uuid;
      fields = fieldsOf(raw.fields);
      return createNetworkTx(tx, config, params, { fabricRoute: true });
    });
    setEtag(reply, revision);
    return serializeNetwork(value, { fabricDisplay: true, fields });
  });

  app.get(`${base}/:uuid`, OWNER_PATH, async (req, reply) => {
    const tx = new Tx(store);
    const { raw, p } = await prelude(req, tx);
    const c = await validateParams(GET_NETWORK_SCHEMA, raw);
    const n = await mustLoadFabricNet(tx, p, raw.uuid);
    checkIfMatch(req, n.modRevision);
    setEtag(reply, n.modRevision);
    return serializeNetwork(n.rec, { fabricDisplay: true, fields: c.fields });
  });

  app.put(`${base}/:uuid`, OWNER_PATH, async (req, reply) => {
    const { value, revision } = await transact(store, async (tx) => {
      const { raw, p } = await prelude(req, tx);
      const n = await mustLoadFabricNet(tx, p, raw.uuid);
      checkIfMatch(req, n.modRevision);
      const params = { ...raw };
      for (const k of ['owner_uuid', 'vlan_id', 'uuid', 'fields']) delete params[k];
      return updateNetworkTx(tx, config, n.rec, params);
    });
    setEtag(reply, revision);
    return serializeNetwork(value, { fabricDisplay: true });
  });

  app.delete(`${base}/:uuid`, OWNER_PATH, async (req, reply) => {
    await deleteNetwork(
      store,
      async (tx, phase) => {
        const { raw, p } = await prelude(req, tx);
        const n = await mustLoadFabricNet(tx, p, raw.uuid);
        if (phase === 'mark') checkIfMatch(req, n.modRevision);
        return n;
      },
      { skipPoolCheck: true },
    );
    reply.status(204);
  });
}

function isOwnersFabricNet(n: NetworkRecord, owner: string): boolean {
  return n.fabric === true && n.owner_uuids?.[0] === owner;
}
