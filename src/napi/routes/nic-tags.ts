/**
 * /nic_tags and /nic_tags/:name (sdc-napi lib/endpoints/nic-tags.js). Nic tags have no
 * ETag / If-Match support in NAPI. Deleting or renaming a tag that networks use fails
 * with one UsedBy element per network.
 */
import type { FastifyInstance } from 'fastify';
import { v4 as uuidv4 } from 'uuid';
import type { NapiContext } from '../context.js';
import {
  type FieldError,
  duplicateParam,
  invalidParam,
  invalidParams,
  missingParam,
  notFound,
  usedBy,
} from '../../rest/errors.js';
import { requestParams } from '../../rest/http.js';
import { NIC_TAG_PREFIX, nicTagKey } from '../keys.js';
import { listNetworkRecords, watchNetworkGeneration } from '../models/network.js';
import { vNicTagMtu } from '../models/params.js';
import type { NetworkRecord, NicTagRecord } from '../models/records.js';
import { type Tx, transact } from '../../store/txn.js';
import {
  type FieldValidator,
  type Params,
  type Validated,
  Invalid,
  fail,
  paginate,
  paginationFields,
  rejectField,
  schema,
  vString,
  vUuid,
  validateParams,
} from '../../rest/validate.js';
import { vNicTagName } from '../validate.js';

export function serializeNicTag(rec: NicTagRecord): { mtu: number; name: string; uuid: string } {
  return { mtu: rec.mtu, name: rec.name, uuid: rec.uuid };
}

export async function loadNicTag(tx: Pick<Tx, 'getJson'>, name: string): Promise<NicTagRecord | undefined> {
  if (!/^[A-Za-z0-9_]{1,31}$/.test(name)) return undefined;
  return tx.getJson<NicTagRecord>(nicTagKey(name));
}

/** NAPI's tag name check: string rules, then at most 31 characters of [A-Za-z0-9_]. */
export const vTagName: FieldValidator<string> = (field, v, p, ctx) => {
  const str = vString(field, v, p, ctx);
  if (str instanceof Invalid) return str;
  if (str.length > 31) return fail(field, 'must not be longer than 31 characters');
  return vNicTagName(field, v, p, ctx);
};

async function networksOnTag(tx: Tx, name: string): Promise<NetworkRecord[]> {
  await watchNetworkGeneration(tx);
  return (await listNetworkRecords(tx)).filter((n) => n.nic_tag === name).sort((a, b) => (a.uuid < b.uuid ? -1 : 1));
}

const usedByNetworks = (nets: NetworkRecord[]): FieldError[] => nets.map((n) => usedBy('nic_tag', 'network', n.uuid));

const LIST_TAGS_SCHEMA = schema({ optional: paginationFields, strict: true });

const TAG_NAME_SCHEMA = schema({ required: { name: vTagName } });

const CREATE_TAG_FIELDS = { required: { name: vTagName }, optional: { mtu: vNicTagMtu, uuid: vUuid } };

function adminMtuIs1500(c: Validated<typeof CREATE_TAG_FIELDS>): void {
  if (c.name === 'admin' && c.mtu !== undefined && c.mtu !== 1500) rejectField('mtu', 'admin nic tag mtu must be 1500');
}

const CREATE_TAG_SCHEMA = schema(CREATE_TAG_FIELDS, [adminMtuIs1500]);

const UPDATE_TAG_FIELDS = { optional: { name: vTagName, mtu: vNicTagMtu } };
type UpdateTagParams = Validated<typeof UPDATE_TAG_FIELDS>;

function somethingToUpdate(c: UpdateTagParams): void {
  if (c.name === undefined && c.mtu === undefined) throw invalidParams([missingParam('name')]);
}

/** `current` is the tag being updated. */
function adminIsFixed(_c: UpdateTagParams, _raw: Params, current: NicTagRecord): void {
  if (current.name === 'admin') rejectField('name', 'admin nic tag cannot be updated');
}

