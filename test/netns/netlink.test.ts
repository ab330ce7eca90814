/**
 * The rtnetlink module against the real kernel (root): a "node" namespace with a vxlan
 * device (nolearning proxy l2miss l3miss) in a bridge, an "instance" namespace behind a
 * veth in that bridge. A node child process inside the node namespace opens Rtnetlink and
 * answers commands on stdin, printing miss events and results as JSON lines.
 *
 * The instance's ARP requests / neighbour solicitations reach the vxlan device through
 * the bridge and must come back as L3 misses; a frame to a MAC without FDB entry as an
 * L2 miss. Entries installed through the addon must show up in `ip neigh` / `bridge fdb`,
 * and disappear when deleted. Everything is removed at the end, also on failure.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { NetnsLab, requireRoot, underlayAddr } from '../helpers/netns.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WAIT_MS = 10_000;

const VNI = 4242;
const OTHER_VNI = 4243; // `bridge fdb` and NDA_VNI show a VNI only when it differs from the device's
const INST_MAC = '02:00:0a:4d:00:01';
const MAC2 = '02:00:0a:4d:00:02';
const MAC3 = '02:00:0a:4d:00:03';
const MAC4 = '02:00:0a:4d:00:04';
const ZERO_MAC = '00:00:00:00:00:00';
const LOCAL = underlayAddr(1); // 198.18.0.1
const PEER = underlayAddr(2);
const PEER_B = underlayAddr(3);
const PEER_C = underlayAddr(5);

/* The child: two subscriptions (a: every device, b: filtered) and a command loop. */
const CHILD = (modulePath: string): string => `
import { createInterface } from 'node:readline';
import { Rtnetlink, ifIndex } from ${JSON.stringify(modulePath)};

const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const vx = ifIndex('vx0');
const vx6 = ifIndex('vx6');
const subs = {
  a: Rtnetlink.open((ev) => out({ src: 'a', ev }), { onOverflow: () => out({ src: 'a', overflow: true }) }),
  b: Rtnetlink.open((ev) => out({ src: 'b', ev }), { ifindexes: [vx6] }),
};
const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const { id, target, op, args } = JSON.parse(line);
  if (op === 'exit') {
    subs.a.close();
    subs.b.close();
    rl.close();
    process.stdin.destroy();
    out({ id, ok: true, result: null });
    return; // the process must now exit by itself
  }
  try {
    const rt = subs[target ?? 'a'];
    out({ id, ok: true, result: rt[op](...args) ?? null });
  } catch (err) {
    out({ id, ok: false, error: { name: err.constructor.name, code: err.code, errno: err.errno, message: err.message } });
  }
});
out({ ready: true, vx, vx6 });
`;

interface ChildError {
  name: string;
  code?: string;
  errno?: number;
  message: string;
}
interface MissLine {
  kind: 'l2' | 'l3';
  ifindex: number;
  ip?: string;
  mac?: string;
  reason: 'miss' | 'resolving';
}
type Line =
  | { ready: true; vx: number; vx6: number }
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: ChildError }
  | { src: 'a' | 'b'; ev: MissLine }
  | { src: 'a'; overflow: true };

/** The child process, with request/response matching and an event log. */
class Watcher {
  readonly events: Array<{ src: 'a' | 'b'; ev: MissLine }> = [];
  private nextId = 1;
  private readonly pending = new Map<number, (l: Line) => void>();
  private readonly waiters = new Set<() => void>();
  private stderr = '';
  readonly ready: Promise<{ vx: number; vx6: number }>;
  readonly exited: Promise<number | null>;

