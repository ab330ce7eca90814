/**
 * zlib's CRC-32 (IEEE 802.3, reflected, init and final xor 0xffffffff) over a byte range of
 * a buffer, in JS with slicing-by-4 tables. Pure.
 *
 * Why not node:zlib's crc32: an SVP frame is 16 to 44 bytes, and for those the binding
 * call and the subarray it needs cost several times the CRC itself (the server checks one
 * and seals one per lookup). Long ranges still go to zlib, which is faster there.
 */
import { crc32 as zlibCrc32 } from 'node:zlib';

/** Ranges at least this long are handed to zlib. */
const ZLIB_FROM_BYTES = 256;

const T0 = new Int32Array(256);
const T1 = new Int32Array(256);
const T2 = new Int32Array(256);
const T3 = new Int32Array(256);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  T0[n] = c;
}
for (let n = 0; n < 256; n++) {
  T1[n] = (T0[n] >>> 8) ^ T0[T0[n] & 0xff];
  T2[n] = (T1[n] >>> 8) ^ T0[T1[n] & 0xff];
  T3[n] = (T2[n] >>> 8) ^ T0[T2[n] & 0xff];
}

/**
 * Continues a CRC (as returned by crc32Range; 0 to start) over buf[start, end).
 * Returns the CRC as an unsigned 32-bit number.
 */
export function crc32Range(buf: Uint8Array, start: number, end: number, crc = 0): number {
  if (end - start >= ZLIB_FROM_BYTES) return zlibCrc32(buf.subarray(start, end), crc) >>> 0;
  let c = ~crc;
  let i = start;
  for (; i + 4 <= end; i += 4) {
    c ^= buf[i] | (buf[i + 1] << 8) | (buf[i + 2] << 16) | (buf[i + 3] << 24);
    c = T3[c & 0xff] ^ T2[(c >>> 8) & 0xff] ^ T1[(c >>> 16) & 0xff] ^ T0[c >>> 24];
  }
  for (; i < end; i++) c = T0[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

/** Continues a CRC over four zero bytes (an SVP header's crc field, zeroed). */
export function crc32Zero4(crc: number): number {
  const c = ~crc;
  return ~(T3[c & 0xff] ^ T2[(c >>> 8) & 0xff] ^ T1[(c >>> 16) & 0xff] ^ T0[c >>> 24]) >>> 0;
}

/**
 * The SVP CRC of the frame at buf[off]: over its 16-byte header with the crc field taken
 * as zero, then its `size` payload bytes. The frame must be complete in buf.
 */
export function frameCrcAt(buf: Uint8Array, off: number, size: number): number {
  const c = crc32Zero4(crc32Range(buf, off, off + 12));
  return size === 0 ? c : crc32Range(buf, off + 16, off + 16 + size, c);
}
