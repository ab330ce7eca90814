/**
 * Shootdowns on a vnet with 500 compute nodes, each an SVP connection long-polling
 * LOG_REQ: one NIC move reaches every node exactly once, LOG_RM by each node removes only
 * its own copies, and the store operations of the move do not depend on how many nodes
 * are on the vnet (counted at the store, 5 nodes vs 500). In process, on LevelDB.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { Registry } from 'prom-client';
import { DEFAULT_ADMIN_UUID, latestRevisionUnder, napiConfigFrom } from '../../src/controller/index.js';
import { MappingIndex } from '../../src/mapping/index.js';
import { buildNapiApp } from '../../src/napi/app.js';
import { ensureInitialData } from '../../src/napi/bootstrap.js';
import { OVERLAY_PREFIX } from '../../src/overlay/keys.js';
import { nicKey } from '../../src/napi/keys.js';
import { LevelStore } from '../../src/store/leveldb.js';
import { LogType, SvpOp, SvpStatus, decodeMessage, encodeMessage, type LogEntry } from '../../src/svp/codec.js';
import { ipFromBytes, ipToBytes, macFromBytes } from '../../src/net/addr.js';
import { SvpServer } from '../../src/svp/server.js';
import { CountingStore } from '../helpers/counting-store.js';
import { RawSvp } from '../helpers/svp-raw.js';

const NODES = 500;
const SMALL = 5;
const OWNER_BIG = 'b1000000-0000-4000-8000-000000000001';
const OWNER_SMALL = 'b2000000-0000-4000-8000-000000000002';
const cn = (i: number): string => `c0000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
const ul = (i: number): string => `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`;

let dir = '';
let store: CountingStore;
const registry = new Registry();
let index: MappingIndex;
let app: ReturnType<typeof buildNapiApp>;
let server: SvpServer;
let port = 0;
const conns: RawSvp[] = [];

async function api(method: string, url: string, body?: unknown): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const res = await app.inject({ method: method as 'GET', url, ...(body === undefined ? {} : { payload: body as object }) });
  assert.ok(res.statusCode < 300, `${method} ${url} -> ${res.statusCode} ${res.body}`);
  return res.body ? JSON.parse(res.body) : undefined;
}

/** A fabric network for owner with one NIC on each of nodes 0..n-1. */
async function fabricWithNics(owner: string, vlan: number, n: number): Promise<{ vnet: number; nics: Array<{ mac: string; ip: string }> }> {
  const v = await api('POST', `/fabrics/${owner}/vlans`, { vlan_id: vlan, name: `v${vlan}` });
  const net = await api('POST', `/fabrics/${owner}/vlans/${vlan}/networks`, {
    name: `n${vlan}`,
    subnet: '10.50.0.0/16',
    provision_start_ip: '10.50.0.10',
    provision_end_ip: '10.50.250.250',
  });
  const nics = [];
  for (let i = 0; i < n; i++) {
    nics.push(await api('POST', `/networks/${net.uuid}/nics`, { belongs_to_uuid: `a0000000-0000-4000-80${vlan}-${String(i).padStart(12, '0')}`, belongs_to_type: 'zone', owner_uuid: owner, cn_uuid: cn(i) }));
  }
  return { vnet: v.vnet_id, nics };
}

let nextId = 1;
function logReq(c: RawSvp, node: number): Promise<{ status: number; entries: LogEntry[] }> {
  const id = nextId++;
  c.send(encodeMessage({ op: SvpOp.LOG_REQ, count: 65536, ip: ipToBytes(ul(node)) }, id));
  return c.reply(id, 20_000).then((f) => {
    const m = decodeMessage(f);
    assert.ok(m.op === SvpOp.LOG_ACK);
    return { status: m.status, entries: m.entries };
  });
}

async function logRm(c: RawSvp, entries: LogEntry[]): Promise<void> {
  const id = nextId++;
  c.send(encodeMessage({ op: SvpOp.LOG_RM, ids: entries.map((e) => e.id) }, id));
  const m = decodeMessage(await c.reply(id, 20_000));
  assert.deepEqual(m, { op: SvpOp.LOG_RM_ACK, status: SvpStatus.OK });
}

const show = (e: LogEntry): string => (e.type === LogType.VL2 ? `vl2 ${macFromBytes(e.mac)} ${e.vnetId}` : `vl3 ${ipFromBytes(e.ip)} ${e.vnetId}`);

