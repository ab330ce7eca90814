import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Command } from 'commander';
import { type ClientIo, describeError, parseAssignments, registerClientCommands } from '../../src/cli/client.js';
import { type TestNapi, startTestNapi } from '../helpers/napi.js';
import { OWNER_A } from '../helpers/napi-fixtures.js';

let n: TestNapi;
let api: string;
before(async () => {
  n = await startTestNapi();
  await n.app.listen({ host: '127.0.0.1', port: 0 });
  const addr = n.app.server.address() as { port: number };
  api = `http://127.0.0.1:${addr.port}`;
});
after(async () => {
  await n.close();
});

async function rhumb(...args: string[]): Promise<{ out: string; err: string; code: number }> {
  const res = { out: '', err: '', code: 0 };
  const io: ClientIo = {
    out: (t) => (res.out += `${t}\n`),
    err: (t) => (res.err += `${t}\n`),
    fail: (c) => (res.code = c),
    fetch: (...a) => fetch(...a),
  };
  const program = new Command().exitOverride().enablePositionalOptions();
  registerClientCommands(program, io);
  await program.parseAsync(['node', 'rhumb', ...args, '--api', api]);
  return res;
}

test('key=value parsing and --data', () => {
  assert.deepEqual(parseAssignments(['vlan_id=5', 'name=web', 'owner_uuids=["a"]', 'internet_nat=false', 'gw=10.0.0.1']), {
    vlan_id: 5,
    name: 'web',
    owner_uuids: ['a'],
    internet_nat: false,
    gw: '10.0.0.1',
  });
  assert.deepEqual(parseAssignments(['mtu=1500'], '{"name":"x","mtu":9000}'), { name: 'x', mtu: 1500 });
  assert.throws(() => parseAssignments(['novalue']), /expected key=value/);
  assert.throws(() => parseAssignments([], '[1]'), /JSON object/);
  assert.equal(
    describeError(422, { code: 'InvalidParameters', message: 'Invalid parameters', errors: [{ field: 'name', code: 'Duplicate', message: 'Already exists' }] }),
    'InvalidParameters: Invalid parameters\n  name: Already exists (Duplicate)',
  );
});

test('create, list as a table, get as JSON, update, delete', async () => {
  const c = await rhumb('nic-tag', 'create', 'name=cli_tag', 'mtu=9000');
  assert.equal(c.code, 0, c.err);
  assert.match(c.out, /cli_tag/);
  const l = await rhumb('nic-tag', 'list');
  assert.match(l.out, /name.*mtu.*uuid/);
  assert.match(l.out, /cli_tag.*9000/);
  const g = await rhumb('nic-tag', 'get', 'cli_tag', '--json');
  assert.equal(JSON.parse(g.out).mtu, 9000);
  const net = await rhumb(
    'network', 'create', '--json', '--data',
    JSON.stringify({ name: 'cli_net', nic_tag: 'cli_tag', subnet: '198.18.7.0/24', provision_start_ip: '198.18.7.5', provision_end_ip: '198.18.7.9' }),
    'vlan_id=0',
  );
  assert.equal(net.code, 0, net.err);
  const uuid = JSON.parse(net.out).uuid;
  const filtered = await rhumb('network', 'list', 'name=cli_net', '--json');
  assert.deepEqual(JSON.parse(filtered.out).map((x: { uuid: string }) => x.uuid), [uuid]);
  const u = await rhumb('network', 'update', uuid, 'description=hello', '--json');
  assert.equal(JSON.parse(u.out).description, 'hello');
  const s = await rhumb('search-ip', '198.18.7.255');
  assert.match(s.out, new RegExp(uuid));
  const d = await rhumb('network', 'delete', uuid);
  assert.match(d.out, /deleted network/);
});

test('fabric commands need their scope; NAPI errors exit non-zero with the message', async () => {
  const noOwner = await rhumb('fabric-vlan', 'list');
  assert.equal(noOwner.code, 1);
  assert.match(noOwner.err, /needs --owner/);
  const v = await rhumb('fabric-vlan', 'create', '--owner', OWNER_A, 'vlan_id=4', 'name=four', '--json');
  assert.equal(JSON.parse(v.out).vlan_id, 4);
  const dup = await rhumb('fabric-vlan', 'create', '--owner', OWNER_A, 'vlan_id=4');
  assert.equal(dup.code, 1);
  assert.match(dup.err, /InUse: VLAN ID is already in use/);
  assert.match(dup.err, /vlan_id: VLAN ID is already in use \(Duplicate\)/);
  const missing = await rhumb('nic-tag', 'get', 'nope');
  assert.equal(missing.code, 1);
  assert.match(missing.err, /ResourceNotFound: nic tag not found/);
});
