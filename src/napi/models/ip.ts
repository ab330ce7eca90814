/**
 * IP records (napi/ips/<network>/<ip sort key>): serialization, NAPI's free/unassign
 * semantics, and UpdateIP (PUT /networks/:uuid/ips/:ip) inside a transaction.
 */
import { type FieldError, invalidParams, missingParam, notFound } from '../../rest/errors.js';
import { familyOf, subnetContains, subnetOf } from '../ipmath.js';
import { ipKey } from '../keys.js';
import type { Tx } from '../../store/txn.js';
import {
  type FieldValidator,
  type Params,
  type Validated,
  fail,
  rejectField,
  schema,
  vBool,
  vUuid,
  validateParams,
} from '../../rest/validate.js';
import { tryCanonicalIp } from '../../net/addr.js';
import type { BelongsToType, IpRecord, NetworkRecord } from './records.js';

export const BELONGS_TO_TYPES: readonly BelongsToType[] = ['other', 'server', 'zone'];

export const vBelongsToType: FieldValidator<BelongsToType> = (field, v) =>
  typeof v === 'string' && (BELONGS_TO_TYPES as readonly string[]).includes(v)
    ? (v as BelongsToType)
    : fail(field, `must be one of: ${BELONGS_TO_TYPES.map((t) => JSON.stringify(t)).join(', ')}`);

export interface SerializedIp {
  ip: string;
  network_uuid: string;
  reserved: boolean;
  free: boolean;
  owner_uuid?: string;
  belongs_to_type?: string;
  belongs_to_uuid?: string;
}

export function serializeIp(rec: IpRecord): SerializedIp {
  const out: SerializedIp = {
    ip: rec.ip,
    network_uuid: rec.network_uuid,
    reserved: rec.reserved === true,
    free: isFree(rec),
  };
  if (rec.owner_uuid) out.owner_uuid = rec.owner_uuid;
  if (rec.belongs_to_type) out.belongs_to_type = rec.belongs_to_type;
  if (rec.belongs_to_uuid) out.belongs_to_uuid = rec.belongs_to_uuid;
  return out;
}

/** Free: unreserved and none of the three owning fields. */
export function isFree(rec: IpRecord): boolean {
  return rec.reserved !== true && !rec.owner_uuid && !rec.belongs_to_type && !rec.belongs_to_uuid;
}

/** The record NAPI synthesises for an address with nothing stored. */
export function synthesizedIp(networkUuid: string, ip: string): IpRecord {
  return { ip, network_uuid: networkUuid, reserved: false, modified_timestamp: '' };
}

/**
 * Releases an address held by a NIC: a reserved address keeps its owner and stays
 * reserved; an ordinary one loses its owner and goes back to the pool as freed now.
 */
export function releasedIp(rec: IpRecord, now: string): IpRecord {
  const out: IpRecord = { ip: rec.ip, network_uuid: rec.network_uuid, reserved: rec.reserved === true, modified_timestamp: now };
  if (rec.reserved && rec.owner_uuid) out.owner_uuid = rec.owner_uuid;
  if (!out.reserved) out.freed_timestamp = now;
  return out;
}

export type ParsedIpAddr = { ok: true; ip: string } | { ok: false; message: string };

/** The :ip_addr path parameter against a network, with GetIP's 404 messages. */
export function parseIpForNetwork(raw: unknown, network: NetworkRecord): ParsedIpAddr {
  const ip = tryCanonicalIp(raw);
  if (ip === undefined) return { ok: false, message: 'Invalid IP address' };
  const subnet = subnetOf(network.subnet);
  if (familyOf(ip) !== subnet.family) return { ok: false, message: 'IP and subnet are of different address families' };
  if (!subnetContains(subnet, ip)) return { ok: false, message: 'IP is not in subnet' };
  return { ok: true, ip };
}

export function mustParseIpForNetwork(raw: unknown, network: NetworkRecord): string {
  const r = parseIpForNetwork(raw, network);
  if (!r.ok) throw notFound(r.message);
  return r.ip;
}

/** What UpdateIP's checks look at besides the parameters. */
interface UpdateIpContext {
  network: NetworkRecord;
  existing: IpRecord | undefined;
  adminUuid: string;
}

