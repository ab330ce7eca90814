import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type TestNapi, startTestNapi } from '../helpers/napi.js';
import { assertUnchanged, makeNet, makeTag, netParams } from '../helpers/napi-fixtures.js';

let n: TestNapi;
before(async () => {
  n = await startTestNapi();
});
after(async () => {
  await n.close();
});

test('create, get, list sorted and paginated', async () => {
  const r = await n.call('POST', '/nic_tags', { name: 'zeta_tag', mtu: 9000 });
  assert.equal(r.status, 200);
  assert.equal(r.body.name, 'zeta_tag');
  assert.equal(r.body.mtu, 9000);
  assert.match(r.body.uuid, /^[0-9a-f-]{36}$/);
  await makeTag(n, 'alpha_tag');
  const got = await n.call('GET', '/nic_tags/alpha_tag');
  assert.equal(got.status, 200);
  assert.deepEqual(Object.keys(got.body).sort(), ['mtu', 'name', 'uuid']);
  assert.equal(got.body.mtu, 1500);

  const list = await n.call('GET', '/nic_tags');
  const names = list.body.map((t: { name: string }) => t.name);
  assert.deepEqual(names, [...names].sort());
  assert.ok(names.includes('sdc_overlay') && names.includes('sdc_underlay'));
  const page = await n.call('GET', '/nic_tags?limit=2&offset=1');
  assert.deepEqual(
    page.body.map((t: { name: string }) => t.name),
    names.slice(1, 3),
  );
  const head = await n.call('HEAD', '/nic_tags');
  assert.equal(head.status, 200);
});

test('list is strict and validates pagination', async () => {
  const r = await n.call('GET', '/nic_tags?foo=1&bar=2');
  assert.equal(r.status, 422);
  assert.deepEqual(r.body, {
    code: 'InvalidParameters',
    message: 'Invalid parameters',
    errors: [{ field: ['bar', 'foo'], code: 'UnknownParameters', message: 'Unknown parameters: bar, foo' }],
  });
  for (const bad of ['0', '-5', '3.456', '1001', '304%20asdf']) {
    const l = await n.call('GET', `/nic_tags?limit=${bad}`);
    assert.equal(l.status, 422, bad);
    assert.equal(l.body.errors[0].message, 'invalid limit, must be an integer greater than 0 or less than or equal to 1000');
  }
  const o = await n.call('GET', '/nic_tags?offset=-1');
  assert.equal(o.body.errors[0].message, 'invalid value, offset must be an integer greater than or equal to 0');
});

test('create errors: duplicate, bad name, bad mtu, admin mtu; nothing written', async () => {
  await makeTag(n, 'dup_tag');
  await assertUnchanged(n.store, async () => {
    const d = await n.call('POST', '/nic_tags', { name: 'dup_tag' });
    assert.equal(d.status, 422);
    assert.deepEqual(d.body, {
      code: 'InvalidParameters',
      message: 'Invalid parameters',
      errors: [{ field: 'name', code: 'Duplicate', message: 'Already exists' }],
    });
    const bad = await n.call('POST', '/nic_tags', { name: 'has-dash', mtu: '1500' });
    assert.deepEqual(bad.body.errors, [
      { field: 'mtu', code: 'InvalidParameter', message: 'mtu must be a number between 1500 and 9000' },
      { field: 'name', code: 'InvalidParameter', message: 'must only contain numbers, letters and underscores' },
    ]);
    const long = await n.call('POST', '/nic_tags', { name: 'a'.repeat(32) });
    assert.equal(long.body.errors[0].message, 'must not be longer than 31 characters');
    const missing = await n.call('POST', '/nic_tags', {});
    assert.deepEqual(missing.body, {
      code: 'InvalidParameters',
      message: 'Missing parameters',
      errors: [{ field: 'name', code: 'MissingParameter', message: 'Missing parameter' }],
    });
    const admin = await n.call('POST', '/nic_tags', { name: 'admin', mtu: 9000 });
    assert.deepEqual(admin.body.errors, [{ field: 'mtu', code: 'InvalidParameter', message: 'admin nic tag mtu must be 1500' }]);
    const low = await n.call('POST', '/nic_tags', { name: 'low', mtu: 1499 });
    assert.equal(low.status, 422);
  });
});

