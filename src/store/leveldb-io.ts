/**
 * LevelStore's physical layer: the slice of leveldown (abstract-leveldown 7) it uses, the
 * key layout (see ./leveldb.ts) and the encoding of stored values and range bounds.
 */
import { createRequire } from 'node:module';
import type { KeyValue, RangeOptions } from './types.js';

// ---- leveldown -------------------------------------------------------------------

export type Callback = (err?: Error | null) => void;
export type LdOp = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };
type Bound = string | Buffer;

interface LdIteratorOptions {
  gt?: Bound;
  gte?: Bound;
  lt?: Bound;
  lte?: Bound;
  reverse?: boolean;
  limit?: number;
  keys?: boolean;
  values?: boolean;
  keyAsBuffer?: boolean;
  valueAsBuffer?: boolean;
}

export interface LdIterator {
  next(): Promise<[string | Buffer, string | Buffer] | undefined>;
  end(): Promise<void>;
}

export interface LevelDown {
  open(opts: { createIfMissing: boolean; writeBufferSize?: number }, cb: Callback): void;
  close(cb: Callback): void;
  getMany(keys: string[], opts: { asBuffer: false }): Promise<Array<string | undefined>>;
  batch(ops: LdOp[], opts: { sync: boolean }, cb: Callback): void;
  iterator(opts: LdIteratorOptions): LdIterator;
}

const require = createRequire(import.meta.url);
export const leveldown = require('leveldown') as (location: string) => LevelDown;

export function call(fn: (cb: Callback) => void): Promise<void> {
  return new Promise((resolve, reject) => fn((err) => (err ? reject(err) : resolve())));
}

// ---- layout ----------------------------------------------------------------------

export const DATA = 'd/';
export const LOG = 'l/';
export const META_REV = 'm/rev';
export const META_COMPACTED = 'm/compacted';
export const META_FORMAT = 'm/format';
export const FORMAT = '1';

export const dataKey = (key: string): string => DATA + key;
export const logKey = (rev: number): string => LOG + String(rev).padStart(16, '0');

/** Every key that starts with `prefix` sorts below prefix + 0xff (0xff never occurs in UTF-8). */
export function afterPrefix(prefix: string): Buffer {
  return Buffer.concat([Buffer.from(prefix, 'utf8'), Buffer.from([0xff])]);
}

interface StoredValue {
  v: string;
  c: number;
  m: number;
}

export function decodeValue(key: string, raw: string): KeyValue {
  const s = JSON.parse(raw) as StoredValue;
  return { key, value: s.v, createRevision: s.c, modRevision: s.m };
}

export function encodeValue(kv: KeyValue): string {
  const s: StoredValue = { v: kv.value, c: kv.createRevision, m: kv.modRevision };
  return JSON.stringify(s);
}

export function str(x: string | Buffer): string {
  return typeof x === 'string' ? x : x.toString('utf8');
}

/** leveldown range options for the d/ rows that `opts` selects, or null if none can match. */
export function dataBounds(opts: RangeOptions): { gt?: Buffer; gte?: Buffer; lt: Buffer } | null {
  // Lower bound: the greatest of prefix/gte (inclusive) and gt (exclusive).
  let lower = Buffer.from(dataKey(opts.prefix ?? ''), 'utf8');
  let exclusive = false;
  if (opts.gte !== undefined) {
    const b = Buffer.from(dataKey(opts.gte), 'utf8');
    if (Buffer.compare(b, lower) > 0) lower = b;
  }
  if (opts.gt !== undefined) {
    const b = Buffer.from(dataKey(opts.gt), 'utf8');
    if (Buffer.compare(b, lower) >= 0) {
      lower = b;
      exclusive = true;
    }
  }
  // Upper bound (exclusive): the least of lt and the end of the prefix.
  let upper = afterPrefix(dataKey(opts.prefix ?? ''));
  if (opts.lt !== undefined) {
    const b = Buffer.from(dataKey(opts.lt), 'utf8');
    if (Buffer.compare(b, upper) < 0) upper = b;
  }
  if (Buffer.compare(lower, upper) >= 0) return null;
  return exclusive ? { gt: lower, lt: upper } : { gte: lower, lt: upper };
}

export async function drain(it: LdIterator, each: (key: string | Buffer, value: string | Buffer) => void): Promise<void> {
  try {
    for (;;) {
      const entry = await it.next();
      if (entry === undefined) return;
      each(entry[0], entry[1]);
    }
  } finally {
    await it.end();
  }
}
