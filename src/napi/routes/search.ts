/**
 * GET /search/ips?ip= (sdc-napi lib/endpoints/search.js): the IP's record (synthesised
 * when absent) on every network whose subnet holds it, filtered by the IP's own fields.
 */
import type { FastifyInstance } from 'fastify';
import type { NapiContext } from '../context.js';
import { notFound } from '../../rest/errors.js';
import { requestParams } from '../../rest/http.js';
import { subnetContains, subnetOf } from '../ipmath.js';
import { ipKey } from '../keys.js';
import { listNetworkRecords, sortByName } from '../models/network.js';
import { type SerializedIp, serializeIp, synthesizedIp } from '../models/ip.js';
import type { IpRecord } from '../models/records.js';
import { Tx } from '../../store/txn.js';
import { schema, vBool, vString, vUuid, validateParams } from '../../rest/validate.js';
import { vIp } from '../validate.js';

const SEARCH_IPS_SCHEMA = schema({
  strict: true,
  required: { ip: vIp },
  optional: { belongs_to_type: vString, belongs_to_uuid: vUuid, owner_uuid: vUuid, fabric: vBool },
});

export function registerSearch(app: FastifyInstance, ctx: NapiContext): void {
  app.get('/search/ips', async (req) => {
    const c = await validateParams(SEARCH_IPS_SCHEMA, requestParams(req));
    const ip = c.ip;
    const tx = new Tx(ctx.store);
    const nets = (await listNetworkRecords(tx))
      .filter((n) => c.fabric === undefined || (n.fabric === true) === c.fabric)
      .filter((n) => subnetContains(subnetOf(n.subnet), ip))
      .sort(sortByName);
    const recs = await tx.getMany(nets.map((n) => ipKey(n.uuid, ip)));
    const out: SerializedIp[] = [];
    for (const n of nets) {
      const kv = recs.get(ipKey(n.uuid, ip));
      const s = serializeIp(kv ? (JSON.parse(kv.value) as IpRecord) : synthesizedIp(n.uuid, ip));
      const fields = ['belongs_to_type', 'belongs_to_uuid', 'owner_uuid'] as const;
      if (fields.every((f) => c[f] === undefined || s[f] === c[f])) out.push(s);
    }
    if (out.length === 0) throw notFound('No networks found matching search criteria');
    return out;
  });
}
