/**
 * Who may open another SVP connection: at most `maxTotal` open at once, and at most
 * `maxPerPeer` from one peer address, so one host cannot take every slot. Pure
 * bookkeeping; the server admits on accept and releases on close.
 */

/** Why a connection was refused (metric label values). */
export type RefusalReason = 'total' | 'per_peer';

export interface AdmissionLimits {
  maxTotal: number;
  maxPerPeer: number;
}

/** The peer an address counts against: IPv4-mapped IPv6 is the IPv4 address. */
export function peerKey(remoteAddress: string | undefined): string {
  if (remoteAddress === undefined) return '?';
  const lower = remoteAddress.toLowerCase();
  return lower.startsWith('::ffff:') && lower.includes('.') ? lower.slice(7) : lower;
}

export class PeerAdmission {
  private readonly perPeer = new Map<string, number>();
  private total = 0;

  constructor(private readonly limits: AdmissionLimits) {
    for (const [name, v] of Object.entries(limits))
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  }

  /** Takes a slot for peer, or says why not (nothing is taken then). */
  admit(peer: string): RefusalReason | null {
    if (this.total >= this.limits.maxTotal) return 'total';
    const n = this.perPeer.get(peer) ?? 0;
    if (n >= this.limits.maxPerPeer) return 'per_peer';
    this.perPeer.set(peer, n + 1);
    this.total++;
    return null;
  }

  /** Gives back a slot taken by admit. */
  release(peer: string): void {
    const n = this.perPeer.get(peer);
    if (n === undefined) return;
    if (n <= 1) this.perPeer.delete(peer);
    else this.perPeer.set(peer, n - 1);
    this.total--;
  }

  get open(): number {
    return this.total;
  }

  /** Peers with at least one open connection. */
  get peers(): number {
    return this.perPeer.size;
  }
}
