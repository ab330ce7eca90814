/**
 * /networks/:network_uuid/ips and /networks/:network_uuid/ips/:ip_addr (NAPI's ListIPs,
 * GetIP, UpdateIP). Records exist only for addresses that were ever reserved or
 * assigned; GetIP synthesises a free record for any other address in the subnet.
 */
import type { FastifyInstance } from 'fastify';
import type { NapiContext } from '../context.js';
import { notFound } from '../../rest/errors.js';
import { checkIfMatch, requestParams, setEtag } from '../../rest/http.js';
import { ipKey, ipPrefix, networkKey, networkNameKey } from '../keys.js';
import { mustParseIpForNetwork, serializeIp, synthesizedIp, updateIpTx, vBelongsToType } from '../models/ip.js';
import type { IpRecord, NetworkRecord } from '../models/records.js';
import { Tx, transact } from '../../store/txn.js';
import { isUuid } from '../../net/addr.js';
import { type Params, paginate, paginationFields, schema, vUuid, validateParams } from '../../rest/validate.js';

async function loadNetworkOr404(tx: Tx, uuidOrAdmin: unknown): Promise<NetworkRecord> {
  let uuid = typeof uuidOrAdmin === 'string' ? uuidOrAdmin : '';
  if (uuid === 'admin') uuid = (await tx.get(networkNameKey('global:admin')))?.value ?? '';
  const rec = isUuid(uuid) ? await tx.getJson<NetworkRecord>(networkKey(uuid)) : undefined;
  if (!rec) throw notFound('network not found');
  return rec;
}

const LIST_SCHEMA = schema({
  strict: true,
  allowed: ['network_uuid'],
  optional: { ...paginationFields, belongs_to_type: vBelongsToType, belongs_to_uuid: vUuid, owner_uuid: vUuid },
});

export function registerIps(app: FastifyInstance, ctx: NapiContext): void {
  const { store, config } = ctx;

  app.get('/networks/:network_uuid/ips', async (req) => {
    const raw = requestParams(req);
    const tx = new Tx(store);
    const network = await loadNetworkOr404(tx, raw.network_uuid);
    const c = await validateParams(LIST_SCHEMA, raw);
    const prefix = ipPrefix(network.uuid);
    const recs: IpRecord[] = [];
    for (const kv of await tx.range({ prefix })) {
      const hex = kv.key.slice(prefix.length);
      if (!/^[0-9a-f]{8}$|^[0-9a-f]{32}$/.test(hex)) continue;
      const rec = JSON.parse(kv.value) as IpRecord;
      if (c.belongs_to_type !== undefined && rec.belongs_to_type !== c.belongs_to_type) continue;
      if (c.belongs_to_uuid !== undefined && rec.belongs_to_uuid !== c.belongs_to_uuid) continue;
      if (c.owner_uuid !== undefined && rec.owner_uuid !== c.owner_uuid) continue;
      recs.push(rec);
    }
    return paginate(recs, c).map(serializeIp);
  });

  app.get('/networks/:network_uuid/ips/:ip_addr', async (req, reply) => {
    const p = req.params as Params;
    const tx = new Tx(store);
    const network = await loadNetworkOr404(tx, p.network_uuid);
    const ip = mustParseIpForNetwork(p.ip_addr, network);
    const kv = await tx.get(ipKey(network.uuid, ip));
    if (!kv) return serializeIp(synthesizedIp(network.uuid, ip));
    setEtag(reply, kv.modRevision);
    return serializeIp(JSON.parse(kv.value) as IpRecord);
  });

  app.put('/networks/:network_uuid/ips/:ip_addr', async (req, reply) => {
    const raw = requestParams(req);
    const p = req.params as Params;
    const { value, revision } = await transact(store, async (tx) => {
      const network = await loadNetworkOr404(tx, p.network_uuid);
      const ip = mustParseIpForNetwork(p.ip_addr, network);
      const kv = await tx.get(ipKey(network.uuid, ip));
      checkIfMatch(req, kv ? kv.modRevision : null);
      const existing = kv ? (JSON.parse(kv.value) as IpRecord) : undefined;
      const params = { ...raw };
      delete params.network_uuid;
      delete params.ip_addr;
      return updateIpTx(tx, network, ip, existing, params, config.adminUuid);
    });
    setEtag(reply, revision);
    return serializeIp(value);
  });
}
