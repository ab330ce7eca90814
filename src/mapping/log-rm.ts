/**
 * LOG_RM: a node's removal of events becomes a new state of its ovl/vrm/<cn> key (a
 * cursor plus out-of-order removed positions, src/overlay/log.ts), written with the
 * key's last known revision as precondition so that two replicas never lose each other's
 * removals. One store commit carries the removals of every node that asked while the
 * previous commit was in flight (group commit; when full groups wait, a few groups of
 * distinct nodes go at once), so the store sees far fewer commits than LOG_RMs under load,
 * and their rate is not capped by one commit's latency. A removal resolves once the index has seen its commit: a LOG_REQ
 * sent after the ack cannot get the events again.
 *
 * Event ids name their node and their entry (src/overlay/event-id.ts). An id whose entry
 * this index does not hold may come from a replica further ahead: the index catches up
 * with the store once and looks again; what it still cannot find (removed long ago,
 * trimmed, or nobody's) is ignored.
 */
import { decodeEventId } from '../overlay/event-id.js';
import { type LogPos, type StateUpdate, type ShootdownLog, posKey } from '../overlay/log.js';
import { nodeStateKey } from '../overlay/keys.js';
import { type Op, type Precondition, type Store, StoreClosedError } from '../store/types.js';

export interface LogRemoverDeps {
  store: Store;
  /** The index's current log (replaced when the index reloads). */
  log: () => ShootdownLog;
  waitForRevision: (rev: number, timeoutMs?: number) => Promise<boolean>;
  /** Waits until the index reflects everything committed so far. */
  sync: (timeoutMs?: number) => Promise<boolean>;
  visibleTimeoutMs: number;
  /** Nodes whose states one commit writes (each a put and a precondition). */
  nodesPerCommit?: number;
  /** Group commits in flight at once (each of other nodes): LOG_RMs keep up with commit latency. */
  commitsInFlight?: number;
  /** Commit attempts for one removal before it fails (conflicts with other replicas). */
  attempts?: number;
}

/** An id of an entry created this recently may be from a replica further ahead. */
const RECENT_MS = 5 * 60_000;

interface Request {
  byNode: Map<string, LogPos[]>;
  removed: number;
  nodesLeft: number;
  resolve: (removed: number) => void;
  reject: (err: Error) => void;
}

interface NodeWork {
  positions: LogPos[];
  requests: Request[];
  attempts: number;
}

export class LogRemover {
  private queue = new Map<string, NodeWork>();
  /** Group commits started and not yet visible in the index. */
  private inFlight = 0;
  /** Nodes in those groups. */
  private readonly busy = new Set<string>();
  private closed = false;

  constructor(private readonly deps: LogRemoverDeps) {}

  /**
   * Whether removing these ids may change anything: one names an event this index holds,
   * or a recent one it may not have seen yet. When not, the LOG_RM can be acked at once
   * (unknown ids are fine).
   */
  mayRemove(ids: readonly Uint8Array[], nowMs = Date.now()): boolean {
    const log = this.deps.log();
    for (const id of ids) {
      const d = decodeEventId(id);
      if (Math.abs(nowMs - d.timeMs) < RECENT_MS || log.locate(d.timeMs, d.revLow, d.k)) return true;
    }
    return false;
  }

  async remove(ids: readonly Uint8Array[]): Promise<number> {
    if (ids.length === 0) return 0;
    const decoded = ids.map((id) => decodeEventId(id));
    const byNode = new Map<string, LogPos[]>();
    const resolve = (): boolean => {
      const log = this.deps.log();
      let missing = false;
      byNode.clear();
      for (const d of decoded) {
        const pos = log.locate(d.timeMs, d.revLow, d.k);
        if (!pos) {
          missing = true;
          continue;
        }
        for (const cn of log.nodesByTag(d.tag)) {
          const list = byNode.get(cn);
          if (list) list.push(pos);
          else byNode.set(cn, [pos]);
        }
      }
      return !missing;
    };
    // Served by a replica further ahead? Catch up once.
    if (!resolve() && (await this.deps.sync(this.deps.visibleTimeoutMs))) resolve();
    if (byNode.size === 0) return 0;
    if (this.closed) throw new StoreClosedError();
    return new Promise<number>((resolve, reject) => {
      const req: Request = { byNode, removed: 0, nodesLeft: byNode.size, resolve, reject };
      for (const [cn, positions] of byNode) {
        const w = this.queue.get(cn) ?? { positions: [], requests: [], attempts: 0 };
        w.positions.push(...positions);
        w.requests.push(req);
        this.queue.set(cn, w);
      }
      this.run();
    });
  }

