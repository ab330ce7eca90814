/**
 * The underlay addresses the userspace fast path accepts VXLAN from: the other nodes'
 * underlay NICs as the API lists them, plus the addresses in the controller's answers
 * installed since the last listing began (an answer naming a node is as good as a listing
 * that includes it).
 *
 * The list is asked for at start, on demand (a NIC was plumbed), every `intervalMs` (nodes
 * that left drop out), and when the engine reports a datagram from an unknown address
 * (a node that just joined), at most once per `minGapMs`: a flood of strangers costs the
 * API one listing a second at most. A failed listing keeps the previous set.
 * No I/O here: the listing and the engine are injected.
 */
export interface PeerSetOptions {
  /** The underlay addresses of every node (undefined: only answers' addresses are known). */
  list?: () => Promise<string[]>;
  /** Hands the complete set to the engine. */
  apply: (addresses: string[]) => void;
  log: (msg: string) => void;
  /** Default 30 s. */
  intervalMs?: number;
  /** Default 1 s. */
  minGapMs?: number;
  now?: () => number;
}

export class PeerSet {
  private listed = new Set<string>();
  /** Address -> when an answer named it. */
  private readonly learned = new Map<string, number>();
  private inflight: Promise<void> | undefined;
  private again = false;
  private lastListing = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private applied = '';
  private readonly now: () => number;

  constructor(private readonly o: PeerSetOptions) {
    this.now = o.now ?? Date.now;
  }

  /** First listing (its failure is logged, not thrown), then the periodic one. */
  async start(): Promise<void> {
    this.apply();
    await this.refresh();
    if (this.o.list) {
      this.timer = setInterval(() => void this.refresh(), this.o.intervalMs ?? 30_000);
      this.timer.unref();
    }
  }

  /** Lists the nodes again (joins a listing in flight, then runs once more after it). */
  refresh(): Promise<void> {
    if (!this.o.list) return Promise.resolve();
    if (this.inflight) {
      this.again = true;
      return this.inflight;
    }
    const run = async (): Promise<void> => {
      do {
        this.again = false;
        await this.listOnce();
      } while (this.again);
    };
    this.inflight = run().finally(() => (this.inflight = undefined));
    return this.inflight;
  }

  /** The engine saw VXLAN from an unknown address: list again unless that was just done. */
  unknownSource(): void {
    if (this.inflight || this.now() - this.lastListing < (this.o.minGapMs ?? 1000)) return;
    void this.refresh();
  }

  /** An installed answer names a node at this address. */
  learn(address: string): void {
    const known = this.listed.has(address) || this.learned.has(address);
    this.learned.set(address, this.now());
    if (!known) this.apply();
  }

  addresses(): string[] {
    return [...new Set([...this.listed, ...this.learned.keys()])].sort();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private async listOnce(): Promise<void> {
    const started = this.now();
    this.lastListing = started;
    let list: string[];
    try {
      list = await this.o.list!();
    } catch (err) {
      this.o.log(`underlay peers: listing failed (${(err as Error).message}); keeping ${this.addresses().length} known`);
      return;
    }
    this.listed = new Set(list);
    // Answers from before this listing began are covered by it.
    for (const [a, t] of this.learned) if (t < started) this.learned.delete(a);
    this.apply();
  }

  private apply(): void {
    const all = this.addresses();
    const key = all.join(',');
    if (key === this.applied) return;
    this.applied = key;
    this.o.apply(all);
  }
}
