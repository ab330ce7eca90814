/**
 * GET /nics pages (issue 17 item 8): a page is read from the store in MAC order and the
 * scan stops once it is full — `limit=1` no longer reads and parses every NIC — while
 * the answer stays exactly NAPI's: the matching NICs sorted by MAC, cut at offset/limit.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { MemoryStore } from '../../src/store/memory.js';
import type { KeyValue, RangeOptions, RangeResult } from '../../src/store/types.js';
import { putNic } from '../helpers/fw-fixtures.js';
import { type TestNapi, startTestNapi } from '../helpers/napi.js';

/** A memory store that counts the key/values its reads return. */
class CountingStore extends MemoryStore {
  read = 0;
  override async range(opts: RangeOptions): Promise<RangeResult> {
    const res = await super.range(opts);
    this.read += res.kvs.length;
    return res;
  }
  override async getMany(keys: string[]): Promise<Map<string, KeyValue>> {
    const res = await super.getMany(keys);
    this.read += res.size;
    return res;
  }
}

const OWNERS = ['aaaaaaaa-0000-4000-8000-0000000000e1', 'aaaaaaaa-0000-4000-8000-0000000000e2', 'aaaaaaaa-0000-4000-8000-0000000000e3'];
const CNS = ['cccccccc-0000-4000-8000-0000000000e1', 'cccccccc-0000-4000-8000-0000000000e2'];

let napi: TestNapi;
let store: CountingStore;
let network = '';
/** What the test created through the API: mac -> its fields. */
const made = new Map<string, { owner: string; cn: string; belongs: string; onNet: boolean }>();
const instances: string[] = [];

before(async () => {
  store = new CountingStore();
  napi = await startTestNapi({ store });
  const net = await napi.call('POST', '/networks', {
    name: 'paging',
    nic_tag: 'sdc_underlay',
    vlan_id: 0,
    subnet: '10.44.0.0/24',
    provision_start_ip: '10.44.0.10',
    provision_end_ip: '10.44.0.250',
  });
  assert.equal(net.status, 200, JSON.stringify(net.body));
  network = net.body.uuid;
  for (let i = 0; i < 6; i++) instances.push(randomUUID());
  for (let i = 0; i < 42; i++) {
    const owner = OWNERS[i % 3]!;
    const cn = CNS[i % 2]!;
    const belongs = instances[i % 6]!;
    const onNet = i % 4 !== 0;
    const r = await napi.call('POST', '/nics', {
      owner_uuid: owner,
      belongs_to_uuid: belongs,
      belongs_to_type: 'zone',
      cn_uuid: cn,
      ...(onNet ? { network_uuid: network } : {}),
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    made.set(r.body.mac, { owner, cn, belongs, onNet });
  }
});

after(async () => {
  await napi.close();
});

const macsOf = (body: Array<{ mac: string }>): string[] => body.map((n) => n.mac);

test('every page is the slice of the full list NAPI orders by MAC, for full scans and index scans', async () => {
  const filters: Array<[string, (m: { owner: string; cn: string; belongs: string; onNet: boolean }) => boolean]> = [
    ['', () => true],
    [`owner_uuid=${OWNERS[1]}`, (m) => m.owner === OWNERS[1]],
    [`belongs_to_uuid=${instances[1]},${instances[4]}`, (m) => m.belongs === instances[1] || m.belongs === instances[4]],
    [`cn_uuid=${CNS[0]}`, (m) => m.cn === CNS[0]],
    [`network_uuid=${network}`, (m) => m.onNet],
    [`cn_uuid=${CNS[1]}&owner_uuid=${OWNERS[0]},${OWNERS[2]}`, (m) => m.cn === CNS[1] && m.owner !== OWNERS[1]],
  ];
  for (const [query, pick] of filters) {
    const expected = [...made].filter(([, m]) => pick(m)).map(([m]) => m).sort();
    const full = await napi.call('GET', `/nics?${query}`);
    assert.equal(full.status, 200);
    // The admin's underlay NICs (none here) aside, exactly ours, in MAC order.
    assert.deepEqual(macsOf(full.body).filter((m) => made.has(m)), expected, query);
    const all = macsOf(full.body);
    for (const [offset, limit] of [[0, 1], [0, 5], [3, 4], [7, 1000], [all.length - 1, 1], [all.length, 5], [all.length + 10, 2], [0, 1000]] as const) {
      const page = await napi.call('GET', `/nics?${query}${query ? '&' : ''}offset=${offset}&limit=${limit}`);
      assert.equal(page.status, 200);
      assert.deepEqual(macsOf(page.body), all.slice(offset, offset + limit), `${query} offset=${offset} limit=${limit}`);
    }
  }
});

test('GET /nics?limit=1 reads one chunk of NICs, not all of them', async () => {
  // 1500 more NICs written straight into the store (no index entries needed for a full scan).
  for (let n = 1; n <= 1500; n++) await putNic(store, n, { instance: randomUUID(), ip: '', owner: OWNERS[0] });
  const everything = await napi.call('GET', '/nics?limit=1000');
  const first = [...everything.body.map((n: { mac: string }) => n.mac)].sort()[0];
  store.read = 0;
  const one = await napi.call('GET', '/nics?limit=1');
  assert.equal(one.status, 200);
  assert.deepEqual(macsOf(one.body), [first]);
  assert.ok(store.read <= 300, `GET /nics?limit=1 read ${store.read} key/values`);
  // Paging on through everything still yields each NIC once, in order.
  store.read = 0;
  const seen: string[] = [];
  for (let offset = 0; ; offset += 1000) {
    const page = await napi.call('GET', `/nics?offset=${offset}&limit=1000`);
    seen.push(...macsOf(page.body));
    if (page.body.length < 1000) break;
  }
  assert.equal(seen.length, 1500 + made.size);
  assert.deepEqual(seen, [...seen].sort());
});
