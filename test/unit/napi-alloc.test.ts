import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../src/store/memory.js';
import type { RangeOptions, RangeResult } from '../../src/store/types.js';
import { Tx, transact } from '../../src/store/txn.js';
import { NapiError } from '../../src/rest/errors.js';
import { ipKey, networkKey, nicKey } from '../../src/napi/keys.js';
import type { IpRecord, NetworkRecord } from '../../src/napi/models/records.js';
import {
  allocateIp,
  checkExplicitIp,
  gapAddresses,
  ipProvisionable,
  ipReusable,
  spreadFor,
} from '../../src/napi/alloc/ip.js';
import { MAC_RETRIES, allocateMac, randomMacInOui } from '../../src/napi/alloc/mac.js';

const ADMIN = '930896af-bf8c-48d4-885c-6573a94b1853';
const VM = 'deadbeef-0000-4000-8000-000000000001';
const NET_UUID = '11111111-1111-4111-8111-111111111111';

function network(over: Partial<NetworkRecord> = {}): NetworkRecord {
  return {
    uuid: NET_UUID,
    name: 'n',
    name_str: 'global:n',
    family: 'ipv4',
    subnet: '10.0.0.0/24',
    provision_start_ip: '10.0.0.10',
    provision_end_ip: '10.0.0.20',
    vlan_id: 0,
    nic_tag: 'external',
    mtu: 1500,
    resolvers: [],
    created_timestamp: '',
    modified_timestamp: '',
    ...over,
  };
}

async function seed(store: MemoryStore, net: NetworkRecord, ips: IpRecord[] = []): Promise<void> {
  const ops = [{ type: 'put' as const, key: networkKey(net.uuid), value: JSON.stringify(net) }];
  for (const r of ips) ops.push({ type: 'put', key: ipKey(net.uuid, r.ip), value: JSON.stringify(r) });
  assert.equal((await store.commit({ ops })).ok, true);
}

function held(ip: string, extra: Partial<IpRecord> = {}): IpRecord {
  return { ip, network_uuid: NET_UUID, reserved: false, belongs_to_uuid: VM, belongs_to_type: 'zone', owner_uuid: VM, modified_timestamp: '', ...extra };
}

/** Allocates and claims (writes a held record) in one transaction. */
async function claim(store: MemoryStore, net: NetworkRecord): Promise<string> {
  const r = await transact(store, async (tx, attempt) => {
    const got = await allocateIp(tx, net, { attempt });
    tx.putJson(ipKey(net.uuid, got.ip), held(got.ip));
    return got.ip;
  });
  return r.value;
}

test('gapAddresses derives never-used addresses from sorted keys', () => {
  assert.deepEqual(gapAddresses([], 10n, 13n, 10), [10n, 11n, 12n, 13n]);
  assert.deepEqual(gapAddresses([10n, 11n, 13n], 10n, 15n, 10), [12n, 14n, 15n]);
  assert.deepEqual(gapAddresses([5n, 10n, 11n], 10n, 15n, 2), [12n, 13n]);
  assert.deepEqual(gapAddresses([10n, 11n, 12n], 10n, 12n, 5), []);
  assert.deepEqual(gapAddresses([20n], 10n, 12n, 5), [10n, 11n, 12n]);
});

test('provisionable and reusable rules', () => {
  assert.equal(ipProvisionable(undefined, ADMIN), true);
  assert.equal(ipProvisionable(held('10.0.0.1', { belongs_to_uuid: undefined, belongs_to_type: undefined, reserved: true }), ADMIN), true);
  assert.equal(ipProvisionable(held('10.0.0.1', { belongs_to_type: 'other', belongs_to_uuid: ADMIN }), ADMIN), true);
  assert.equal(ipProvisionable(held('10.0.0.1'), ADMIN), false);
  assert.equal(ipProvisionable(held('10.0.0.1', { belongs_to_type: 'other', belongs_to_uuid: VM }), ADMIN), false);
  assert.equal(ipReusable(held('10.0.0.1')), false);
  assert.equal(ipReusable({ ip: '10.0.0.1', network_uuid: NET_UUID, reserved: true, modified_timestamp: '' }), false);
  assert.equal(ipReusable({ ip: '10.0.0.1', network_uuid: NET_UUID, reserved: false, modified_timestamp: '' }), true);
  assert.equal(spreadFor(0), 1);
  assert.ok(spreadFor(3) > 1 && spreadFor(50) <= 64);
});

