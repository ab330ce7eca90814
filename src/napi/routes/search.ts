/**
 * GET /search/ips?ip= (sdc-napi lib/endpoints/search.js): the IP's record (synthesised
 * when absent) on every network whose subnet holds it, filtered by the IP's own fields.
 */
import type { FastifyInstance } from 'fastify';
import type { NapiContext } from '../context.js';
import { notFound } from '../errors.js';
import { napiParams } from '../http.js';
import { subnetContains, subnetOf } from '../ipmath.js';
import { ipKey } from '../keys.js';
import { listNetworkRecords, sortByName } from '../models/network.js';
import type { IpRecord } from '../models/records.js';
import { Tx } from '../txn.js';
import { vBool, vIp, vString, vUuid, validateParams } from '../validate.js';

export interface SerializedIp {
  ip: string;
  network_uuid: string;
  reserved: boolean;
  free: boolean;
  owner_uuid?: string;
  belongs_to_type?: string;
  belongs_to_uuid?: string;
}

/** NAPI's IP object: `free` only when unreserved and not owned or assigned. */
export function serializeIpRecord(rec: IpRecord | undefined, ip: string, networkUuid: string): SerializedIp {
  if (!rec) return { ip, network_uuid: networkUuid, reserved: false, free: true };
  const s: SerializedIp = {
    ip: rec.ip,
    network_uuid: rec.network_uuid,
    reserved: rec.reserved,
    free: !rec.reserved && !rec.owner_uuid && !rec.belongs_to_uuid && !rec.belongs_to_type,
  };
  if (rec.owner_uuid) s.owner_uuid = rec.owner_uuid;
  if (rec.belongs_to_type) s.belongs_to_type = rec.belongs_to_type;
  if (rec.belongs_to_uuid) s.belongs_to_uuid = rec.belongs_to_uuid;
  return s;
}

export function registerSearch(app: FastifyInstance, ctx: NapiContext): void {
  app.get('/search/ips', async (req) => {
    const c = await validateParams(
      {
        strict: true,
        required: { ip: vIp },
        optional: { belongs_to_type: vString, belongs_to_uuid: vUuid, owner_uuid: vUuid, fabric: vBool },
      },
      napiParams(req),
    );
    const ip = c.ip as string;
    const tx = new Tx(ctx.store);
    const nets = (await listNetworkRecords(tx))
      .filter((n) => c.fabric === undefined || (n.fabric === true) === c.fabric)
      .filter((n) => subnetContains(subnetOf(n.subnet), ip))
      .sort(sortByName);
    const recs = await tx.getMany(nets.map((n) => ipKey(n.uuid, ip)));
    const out: SerializedIp[] = [];
    for (const n of nets) {
      const kv = recs.get(ipKey(n.uuid, ip));
      const s = serializeIpRecord(kv ? (JSON.parse(kv.value) as IpRecord) : undefined, ip, n.uuid);
      const fields = ['belongs_to_type', 'belongs_to_uuid', 'owner_uuid'] as const;
      if (fields.every((f) => c[f] === undefined || s[f] === c[f])) out.push(s);
    }
    if (out.length === 0) throw notFound('No networks found matching search criteria');
    return out;
  });
}
