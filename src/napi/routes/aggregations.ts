/**
 * /aggregations and /aggregations/:id (sdc-napi lib/models/aggregation.js): link
 * aggregations of a server's NICs. id = '<belongs_to_uuid>-<name>'. Member MACs must be
 * existing server NICs of one server.
 */
import type { FastifyInstance } from 'fastify';
import type { NapiContext } from '../context.js';
import { duplicateParam, invalidParam, invalidParams, notFound } from '../../rest/errors.js';
import { checkIfMatch, requestParams, setEtag } from '../../rest/http.js';
import { AGGR_PREFIX, aggrKey, nicKey, nicTagKey } from '../keys.js';
import type { AggregationRecord, NicRecord } from '../models/records.js';
import { type Tx, Tx as TxClass, transact } from '../../store/txn.js';
import {
  type FieldValidator,
  type Params,
  Invalid,
  fail,
  paginate,
  paginationFields,
  schema,
  toList,
  vString,
  vUuid,
  validateParams,
} from '../../rest/validate.js';
import { tryCanonicalMac } from '../../net/addr.js';
import { vTagName } from './nic-tags.js';

type LacpMode = AggregationRecord['lacp_mode'];
const LACP_MODES: readonly LacpMode[] = ['off', 'active', 'passive'];

function isLacpMode(s: string): s is LacpMode {
  return (LACP_MODES as readonly string[]).includes(s);
}
const MAX_MACS = 16;

const vInterfaceName: FieldValidator<string> = (field, v, p, ctx) => {
  const r = vTagName(field, v, p, ctx);
  if (r instanceof Invalid) return r;
  return /[0-9]$/.test(r) ? r : fail(field, 'must end in a number');
};

const vLacpMode: FieldValidator<LacpMode> = (field, v, p, ctx) => {
  const r = vString(field, v, p, ctx);
  if (r instanceof Invalid) return r;
  return isLacpMode(r) ? r : fail(field, `Invalid LACP mode. Supported modes: ${LACP_MODES.join(', ')}`);
};

/** MAC list: array or CSV, deduplicated, colon form; 1 to 16 of them. */
const vMacs: FieldValidator<string[]> = (field, v) => {
  if (typeof v !== 'string' && !Array.isArray(v)) return fail(field, 'must be an array of MAC addresses');
  const out: string[] = [];
  const bad = new Set<string>();
  for (const m of toList(v) ?? []) {
    const mac = typeof m === 'string' ? tryCanonicalMac(m) : undefined;
    if (!mac) bad.add(typeof m === 'object' ? 'object' : String(m));
    else if (!out.includes(mac)) out.push(mac);
  }
  if (bad.size > 0) return fail(field, 'invalid MAC addresses', { invalid: [...bad].sort() });
  if (out.length > MAX_MACS) return fail(field, `maximum of ${MAX_MACS} MAC addresses supported`);
  if (out.length === 0) return fail(field, 'must specify at least one MAC address');
  return out;
};

const vTagList: FieldValidator<string[]> = (field, v) => {
  const list = toList(v);
  if (!list || list.some((t) => typeof t !== 'string')) return fail(field, 'must be an array of strings');
  return list as string[];
};

const LIST_SCHEMA = schema({
  strict: true,
  optional: { belongs_to_uuid: vUuid, macs: vMacs, nic_tags_provided: vTagList, ...paginationFields },
});

const CREATE_SCHEMA = schema({
  required: { name: vInterfaceName, macs: vMacs },
  optional: { lacp_mode: vLacpMode, nic_tags_provided: vTagList },
});

const UPDATE_SCHEMA = schema({ optional: { lacp_mode: vLacpMode, macs: vMacs, nic_tags_provided: vTagList } });

/** The NICs behind the MACs; they must exist, share one server and be server NICs. */
async function checkMembers(tx: Tx, macs: string[]): Promise<string> {
  const got = await tx.getMany(macs.map(nicKey));
  const unknown = macs.filter((m) => !got.has(nicKey(m)));
  if (unknown.length > 0) throw invalidParams([invalidParam('macs', 'unknown MAC addresses', { invalid: unknown })]);
  const nics = macs.map((m) => JSON.parse(got.get(nicKey(m))!.value) as NicRecord);
  if (nics.some((n) => n.belongs_to_uuid !== nics[0].belongs_to_uuid)) {
    throw invalidParams([invalidParam('macs', 'belongs_to_uuid must match for all nics in the aggregation')]);
  }
  const notServer = nics.filter((n) => n.belongs_to_type !== 'server').map((n) => n.mac);
  if (notServer.length > 0) {
    throw invalidParams([invalidParam('macs', 'all nics must have belongs_to_uuid of type server', { invalid: notServer })]);
  }
  return nics[0].belongs_to_uuid;
}

async function checkTags(tx: Tx, tags: string[]): Promise<void> {
  const missing: string[] = [];
  for (const t of tags) {
    if (!/^[A-Za-z0-9_]{1,31}$/.test(t) || !(await tx.get(nicTagKey(t)))) missing.push(t);
  }
  if (missing.length > 0) {
    throw invalidParams([
      invalidParam('nic_tags_provided', missing.length === 1 ? 'nic tag does not exist' : 'nic tags do not exist', {
        invalid: missing,
      }),
    ]);
  }
}