  close(): void {
    this.closed = true;
    const err = new StoreClosedError();
    for (const w of this.queue.values()) for (const r of w.requests) r.reject(err);
    this.queue.clear();
  }

  /**
   * Starts commits of queued removals until the queue is empty: one group at a time, more
   * (up to `commitsInFlight`) only when full groups wait, so that removals are not capped
   * at one group per commit latency. A node is in at most one group in flight, and stays out of new groups
   * until the index has seen its group's commit: its next state is built on that one.
   */
  private run(): void {
    const limit = this.deps.nodesPerCommit ?? 50;
    const most = this.deps.commitsInFlight ?? 4;
    while (this.inFlight < most && !this.closed) {
      const group = new Map<string, NodeWork>();
      for (const [cn, w] of this.queue) {
        if (group.size >= limit) break;
        if (this.busy.has(cn)) continue;
        group.set(cn, w);
      }
      // Beside a commit in flight only a full group goes: a smaller one gathers what
      // arrives meanwhile (fewer, larger commits), as one commit at a time would.
      if (group.size === 0 || (this.inFlight > 0 && group.size < limit)) return;
      for (const cn of group.keys()) {
        this.queue.delete(cn);
        this.busy.add(cn);
      }
      this.inFlight++;
      void this.commitGroup(group)
        .catch((err: Error) => {
          for (const w of group.values()) this.fail(w, err);
        })
        .finally(() => {
          this.inFlight--;
          for (const cn of group.keys()) this.busy.delete(cn);
          this.run();
        });
    }
  }

  private async commitGroup(group: Map<string, NodeWork>): Promise<void> {
    const log = this.deps.log();
    const updates: Array<{ cn: string; update: StateUpdate; taken: Set<string> }> = [];
    for (const [cn, w] of group) {
      const res = log.consume(cn, w.positions);
      if (!res) {
        this.finish(w, cn, new Set());
        continue;
      }
      updates.push({ cn, update: res.update, taken: new Set(res.taken.map(posKey)) });
    }
    if (updates.length === 0) return;
    const ops: Op[] = [];
    const preconditions: Precondition[] = [];
    for (const { update } of updates) {
      const key = nodeStateKey(update.cn);
      ops.push({ type: 'put', key, value: JSON.stringify(update.state) });
      preconditions.push(update.modRevision > 0 ? { key, modRevision: update.modRevision } : { key, absent: true });
    }
    let revision: number;
    try {
      const res = await this.deps.store.commit({ preconditions, ops });
      revision = res.revision;
      if (!res.ok) {
        // Another replica wrote one of these states: catch up with it, then try again.
        await this.deps.waitForRevision(res.revision, this.deps.visibleTimeoutMs);
        for (const { cn } of updates) this.retry(cn, group.get(cn) as NodeWork, new Error('node log state kept changing'));
        return;
      }
    } catch (err) {
      for (const { cn } of updates) this.fail(group.get(cn) as NodeWork, err as Error);
      return;
    }
    // Ack only once the index no longer serves these events.
    await this.deps.waitForRevision(revision, this.deps.visibleTimeoutMs);
    for (const { cn, taken } of updates) this.finish(group.get(cn) as NodeWork, cn, taken);
  }

  private retry(cn: string, w: NodeWork, err: Error): void {
    // Closed meanwhile: nothing would send it again (close() rejected only the queue).
    if (this.closed) {
      this.fail(w, new StoreClosedError());
      return;
    }
    w.attempts++;
    if (w.attempts >= (this.deps.attempts ?? 10)) {
      this.fail(w, err);
      return;
    }
    const queued = this.queue.get(cn);
    if (queued) {
      queued.positions.push(...w.positions);
      queued.requests.push(...w.requests);
      queued.attempts = Math.max(queued.attempts, w.attempts);
    } else this.queue.set(cn, w);
  }

  private finish(w: NodeWork, cn: string, taken: Set<string>): void {
    for (const r of w.requests) {
      for (const k of new Set((r.byNode.get(cn) ?? []).map(posKey))) if (taken.has(k)) r.removed++;
      if (--r.nodesLeft === 0) r.resolve(r.removed);
    }
  }

  private fail(w: NodeWork, err: Error): void {
    for (const r of w.requests) r.reject(err);
  }
}
