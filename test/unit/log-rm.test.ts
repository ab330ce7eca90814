/**
 * LOG_RM's group commits (src/mapping/log-rm.ts), driven against a real shootdown log and
 * a fake store whose commits the test answers one by one: how many groups are in flight,
 * when a group may go, which nodes it holds, when each removal's waiter settles, and what
 * a failed or conflicting commit and close() do to the waiters.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LogRemover } from '../../src/mapping/log-rm.js';
import { encodeEventId, nodeTag } from '../../src/overlay/event-id.js';
import { type NodeLogState, NODE_STATE_PREFIX, nodeStateKey, vlogKey, vnodeKey } from '../../src/overlay/keys.js';
import { ShootdownLog } from '../../src/overlay/log.js';
import { type Batch, type CommitResult, type Store, StoreClosedError } from '../../src/store/types.js';

const V = 77;
/** The log entry's revision: every node below was on the vnet before it. */
const ENTRY_REV = 10;
const EVENTS = 4;
const NOW = Date.UTC(2024, 5, 1);

const node = (i: number): string => `aaaaaaaa-0000-4000-8000-${String(i).padStart(12, '0')}`;
/** Node cn's wire id of event k of the entry. */
const eventId = (cn: string, k: number): Buffer => encodeEventId({ timeMs: NOW, rev: ENTRY_REV, k }, nodeTag(cn));

interface SentCommit {
  batch: Batch;
  nodes: string[];
  answered: boolean;
  /** The store took it (its preconditions held). */
  ok: boolean;
  settle: (res: CommitResult | Error) => void;
}

interface Tracked {
  settled: boolean;
  value?: number;
  error?: Error;
  settles: number;
}

/**
 * A store that holds every commit until the test answers it (preconditions are checked at
 * the answer against the keys' revisions), and an index that sees committed states in the
 * shootdown log when the test shows them (at once with autoShow).
 */
class Rig {
  readonly log = new ShootdownLog();
  readonly sent: SentCommit[] = [];
  /** Broken invariants, seen as each commit arrives. */
  readonly violations: string[] = [];
  maxUnanswered = 0;
  autoShow = true;
  readonly remover: LogRemover;
  private storeRev = ENTRY_REV;
  private readonly keyRevs = new Map<string, number>();
  private unseen: Array<{ rev: number; key: string; value: string }> = [];
  private seen = ENTRY_REV;
  private waiters: Array<{ rev: number; resolve: (ok: boolean) => void }> = [];

  constructor(
    readonly nodes: number,
    readonly opts: { nodesPerCommit: number; commitsInFlight: number; attempts?: number },
  ) {
    for (let i = 0; i < nodes; i++) {
      const cn = node(i);
      this.log.put(vnodeKey(V, cn), JSON.stringify({ vnet_id: V, cn_uuid: cn, count: 1 }), 1, 1);
    }
    const events = Array.from({ length: EVENTS }, (_, k) => ({ type: 'vl3', ip: `10.0.0.${k + 1}`, vlan_id: 0 }));
    const res = this.log.put(vlogKey(V, 'id-0001'), JSON.stringify({ vnet_id: V, created: new Date(NOW).toISOString(), events }), ENTRY_REV, ENTRY_REV);
    assert.equal(res.invalid, undefined);
    // The remover only commits: the rest of Store is never called.
    const store = { kind: 'memory', commit: (batch: Batch) => this.commit(batch) } as unknown as Store;
    this.remover = new LogRemover({
      store,
      log: () => this.log,
      waitForRevision: (rev) => this.waitForRevision(rev),
      sync: () => Promise.resolve(true),
      visibleTimeoutMs: 1000,
      ...opts,
    });
  }

  /** Removes the nodes' copies of events ks (one LOG_RM), recording how its waiter settles. */
  remove(cns: string | string[], ks: number[] = [0]): Tracked {
    const ids = (Array.isArray(cns) ? cns : [cns]).flatMap((cn) => ks.map((k) => eventId(cn, k)));
    const t: Tracked = { settled: false, settles: 0 };
    this.remover.remove(ids).then(
      (value) => Object.assign(t, { settled: true, value, settles: t.settles + 1 }),
      (error: Error) => Object.assign(t, { settled: true, error, settles: t.settles + 1 }),
    );
    return t;
  }

