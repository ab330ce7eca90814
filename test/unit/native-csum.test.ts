/**
 * The native addon loads, and inetChecksum (RFC 1071) gives the known answers; bad
 * arguments are TypeErrors, not crashes.
 */
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

interface CsumAddon {
  inetChecksum(buf: Buffer): number;
}

const addonPath = join(fileURLToPath(new URL('../..', import.meta.url)), 'build/Release/rhumb_native.node');
const addon = createRequire(import.meta.url)(addonPath) as CsumAddon;

test('the addon loads and exports inetChecksum', () => {
  assert.equal(typeof addon.inetChecksum, 'function');
});

test('RFC 1071 section 3 example', () => {
  // 0001 + f203 + f4f5 + f6f7 = 0x2ddf0 -> folded 0xddf2 -> complement 0x220d
  assert.equal(addon.inetChecksum(Buffer.from('0001f203f4f5f6f7', 'hex')), 0x220d);
});

test('IPv4 header: computes the stored checksum and verifies to zero', () => {
  const header = Buffer.from('450000730000400040110000c0a80001c0a800c7', 'hex');
  const csum = addon.inetChecksum(header);
  assert.equal(csum, 0xb861);
  header.writeUInt16BE(csum, 10);
  assert.equal(addon.inetChecksum(header), 0);
});

test('odd length pads the last byte with zero; empty buffer is 0xffff', () => {
  assert.equal(addon.inetChecksum(Buffer.from([0x01])), 0xfeff);
  assert.equal(addon.inetChecksum(Buffer.from([0x01, 0x00])), 0xfeff);
  assert.equal(addon.inetChecksum(Buffer.alloc(0)), 0xffff);
});

test('carries wrap around (all-ones words)', () => {
  // 0xffff * 4 = 0x3fffc -> fold 0xffff -> complement 0
  assert.equal(addon.inetChecksum(Buffer.alloc(8, 0xff)), 0);
});

test('a large buffer agrees with a straightforward reference', () => {
  const buf = Buffer.alloc(65535);
  for (let i = 0; i < buf.length; i++) buf[i] = (i * 131 + 7) & 0xff;
  let sum = 0;
  for (let i = 0; i < buf.length; i += 2) sum += (buf[i]! << 8) | (i + 1 < buf.length ? buf[i + 1]! : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  assert.equal(addon.inetChecksum(buf), ~sum & 0xffff);
});

test('non-Buffer arguments throw TypeError', () => {
  const call = addon.inetChecksum as unknown as (...args: unknown[]) => number;
  for (const bad of [[], ['abcd'], [42], [null], [{}], [new ArrayBuffer(4)]]) {
    assert.throws(() => call(...bad), TypeError, `inetChecksum(${String(bad[0])})`);
  }
});
