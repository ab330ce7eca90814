/**
 * The shootdown log (src/overlay/log.ts): who gets which event, from log entries, the
 * revisions nodes joined and left vnets, and their consumption states.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { goneKey, nodeStateKey, vlogKey, vlogMultiKey, vnodeKey } from '../../src/overlay/keys.js';
import { ShootdownLog } from '../../src/overlay/log.js';
import { MAX_EVENTS_PER_REVISION, decodeEventId, encodeEventId, nodeTag } from '../../src/overlay/event-id.js';
import { uuidFromBytes } from '../../src/net/addr.js';

const A = 'aaaaaaaa-0000-4000-8000-000000000001';
const B = 'bbbbbbbb-0000-4000-8000-000000000002';
const C = 'cccccccc-0000-4000-8000-000000000003';
const V = 4242;
const NOW = Date.UTC(2024, 5, 1);

const vl2 = (mac: string) => ({ type: 'vl2', mac });
const vl3 = (ip: string, vlan = 0) => ({ type: 'vl3', ip, vlan_id: vlan });

/** Records in the shapes the write path stores them. */
class Records {
  readonly log = new ShootdownLog();
  private n = 0;
  join(cn: string, rev: number, vnet = V): void {
    this.log.put(vnodeKey(vnet, cn), JSON.stringify({ vnet_id: vnet, cn_uuid: cn, count: 1 }), rev, rev);
  }
  leave(cn: string, joined: number, rev: number, vnet = V): void {
    this.log.del(vnodeKey(vnet, cn));
    this.log.put(goneKey(vnet, cn, joined), JSON.stringify({ vnet_id: vnet, cn_uuid: cn, joined }), rev, rev);
  }
  entry(rev: number, events: object[], vnet = V, created = NOW): string {
    const key = vlogKey(vnet, `id-${String(++this.n).padStart(4, '0')}`);
    const res = this.log.put(key, JSON.stringify({ vnet_id: vnet, created: new Date(created).toISOString(), events }), rev, rev);
    assert.equal(res.invalid, undefined);
    return key;
  }
  state(cn: string, cursor: [number, number, number], rev: number, removed?: Array<[number, number, number]>): void {
    this.log.put(nodeStateKey(cn), JSON.stringify(removed ? { cursor, removed } : { cursor }), rev);
  }
  pending(cn: string): string[] {
    return this.log.pending(cn).map((p) => `${p.pos.rev}/${p.pos.vnet}/${p.pos.k}:${p.event.type}`);
  }
}

