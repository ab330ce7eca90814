/**
 * Hostile JSON for the REST input suite: random values and mutations of a valid body
 * (wrong types, huge strings and numbers, unicode oddities, prototype keys, deep
 * nesting), from a seeded generator so a failure can be replayed with its seed.
 */

/** mulberry32: small, fast, seedable. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const WEIRD_STRINGS = [
  '',
  ' ',
  '\u0000',
  '\ud800', // a lone surrogate
  '\u202e\u0644\u0627', // right-to-left override, Arabic
  '😀'.repeat(50),
  'a'.repeat(70),
  'x'.repeat(100_000),
  '../../etc/passwd',
  '"; flush ruleset; #',
  '$(reboot)',
  '<script>alert(1)</script>',
  '%00%0a',
  'null',
  'true',
  '-1',
  '1e308',
  '0x10',
  '10.0.0.1/33',
  '00:00:00:00:00:00',
  'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
  'aaaaaaaa-1111-4111-8111-111111111111',
  '__proto__',
  'constructor',
];

const WEIRD_NUMBERS = [0, -1, 1.5, -0.0, 4095, 4096, 65536, 2 ** 31, 2 ** 32, 2 ** 53 + 2, -(2 ** 63), 1e308, -1e308, Number.MIN_VALUE];

const PROTO_KEYS = ['__proto__', 'constructor', 'prototype', '__defineGetter__', 'hasOwnProperty', 'toString', 'valueOf'];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)]!;
}

/** Nesting deeper than any handler expects (JSON.parse copes; handlers must too). */
export function deepNest(depth: number, leaf: Json = 1): Json {
  let v: Json = leaf;
  for (let i = 0; i < depth; i++) v = i % 2 ? [v] : { a: v };
  return v;
}

/** Deep nesting as text (JSON.stringify itself would overflow the stack building it). */
export function deepNestText(depth: number): string {
  const open = Array.from({ length: depth }, (_, i) => (i % 2 ? '[' : '{"a":')).join('');
  const close = Array.from({ length: depth }, (_, i) => (i % 2 ? ']' : '}')).reverse().join('');
  return `${open}1${close}`;
}

export function randomScalar(r: () => number): Json {
  switch (Math.floor(r() * 5)) {
    case 0:
      return pick(r, WEIRD_STRINGS);
    case 1:
      return pick(r, WEIRD_NUMBERS);
    case 2:
      return r() < 0.5;
    case 3:
      return null;
    default:
      return Math.floor(r() * 100000).toString(36);
  }
}

export function randomValue(r: () => number, depth = 0): Json {
  const k = r();
  if (depth > 3 || k < 0.55) return randomScalar(r);
  if (k < 0.7) return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1));
  if (k < 0.8) return deepNest(10 + Math.floor(r() * 2000));
  const o: { [k: string]: Json } = {};
  for (let i = Math.floor(r() * 4); i > 0; i--) o[r() < 0.3 ? pick(r, PROTO_KEYS) : pick(r, WEIRD_STRINGS).slice(0, 20)] = randomValue(r, depth + 1);
  return o;
}

/** A JSON text with own `__proto__`/`constructor` keys (JSON.stringify of an object literal would drop a __proto__ key). */
export function protoBody(r: () => number, base: Record<string, Json>): string {
  const inner = `{"polluted": ${JSON.stringify(randomScalar(r))}, "isAdmin": true}`;
  const extra = pick(r, [`"__proto__": ${inner}`, `"constructor": {"prototype": ${inner}}`, `"__proto__": null`, `"prototype": ${inner}`]);
  const text = JSON.stringify(base);
  return text === '{}' ? `{${extra}}` : `{${extra}, ${text.slice(1)}`;
}

/** One mutation of a valid body: a field's type or value broken, a field added or removed. */
export function mutate(r: () => number, base: Record<string, Json>): Record<string, Json> {
  const out: Record<string, Json> = { ...base };
  const keys = Object.keys(out);
  const n = 1 + Math.floor(r() * 3);
  for (let i = 0; i < n; i++) {
    const op = r();
    const key = keys.length > 0 ? pick(r, keys) : 'x';
    if (op < 0.35) out[key] = randomValue(r);
    else if (op < 0.5) out[key] = typeof out[key] === 'string' ? [out[key]] : JSON.stringify(out[key] ?? null);
    else if (op < 0.6) delete out[key];
    else if (op < 0.75) out[pick(r, WEIRD_STRINGS).slice(0, 30) || 'empty'] = randomValue(r);
    else if (op < 0.85) out[key] = pick(r, WEIRD_NUMBERS);
    else out[key] = pick(r, WEIRD_STRINGS);
  }
  return out;
}

/** A hostile body as the text to send (sometimes not an object, sometimes not JSON at all). */
export function hostileBody(r: () => number, template: Record<string, Json>): string {
  const k = r();
  if (k < 0.45) return JSON.stringify(mutate(r, template));
  if (k < 0.6) return protoBody(r, mutate(r, template));
  if (k < 0.7) return JSON.stringify(randomValue(r));
  if (k < 0.75) return deepNestText(5000 + Math.floor(r() * 20000));
  if (k < 0.8) return '['.repeat(200_000); // nesting JSON.parse refuses
  if (k < 0.85) return JSON.stringify(template).slice(0, Math.floor(r() * 40)); // truncated
  if (k < 0.9) return JSON.stringify({ ...template, pad: 'y'.repeat(1024 * 1024) }); // over the body limit
  return JSON.stringify(Object.fromEntries(Array.from({ length: 2000 }, (_, i) => [`k${i}`, randomScalar(r)])));
}

/** A hostile query string for GET and DELETE routes. */
export function hostileQuery(r: () => number, template: Record<string, Json>): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(mutate(r, template))) {
    const text = typeof v === 'string' ? v : JSON.stringify(v);
    params.append(k.slice(0, 100), (text ?? '').slice(0, 2000));
  }
  if (r() < 0.3) params.append(pick(r, PROTO_KEYS), String(randomScalar(r)));
  if (r() < 0.2) params.append('limit', String(pick(r, WEIRD_NUMBERS)));
  return params.toString();
}
