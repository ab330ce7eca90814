/**
 * NFLOG in process (native/src/nflog.c): one nfnetlink_log group of this namespace,
 * parsed in C into one small record per logged packet, delivered in batches.
 */
import { nativeAddon, nativeHas } from './addon.js';

export interface NflogRecord {
  /** The log statement's prefix. */
  prefix: string;
  family: 4 | 6;
  /** IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6…). */
  proto: number;
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  /** Unix ms. */
  time: number;
}

export type NflogEvent = { kind: 'overflow' } | { kind: 'error'; message?: string };

interface NativeNflogSocket {
  close(): void;
}

type NflogCtor = new (group: number, onRecords: (batch: NflogRecord[] | NflogEvent) => void) => NativeNflogSocket;

export function nativeNflogAvailable(): boolean {
  return nativeHas('NflogSocket');
}

/** Binds the group (throws EBUSY when another socket has it); close() to stop. */
export function openNflog(group: number, onRecords: (records: NflogRecord[]) => void, onEvent: (e: NflogEvent) => void): { close(): void } {
  const Ctor = nativeAddon<{ NflogSocket: NflogCtor }>().NflogSocket;
  return new Ctor(group, (batch) => (Array.isArray(batch) ? onRecords(batch) : onEvent(batch)));
}