test('never-used addresses first, lowest gap, skipping existing records (reserved ones too)', async () => {
  const store = new MemoryStore();
  const net = network();
  await seed(store, net, [held('10.0.0.10'), { ip: '10.0.0.11', network_uuid: NET_UUID, reserved: true, modified_timestamp: '' }, held('10.0.0.13')]);
  assert.equal(await claim(store, net), '10.0.0.12');
  assert.equal(await claim(store, net), '10.0.0.14');
  for (let i = 15; i <= 20; i++) assert.equal(await claim(store, net), `10.0.0.${i}`);
  await assert.rejects(claim(store, net), (err: NapiError) => {
    assert.equal(err.statusCode, 507);
    assert.deepEqual(err.body(), { code: 'SubnetFull', message: 'no more free IPs', network_uuid: NET_UUID });
    return true;
  });
});

test('then the record freed longest ago; reserved and held records are never reused', async () => {
  const store = new MemoryStore();
  const net = network({ provision_start_ip: '10.0.0.10', provision_end_ip: '10.0.0.13' });
  const free = (ip: string, at: string): IpRecord => ({ ip, network_uuid: NET_UUID, reserved: false, freed_timestamp: at, modified_timestamp: at });
  await seed(store, net, [
    free('10.0.0.10', '2024-03-01T00:00:00Z'),
    held('10.0.0.11'),
    free('10.0.0.12', '2024-01-01T00:00:00Z'),
    { ip: '10.0.0.13', network_uuid: NET_UUID, reserved: true, modified_timestamp: '' },
  ]);
  const tx = new Tx(store);
  const got = await allocateIp(tx, net);
  assert.equal(got.ip, '10.0.0.12');
  assert.equal(got.previous?.freed_timestamp, '2024-01-01T00:00:00Z');
  assert.equal(await claim(store, net), '10.0.0.12');
  assert.equal(await claim(store, net), '10.0.0.10');
  await assert.rejects(claim(store, net), /no more free IPs/);
});

test('IPv6 ranges: allocation works without walking the range', async () => {
  const store = new MemoryStore();
  const net = network({ family: 'ipv6', subnet: 'fd00::/64', provision_start_ip: 'fd00::10', provision_end_ip: 'fd00::ffff:ffff:ffff' });
  await seed(store, net, [held('fd00::10'), held('fd00::11')].map((r) => ({ ...r })));
  assert.equal(await claim(store, net), 'fd00::12');
  assert.equal(await claim(store, net), 'fd00::13');
});

test('big ranges: each allocation reads a bounded number of keys (the hint skips the dense prefix)', async () => {
  const store = new MemoryStore();
  const net = network({ subnet: '10.0.0.0/16', provision_start_ip: '10.0.0.1', provision_end_ip: '10.0.255.254' });
  const pre: IpRecord[] = [];
  for (let i = 1; i <= 3000; i++) pre.push(held(`10.0.${i >> 8}.${i & 255}`));
  await seed(store, net, pre);
  let keysRead = 0;
  const realRange = store.range.bind(store);
  store.range = async (o: RangeOptions): Promise<RangeResult> => {
    const r = await realRange(o);
    keysRead += r.kvs.length;
    return r;
  };
  assert.equal(await claim(store, net), '10.0.11.185'); // 3001
  keysRead = 0;
  for (let i = 0; i < 20; i++) await claim(store, net);
  assert.ok(keysRead < 20 * 5, `read ${keysRead} keys for 20 allocations`);
});

test('explicit IPs: outside the subnet, in use by a NIC, admin other reservation claimable', async () => {
  const store = new MemoryStore();
  const net = network();
  await seed(store, net, [held('10.0.0.10'), held('10.0.0.1', { belongs_to_type: 'other', belongs_to_uuid: ADMIN, owner_uuid: ADMIN, reserved: true })]);
  const tx = new Tx(store);
  await assert.rejects(checkExplicitIp(tx, net, '10.0.1.5', ADMIN), (err: NapiError) => {
    assert.deepEqual(err.body(), {
      code: 'InvalidParameters',
      message: 'Invalid parameters',
      errors: [{ field: 'ip', code: 'InvalidParameter', message: `IP address 10.0.1.5 is outside the subnet for given network ${NET_UUID}` }],
    });
    return true;
  });
  await assert.rejects(checkExplicitIp(tx, net, '10.0.0.10', ADMIN), (err: NapiError) => {
    assert.deepEqual(err.body().errors, [{ field: 'ip', code: 'UsedBy', type: 'zone', id: VM, message: `IP in use by zone "${VM}"` }]);
    return true;
  });
  assert.equal((await checkExplicitIp(tx, net, '10.0.0.1', ADMIN))?.belongs_to_uuid, ADMIN);
  assert.equal(await checkExplicitIp(tx, net, '10.0.0.99', ADMIN), undefined);
  assert.equal((await checkExplicitIp(tx, net, '10.0.0.10', ADMIN, VM))?.belongs_to_uuid, VM);
});