const UPDATE_IP_FIELDS = {
  optional: {
    owner_uuid: vUuid,
    belongs_to_uuid: vUuid,
    belongs_to_type: vBelongsToType,
    reserved: vBool,
    unassign: vBool,
    free: vBool,
    check_owner: vBool,
  },
};
type UpdateIpParams = Validated<typeof UPDATE_IP_FIELDS>;

function notFreeAndUnassign(c: UpdateIpParams): void {
  if (c.free === true && c.unassign === true) rejectField('unassign', 'free and unassign cannot both be set to "true"');
}

/** Giving belongs_to_* needs all three owning fields, given now or already stored. */
function ownershipComplete(c: UpdateIpParams, _raw: Params, ctx: UpdateIpContext): void {
  if (c.free === true || c.unassign === true) return;
  const errs: FieldError[] = [];
  const has = (f: 'belongs_to_uuid' | 'belongs_to_type' | 'owner_uuid'): boolean =>
    c[f] !== undefined || (ctx.existing !== undefined && ctx.existing[f] !== undefined);
  const givesBelongs = c.belongs_to_uuid !== undefined || c.belongs_to_type !== undefined;
  if (givesBelongs) {
    if (!has('belongs_to_uuid')) errs.push(missingParam('belongs_to_uuid'));
    if (!has('belongs_to_type')) errs.push(missingParam('belongs_to_type'));
    if (!has('owner_uuid')) errs.push(missingParam('owner_uuid'));
  }
  if (errs.length > 0) throw invalidParams(errs);
}

function ownerMayUseNetwork(c: UpdateIpParams, _raw: Params, ctx: UpdateIpContext): void {
  if (c.owner_uuid === undefined || c.check_owner === false) return;
  if (!ownsNetwork(ctx.network, c.owner_uuid, ctx.adminUuid)) rejectField('owner_uuid', 'network owner_uuids do not match');
}

const UPDATE_IP_SCHEMA = schema(UPDATE_IP_FIELDS, [notFreeAndUnassign, ownershipComplete, ownerMayUseNetwork]);

/** Owner check: no owners means anyone; the admin UUID owns everything. */
function ownsNetwork(network: NetworkRecord, owner: string, adminUuid: string): boolean {
  if (!network.owner_uuids || network.owner_uuids.length === 0) return true;
  return owner === adminUuid || network.owner_uuids.includes(owner);
}

/**
 * UpdateIP inside tx: free, unassign, reserve, or assign owner/belongs_to. `existing`
 * is the current record (read through tx) or undefined. Returns the record written.
 */
export async function updateIpTx(
  tx: Tx,
  network: NetworkRecord,
  ip: string,
  existing: IpRecord | undefined,
  raw: Params,
  adminUuid: string,
): Promise<IpRecord> {
  const c = await validateParams(UPDATE_IP_SCHEMA, raw, { network, existing, adminUuid });
  const now = new Date().toISOString();
  let next: IpRecord;
  if (c.free === true) {
    next = { ip, network_uuid: network.uuid, reserved: false, modified_timestamp: now, freed_timestamp: now };
  } else if (c.unassign === true) {
    next = { ...(existing ?? synthesizedIp(network.uuid, ip)), modified_timestamp: now };
    delete next.belongs_to_uuid;
    delete next.belongs_to_type;
    if (!next.reserved && !next.owner_uuid) next.freed_timestamp = now;
  } else {
    next = { ...(existing ?? synthesizedIp(network.uuid, ip)), modified_timestamp: now };
    if (c.owner_uuid !== undefined) next.owner_uuid = c.owner_uuid;
    if (c.belongs_to_uuid !== undefined) next.belongs_to_uuid = c.belongs_to_uuid;
    if (c.belongs_to_type !== undefined) next.belongs_to_type = c.belongs_to_type;
    if (c.reserved !== undefined) next.reserved = c.reserved;
    if (next.belongs_to_uuid || next.reserved) delete next.freed_timestamp;
  }
  tx.putJson(ipKey(network.uuid, ip), next);
  return next;
}