  constructor(readonly proc: ChildProcess) {
    proc.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
    let onReady: (r: { vx: number; vx6: number }) => void = () => {};
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`watcher not ready; stderr: ${this.stderr}`)), 20_000);
      onReady = (r) => {
        clearTimeout(timer);
        resolve(r);
      };
      void this.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`watcher exited (${code}); stderr: ${this.stderr}`));
      });
    });
    createInterface({ input: proc.stdout! }).on('line', (text) => {
      const line = JSON.parse(text) as Line;
      if ('ready' in line) onReady({ vx: line.vx, vx6: line.vx6 });
      else if ('id' in line) this.pending.get(line.id)?.(line);
      else if ('ev' in line) {
        this.events.push({ src: line.src, ev: line.ev });
        for (const w of this.waiters) w();
      }
    });
  }

  /** Calls a method of subscription a (or b) in the child; resolves with the result or the error. */
  async call(op: string, args: unknown[], target: 'a' | 'b' = 'a'): Promise<{ ok: true; result: unknown } | { ok: false; error: ChildError }> {
    const id = this.nextId++;
    const answer = new Promise<Line>((resolve) => this.pending.set(id, resolve));
    this.proc.stdin!.write(JSON.stringify({ id, target, op, args }) + '\n');
    const line = await answer;
    this.pending.delete(id);
    if (!('id' in line)) throw new Error('unexpected line');
    return line.ok ? { ok: true, result: line.result } : { ok: false, error: line.error };
  }

  async ok(op: string, args: unknown[], target: 'a' | 'b' = 'a'): Promise<unknown> {
    const r = await this.call(op, args, target);
    if (!r.ok) throw new Error(`${op} failed in the child: ${r.error.message}`);
    return r.result;
  }

  /** Waits for an event matching pred (already seen or future). */
  async event(pred: (e: { src: 'a' | 'b'; ev: MissLine }) => boolean, what: string): Promise<MissLine> {
    const found = (): MissLine | undefined => this.events.find(pred)?.ev;
    const now = found();
    if (now) return now;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no ${what} within ${WAIT_MS} ms; events: ${JSON.stringify(this.events)}`));
      }, WAIT_MS);
      const check = (): void => {
        const ev = found();
        if (!ev) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(ev);
      };
      this.waiters.add(check);
    });
  }
}

/** Polls until check() passes (state converging in the kernel), then returns its last output. */
async function until(check: () => Promise<string>, ok: (s: string) => boolean, what: string): Promise<string> {
  const deadline = Date.now() + WAIT_MS;
  let last = '';
  while (Date.now() < deadline) {
    last = await check();
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not reached within ${WAIT_MS} ms; last: ${last}`);
}