function externalKeepsItsName(c: UpdateTagParams, _raw: Params, current: NicTagRecord): void {
  if (current.name === 'external' && c.name !== undefined && c.name !== 'external') {
    rejectField('name', 'external nic tag cannot be renamed');
  }
}

const UPDATE_TAG_SCHEMA = schema(UPDATE_TAG_FIELDS, [somethingToUpdate, adminIsFixed, externalKeepsItsName]);

export function registerNicTags(app: FastifyInstance, ctx: NapiContext): void {
  const { store } = ctx;

  app.get('/nic_tags', async (req) => {
    const clean = await validateParams(LIST_TAGS_SCHEMA, requestParams(req));
    const kvs = (await store.range({ prefix: NIC_TAG_PREFIX })).kvs;
    const tags = kvs.map((kv) => JSON.parse(kv.value) as NicTagRecord).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return paginate(tags, clean).map(serializeNicTag);
  });

  app.post('/nic_tags', async (req) => {
    const raw = requestParams(req);
    const { value } = await transact(store, async (tx) => {
      const c = await validateParams(CREATE_TAG_SCHEMA, raw);
      const name = c.name;
      if (await tx.get(nicTagKey(name))) throw invalidParams([duplicateParam('name')]);
      const rec: NicTagRecord = { name, uuid: c.uuid ?? uuidv4(), mtu: c.mtu ?? 1500 };
      tx.putJson(nicTagKey(name), rec);
      return rec;
    });
    return serializeNicTag(value);
  });

  app.get('/nic_tags/:name', async (req) => {
    const c = await validateParams(TAG_NAME_SCHEMA, requestParams(req));
    const kv = await store.get(nicTagKey(c.name));
    if (!kv) throw notFound('nic tag not found');
    return serializeNicTag(JSON.parse(kv.value) as NicTagRecord);
  });

  app.put('/nic_tags/:name', async (req) => {
    const raw = requestParams(req);
    const oldName = String(raw.name);
    // The path's `name` is the old name; a new name comes from the body (or query).
    const params: Params = { ...raw };
    delete params.name;
    const newName = (req.body as Params | undefined)?.name ?? (req.query as Params | undefined)?.name;
    if (newName !== undefined) params.name = newName;
    const { value } = await transact(store, async (tx) => {
      const current = await loadNicTag(tx, oldName);
      if (!current) throw notFound('nic tag not found');
      const c = await validateParams(UPDATE_TAG_SCHEMA, params, current);
      const newName = c.name ?? current.name;
      const renaming = newName !== current.name;
      const nets = await networksOnTag(tx, current.name);
      if (renaming && nets.length > 0) throw invalidParams(usedByNetworks(nets));
      if (renaming && (await tx.get(nicTagKey(newName)))) throw invalidParams([duplicateParam('name')]);
      if (c.mtu !== undefined) {
        const mtu = c.mtu;
        const tooBig = nets.filter((n) => n.mtu > mtu);
        if (tooBig.length > 0) {
          throw invalidParams(
            tooBig.map((n) => invalidParam('mtu', 'nic_tag mtu must be greater than its networks', { uuid: n.uuid })),
          );
        }
      }
      const next: NicTagRecord = { ...current, name: newName, mtu: c.mtu ?? current.mtu };
      if (renaming) tx.del(nicTagKey(current.name));
      tx.putJson(nicTagKey(newName), next);
      return next;
    });
    return serializeNicTag(value);
  });

  app.delete('/nic_tags/:name', async (req, reply) => {
    const c = await validateParams(TAG_NAME_SCHEMA, requestParams(req));
    await transact(store, async (tx) => {
      const current = await loadNicTag(tx, c.name);
      if (!current) throw notFound('nic tag not found');
      const nets = await networksOnTag(tx, current.name);
      if (nets.length > 0) throw invalidParams(usedByNetworks(nets));
      tx.del(nicTagKey(current.name));
    });
    reply.status(204);
  });
}
