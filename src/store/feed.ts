/**
 * Fan-out of a backend's committed change sets to watchers, with catch-up from history.
 *
 * A new watcher first replays history from its requested revision, then follows live
 * commits; live sets that arrive during the replay are buffered and deduplicated by
 * revision, so a watcher sees each revision exactly once and in order.
 */
import type { ChangeSet, WatchHandlers, Watcher } from './types.js';

type HistoryReader = (fromRevision: number) => Promise<ChangeSet[]>;
type Filter = (set: ChangeSet) => ChangeSet | null;

class Subscription implements Watcher {
  private queue: ChangeSet[] = [];
  private catchingUp = true;
  private draining = false;
  private closed = false;
  private next: number;

  constructor(
    private readonly hub: FeedHub,
    fromRevision: number,
    private readonly filter: Filter,
    private readonly handlers: WatchHandlers,
  ) {
    this.next = fromRevision;
  }

  start(history: HistoryReader): void {
    history(this.next).then(
      (sets) => {
        if (this.closed) return;
        // History first, then whatever arrived live meanwhile (deduplicated in drain).
        this.queue = [...sets, ...this.queue];
        this.catchingUp = false;
        void this.drain();
      },
      (err: Error) => this.fail(err),
    );
  }

  push(set: ChangeSet): void {
    if (this.closed) return;
    this.queue.push(set);
    if (!this.catchingUp) void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (!this.closed && this.queue.length > 0) {
        const set = this.queue.shift() as ChangeSet;
        if (set.revision < this.next) continue;
        this.next = set.revision + 1;
        const visible = this.filter(set);
        if (!visible) continue;
        try {
          await this.handlers.onChange(visible);
        } catch (err) {
          this.fail(err instanceof Error ? err : new Error(String(err)));
          return;
        }
      }
    } finally {
      this.draining = false;
    }
  }

  fail(err: Error): void {
    if (this.closed) return;
    this.close();
    this.handlers.onError?.(err);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.hub.remove(this);
  }
}

export class FeedHub {
  private subs = new Set<Subscription>();

  constructor(private readonly history: HistoryReader) {}

  subscribe(fromRevision: number, filter: Filter, handlers: WatchHandlers): Watcher {
    const sub = new Subscription(this, fromRevision, filter, handlers);
    this.subs.add(sub);
    sub.start(this.history);
    return sub;
  }

  publish(set: ChangeSet): void {
    for (const s of this.subs) s.push(set);
  }

  remove(sub: Subscription): void {
    this.subs.delete(sub);
  }

  /** Ends every watcher with this error (store closing, backend lost). */
  close(err: Error): void {
    for (const s of [...this.subs]) s.fail(err);
  }

  get size(): number {
    return this.subs.size;
  }
}
