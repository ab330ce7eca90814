/**
 * The rtnetlink binding's argument checking and lifetime, without touching any device:
 * every malformed call is a TypeError/RangeError thrown before a request is sent, a
 * closed socket says so, and an open subscription does not keep a process alive after
 * close(). Real requests and misses are tested as root in test/netns/netlink.test.ts.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Rtnetlink, ifIndex, isRtnetlinkError } from '../../src/dataplane/netlink.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ADDON = join(ROOT, 'build/Release/rhumb_native.node');

type Loose = (...args: unknown[]) => unknown;
interface LooseSocket {
  neighSet: Loose;
  neighDel: Loose;
  fdbSet: Loose;
  fdbDel: Loose;
  neighList: Loose;
  fdbList: Loose;
  setFilter: Loose;
  close: Loose;
}
interface LooseAddon {
  RtnlSocket: (new (...args: unknown[]) => LooseSocket) & { prototype: LooseSocket };
  ifIndex: Loose;
}
const addon = createRequire(import.meta.url)(ADDON) as LooseAddon;

const MAC = '02:00:0a:4d:00:02';

test('the addon exports RtnlSocket and ifIndex', () => {
  assert.equal(typeof addon.RtnlSocket, 'function');
  assert.equal(typeof addon.ifIndex, 'function');
});

test('ifIndex finds lo and rejects bad names', () => {
  assert.equal(ifIndex('lo'), 1);
  assert.throws(() => addon.ifIndex(), TypeError);
  assert.throws(() => addon.ifIndex(1), TypeError);
  assert.throws(() => addon.ifIndex(''), TypeError);
  assert.throws(() => addon.ifIndex('x'.repeat(16)), TypeError);
  assert.throws(
    () => ifIndex('rhnosuchdev0'),
    (err: unknown) => isRtnetlinkError(err) && err.code === 'ENODEV' && err.errno < 0 && /rhnosuchdev0/.test(err.message),
  );
});

test('the constructor needs new and a function (or nothing) as callback', () => {
  assert.throws(() => (addon.RtnlSocket as unknown as Loose)(), TypeError);
  assert.throws(() => new addon.RtnlSocket(42), TypeError);
  assert.throws(() => new addon.RtnlSocket('cb'), TypeError);
  const s = new addon.RtnlSocket(null);
  s.close();
});

test('malformed requests are TypeErrors/RangeErrors, the socket stays usable', () => {
  const s = new addon.RtnlSocket();
  try {
    const typeErrors: Array<[string, Loose]> = [
      ['neighSet no args', () => s.neighSet()],
      ['neighSet ifindex string', () => s.neighSet('1', '10.0.0.1', MAC)],
      ['neighSet ifindex fraction', () => s.neighSet(1.5, '10.0.0.1', MAC)],
      ['neighSet bad ip', () => s.neighSet(1, '10.0.0', MAC)],
      ['neighSet ip number', () => s.neighSet(1, 167772161, MAC)],
      ['neighSet bad mac', () => s.neighSet(1, '10.0.0.1', '02:00:0a:4d:00')],
      ['neighSet mac dashes', () => s.neighSet(1, '10.0.0.1', '02-00-0a-4d-00-02')],
      ['neighSet mac non-hex', () => s.neighSet(1, '10.0.0.1', '02:00:0a:4d:00:zz')],
      ['neighSet bad state', () => s.neighSet(1, '10.0.0.1', MAC, 'stale')],
      ['neighDel bad ip', () => s.neighDel(1, 'fd00::g')],
      ['fdbSet bad dst', () => s.fdbSet(1, MAC, 'nowhere')],
      ['fdbSet opts not object', () => s.fdbSet(1, MAC, '198.18.0.2', 4789)],
      ['fdbSet port string', () => s.fdbSet(1, MAC, '198.18.0.2', { port: '4789' })],
      ['fdbSet state bad', () => s.fdbSet(1, MAC, '198.18.0.2', { state: 'noarp' })],
      ['fdbDel bad mac', () => s.fdbDel(1, 'ff')],
      ['fdbDel bad dst', () => s.fdbDel(1, MAC, '1.2.3')],
      ['fdbDel opts not object', () => s.fdbDel(1, MAC, '198.18.0.2', 'vni')],
      ['fdbDel vni string', () => s.fdbDel(1, MAC, '198.18.0.2', { vni: '7' })],
      ['neighList ifindex string', () => s.neighList('eth0')],
      ['setFilter not array', () => s.setFilter(3)],
      ['setFilter bad element', () => s.setFilter([1, 'two'])],
    ];
    for (const [name, fn] of typeErrors) assert.throws(fn, TypeError, name);

    const rangeErrors: Array<[string, Loose]> = [
      ['neighSet ifindex 0', () => s.neighSet(0, '10.0.0.1', MAC)],
      ['neighSet ifindex negative', () => s.neighSet(-3, '10.0.0.1', MAC)],
      ['neighSet ifindex huge', () => s.neighSet(2 ** 31, '10.0.0.1', MAC)],
      ['fdbSet port too big', () => s.fdbSet(1, MAC, '198.18.0.2', { port: 65536 })],
      ['fdbSet vni too big', () => s.fdbSet(1, MAC, '198.18.0.2', { vni: 1 << 24 })],
      ['fdbSet vni negative', () => s.fdbSet(1, MAC, '198.18.0.2', { vni: -1 })],
      ['fdbDel port too big', () => s.fdbDel(1, MAC, '198.18.0.2', { port: 70000 })],
    ];
    for (const [name, fn] of rangeErrors) assert.throws(fn, RangeError, name);

    // after all that, a read-only dump still works on the same socket
    assert.ok(Array.isArray(s.neighList()));
  } finally {
    s.close();
  }
});

test('methods on a foreign object throw TypeError', () => {
  assert.throws(() => addon.RtnlSocket.prototype.neighList.call({}), TypeError);
  assert.throws(() => addon.RtnlSocket.prototype.close.call({}), TypeError);
});

test('dumps return typed rows; a closed socket refuses requests; close is idempotent', () => {
  const rt = Rtnetlink.open();
  const lo = rt.ifIndex('lo');
  for (const n of rt.neighList()) {
    assert.equal(typeof n.ifindex, 'number');
    assert.match(n.ip, /^[0-9a-f.:]+$/);
    assert.equal(typeof n.state, 'string');
  }
  for (const f of rt.fdbList(lo)) {
    assert.equal(f.ifindex, lo);
    assert.match(f.mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
  }
  rt.close();
  assert.equal(rt.closed, true);
  rt.close();
  assert.throws(() => rt.neighList(), (err: unknown) => err instanceof Error && (err as { code?: string }).code === 'ERR_SOCKET_CLOSED');
});

test('a subscription keeps the process alive until close(), and no longer', () => {
  // The child exits by itself only if close() stops the poll and releases the handle.
  const script = `
    import { Rtnetlink } from ${JSON.stringify(join(ROOT, 'src/dataplane/netlink.ts'))};
    const rt = Rtnetlink.open(() => {});
    setTimeout(() => { rt.close(); console.log('closed'); }, 50);
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 20000,
  });
  assert.equal(r.error, undefined, 'child did not exit on its own');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'closed');
});