  unanswered(): SentCommit[] {
    return this.sent.filter((c) => !c.answered);
  }

  private commit(batch: Batch): Promise<CommitResult> {
    const nodes = batch.ops.map((op) => op.key.slice(NODE_STATE_PREFIX.length));
    const open = this.unanswered();
    const busy = new Set(open.flatMap((c) => c.nodes));
    for (const cn of nodes) if (busy.has(cn)) this.violations.push(`${cn} in two groups in flight`);
    if (open.length >= this.opts.commitsInFlight) this.violations.push(`${open.length + 1} groups in flight`);
    if (open.length > 0 && nodes.length < this.opts.nodesPerCommit) this.violations.push(`a group of ${nodes.length} went beside one in flight`);
    this.maxUnanswered = Math.max(this.maxUnanswered, open.length + 1);
    return new Promise((resolve, reject) => {
      this.sent.push({ batch, nodes, answered: false, ok: false, settle: (res) => (res instanceof Error ? reject(res) : resolve(res)) });
    });
  }

  /** The store's answer to commit i: ok when its preconditions hold, else a conflict. */
  answer(i: number): void {
    const c = this.sent[i] as SentCommit;
    assert.equal(c.answered, false, `commit ${i} answered twice`);
    c.answered = true;
    const failed: number[] = [];
    (c.batch.preconditions ?? []).forEach((p, j) => {
      if (!('key' in p)) return void failed.push(j); // LOG_RM sends no range preconditions
      const rev = this.keyRevs.get(p.key);
      const holds = 'absent' in p ? rev === undefined : 'modRevision' in p ? rev === p.modRevision : false;
      if (!holds) failed.push(j);
    });
    if (failed.length > 0) {
      // The conflicting write is the index's to see, as the remover waits for it.
      if (this.autoShow) this.show();
      c.settle({ ok: false, failed, revision: this.storeRev });
      return;
    }
    this.storeRev++;
    for (const op of c.batch.ops) {
      assert.equal(op.type, 'put');
      if (op.type !== 'put') continue;
      this.keyRevs.set(op.key, this.storeRev);
      this.unseen.push({ rev: this.storeRev, key: op.key, value: op.value });
    }
    c.ok = true;
    c.settle({ ok: true, revision: this.storeRev });
    if (this.autoShow) this.show();
  }

  failCommit(i: number, err: Error): void {
    const c = this.sent[i] as SentCommit;
    c.answered = true;
    c.settle(err);
  }

  /** Another replica writes node cn's state (the store has it; the index sees it on show). */
  otherReplicaWrites(cn: string, state: NodeLogState = { cursor: [0, 0, 0] }): void {
    this.storeRev++;
    this.keyRevs.set(nodeStateKey(cn), this.storeRev);
    this.unseen.push({ rev: this.storeRev, key: nodeStateKey(cn), value: JSON.stringify(state) });
  }

  /** The index catches up with every commit so far. */
  show(): void {
    for (const u of this.unseen) this.log.put(u.key, u.value, u.rev);
    this.unseen = [];
    this.seen = this.storeRev;
    const due = this.waiters.filter((w) => w.rev <= this.seen);
    this.waiters = this.waiters.filter((w) => w.rev > this.seen);
    for (const w of due) w.resolve(true);
  }

  /** Ok commits that wrote node cn's state. */
  writesOf(cn: string): number {
    return this.sent.filter((c) => c.ok && c.nodes.includes(cn)).length;
  }

  private waitForRevision(rev: number): Promise<boolean> {
    if (rev <= this.seen) return Promise.resolve(true);
    return new Promise((resolve) => this.waiters.push({ rev, resolve }));
  }
}