test("event ids are UUIDv7s of the entry's creation time, carrying revision bits, k and the node tag", () => {
  const ref = { timeMs: NOW + 123, rev: 123456789012, k: 7 };
  const a = encodeEventId(ref, nodeTag(A));
  const b = encodeEventId(ref, nodeTag(B));
  assert.equal(a.length, 16);
  assert.notDeepEqual(a, b, 'each node has its own id');
  assert.match(uuidFromBytes(a), /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(parseInt(uuidFromBytes(a).replace(/-/g, '').slice(0, 12), 16), NOW + 123, 'the UUIDv7 time');
  assert.deepEqual(decodeEventId(a), { timeMs: NOW + 123, revLow: 123456789012 & 0xffff, k: 7, tag: nodeTag(A) });
  assert.deepEqual(decodeEventId(encodeEventId({ timeMs: 0, rev: 0xffff, k: 255 }, nodeTag(C))), { timeMs: 0, revLow: 0xffff, k: 255, tag: nodeTag(C) });
  // k has 12 bits: a write may carry 4,096 events (a moved node's every NIC), tags 46.
  assert.equal(MAX_EVENTS_PER_REVISION, 4096);
  const last = encodeEventId({ timeMs: 2 ** 48 - 1, rev: 0xffff, k: 4095 }, nodeTag(C));
  assert.deepEqual(decodeEventId(last), { timeMs: 2 ** 48 - 1, revLow: 0xffff, k: 4095, tag: nodeTag(C) });
  assert.match(uuidFromBytes(last), /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'still a UUIDv7');
  assert.ok(nodeTag(C) < 2n ** 46n);
});

test('an id finds its entry: locate by creation time, revision bits and k', () => {
  const r = new Records();
  r.join(A, 1, 7);
  r.join(A, 1, 9);
  r.entry(70000, [vl3('10.0.0.1')], 9, NOW);
  r.entry(70000, [vl2('02:00:00:00:00:01'), vl3('10.0.0.2')], 7, NOW);
  r.entry(70000 + 65536, [vl3('10.0.0.3')], 7, NOW + 1);
  assert.deepEqual(r.log.locate(NOW, 70000 & 0xffff, 0), { rev: 70000, vnet: 7, k: 0 });
  assert.deepEqual(r.log.locate(NOW, 70000 & 0xffff, 2), { rev: 70000, vnet: 9, k: 2 }, 'k runs across the revision, vnet by vnet');
  assert.equal(r.log.locate(NOW, 70000 & 0xffff, 3), undefined);
  assert.deepEqual(r.log.locate(NOW + 1, 70000 & 0xffff, 0), { rev: 70000 + 65536, vnet: 7, k: 0 });
  assert.equal(r.log.locate(NOW + 2, 70000 & 0xffff, 0), undefined);
});

test('recipients: the nodes on the vnet just before the entry; a node joining with the write gets nothing, one leaving with it gets it', () => {
  const r = new Records();
  r.join(A, 10);
  r.entry(11, [vl3('10.0.0.1')]); // B joins with this very write
  r.join(B, 11);
  r.entry(12, [vl2('02:00:00:00:00:01'), vl3('10.0.0.1')]); // a migration away from A
  r.leave(A, 10, 12);
  r.entry(13, [vl3('10.0.0.2')]);
  assert.deepEqual(r.log.recipients(V, 11), [A]);
  assert.deepEqual(r.log.recipients(V, 12).sort(), [A, B]);
  assert.deepEqual(r.log.recipients(V, 13), [B]);
  assert.deepEqual(r.pending(A), ['11/4242/0:vl3', '12/4242/0:vl2', '12/4242/1:vl3']);
  assert.deepEqual(r.pending(B), ['12/4242/0:vl2', '12/4242/1:vl3', '13/4242/0:vl3']);
  assert.deepEqual(r.pending(C), []);
});

test('a node rejoining later only gets what came while it was on the vnet', () => {
  const r = new Records();
  r.join(B, 1);
  r.join(A, 2);
  r.entry(3, [vl3('10.0.0.3')]);
  r.leave(A, 2, 4);
  r.entry(5, [vl3('10.0.0.5')]);
  r.join(A, 6);
  r.entry(7, [vl3('10.0.0.7')]);
  assert.deepEqual(r.pending(A), ['3/4242/0:vl3', '7/4242/0:vl3']);
});

test('events of several vnets come oldest first; limit cuts the newest', () => {
  const r = new Records();
  r.join(A, 1, 7);
  r.join(A, 1, 9);
  r.entry(5, [vl3('10.0.0.1')], 9);
  r.entry(5, [vl2('02:00:00:00:00:01')], 7);
  r.entry(3, [vl3('10.0.0.3')], 9);
  assert.deepEqual(r.pending(A), ['3/9/0:vl3', '5/7/0:vl2', '5/9/1:vl3']);
  assert.deepEqual(
    r.log.pending(A, 2).map((p) => p.pos.rev),
    [3, 5],
  );
  // The oldest overall, whichever vnet was looked at first.
  r.state(A, [5, 9, 1], 13);
  r.entry(14, [vl3('10.0.9.14')], 9);
  r.entry(15, [vl3('10.0.9.15')], 9);
  for (const rev of [20, 21, 22]) r.entry(rev, [vl3(`10.0.7.${rev}`)], 7);
  assert.deepEqual(
    r.log.pending(A, 2).map((p) => p.pos.rev),
    [14, 15],
  );
  assert.deepEqual(
    r.log.pending(A, 4).map((p) => p.pos.rev),
    [14, 15, 20, 21],
  );
  assert.equal(r.log.pendingCount(A), 5);
  assert.equal(r.log.pendingCount(A, 3), 3);
});

test('consume: the cursor moves over leading removed events; out-of-order removals are listed', () => {
  const r = new Records();
  r.join(A, 1);
  r.join(B, 1);
  for (let rev = 2; rev <= 5; rev++) r.entry(rev, [vl3(`10.0.0.${rev}`)]);
  // A removes 3 and 5 first (not 2): the cursor cannot move yet.
  let res = r.log.consume(A, [
    { rev: 3, vnet: V, k: 0 },
    { rev: 5, vnet: V, k: 0 },
    { rev: 99, vnet: V, k: 0 }, // unknown: ignored
  ]);
  assert.deepEqual(res?.update, { cn: A, state: { cursor: [0, 0, 0], removed: [[3, V, 0], [5, V, 0]] }, modRevision: 0 });
  assert.equal(res?.taken.length, 2);
  r.state(A, [0, 0, 0], 20, [[3, V, 0], [5, V, 0]]);
  assert.deepEqual(r.pending(A), ['2/4242/0:vl3', '4/4242/0:vl3']);
  assert.deepEqual(r.pending(B).length, 4, 'B is not affected');
  // Now 2: the cursor jumps to 3; 5 stays listed.
  res = r.log.consume(A, [{ rev: 2, vnet: V, k: 0 }]);
  assert.deepEqual(res?.update.state, { cursor: [3, V, 0], removed: [[5, V, 0]] });
  assert.equal(res?.update.modRevision, 20);
  r.state(A, [3, V, 0], 21, [[5, V, 0]]);
  assert.equal(r.log.consume(A, [{ rev: 2, vnet: V, k: 0 }]), null, 'already removed');
  res = r.log.consume(A, [{ rev: 4, vnet: V, k: 0 }]);
  assert.deepEqual(res?.update.state, { cursor: [5, V, 0] });
});

test('the same records give the same pending events, whatever order they are loaded in', () => {
  const build = (order: number[]): string[] => {
    const r = new Records();
    const steps = [
      () => r.join(A, 2),
      () => r.join(B, 4),
      () => r.entry(3, [vl3('10.0.0.3')]),
      () => r.entry(5, [vl2('02:00:00:00:00:05')]),
      () => r.state(A, [3, V, 0], 6),
    ];
    for (const i of order) steps[i]!();
    return [...r.pending(A), '|', ...r.pending(B)];
  };
  const want = build([0, 1, 2, 3, 4]);
  assert.deepEqual(want, ['5/4242/0:vl2', '|', '5/4242/0:vl2']);
  assert.deepEqual(build([4, 3, 2, 1, 0]), want);
  assert.deepEqual(build([2, 4, 0, 3, 1]), want);
});

test('trim plan: consumed and expired entries go, gone records with them, states of idle nodes; the cap moves a cursor', () => {
  const r = new Records();
  r.join(A, 1);
  r.join(B, 1);
  const e2 = r.entry(2, [vl3('10.0.0.2')]);
  const e3 = r.entry(3, [vl3('10.0.0.3')], V, NOW - 2 * 86400_000); // expired
  const e4 = r.entry(4, [vl2('02:00:00:00:00:04')]);
  r.leave(A, 1, 4);
  r.state(A, [2, V, 0], 5, [[4, V, 0]]); // A took 2 and 4
  r.state(B, [2, V, 0], 6); // B took 2, not 4
  let plan = r.log.trimPlan({ nowMs: NOW, maxAgeMs: 86400_000, maxPerNode: 100 });
  assert.deepEqual(plan.deletes, [[e2], [e3]]);
  assert.deepEqual(plan.states, []);
  r.log.del(e2);
  r.log.del(e3);
  // B takes 4: nobody needs it; A's stint has no entry left; A is on no vnet.
  r.state(B, [4, V, 0], 7);
  plan = r.log.trimPlan({ nowMs: NOW, maxAgeMs: 86400_000, maxPerNode: 100 });
  assert.deepEqual(plan.deletes, [[e4], [goneKey(V, A, 1)]]);
  assert.deepEqual(plan.states, [{ cn: A, state: null, modRevision: 5 }]);

  // The cap: B keeps only its newest 2 events.
  for (let rev = 10; rev < 15; rev++) r.entry(rev, [vl3(`10.0.1.${rev}`)]);
  plan = r.log.trimPlan({ nowMs: NOW, maxAgeMs: 86400_000, maxPerNode: 2 });
  const capped = plan.states.find((s) => s.cn === B);
  assert.deepEqual(capped, { cn: B, state: { cursor: [12, V, 0] }, modRevision: 7 });
});

test('a multi-vnet entry (an underlay move): each part reaches its vnet\'s nodes as a vnet entry of that revision would, and goes as one record', () => {
  const r = new Records();
  r.join(A, 1, 7);
  r.join(A, 1, 9);
  r.join(B, 1, 9);
  r.join(C, 6, 7); // joined after the move: nothing from it
  // Same revision as a plain entry on vnet 7: k numbers vnet by vnet, then by key.
  r.entry(5, [vl3('10.0.7.1')], 7);
  const key = vlogMultiKey('m-0001');
  const body = { created: new Date(NOW).toISOString(), vnets: [{ vnet_id: 9, events: [vl2('02:00:00:00:09:01')] }, { vnet_id: 7, events: [vl2('02:00:00:00:07:01'), vl2('02:00:00:00:07:02')] }] };
  const res = r.log.put(key, JSON.stringify(body), 5, 5);
  assert.equal(res.invalid, undefined);
  assert.deepEqual(res.entries, [{ vnet: 9, rev: 5 }, { vnet: 7, rev: 5 }]);
  // ovl/vlog/00000007/… sorts before ovl/vlog/multi/…#00000007 on vnet 7.
  assert.deepEqual(r.pending(A), ['5/7/0:vl3', '5/7/1:vl2', '5/7/2:vl2', '5/9/3:vl2']);
  assert.deepEqual(r.pending(B), ['5/9/3:vl2']);
  assert.deepEqual(r.pending(C), []);
  assert.deepEqual(r.log.recipients(9, 5), [A, B]);
  // Wire ids find each part's events.
  assert.deepEqual(r.log.locate(NOW, 5, 3), { rev: 5, vnet: 9, k: 3 });
  assert.equal(r.log.entries, 2, 'two records');
  assert.equal(r.log.events, 4);
  // Consumed by everyone: the revision's records go, the multi-vnet one once.
  r.state(A, [5, 9, 3], 6);
  r.state(B, [5, 9, 3], 7);
  const plan = r.log.trimPlan({ nowMs: NOW, maxAgeMs: 86400_000, maxPerNode: 100 });
  assert.deepEqual(plan.deletes, [[vlogKey(7, 'id-0001'), key]]);
  r.log.del(key);
  assert.deepEqual([r.log.entries, r.log.events], [1, 1]);
  assert.deepEqual(r.log.stats().vnets, 2);
  // Malformed: no parts, a vnet twice, a bad vnet, a bad event: refused whole.
  const bad = [
    { created: body.created, vnets: [] },
    { created: body.created, vnets: [{ vnet_id: 9, events: [vl2('02:00:00:00:09:01')] }, { vnet_id: 9, events: [vl2('02:00:00:00:09:02')] }] },
    { created: body.created, vnets: [{ vnet_id: -1, events: [vl2('02:00:00:00:09:01')] }] },
    { created: body.created, vnets: [{ vnet_id: 9, events: [vl2('02:00:00:00:09:01')] }, { vnet_id: 7, events: [{ type: 'vl9' }] }] },
  ];
  for (const b of bad) assert.ok(r.log.put(vlogMultiKey('m-0002'), JSON.stringify(b), 8, 8).invalid, JSON.stringify(b));
  assert.deepEqual([r.log.entries, r.log.events], [1, 1]);
});

test('malformed records are refused, not half-kept', () => {
  const log = new ShootdownLog();
  assert.ok(log.put(vlogKey(V, 'x'), 'not json', 5).invalid);
  assert.ok(log.put(vlogKey(V, 'y'), JSON.stringify({ events: [{ type: 'vl9' }] }), 5).invalid);
  assert.ok(log.put(vlogKey(V, 'z'), JSON.stringify({ events: [] }), 5).invalid);
  assert.ok(log.put(goneKey(V, A, 3), JSON.stringify({ cn_uuid: B, joined: 3 }), 5).invalid);
  assert.ok(log.put(nodeStateKey(A), JSON.stringify({ cursor: [1, 2] }), 5).invalid);
  assert.equal(log.entries, 0);
});