test('concurrent allocations on one network never hand out the same address', async () => {
  const store = new MemoryStore();
  const net = network({ provision_start_ip: '10.0.0.1', provision_end_ip: '10.0.0.60' });
  await seed(store, net);
  const results = await Promise.allSettled(Array.from({ length: 70 }, () => claim(store, net)));
  const ok = results.filter((r) => r.status === 'fulfilled').map((r) => (r as PromiseFulfilledResult<string>).value);
  assert.equal(ok.length, 60);
  assert.equal(new Set(ok).size, 60);
  for (const r of results.filter((r) => r.status === 'rejected')) {
    assert.equal(((r as PromiseRejectedResult).reason as NapiError).code, 'SubnetFull');
  }
});

test('MACs: inside the OUI; taken ones are skipped; exhaustion is a 500', async () => {
  assert.match(randomMacInOui('90b8d0'), /^90:b8:d0:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}$/);
  assert.equal(randomMacInOui('01:02:03', () => Buffer.from([0, 1, 255])), '01:02:03:00:01:ff');
  assert.throws(() => randomMacInOui('zz'), /invalid MAC OUI/);
  const store = new MemoryStore();
  await store.commit({ ops: [{ type: 'put', key: nicKey('01:02:03:00:00:01'), value: '{}' }] });
  const seq = [Buffer.from([0, 0, 1]), Buffer.from([0, 0, 2])];
  let i = 0;
  assert.equal(await allocateMac(new Tx(store), '010203', () => seq[Math.min(i++, 1)]), '01:02:03:00:00:02');
  let calls = 0;
  await assert.rejects(
    allocateMac(new Tx(store), '010203', () => {
      calls++;
      return Buffer.from([0, 0, 1]);
    }),
    (err: NapiError) => {
      assert.equal(err.statusCode, 500);
      assert.equal(err.message, 'no more free MAC addresses');
      return true;
    },
  );
  assert.equal(calls, MAC_RETRIES);
});

test('a candidate claimed between the scan and the read is skipped, not reported as SubnetFull', async () => {
  const store = new MemoryStore();
  const net = network({ provision_start_ip: '10.0.0.10', provision_end_ip: '10.0.0.12' });
  await seed(store, net);
  const realGet = store.get.bind(store);
  const racedKeys: string[] = [];
  store.get = async (key: string) => {
    // A concurrent writer takes each of the first two addresses just before we read them.
    if (racedKeys.length < 2 && key.startsWith('napi/ips/')) {
      racedKeys.push(key);
      await store.commit({ ops: [{ type: 'put', key, value: JSON.stringify(held('x')) }] });
    }
    return realGet(key);
  };
  const got = await allocateIp(new Tx(store), net);
  assert.equal(racedKeys.length, 2);
  assert.ok(!racedKeys.includes(ipKey(NET_UUID, got.ip)), `${got.ip} was taken concurrently`);
  assert.ok(['10.0.0.10', '10.0.0.11', '10.0.0.12'].includes(got.ip));
});

test('an address picked by an attempt still in flight is passed over by the next one, and freed when it ends', async () => {
  const store = new MemoryStore();
  const net = network();
  await seed(store, net);
  let picked!: () => void;
  const aPicked = new Promise<void>((r) => (picked = r));
  let releaseA!: () => void;
  const aHold = new Promise<void>((r) => (releaseA = r));
  let bAttempts = 0;
  const a = transact(store, async (tx, attempt) => {
    const got = await allocateIp(tx, net, { attempt });
    picked();
    await aHold; // still uncommitted while B allocates
    tx.putJson(ipKey(net.uuid, got.ip), held(got.ip));
    return got.ip;
  });
  await aPicked;
  const b = await transact(store, async (tx, attempt) => {
    bAttempts++;
    const got = await allocateIp(tx, net, { attempt });
    tx.putJson(ipKey(net.uuid, got.ip), held(got.ip));
    return got.ip;
  });
  releaseA();
  const aIp = (await a).value;
  assert.equal(aIp, '10.0.0.10');
  assert.equal(b.value, '10.0.0.11', 'B did not wait for or collide with A');
  assert.equal(bAttempts, 1);
  // A's attempt has ended: its claim is gone, and an abandoned attempt's claim is too.
  await assert.rejects(
    transact(store, async (tx) => {
      await allocateIp(tx, net);
      throw new Error('abandon');
    }),
    /abandon/,
  );
  assert.equal(await claim(store, net), '10.0.0.12');
});