/** Lets every promise chain the last step started run to its end. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

test('groups pipeline: at most commitsInFlight at once, a later one only when full, each node in one group in flight; every removal committed once', async () => {
  const rig = new Rig(12, { nodesPerCommit: 2, commitsInFlight: 3 });
  const cns = Array.from({ length: 12 }, (_, i) => node(i));
  const first = cns.map((cn) => rig.remove(cn));
  await settle();
  // The first group goes alone at once; beside it only full groups, up to three in flight.
  assert.deepEqual(
    rig.sent.map((c) => c.nodes),
    [[cns[0]], [cns[1], cns[2]], [cns[3], cns[4]]],
  );
  // Node 0 again (another event) while its first group is in flight: it waits for it.
  const again = rig.remove(cns[0] as string, [1]);
  await settle();
  assert.equal(rig.sent.length, 3, 'no fourth group while three are in flight');
  // Answer the oldest commit each time, until everything is committed.
  for (let i = 0; i < rig.sent.length; i++) {
    assert.ok(rig.unanswered().length <= 3);
    rig.answer(i);
    await settle();
  }
  assert.deepEqual(rig.violations, []);
  assert.equal(rig.maxUnanswered, 3, 'the pipeline filled');
  for (const t of [...first, again]) assert.deepEqual(t, { settled: true, value: 1, settles: 1 });
  assert.equal(rig.writesOf(cns[0] as string), 2, "node 0's second removal is a commit of its own, after its first");
  for (const cn of cns.slice(1)) assert.equal(rig.writesOf(cn), 1, `${cn} written once`);
  for (const cn of cns) {
    const left = rig.log.pending(cn).map((p) => p.pos.k);
    assert.deepEqual(left, cn === cns[0] ? [2, 3] : [1, 2, 3], `${cn}: exactly its removed events are gone`);
  }
});

test('beside a group in flight a smaller one waits, and goes once nothing is in flight', async () => {
  const rig = new Rig(3, { nodesPerCommit: 2, commitsInFlight: 4 });
  const a = rig.remove(node(0));
  const b = rig.remove(node(1));
  await settle();
  assert.deepEqual(
    rig.sent.map((c) => c.nodes),
    [[node(0)]],
  );
  assert.equal(b.settled, false);
  rig.answer(0);
  await settle();
  assert.deepEqual(a, { settled: true, value: 1, settles: 1 });
  assert.deepEqual(
    rig.sent.map((c) => c.nodes),
    [[node(0)], [node(1)]],
    'the waiting group went when the one in flight was done',
  );
  // What arrives while the second is in flight gathers into one group.
  const c = rig.remove(node(2));
  const a2 = rig.remove(node(0), [1]);
  await settle();
  assert.equal(rig.sent.length, 3, 'a full group of two goes beside the one in flight');
  assert.deepEqual(rig.sent[2]?.nodes, [node(2), node(0)]);
  rig.answer(1);
  rig.answer(2);
  await settle();
  for (const t of [b, c, a2]) assert.deepEqual(t, { settled: true, value: 1, settles: 1 });
  assert.deepEqual(rig.violations, []);
});

test('a node in a group in flight stays out of the next group, even a full one', async () => {
  const rig = new Rig(3, { nodesPerCommit: 2, commitsInFlight: 3 });
  const [A, B, C] = [0, 1, 2].map(node) as [string, string, string];
  const ra = rig.remove(A);
  await settle();
  const ra2 = rig.remove(A, [1]);
  const rb = rig.remove(B);
  await settle();
  assert.equal(rig.sent.length, 1, 'A and B would make a full group, but A is in flight');
  const rc = rig.remove(C);
  await settle();
  assert.deepEqual(
    rig.sent.map((c) => c.nodes),
    [[A], [B, C]],
  );
  rig.answer(0);
  rig.answer(1);
  await settle();
  assert.deepEqual(rig.sent[2]?.nodes, [A], "A's second removal goes once its first is done");
  rig.answer(2);
  await settle();
  for (const t of [ra, ra2, rb, rc]) assert.deepEqual(t, { settled: true, value: 1, settles: 1 });
  assert.deepEqual(rig.violations, []);
});

test("a removal resolves after the index has seen its commit; a node's next group is built on that commit", async () => {
  const rig = new Rig(2, { nodesPerCommit: 4, commitsInFlight: 4 });
  rig.autoShow = false;
  const A = node(0);
  const r1 = rig.remove(A, [0]);
  await settle();
  const r2 = rig.remove(A, [1]);
  await settle();
  assert.equal(rig.sent.length, 1, 'A is in one group in flight at a time');
  assert.deepEqual(rig.sent[0]?.batch.preconditions, [{ key: nodeStateKey(A), absent: true }]);
  rig.answer(0);
  await settle();
  assert.equal(r1.settled, false, 'committed but not yet seen by the index: not acked');
  assert.equal(rig.sent.length, 1, 'A stays out of new groups until its commit is seen');
  rig.show();
  await settle();
  assert.deepEqual(r1, { settled: true, value: 1, settles: 1 });
  assert.equal(rig.sent.length, 2);
  assert.deepEqual(rig.sent[1]?.batch.preconditions, [{ key: nodeStateKey(A), modRevision: ENTRY_REV + 1 }], 'built on the state the first commit wrote');
  rig.answer(1);
  await settle();
  assert.equal(r2.settled, false);
  rig.show();
  await settle();
  assert.deepEqual(r2, { settled: true, value: 1, settles: 1 });
  assert.deepEqual(
    rig.log.pending(A).map((p) => p.pos.k),
    [2, 3],
  );

  // One LOG_RM naming two nodes that go in two groups resolves after both, with both counts.
  const rig2 = new Rig(2, { nodesPerCommit: 1, commitsInFlight: 2 });
  const both = rig2.remove([node(0), node(1)], [0, 1]);
  await settle();
  assert.deepEqual(
    rig2.sent.map((c) => c.nodes),
    [[node(0)], [node(1)]],
  );
  rig2.answer(1);
  await settle();
  assert.equal(both.settled, false, "one node's commit is not the whole removal");
  rig2.answer(0);
  await settle();
  assert.deepEqual(both, { settled: true, value: 4, settles: 1 });
  assert.deepEqual(rig2.violations, []);
});

test("a failed commit rejects its group's waiters only; their nodes are free again and nothing else is lost", async () => {
  const rig = new Rig(5, { nodesPerCommit: 2, commitsInFlight: 2 });
  const [A, B, C, D, E] = [0, 1, 2, 3, 4].map(node) as [string, string, string, string, string];
  const ra = rig.remove(A);
  const rb = rig.remove(B);
  const rc = rig.remove(C);
  const rb2 = rig.remove(B, [1]); // B is in flight: this waits in the queue
  const rd = rig.remove(D);
  const rde = rig.remove([D, E], [2]);
  await settle();
  assert.deepEqual(
    rig.sent.map((c) => c.nodes),
    [[A], [B, C]],
  );
  const boom = new Error('disk on fire');
  rig.failCommit(1, boom);
  await settle();
  assert.equal(rb.error, boom);
  assert.equal(rc.error, boom);
  assert.equal(ra.settled, false, 'the other group is untouched');
  for (const t of [rb2, rd, rde]) assert.equal(t.settled, false, 'queued removals are untouched');
  // B's and C's events are still pending: nothing of the failed group was written.
  assert.deepEqual(
    rig.log.pending(B).map((p) => p.pos.k),
    [0, 1, 2, 3],
  );
  assert.deepEqual(
    rig.log.pending(C).map((p) => p.pos.k),
    [0, 1, 2, 3],
  );
  for (let i = 0; i < rig.sent.length; i++) {
    if (rig.sent[i]?.answered) continue;
    rig.answer(i);
    await settle();
  }
  assert.deepEqual(ra, { settled: true, value: 1, settles: 1 });
  assert.deepEqual(rb2, { settled: true, value: 1, settles: 1 }, "B's later removal goes after the failure");
  assert.deepEqual(rd, { settled: true, value: 1, settles: 1 });
  assert.deepEqual(rde, { settled: true, value: 2, settles: 1 });
  assert.equal(rb.settles + rc.settles, 2, 'each failed waiter settled once');
  assert.equal(rig.writesOf(B), 1);
  assert.equal(rig.writesOf(C), 0);
  assert.deepEqual(rig.violations, []);
  // C, free again, can be removed.
  const rc2 = rig.remove(C);
  await settle();
  rig.answer(rig.sent.length - 1);
  await settle();
  assert.deepEqual(rc2, { settled: true, value: 1, settles: 1 });
});

test("a conflict (another replica wrote the node's state) is retried on that state; after `attempts` conflicts the removal fails", async () => {
  const rig = new Rig(3, { nodesPerCommit: 1, commitsInFlight: 2, attempts: 2 });
  const [A, B, C] = [0, 1, 2].map(node) as [string, string, string];
  // The other replica removed A's event 3; this one has not seen it yet.
  rig.otherReplicaWrites(A, { cursor: [0, 0, 0], removed: [[ENTRY_REV, V, 3]] });
  const ra = rig.remove(A);
  await settle();
  rig.answer(0);
  await settle();
  assert.equal(ra.settled, false, 'a conflict is not a failure');
  assert.equal(rig.sent.length, 2);
  assert.deepEqual(rig.sent[1]?.nodes, [A]);
  assert.deepEqual(rig.sent[1]?.batch.preconditions, [{ key: nodeStateKey(A), modRevision: ENTRY_REV + 1 }]);
  rig.answer(1);
  await settle();
  assert.deepEqual(ra, { settled: true, value: 1, settles: 1 });
  assert.deepEqual(
    rig.log.pending(A).map((p) => p.pos.k),
    [1, 2],
    "the other replica's removal is kept",
  );

  // B's state changes before every attempt: after two, its removal fails; C's does not.
  const rb = rig.remove(B);
  const rc = rig.remove(C);
  await settle();
  const bCommits = (): number[] => rig.sent.flatMap((c, i) => (c.nodes.includes(B) ? [i] : []));
  for (let attempt = 0; attempt < 2; attempt++) {
    const open = bCommits().filter((i) => !rig.sent[i]?.answered);
    assert.equal(open.length, 1, `attempt ${attempt + 1} is in flight`);
    rig.otherReplicaWrites(B);
    rig.answer(open[0] as number);
    await settle();
  }
  assert.equal(bCommits().length, 2, 'no third attempt');
  assert.equal(rb.error?.message, 'node log state kept changing');
  assert.equal(rb.settles, 1);
  assert.equal(rc.settled, false);
  rig.answer(rig.sent.findIndex((c) => c.nodes.includes(C)));
  await settle();
  assert.deepEqual(rc, { settled: true, value: 1, settles: 1 });
  assert.deepEqual(rig.violations, []);
});

test('close(): queued removals are rejected, groups in flight finish, nothing new is sent', async () => {
  const rig = new Rig(3, { nodesPerCommit: 2, commitsInFlight: 2 });
  const [A, B, C] = [0, 1, 2].map(node) as [string, string, string];
  const ra = rig.remove(A);
  const rb = rig.remove(B);
  await settle();
  assert.equal(rig.sent.length, 1);
  rig.remover.close();
  await settle();
  assert.ok(rb.error instanceof StoreClosedError, 'the queued removal is rejected');
  assert.equal(ra.settled, false, 'the group in flight goes on');
  rig.answer(0);
  await settle();
  assert.deepEqual(ra, { settled: true, value: 1, settles: 1 });
  const rc = rig.remove(C);
  await settle();
  assert.ok(rc.error instanceof StoreClosedError, 'a removal after close is rejected');
  assert.equal(rig.sent.length, 1, 'nothing sent after close');
  assert.equal(rb.settles, 1);
});

test('close() while a conflicting commit is in flight: its removal is rejected, not left waiting', async () => {
  const rig = new Rig(1, { nodesPerCommit: 2, commitsInFlight: 2 });
  const A = node(0);
  rig.otherReplicaWrites(A);
  const ra = rig.remove(A);
  await settle();
  rig.remover.close();
  rig.answer(0);
  await settle();
  assert.equal(rig.sent.length, 1, 'no retry after close');
  assert.ok(ra.error instanceof StoreClosedError, `settled as ${JSON.stringify(ra)}`);
});
