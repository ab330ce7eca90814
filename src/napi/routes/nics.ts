/**
 * /nics, /nics/:mac and /networks/:network_uuid/nics (NAPI's CreateNic, ProvisionNic,
 * ListNics, GetNic, UpdateNic, DeleteNic). The logic is in ../models/nic.ts; every
 * write is one transaction.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { NapiContext } from '../context.js';
import { NAPI_ACCESS } from '../access.js';
import { access } from '../../rest/access.js';
import { notFound } from '../../rest/errors.js';
import { checkIfMatch, requestParams, setEtag } from '../../rest/http.js';
import { networkKey } from '../keys.js';
import {
  type NicFilter,
  ALLOW_FLAGS,
  ALLOW_FLAG_FIELDS,
  MSG,
  loadNic,
  pageNicRecords,
  serializeNic,
} from '../models/nic.js';
import { createNicTx, deleteNicTx, updateNicTx } from '../models/nic-write.js';
import type { NetworkRecord, NicRecord } from '../models/records.js';
import { vStrings, vUuidFilter } from '../models/params.js';
import { Tx, transact } from '../../store/txn.js';
import {
  type Params,
  type ValidatedBy,
  DEFAULT_LIMIT,
  paginationFields,
  schema,
  vBool,
  validateParams,
} from '../../rest/validate.js';

const LIST_SCHEMA = schema({
  strict: true,
  optional: {
    ...paginationFields,
    owner_uuid: vUuidFilter,
    cn_uuid: vUuidFilter,
    belongs_to_uuid: vUuidFilter,
    network_uuid: vUuidFilter,
    belongs_to_type: vStrings,
    nic_tag: vStrings,
    nic_tags_provided: vStrings,
    state: vStrings,
    underlay: vBool,
    ...ALLOW_FLAG_FIELDS,
  },
});

function filterFrom(c: ValidatedBy<typeof LIST_SCHEMA>): NicFilter {
  const f: NicFilter = { flags: [] };
  for (const k of ['owner_uuid', 'cn_uuid', 'belongs_to_uuid', 'network_uuid', 'belongs_to_type', 'nic_tag', 'nic_tags_provided', 'state'] as const) {
    const v = c[k];
    if (v !== undefined) f[k] = v;
  }
  for (const k of ['underlay', ...ALLOW_FLAGS] as const) {
    const v = c[k];
    if (v !== undefined) f.flags.push([k, v]);
  }
  return f;
}

/** Networks of these NICs, each read once. */
async function networksFor(tx: Tx, nics: NicRecord[]): Promise<Map<string, NetworkRecord>> {
  const uuids = [...new Set(nics.filter((n) => n.ip && n.network_uuid).map((n) => n.network_uuid as string))];
  const got = await tx.store.getMany(uuids.map(networkKey));
  const out = new Map<string, NetworkRecord>();
  for (const kv of got.values()) {
    const rec = JSON.parse(kv.value) as NetworkRecord;
    out.set(rec.uuid, rec);
  }
  return out;
}

export function registerNics(app: FastifyInstance, ctx: NapiContext): void {
  const { store, config } = ctx;

  app.get('/nics', access(NAPI_ACCESS.nicList), async (req) => {
    const c = await validateParams(LIST_SCHEMA, requestParams(req));
    const tx = new Tx(store);
    // Only the page is read and parsed (NIC keys sort by MAC, NAPI's list order).
    const page = await pageNicRecords(tx, filterFrom(c), c.offset ?? 0, c.limit ?? DEFAULT_LIMIT);
    const nets = await networksFor(tx, page);
    return page.map((n) => serializeNic(n, n.network_uuid ? nets.get(n.network_uuid) : undefined, config));
  });

  const create = async (req: FastifyRequest, reply: FastifyReply) => {
    const raw = requestParams(req);
    const { value, revision } = await transact(store, (tx, attempt) => createNicTx(tx, config, raw, attempt), { attempts: 200 });
    setEtag(reply, revision);
    return serializeNic(value.nic, value.network, config);
  };
  app.post('/nics', access(NAPI_ACCESS.nicCreate), create);
  app.post('/networks/:network_uuid/nics', access(NAPI_ACCESS.nicCreate), create);

  app.get('/nics/:mac', access(NAPI_ACCESS.nicGet), async (req, reply) => {
    const tx = new Tx(store);
    const loaded = await loadNic(tx, (req.params as Params).mac);
    if (!loaded) throw notFound(MSG.nicNotFound);
    const net = loaded.rec.ip && loaded.rec.network_uuid ? await tx.getJson<NetworkRecord>(networkKey(loaded.rec.network_uuid)) : undefined;
    setEtag(reply, loaded.modRevision);
    return serializeNic(loaded.rec, net, config);
  });

  app.put('/nics/:mac', access(NAPI_ACCESS.nicUpdate), async (req, reply) => {
    const raw = requestParams(req);
    const { value, revision } = await transact(store, async (tx) => {
      const loaded = await loadNic(tx, (req.params as Params).mac);
      if (!loaded) throw notFound(MSG.nicNotFound);
      checkIfMatch(req, loaded.modRevision);
      return updateNicTx(tx, config, loaded.rec, raw);
    });
    setEtag(reply, revision);
    return serializeNic(value.nic, value.network, config);
  });

  app.delete('/nics/:mac', access(NAPI_ACCESS.nicDelete), async (req, reply) => {
    await transact(store, async (tx) => {
      const loaded = await loadNic(tx, (req.params as Params).mac);
      if (!loaded) throw notFound(MSG.nicNotFound);
      checkIfMatch(req, loaded.modRevision);
      await deleteNicTx(tx, config, loaded.rec);
    });
    reply.status(204);
    return reply.send();
  });
}
