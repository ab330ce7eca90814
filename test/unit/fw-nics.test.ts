/**
 * fw follows NAPI's NIC records without importing napi (src/fw/nics.ts): the key prefix
 * and the fields it reads must be the ones napi writes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NIC_PREFIX as FW_NIC_PREFIX, type NicRecord as FwNicView } from '../../src/fw/nics.js';
import { NIC_PREFIX, nicKey } from '../../src/napi/keys.js';
import type { NicRecord } from '../../src/napi/models/records.js';

test('fw reads NICs where and as napi writes them', () => {
  assert.equal(FW_NIC_PREFIX, NIC_PREFIX);
  assert.ok(nicKey('90:b8:d0:00:00:01').startsWith(FW_NIC_PREFIX));
  const nic: NicRecord = {
    mac: '90:b8:d0:00:00:01',
    owner_uuid: 'aaaaaaaa-0000-4000-8000-00000000000a',
    belongs_to_uuid: '10000000-0000-4000-8000-000000000001',
    belongs_to_type: 'zone',
    primary: true,
    state: 'running',
    created_timestamp: '1970-01-01T00:00:00.000Z',
    modified_timestamp: '1970-01-01T00:00:00.000Z',
    ip: '10.0.0.1',
    cn_uuid: 'c0000000-0000-4000-8000-000000000001',
  };
  // Type-checked: napi's record has every field fw reads, with a type fw accepts.
  const seen: FwNicView = nic;
  assert.deepEqual([seen.owner_uuid, seen.belongs_to_uuid, seen.belongs_to_type, seen.ip, seen.cn_uuid], [
    nic.owner_uuid, nic.belongs_to_uuid, nic.belongs_to_type, nic.ip, nic.cn_uuid,
  ]);
});