test('rtnetlink module against a kernel vxlan device', async (t) => {
  if (!requireRoot(t)) return;
  const lab = new NetnsLab('nl');
  const tmp = await mkdtemp(join(tmpdir(), `rhumb-nl-${process.pid}-`));
  t.after(async () => {
    await lab.cleanup();
    await rm(tmp, { recursive: true, force: true });
  });

  // --- topology -------------------------------------------------------------------
  const node = await lab.addNetns('node');
  const inst = await lab.addNetns('inst');
  await lab.ip(node, 'addr', 'add', `${LOCAL}/32`, 'dev', 'lo');
  await lab.ip(node, 'link', 'add', 'vx0', 'type', 'vxlan', 'id', String(VNI), 'dstport', '4789', 'local', LOCAL, 'nolearning', 'proxy', 'l2miss', 'l3miss');
  await lab.ip(node, 'link', 'add', 'vx6', 'type', 'vxlan', 'id', '4343', 'dstport', '4789', 'local', '2001:2::1', 'nolearning');
  await lab.ip(node, 'link', 'add', 'br0', 'type', 'bridge');
  await lab.ip(node, 'link', 'set', 'vx0', 'master', 'br0');
  await lab.addVeth({ ns: node, name: 'vh' }, { ns: inst, name: 'eth0' });
  await lab.ip(node, 'link', 'set', 'vh', 'master', 'br0');
  for (const dev of ['vx0', 'br0', 'vh']) await lab.ip(node, 'link', 'set', dev, 'up');
  // fast neighbour ageing on vx0, so a 'reachable' entry goes stale within the test
  await lab.exec(node, 'sysctl', '-qw', 'net.ipv4.neigh.vx0.base_reachable_time_ms=1000', 'net.ipv4.neigh.vx0.delay_first_probe_time=0');
  await lab.ip(inst, 'link', 'set', 'eth0', 'address', INST_MAC);
  await lab.ip(inst, 'addr', 'add', '10.77.0.1/24', 'dev', 'eth0');
  await lab.ip(inst, 'addr', 'add', 'fd77::1/64', 'dev', 'eth0', 'nodad');
  await lab.ip(inst, 'link', 'set', 'eth0', 'up');

  const script = join(tmp, 'rtnl-watch.ts');
  await writeFile(script, CHILD(join(ROOT, 'src/dataplane/netlink.ts')));
  const w = new Watcher(lab.spawnIn(node, [process.execPath, '--import', 'tsx', script], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] }));
  const { vx, vx6 } = await w.ready;
  assert.ok(vx > 0 && vx6 > 0 && vx !== vx6);

  /** One UDP datagram from the instance (bash /dev/udp): enough to make it resolve dst. */
  const sendFromInstance = (dst: string): Promise<string> => lab.exec(inst, 'bash', '-c', `echo x > /dev/udp/${dst}/9`);
  const nodeSh = (cmd: string): Promise<string> => lab.exec(node, 'bash', '-c', cmd);

  // --- misses -----------------------------------------------------------------------
  await t.test('IPv4 ARP from the instance raises an L3 miss on the vxlan device', async () => {
    await sendFromInstance('10.77.0.2');
    const ev = await w.event((e) => e.src === 'a' && e.ev.kind === 'l3' && e.ev.ip === '10.77.0.2', 'L3 miss for 10.77.0.2');
    assert.deepEqual(ev, { kind: 'l3', ifindex: vx, ip: '10.77.0.2', reason: 'miss' });
  });

  await t.test('IPv6 neighbour solicitation raises an L3 miss with the IPv6 target', async () => {
    await sendFromInstance('fd77::2');
    const ev = await w.event((e) => e.src === 'a' && e.ev.kind === 'l3' && e.ev.ip === 'fd77::2', 'L3 miss for fd77::2');
    assert.deepEqual(ev, { kind: 'l3', ifindex: vx, ip: 'fd77::2', reason: 'miss' });
  });

  await t.test('the filtered subscription saw none of it; after watch([vx]) it sees the L2 miss', async () => {
    assert.deepEqual(w.events.filter((e) => e.src === 'b'), []);
    await w.ok('watch', [[vx]], 'b');
    // a neighbour entry in the instance without FDB entry on the node: unknown unicast MAC
    await lab.ip(inst, 'neigh', 'replace', '10.77.0.3', 'lladdr', MAC3, 'dev', 'eth0', 'nud', 'permanent');
    await sendFromInstance('10.77.0.3');
    for (const src of ['a', 'b'] as const) {
      const ev = await w.event((e) => e.src === src && e.ev.kind === 'l2' && e.ev.mac === MAC3, `L2 miss for ${MAC3} on ${src}`);
      assert.deepEqual(ev, { kind: 'l2', ifindex: vx, mac: MAC3, reason: 'miss' });
    }
    assert.ok(w.events.every((e) => e.ev.ifindex === vx), 'every miss names the vxlan device');
  });

  // --- neighbour entries ---------------------------------------------------------------
  await t.test('neighSet installs permanent IPv4/IPv6 entries; the proxy then answers ARP', async () => {
    await w.ok('neighSet', [vx, '10.77.0.2', MAC2]);
    await w.ok('neighSet', [vx, 'fd77::2', MAC2, 'permanent']);
    const v4 = await lab.ip(node, 'neigh', 'show', 'dev', 'vx0', '10.77.0.2');
    assert.match(v4, new RegExp(`10\\.77\\.0\\.2 lladdr ${MAC2} PERMANENT`));
    const v6 = await lab.ip(node, '-6', 'neigh', 'show', 'dev', 'vx0', 'fd77::2');
    assert.match(v6, new RegExp(`fd77::2 lladdr ${MAC2} PERMANENT`));

    // vxlan's ARP proxy answers from the entry we installed: the instance learns MAC2
    await lab.ip(inst, 'neigh', 'flush', 'dev', 'eth0', 'to', '10.77.0.2');
    await sendFromInstance('10.77.0.2');
    const learned = await until(
      () => lab.ip(inst, 'neigh', 'show', 'dev', 'eth0', '10.77.0.2'),
      (s) => s.includes(`lladdr ${MAC2}`),
      'proxy ARP answer in the instance',
    );
    assert.match(learned, new RegExp(`lladdr ${MAC2}`));

    const rows = (await w.ok('neighList', [vx])) as Array<{ ip: string; mac?: string; state: string; ifindex: number }>;
    const mine = rows.filter((r) => r.ip === '10.77.0.2' || r.ip === 'fd77::2').sort((a, b) => a.ip.localeCompare(b.ip));
    assert.deepEqual(
      mine.map((r) => [r.ip, r.mac, r.state, r.ifindex]),
      [
        ['10.77.0.2', MAC2, 'permanent', vx],
        ['fd77::2', MAC2, 'permanent', vx],
      ],
    );
    assert.ok(rows.every((r) => r.ifindex === vx), 'neighList(ifindex) returns that device only');
  });

  await t.test('neighSet replaces an existing entry', async () => {
    await w.ok('neighSet', [vx, '10.77.0.2', MAC4]);
    const out = await lab.ip(node, 'neigh', 'show', 'dev', 'vx0', '10.77.0.2');
    assert.match(out, new RegExp(`lladdr ${MAC4} PERMANENT`));
  });

  await t.test("a 'reachable' entry decays to stale and comes back as a resolving L3 event", async () => {
    await w.ok('neighSet', [vx, '10.77.0.4', MAC4, 'reachable']);
    const ev = await w.event(
      (e) => e.src === 'a' && e.ev.kind === 'l3' && e.ev.ip === '10.77.0.4' && e.ev.reason === 'resolving',
      'stale notification for 10.77.0.4',
    );
    assert.deepEqual(ev, { kind: 'l3', ifindex: vx, ip: '10.77.0.4', mac: MAC4, reason: 'resolving' });
  });

  await t.test('neighDel removes entries and reports absence as false', async () => {
    assert.equal(await w.ok('neighDel', [vx, '10.77.0.2']), true);
    assert.equal(await w.ok('neighDel', [vx, 'fd77::2']), true);
    assert.equal(await w.ok('neighDel', [vx, '10.77.0.4']), true);
    const out = await lab.ip(node, 'neigh', 'show', 'dev', 'vx0');
    assert.doesNotMatch(out, /10\.77\.0\.2 |fd77::2 |10\.77\.0\.4 /);
    assert.equal(await w.ok('neighDel', [vx, '10.77.0.2']), false);
  });

  // --- FDB entries -----------------------------------------------------------------------
  await t.test('fdbSet installs a self/permanent entry with dst, port and vni', async () => {
    await w.ok('fdbSet', [vx, MAC3, PEER, { port: 4790, vni: OTHER_VNI }]);
    const out = await nodeSh(`bridge fdb show dev vx0 | grep -i '^${MAC3} '`);
    assert.match(out, new RegExp(`^${MAC3} dst ${PEER.replace(/\./g, '\\.')} port 4790 vni ${OTHER_VNI} self permanent`, 'm'));

    const rows = (await w.ok('fdbList', [vx])) as Array<Record<string, unknown>>;
    const mine = rows.filter((r) => r.mac === MAC3);
    assert.deepEqual(mine, [{ ifindex: vx, mac: MAC3, dst: PEER, port: 4790, vni: OTHER_VNI, state: 'permanent', self: true }]);
  });

  await t.test('fdbSet on an existing MAC moves it to the new VTEP (replace, not append)', async () => {
    await w.ok('fdbSet', [vx, MAC3, PEER_C, { state: 'reachable' }]);
    const rows = (await w.ok('fdbList', [vx])) as Array<Record<string, unknown>>;
    const mine = rows.filter((r) => r.mac === MAC3);
    assert.equal(mine.length, 1, JSON.stringify(mine));
    assert.equal(mine[0]!.dst, PEER_C);
    assert.equal(mine[0]!.state, 'reachable');
  });

  await t.test('fdbDel with dst removes only that remote; without dst the whole entry', async () => {
    // several remotes per MAC exist only for the all-zeros (flood) entry; fdbSet appends there
    await w.ok('fdbSet', [vx, ZERO_MAC, PEER]);
    await w.ok('fdbSet', [vx, ZERO_MAC, PEER_B]);
    await w.ok('fdbSet', [vx, ZERO_MAC, PEER_B]); // already listed: no duplicate
    const zeroLines = async (): Promise<string[]> =>
      (await nodeSh('bridge fdb show dev vx0')).split('\n').filter((l) => l.startsWith(`${ZERO_MAC} `));
    assert.equal((await zeroLines()).length, 2);

    assert.equal(await w.ok('fdbDel', [vx, ZERO_MAC, PEER_B]), true);
    const left = await zeroLines();
    assert.equal(left.length, 1);
    assert.match(left[0]!, new RegExp(`dst ${PEER.replace(/\./g, '\\.')} `));

    assert.equal(await w.ok('fdbDel', [vx, ZERO_MAC]), true);
    assert.equal(await w.ok('fdbDel', [vx, MAC3]), true);
    const after = await nodeSh('bridge fdb show dev vx0');
    assert.doesNotMatch(after, new RegExp(`^(${ZERO_MAC}|${MAC3}) `, 'im'));
    assert.equal(await w.ok('fdbDel', [vx, MAC3]), false);
  });

  await t.test("fdbDel with master removes the bridge's entry for the port, not the device's own", async () => {
    await w.ok('fdbSet', [vx, MAC4, PEER]);
    await nodeSh(`bridge fdb add ${MAC4} dev vx0 master static`);
    const lines = async (): Promise<string[]> => (await nodeSh('bridge fdb show dev vx0')).split('\n').filter((l) => l.startsWith(`${MAC4} `));
    assert.equal((await lines()).length, 2, (await lines()).join('\n'));
    assert.equal(await w.ok('fdbDel', [vx, MAC4, null, { master: true }]), true);
    const left = await lines();
    assert.equal(left.length, 1, left.join('\n'));
    assert.match(left[0]!, /self permanent/);
    assert.equal(await w.ok('fdbDel', [vx, MAC4, null, { master: true }]), false, 'nothing left to remove there');
    assert.equal(await w.ok('fdbDel', [vx, MAC4]), true);
  });

  await t.test('IPv6 underlay: fdbSet with an IPv6 VTEP on an IPv6 vxlan device', async () => {
    await w.ok('fdbSet', [vx6, MAC2, '2001:2::2', { vni: 4344 }]);
    const out = await nodeSh(`bridge fdb show dev vx6 | grep -i '^${MAC2} '`);
    assert.match(out, /dst 2001:2::2 vni 4344 self permanent/);
    const rows = (await w.ok('fdbList', [vx6])) as Array<Record<string, unknown>>;
    assert.deepEqual(rows.find((r) => r.mac === MAC2), { ifindex: vx6, mac: MAC2, dst: '2001:2::2', vni: 4344, state: 'permanent', self: true });
    // the kernel matches the remote on dst+port+vni: the wrong vni removes nothing
    assert.equal(await w.ok('fdbDel', [vx6, MAC2, '2001:2::2']), true);
    assert.match(await nodeSh('bridge fdb show dev vx6'), new RegExp(MAC2, 'i'));
    assert.equal(await w.ok('fdbDel', [vx6, MAC2, '2001:2::2', { vni: 4344 }]), true);
    assert.doesNotMatch(await nodeSh('bridge fdb show dev vx6'), new RegExp(MAC2, 'i'));
  });

  // --- errors ------------------------------------------------------------------------------
  await t.test('a bad ifindex is a clear ENODEV error, for neighbours and FDB', async () => {
    for (const [op, args] of [
      ['neighSet', [999999, '10.77.0.9', MAC2]],
      ['fdbSet', [999999, MAC2, PEER]],
      ['neighDel', [999999, '10.77.0.9']],
    ] as const) {
      const r = await w.call(op, [...args]);
      assert.equal(r.ok, false, `${op} should fail`);
      if (r.ok) continue;
      assert.equal(r.error.code, 'ENODEV', r.error.message);
      assert.equal(r.error.errno, -19);
      assert.match(r.error.message, new RegExp(`^${op}\\(ifindex 999999.*ENODEV`));
      // the kernel's extended-ACK text is appended when there is one
      if (op === 'fdbSet') assert.match(r.error.message, /unknown ifindex/);
    }
  });

  await t.test('bad arguments are TypeErrors in the child too, and the socket keeps working', async () => {
    const r = await w.call('neighSet', [vx, 'not-an-ip', MAC2]);
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.error.name, 'TypeError');
    assert.ok(Array.isArray(await w.ok('neighList', [vx])));
  });

  await t.test('close() ends both subscriptions and the child exits on its own', async () => {
    await w.ok('exit', []);
    assert.equal(await w.exited, 0);
  });

  // nothing we installed is left behind on the device
  const neigh = await lab.ip(node, 'neigh', 'show', 'dev', 'vx0');
  assert.doesNotMatch(neigh, /PERMANENT/);
});
