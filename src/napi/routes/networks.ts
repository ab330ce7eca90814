/**
 * /networks and /networks/:uuid (sdc-napi lib/endpoints/networks). `:uuid` may be
 * `admin`. Single networks carry an ETag (the record's modRevision) and honour If-Match.
 * /networks/:uuid/ips and /networks/:uuid/nics belong to the NIC side.
 */
import type { FastifyInstance } from 'fastify';
import type { NapiContext } from '../context.js';
import { NAPI_ACCESS } from '../access.js';
import { access } from '../../rest/access.js';
import { notAuthorized, notFound } from '../../rest/errors.js';
import { checkIfMatch, requestParams, setEtag } from '../../rest/http.js';
import {
  NETWORK_FIELDS,
  deleteNetwork,
  isNetworkOwner,
  listNetworkRecords,
  loadNetworkKv,
  mustLoadNetwork,
  serializeNetwork,
  sortByName,
} from '../models/network.js';
import { createNetworkTx, updateNetworkTx } from '../models/network-write.js';
import {
  matchesUuid,
  vFamilyFilter,
  vFields,
  vStrings,
  vUuidFilter,
  vUuidPrefix,
  vVlanFilter,
} from '../models/params.js';
import type { NetworkRecord } from '../models/records.js';
import { Tx, transact } from '../../store/txn.js';
import {
  type ValidatedBy,
  paginate,
  paginationFields,
  schema,
  toList,
  vBool,
  vUuid,
  validateParams,
} from '../../rest/validate.js';

/** ListNetworks' filters (strict). */
export const NETWORK_LIST_SCHEMA = schema({
  strict: true,
  optional: {
    uuid: vUuidPrefix,
    fabric: vBool,
    family: vFamilyFilter,
    name: vStrings,
    nic_tag: vStrings,
    owner_uuid: vUuidFilter,
    provisionable_by: vUuid,
    vlan_id: vVlanFilter,
    ...paginationFields,
  },
});

export type NetworkListFilter = ValidatedBy<typeof NETWORK_LIST_SCHEMA>;

const GET_NETWORK_SCHEMA = schema({
  optional: { fields: vFields(NETWORK_FIELDS), provisionable_by: vUuid, owner_uuid: vUuid },
});

/**
 * Applies ListNetworks' filters. Names match NAPI's name_str: `global:<name>` by
 * default, any owner with fabric=true, and also `<U>:<name>` with provisionable_by=U.
 */
export function filterNetworks(all: NetworkRecord[], c: NetworkListFilter): NetworkRecord[] {
  const { name: names, nic_tag: tags, family: families, owner_uuid: owners, vlan_id: vlans, provisionable_by: provBy } = c;
  return all.filter((n) => {
    if (!matchesUuid(n.uuid, c.uuid)) return false;
    if (c.fabric !== undefined && (n.fabric === true) !== c.fabric) return false;
    if (families && !families.includes(n.family)) return false;
    if (tags && !tags.includes(n.nic_tag)) return false;
    if (vlans && !vlans.includes(n.vlan_id)) return false;
    if (owners && !owners.some((o) => n.owner_uuids?.includes(o))) return false;
    if (provBy && n.owner_uuids && n.owner_uuids.length > 0 && !n.owner_uuids.includes(provBy)) return false;
    if (names) {
      const wanted = new Set<string>();
      for (const name of names) {
        if (c.fabric === true) {
          if (n.name === name) return true;
          continue;
        }
        wanted.add(`global:${name}`);
        if (provBy) wanted.add(`${provBy}:${name}`);
      }
      if (!wanted.has(n.name_str)) return false;
    }
    return true;
  });
}

/** `fields` after validation: the list, or undefined. */
export function fieldsOf(v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  return (toList(v) as string[] | undefined) ?? undefined;
}

export function registerNetworks(app: FastifyInstance, ctx: NapiContext): void {
  const { store, config } = ctx;

  app.get('/networks', access(NAPI_ACCESS.networkRead), async (req) => {
    const c = await validateParams(NETWORK_LIST_SCHEMA, requestParams(req));
    const tx = new Tx(store);
    const nets = filterNetworks(await listNetworkRecords(tx), c).sort(sortByName);
    return paginate(nets, c).map((n) => serializeNetwork(n));
  });

  app.post('/networks', async (req, reply) => {
    const raw = requestParams(req);
    const { value, revision } = await transact(store, (tx) => createNetworkTx(tx, config, raw));
    setEtag(reply, revision);
    return serializeNetwork(value, { fields: fieldsOf(raw.fields) });
  });

  app.get('/networks/:uuid', access(NAPI_ACCESS.networkRead), async (req, reply) => {
    const raw = requestParams(req);
    const tx = new Tx(store);
    const loaded = await loadNetworkKv(tx, String(raw.uuid));
    const c = await validateParams(GET_NETWORK_SCHEMA, raw);
    if (!loaded) throw notFound('network not found');
    if (c.provisionable_by && !isNetworkOwner(loaded.rec, c.provisionable_by, config.adminUuid)) {
      throw notAuthorized('owner cannot provision on network');
    }
    if (c.owner_uuid && !isNetworkOwner(loaded.rec, c.owner_uuid, config.adminUuid)) {
      throw notFound('network not found');
    }
    checkIfMatch(req, loaded.modRevision);
    setEtag(reply, loaded.modRevision);
    return serializeNetwork(loaded.rec, { fields: c.fields });
  });

  app.put('/networks/:uuid', async (req, reply) => {
    const raw = requestParams(req);
    const { value, revision } = await transact(store, async (tx) => {
      const loaded = await mustLoadNetwork(tx, String(raw.uuid));
      checkIfMatch(req, loaded.modRevision);
      const params = { ...raw };
      delete params.uuid;
      return updateNetworkTx(tx, config, loaded.rec, params);
    });
    setEtag(reply, revision);
    return serializeNetwork(value);
  });

  app.delete('/networks/:uuid', async (req, reply) => {
    const raw = requestParams(req);
    await deleteNetwork(store, async (tx, phase) => {
      const loaded = await mustLoadNetwork(tx, String(raw.uuid));
      if (phase === 'mark') checkIfMatch(req, loaded.modRevision);
      return loaded;
    });
    reply.status(204);
  });
}