export function serializeAggregation(rec: AggregationRecord): AggregationRecord {
  const s: AggregationRecord = {
    belongs_to_uuid: rec.belongs_to_uuid,
    id: rec.id,
    lacp_mode: rec.lacp_mode,
    name: rec.name,
    macs: rec.macs,
  };
  if (rec.nic_tags_provided && rec.nic_tags_provided.length > 0) s.nic_tags_provided = rec.nic_tags_provided;
  return s;
}

async function mustLoad(tx: Tx, id: string): Promise<{ rec: AggregationRecord; modRevision: number }> {
  const kv = await tx.get(aggrKey(id));
  if (!kv) throw notFound('aggregation not found');
  return { rec: JSON.parse(kv.value) as AggregationRecord, modRevision: kv.modRevision };
}

/** POST's write: the validated parameters, their members and tags checked, stored as a new aggregation. */
async function createAggregation(tx: Tx, raw: Params): Promise<AggregationRecord> {
  const c = await validateParams(CREATE_SCHEMA, raw);
  const macs = c.macs;
  const owner = await checkMembers(tx, macs);
  const tags = c.nic_tags_provided;
  if (tags) await checkTags(tx, tags);
  const id = `${owner}-${c.name}`;
  if (await tx.get(aggrKey(id))) {
    throw invalidParams([duplicateParam('name', 'aggregation with same belongs_to_uuid and name already exists')]);
  }
  const rec: AggregationRecord = {
    id,
    name: c.name,
    belongs_to_uuid: owner,
    macs,
    lacp_mode: c.lacp_mode ?? 'off',
  };
  if (tags && tags.length > 0) rec.nic_tags_provided = tags;
  tx.putJson(aggrKey(id), rec);
  return rec;
}

/** PUT's write: the stored aggregation (ifMatch: the request's If-Match against its revision) with the validated changes. */
async function updateAggregation(tx: Tx, raw: Params, ifMatch: (revision: number) => void): Promise<AggregationRecord> {
  const loaded = await mustLoad(tx, String(raw.id));
  ifMatch(loaded.modRevision);
  const c = await validateParams(UPDATE_SCHEMA, raw);
  const next: AggregationRecord = { ...loaded.rec };
  if (c.macs) {
    const owner = await checkMembers(tx, c.macs);
    if (owner !== loaded.rec.belongs_to_uuid) {
      throw invalidParams([invalidParam('macs', 'belongs_to_uuid must match for all nics in the aggregation')]);
    }
    next.macs = c.macs;
  }
  if (c.nic_tags_provided) {
    const tags = c.nic_tags_provided;
    await checkTags(tx, tags);
    if (tags.length > 0) next.nic_tags_provided = tags;
    else delete next.nic_tags_provided;
  }
  if (c.lacp_mode) next.lacp_mode = c.lacp_mode;
  tx.putJson(aggrKey(next.id), next);
  return next;
}

export function registerAggregations(app: FastifyInstance, ctx: NapiContext): void {
  const { store } = ctx;

  app.get('/aggregations', async (req) => {
    const c = await validateParams(LIST_SCHEMA, requestParams(req));
    const tx = new TxClass(store);
    if (c.nic_tags_provided) await checkTags(tx, c.nic_tags_provided);
    const { macs, nic_tags_provided: tags } = c;
    const aggrs = (await tx.range({ prefix: AGGR_PREFIX }))
      .map((kv) => JSON.parse(kv.value) as AggregationRecord)
      .filter((a) => !c.belongs_to_uuid || a.belongs_to_uuid === c.belongs_to_uuid)
      .filter((a) => !macs || a.macs.some((m) => macs.includes(m)))
      .filter((a) => !tags || (a.nic_tags_provided ?? []).some((t) => tags.includes(t)));
    return paginate(aggrs, c).map(serializeAggregation);
  });

  app.post('/aggregations', async (req, reply) => {
    const raw = requestParams(req);
    const { value, revision } = await transact(store, (tx) => createAggregation(tx, raw));
    setEtag(reply, revision);
    return serializeAggregation(value);
  });

  app.get('/aggregations/:id', async (req, reply) => {
    const raw = requestParams(req);
    const loaded = await mustLoad(new TxClass(store), String(raw.id));
    checkIfMatch(req, loaded.modRevision);
    setEtag(reply, loaded.modRevision);
    return serializeAggregation(loaded.rec);
  });

  app.put('/aggregations/:id', async (req, reply) => {
    const raw: Params = requestParams(req);
    const { value, revision } = await transact(store, (tx) => updateAggregation(tx, raw, (revision) => checkIfMatch(req, revision)));
    setEtag(reply, revision);
    return serializeAggregation(value);
  });

  app.delete('/aggregations/:id', async (req, reply) => {
    const raw = requestParams(req);
    await transact(store, async (tx) => {
      const loaded = await mustLoad(tx, String(raw.id));
      checkIfMatch(req, loaded.modRevision);
      tx.del(aggrKey(loaded.rec.id));
    });
    reply.status(204);
  });
}