test('get: invalid name is 422, missing is 404', async () => {
  const bad = await n.call('GET', '/nic_tags/bad-name');
  assert.equal(bad.status, 422);
  const missing = await n.call('GET', '/nic_tags/nope');
  assert.equal(missing.status, 404);
  assert.deepEqual(missing.body, { code: 'ResourceNotFound', message: 'nic tag not found' });
});

test('update: mtu, rename keeps uuid, empty update, admin and external rules', async () => {
  await makeTag(n, 'upd_tag');
  const before = (await n.call('GET', '/nic_tags/upd_tag')).body;
  const m = await n.call('PUT', '/nic_tags/upd_tag', { mtu: 9000 });
  assert.equal(m.status, 200);
  assert.equal(m.body.mtu, 9000);
  const r = await n.call('PUT', '/nic_tags/upd_tag', { name: 'upd_tag2' });
  assert.deepEqual(r.body, { name: 'upd_tag2', mtu: 9000, uuid: before.uuid });
  assert.equal((await n.call('GET', '/nic_tags/upd_tag')).status, 404);

  const empty = await n.call('PUT', '/nic_tags/upd_tag2', {});
  assert.deepEqual(empty.body.errors, [{ field: 'name', code: 'MissingParameter', message: 'Missing parameter' }]);
  await makeTag(n, 'admin');
  const a = await n.call('PUT', '/nic_tags/admin', { mtu: 1600 });
  assert.deepEqual(a.body.errors, [{ field: 'name', code: 'InvalidParameter', message: 'admin nic tag cannot be updated' }]);
  await makeTag(n, 'external');
  const e = await n.call('PUT', '/nic_tags/external', { name: 'external2' });
  assert.deepEqual(e.body.errors, [{ field: 'name', code: 'InvalidParameter', message: 'external nic tag cannot be renamed' }]);
  const eMtu = await n.call('PUT', '/nic_tags/external', { mtu: 9000 });
  assert.equal(eMtu.status, 200);
  const dup = await n.call('PUT', '/nic_tags/upd_tag2', { name: 'dup_tag' });
  assert.deepEqual(dup.body.errors, [{ field: 'name', code: 'Duplicate', message: 'Already exists' }]);
  const missing = await n.call('PUT', '/nic_tags/never', { mtu: 1500 });
  assert.equal(missing.status, 404);
});

test('networks block rename, delete and lowering the mtu below theirs', async () => {
  await makeTag(n, 'busy', 9000);
  const net1 = await makeNet(n, netParams(40, { nic_tag: 'busy', mtu: 9000 }));
  const net2 = await makeNet(n, netParams(41, { nic_tag: 'busy', mtu: 8000 }));
  const ids = [net1.uuid, net2.uuid].sort();
  await assertUnchanged(n.store, async () => {
    const del = await n.call('DELETE', '/nic_tags/busy');
    assert.equal(del.status, 422);
    assert.deepEqual(del.body, {
      code: 'InvalidParameters',
      message: 'Invalid parameters',
      errors: ids.map((id) => ({ field: 'nic_tag', code: 'UsedBy', type: 'network', id, message: `In use by network "${id}"` })),
    });
    const ren = await n.call('PUT', '/nic_tags/busy', { name: 'busy2' });
    assert.equal(ren.status, 422);
    assert.equal(ren.body.errors.length, 2);
    assert.equal(ren.body.errors[0].code, 'UsedBy');
    const mtu = await n.call('PUT', '/nic_tags/busy', { mtu: 8500 });
    assert.deepEqual(mtu.body.errors, [
      { field: 'mtu', code: 'InvalidParameter', message: 'nic_tag mtu must be greater than its networks', uuid: net1.uuid },
    ]);
  });
  const ok = await n.call('PUT', '/nic_tags/busy', { mtu: 9000 });
  assert.equal(ok.status, 200);
});

test('delete', async () => {
  await makeTag(n, 'gone');
  const d = await n.call('DELETE', '/nic_tags/gone');
  assert.equal(d.status, 204);
  assert.equal(d.body, undefined);
  assert.equal((await n.call('DELETE', '/nic_tags/gone')).status, 404);
});

test('parallel creates of one tag: exactly one wins', async () => {
  const rs = await Promise.all(Array.from({ length: 20 }, () => n.call('POST', '/nic_tags', { name: 'race_tag' })));
  assert.equal(rs.filter((r) => r.status === 200).length, 1);
  assert.ok(rs.filter((r) => r.status !== 200).every((r) => r.body.errors[0].code === 'Duplicate'));
});
