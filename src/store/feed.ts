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

/**
 * Hands change sets to a watcher's handlers one at a time, in the order pushed, waiting
 * for a handler's promise before the next; a throwing handler ends the watch. Shared by
 * the in-process hub below and the etcd backend's own watch streams.
 */
export class SerialDelivery {
  private queue: ChangeSet[] = [];
  private draining = false;
  private closed = false;

  constructor(
    private readonly handlers: WatchHandlers,
    /** Runs once when delivery ends (close or failure): release the source. */
    private readonly onClosed: () => void,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  push(set: ChangeSet): void {
    if (this.closed) return;
    this.queue.push(set);
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    try {
      while (!this.closed && this.queue.length > 0) {
        const set = this.queue.shift() as ChangeSet;
        try {
          await this.handlers.onChange(set);
        } catch (err) {
          this.fail(err instanceof Error ? err : new Error(String(err)));
          return;
        }
      }
    } finally {
      this.draining = false;
    }
  }

  /** Ends delivery and reports err to the watcher (once). */
  fail(err: Error): void {
    if (this.closed) return;
    this.close();
    this.handlers.onError?.(err);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.onClosed();
  }
}

class Subscription implements Watcher {
  /** Live sets that arrive while history is still being read. */
  private pending: ChangeSet[] = [];
  private catchingUp = true;
  private next: number;
  private readonly delivery: SerialDelivery;

  constructor(
    hub: FeedHub,
    fromRevision: number,
    private readonly filter: Filter,
    handlers: WatchHandlers,
  ) {
    this.next = fromRevision;
    this.delivery = new SerialDelivery(handlers, () => {
      this.pending = [];
      hub.remove(this);
    });
  }

  start(history: HistoryReader): void {
    history(this.next).then(
      (sets) => {
        if (this.delivery.isClosed) return;
        // History first, then whatever arrived live meanwhile (deduplicated in accept).
        for (const set of [...sets, ...this.pending]) this.accept(set);
        this.pending = [];
        this.catchingUp = false;
      },
      (err: Error) => this.fail(err),
    );
  }

  push(set: ChangeSet): void {
    if (this.delivery.isClosed) return;
    if (this.catchingUp) this.pending.push(set);
    else this.accept(set);
  }

  /** Each revision once, in order; only the part under the watched prefix. */
  private accept(set: ChangeSet): void {
    if (set.revision < this.next) return;
    this.next = set.revision + 1;
    const visible = this.filter(set);
    if (visible) this.delivery.push(visible);
  }

  fail(err: Error): void {
    this.delivery.fail(err);
  }

  close(): void {
    this.delivery.close();
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