let big: { vnet: number; nics: Array<{ mac: string; ip: string }> };
let small: { vnet: number; nics: Array<{ mac: string; ip: string }> };

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rhumb-svp-scale-'));
  store = new CountingStore(await LevelStore.open(dir, { sync: false }));
  const config = napiConfigFrom({ store: { kind: 'memory' }, listen: { host: '127.0.0.1', port: 0 }, svpListen: { host: '127.0.0.1', port: 0 }, adminUuid: DEFAULT_ADMIN_UUID, overlayMtu: 1450 });
  await ensureInitialData({ store, config });
  index = new MappingIndex({ store });
  await index.start();
  app = buildNapiApp(
    { store, config, registry },
    {
      beforeWriteReply: async (_rev, rec) => {
        const rev = latestRevisionUnder(rec, OVERLAY_PREFIX);
        if (rev > 0) await index.waitForRevision(rev, 5000);
      },
    },
  );
  await app.ready();
  // Every simulated node connects from 127.0.0.1.
  server = new SvpServer({ store, index, registry, host: '127.0.0.1', port: 0, logWaitMs: 15_000, maxConnectionsPerPeer: NODES + 10 });
  port = (await server.listen()).port;
  const underlay = await api('POST', '/networks', {
    name: 'underlay',
    nic_tag: 'sdc_underlay',
    vlan_id: 0,
    subnet: '198.18.0.0/16',
    provision_start_ip: '198.18.0.1',
    provision_end_ip: '198.18.250.250',
  });
  for (let i = 0; i < NODES; i++) {
    await api('POST', `/networks/${underlay.uuid}/nics`, { belongs_to_uuid: cn(i), belongs_to_type: 'server', owner_uuid: DEFAULT_ADMIN_UUID, ip: ul(i), underlay: true });
  }
  small = await fabricWithNics(OWNER_SMALL, 11, SMALL);
  big = await fabricWithNics(OWNER_BIG, 12, NODES);
  for (let i = 0; i < NODES; i++) conns.push(await RawSvp.connect(port));
});

after(async () => {
  for (const c of conns) c.destroy();
  await server?.close();
  await app?.close();
  index?.close();
  await store?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it(`one NIC move on a vnet with ${NODES} nodes reaches each node once; LOG_RM removes only the remover's copies`, { timeout: 120_000 }, async () => {
  // Node i joined the big vnet with the i-th create there, and heard of every later one
  // (and, for nodes under SMALL, of the small vnet's later creates).
  await Promise.all(
    conns.slice(0, NODES - 1).map(async (c, i) => {
      const all = [...small.nics.slice(i + 1).map((n) => `vl3 ${n.ip} ${small.vnet}`), ...big.nics.slice(i + 1).map((n) => `vl3 ${n.ip} ${big.vnet}`)];
      const want = i < SMALL ? all : all.slice(Math.max(0, SMALL - 1 - i));
      // Over as many LOG_ACKs as their size cap needs.
      const got: string[] = [];
      while (got.length < want.length) {
        const { status, entries } = await logReq(c, i);
        assert.equal(status, SvpStatus.OK);
        assert.ok(entries.length > 0, `node ${i}: ${got.length} of ${want.length}`);
        got.push(...entries.map(show));
        await logRm(c, entries);
      }
      assert.deepEqual(got, want, `node ${i}`);
    }),
  );
  assert.equal(index.stats().events > 0, true);

  // Every node long-polls; one NIC moves from node 0 to node 1.
  const polls = conns.map((c, i) => logReq(c, i));
  await new Promise((r) => setTimeout(r, 200));
  const moving = big.nics[0]!;
  const moved = await api('PUT', `/nics/${moving.mac}`, { cn_uuid: cn(1) });
  assert.equal(moved.cn_uuid, cn(1));
  const got = await Promise.all(polls);
  const want = [`vl2 ${moving.mac} ${big.vnet}`, `vl3 ${moving.ip} ${big.vnet}`];
  got.forEach((g, i) => assert.deepEqual(g.entries.map(show), want, `node ${i}`));
  const ids = got.map((g) => g.entries.map((e) => e.id.toString('hex')));
  assert.equal(new Set(ids.flat()).size, 2 * NODES, 'every node has its own event ids');

  // The first half removes theirs; the second half still has both events.
  await Promise.all(conns.slice(0, NODES / 2).map((c, i) => logRm(c, got[i]!.entries)));
  for (let i = 0; i < NODES; i++) assert.equal(index.pendingEvents(cn(i)).length, i < NODES / 2 ? 0 : 2, `node ${i}`);
  // A LOG_REQ right after the ack does not see them again; nor from a fresh index.
  const again = await Promise.race([logReq(conns[0]!, 0).then(() => 'answered'), new Promise((r) => setTimeout(() => r('held'), 300))]);
  assert.equal(again, 'held', 'node 0 has nothing: its LOG_REQ is held');
  const fresh = new MappingIndex({ store });
  await fresh.start();
  try {
    for (let i = 0; i < NODES; i++) assert.equal(fresh.pendingEvents(cn(i)).length, i < NODES / 2 ? 0 : 2, `node ${i} after a restart`);
  } finally {
    fresh.close();
  }
  await Promise.all(conns.slice(NODES / 2).map((c, i) => logRm(c, got[NODES / 2 + i]!.entries)));
  for (let i = 0; i < NODES; i++) assert.equal(index.pendingEvents(cn(i)).length, 0);
});

it(`the store operations of a NIC move are the same with ${SMALL} and ${NODES} nodes on the vnet`, async () => {
  const costOf = async (nic: { mac: string }, to: number) => {
    await api('PUT', `/nics/${nic.mac}`, { cn_uuid: cn(to) });
    const c = store.commitWriting(nicKey(nic.mac));
    assert.ok(c);
    return c;
  };
  const s = await costOf(small.nics[2]!, 3);
  const b = await costOf(big.nics[2]!, 3);
  assert.equal(b.ops, s.ops, 'ops');
  assert.equal(b.preconditions, s.preconditions, 'preconditions');
  assert.ok(b.ops + b.preconditions <= 64, `a move is ${b.ops} ops and ${b.preconditions} preconditions`);
  assert.ok(Math.abs(b.bytes - s.bytes) < 64, `bytes: ${s.bytes} vs ${b.bytes}`);
});
