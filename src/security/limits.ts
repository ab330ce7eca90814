/**
 * The bookkeeping behind the controller's request limits, pure (the caller passes the
 * time): a token bucket per client for request rates, and a counter of work in flight.
 * The REST app (src/rest/limits.ts) and the SVP server use them and count refusals.
 */

export interface RateLimit {
  /** Requests per second a client may sustain. */
  perSecond: number;
  /** Requests a client may make at once after being quiet. */
  burst: number;
}

export interface RateLimiterOptions extends RateLimit {
  /** Clients remembered at most; the least recently seen are forgotten first (they start full). */
  maxClients?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** One token bucket per client key. */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly maxClients: number;

  constructor(private readonly o: RateLimiterOptions) {
    if (!(o.perSecond > 0) || !(o.burst >= 1)) throw new RangeError(`a rate limit needs perSecond > 0 and burst >= 1, got ${o.perSecond}/${o.burst}`);
    this.maxClients = o.maxClients ?? 100_000;
  }

  /** Takes one token for key at nowMs; false when the client is over its rate. */
  take(key: string, nowMs: number): boolean {
    let b = this.buckets.get(key);
    if (b) {
      this.buckets.delete(key); // re-inserted below: the map stays in least-recently-seen order
      b.tokens = Math.min(this.o.burst, b.tokens + ((nowMs - b.at) / 1000) * this.o.perSecond);
      b.at = nowMs;
    } else {
      b = { tokens: this.o.burst, at: nowMs };
      if (this.buckets.size >= this.maxClients) this.buckets.delete(this.buckets.keys().next().value!);
    }
    this.buckets.set(key, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  get clients(): number {
    return this.buckets.size;
  }
}

/** At most `max` things in progress at once. */
export class InFlight {
  private n = 0;

  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`an in-flight limit must be a positive integer, got ${max}`);
  }

  tryEnter(): boolean {
    if (this.n >= this.max) return false;
    this.n++;
    return true;
  }

  leave(): void {
    if (this.n > 0) this.n--;
  }

  get current(): number {
    return this.n;
  }
}
