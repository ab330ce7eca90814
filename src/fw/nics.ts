/**
 * The NIC records the firewall engine follows: NAPI's, stored under napi/nics/<mac> by
 * src/napi/models/nic-write.ts. fw and napi are peers and import nothing from each other;
 * fw reads these records as data, and test/unit/fw-nics.test.ts checks that both sides
 * agree on the key and the fields.
 */

export const NIC_PREFIX = 'napi/nics/';

/** The fields of a stored NIC that the engine reads (a subset of NAPI's record). */
export interface NicRecord {
  owner_uuid: string;
  belongs_to_uuid: string;
  belongs_to_type: string;
  ip?: string;
  cn_uuid?: string;
}
