/** `rhumb svp …` commands against a real SvpServer on loopback. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import { Registry } from 'prom-client';
import { registerSvpCommands } from '../../src/cli/svp.js';
import { MappingIndex } from '../../src/mapping/index.js';
import { MemoryStore } from '../../src/store/memory.js';
import { SvpServer } from '../../src/svp/server.js';
import { CN1, putEvents, putNic, putUnderlay } from '../helpers/svp-fixtures.js';

let store: MemoryStore;
let index: MappingIndex;
let server: SvpServer;
let addr: string;

async function run(...args: string[]): Promise<{ out: string; err: string; code: number }> {
  let out = '';
  let err = '';
  let code = 0;
  const program = new Command()
    .exitOverride()
    .enablePositionalOptions()
    .configureOutput({ writeOut: (t) => (out += t), writeErr: (t) => (err += t) });
  registerSvpCommands(program, {
    stdout: (t) => (out += t),
    stderr: (t) => (err += t),
    setExitCode: (c) => (code = c),
  });
  try {
    await program.parseAsync(['node', 'rhumb', ...args]);
  } catch (e) {
    err += (e as Error).message;
    code = 1;
  }
  return { out, err, code };
}

before(async () => {
  store = new MemoryStore();
  await putUnderlay(store, CN1, '192.168.1.1', 4789);
  await putNic(store, { mac: '00:0a:95:9d:68:16', ip: '10.0.0.1', vnet: 12340, cn: CN1 });
  index = new MappingIndex({ store });
  await index.start();
  server = new SvpServer({ store, index, registry: new Registry(), port: 0, logWaitMs: 100 });
  addr = `127.0.0.1:${(await server.listen()).port}`;
});

after(async () => {
  await server.close();
  index.close();
  await store.close();
});

describe('rhumb svp', { timeout: 20000 }, () => {
  it('ping', async () => {
    const r = await run('svp', 'ping', '--server', addr);
    assert.equal(r.code, 0);
    assert.match(r.out, new RegExp(`^PONG from ${addr} in [\\d.]+ ms`));
    const j = await run('svp', 'ping', '--server', addr, '--json');
    assert.equal(JSON.parse(j.out)[0].ok, true);
  });

  it('vl2 OK and NOTFOUND, human and JSON', async () => {
    const ok = await run('svp', 'vl2', '00:0a:95:9d:68:16', '12340', '-s', addr);
    assert.equal(ok.code, 0);
    assert.match(ok.out, /^OK 00:0a:95:9d:68:16 vnet 12340 is on 192\.168\.1\.1 port 4789/);
    const nf = await run('svp', 'vl2', '00:0a:95:9d:68:17', '12340', '-s', addr, '--json');
    assert.equal(nf.code, 2);
    assert.deepEqual(JSON.parse(nf.out), { server: addr, status: 2, statusName: 'NOTFOUND', ip: null, port: 0 });
  });

  it('vl3', async () => {
    const ok = await run('svp', 'vl3', '10.0.0.1', '12340', '--server', addr, '--json');
    assert.equal(ok.code, 0);
    assert.equal(JSON.parse(ok.out).mac, '00:0a:95:9d:68:16');
    const bad = await run('svp', 'vl3', '10.0.0.1', '12340', '--server', addr, '--type', '9');
    assert.equal(bad.code, 2);
    assert.match(bad.out, /^BADL3TYPE/);
  });

  it('log, then log --rm removes what it read', async () => {
    const { ids } = await putEvents(store, [{ type: 'vl3', cn: CN1, vnet: 12340, ip: '10.0.0.1', vlan: 5 }]);
    const r = await run('svp', 'log', '192.168.1.1', '--server', addr);
    assert.equal(r.code, 0);
    assert.match(r.out, /^OK: 1 event\(s\), 48 bytes/);
    assert.ok(r.out.includes(ids[0]));
    const rm = await run('svp', 'log', '192.168.1.1', '--server', addr, '--rm', '--json');
    const j = JSON.parse(rm.out);
    assert.equal(j.entries[0].id, ids[0]);
    assert.deepEqual(j.removed, { count: 1, status: 'OK' });
    const after = await run('svp', 'log', '192.168.1.1', '--server', addr, '--json');
    assert.deepEqual(JSON.parse(after.out).entries, []);
  });

  it('rejects bad arguments', async () => {
    assert.equal((await run('svp', 'vl2', 'nonsense', '1', '--server', addr)).code, 1);
    assert.equal((await run('svp', 'vl3', '10.0.0.1', 'x', '--server', addr)).code, 1);
    assert.match((await run('svp', 'ping', '--server', 'host:0')).err, /port/);
  });

  it('a comma list of servers, one unreachable: ping reports both and fails', async () => {
    const r = await run('svp', 'ping', '--server', `${addr},127.0.0.1:9`, '--timeout', '300');
    assert.equal(r.code, 1, r.out + r.err);
    assert.match(r.out, /PONG from/);
    assert.match(r.out, /no PONG from 127\.0\.0\.1:9/);
  });
});