/** Counts range scans and reads of address keys on the store. */
function countReads(store: MemoryStore): { ranges: number; ipGets: number } {
  const c = { ranges: 0, ipGets: 0 };
  const realRange = store.range.bind(store);
  const realGet = store.get.bind(store);
  store.range = async (o: RangeOptions): Promise<RangeResult> => {
    c.ranges++;
    return realRange(o);
  };
  store.get = async (key: string) => {
    if (key.startsWith('napi/ips/')) c.ipGets++;
    return realGet(key);
  };
  return c;
}

test('once the hint is known, an allocation reads one address key and scans nothing', async () => {
  const store = new MemoryStore();
  const net = network({ provision_start_ip: '10.0.0.1', provision_end_ip: '10.0.0.60' });
  await seed(store, net, [held('10.0.0.1'), held('10.0.0.2')]);
  assert.equal(await claim(store, net), '10.0.0.3'); // the first one scans and learns the hint
  const c = countReads(store);
  for (let i = 4; i <= 8; i++) assert.equal(await claim(store, net), `10.0.0.${i}`);
  assert.deepEqual(c, { ranges: 0, ipGets: 5 });
});

test('the fast path steps over records written behind its back, lowest never-used first', async () => {
  const store = new MemoryStore();
  const net = network({ provision_start_ip: '10.0.0.1', provision_end_ip: '10.0.0.60' });
  await seed(store, net);
  assert.equal(await claim(store, net), '10.0.0.1');
  // Another controller (or an explicit provision) takes .2 and .3 without this process knowing.
  await store.commit({ ops: ['10.0.0.2', '10.0.0.3'].map((ip) => ({ type: 'put' as const, key: ipKey(NET_UUID, ip), value: JSON.stringify(held(ip)) })) });
  assert.equal(await claim(store, net), '10.0.0.4');
  // Past more taken addresses than the fast path reads, the scan takes over.
  await store.commit({ ops: [5, 6, 7, 8, 9, 10].map((i) => ({ type: 'put' as const, key: ipKey(NET_UUID, `10.0.0.${i}`), value: JSON.stringify(held(`10.0.0.${i}`)) })) });
  assert.equal(await claim(store, net), '10.0.0.11');
  const c = countReads(store);
  assert.equal(await claim(store, net), '10.0.0.12');
  assert.deepEqual(c, { ranges: 0, ipGets: 1 }, 'the hint moved past what the fast path and the scan saw');
});

test('the hint passes an address only once its record is committed, not when its attempt is abandoned', async () => {
  const store = new MemoryStore();
  const net = network({ provision_start_ip: '10.0.0.1', provision_end_ip: '10.0.0.60' });
  await seed(store, net);
  assert.equal(await claim(store, net), '10.0.0.1');
  // A picks .2 and is abandoned after B (which passes over .2) committed .3.
  let picked!: () => void;
  const aPicked = new Promise<void>((r) => (picked = r));
  let releaseA!: () => void;
  const aHold = new Promise<void>((r) => (releaseA = r));
  const a = transact(store, async (tx, attempt) => {
    const got = await allocateIp(tx, net, { attempt });
    picked();
    await aHold;
    throw new Error(`abandon ${got.ip}`);
  });
  await aPicked;
  assert.equal(await claim(store, net), '10.0.0.3');
  releaseA();
  await assert.rejects(a, /abandon 10\.0\.0\.2/);
  assert.equal(await claim(store, net), '10.0.0.2', 'the abandoned address is still handed out');
  // Now .1-.3 are all committed: the next allocation reads just .4.
  const c = countReads(store);
  assert.equal(await claim(store, net), '10.0.0.4');
  assert.deepEqual(c, { ranges: 0, ipGets: 1 });
});
