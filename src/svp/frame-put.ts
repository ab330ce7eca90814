/**
 * Writers that put whole SVP reply frames into a caller's buffer at an offset (the
 * server's per-read output buffer): header, payload and CRC, no intermediate objects.
 * Pure; byte for byte what codec.ts's encoders produce (the unit tests compare them).
 */
import { HEADER_BYTES, SVP_VERSION, SvpOp, VL2_ACK_BYTES, VL3_ACK_BYTES } from './codec.js';
import { frameCrcAt } from './crc32.js';

export const PONG_FRAME_BYTES = HEADER_BYTES;
export const VL2_ACK_FRAME_BYTES = HEADER_BYTES + VL2_ACK_BYTES;
export const VL3_ACK_FRAME_BYTES = HEADER_BYTES + VL3_ACK_BYTES;

/** Header at out[o]: version, op, payload size, the 4 id bytes copied from idSrc[idOff], crc 0. */
function putHeader(out: Uint8Array, o: number, op: number, size: number, idSrc: Uint8Array, idOff: number): void {
  out[o] = SVP_VERSION >>> 8;
  out[o + 1] = SVP_VERSION & 0xff;
  out[o + 2] = op >>> 8;
  out[o + 3] = op & 0xff;
  out[o + 4] = size >>> 24;
  out[o + 5] = (size >>> 16) & 0xff;
  out[o + 6] = (size >>> 8) & 0xff;
  out[o + 7] = size & 0xff;
  out[o + 8] = idSrc[idOff];
  out[o + 9] = idSrc[idOff + 1];
  out[o + 10] = idSrc[idOff + 2];
  out[o + 11] = idSrc[idOff + 3];
}

/** Computes the CRC of the frame at out[o] (header and `size` payload bytes) and stores it. */
function seal(out: Uint8Array, o: number, size: number): void {
  const crc = frameCrcAt(out, o, size);
  out[o + 12] = crc >>> 24;
  out[o + 13] = (crc >>> 16) & 0xff;
  out[o + 14] = (crc >>> 8) & 0xff;
  out[o + 15] = crc & 0xff;
}

/** src[0..n) at out[o]; null writes zeros. (A loop: cheaper than TypedArray.set for a few bytes.) */
function putBytes(out: Uint8Array, o: number, src: Uint8Array | null, n: number): void {
  if (src === null) zeros(out, o, n);
  else copy(out, o, src, n);
}

function zeros(out: Uint8Array, o: number, n: number): void {
  for (let i = 0; i < n; i++) out[o + i] = 0;
}

function copy(out: Uint8Array, o: number, src: Uint8Array, n: number): void {
  for (let i = 0; i < n; i++) out[o + i] = src[i];
}

/** PONG answering the request whose id bytes are at idSrc[idOff]; returns the offset after it. */
export function putPong(out: Uint8Array, o: number, idSrc: Uint8Array, idOff: number): number {
  putHeader(out, o, SvpOp.PONG, 0, idSrc, idOff);
  seal(out, o, 0);
  return o + PONG_FRAME_BYTES;
}

/** VL2_ACK (status u16); ip null means zero-filled. Returns the offset after it. */
export function putVl2Ack(
  out: Uint8Array,
  o: number,
  idSrc: Uint8Array,
  idOff: number,
  status: number,
  port: number,
  ip: Uint8Array | null,
): number {
  putHeader(out, o, SvpOp.VL2_ACK, VL2_ACK_BYTES, idSrc, idOff);
  out[o + 16] = status >>> 8;
  out[o + 17] = status & 0xff;
  out[o + 18] = port >>> 8;
  out[o + 19] = port & 0xff;
  putBytes(out, o + 20, ip, 16);
  seal(out, o, VL2_ACK_BYTES);
  return o + VL2_ACK_FRAME_BYTES;
}

/** VL3_ACK (status u32); mac and ip null mean zero-filled. Returns the offset after it. */
export function putVl3Ack(
  out: Uint8Array,
  o: number,
  idSrc: Uint8Array,
  idOff: number,
  status: number,
  mac: Uint8Array | null,
  port: number,
  ip: Uint8Array | null,
): number {
  putHeader(out, o, SvpOp.VL3_ACK, VL3_ACK_BYTES, idSrc, idOff);
  out[o + 16] = status >>> 24;
  out[o + 17] = (status >>> 16) & 0xff;
  out[o + 18] = (status >>> 8) & 0xff;
  out[o + 19] = status & 0xff;
  putBytes(out, o + 20, mac, 6);
  out[o + 26] = port >>> 8;
  out[o + 27] = port & 0xff;
  putBytes(out, o + 28, ip, 16);
  seal(out, o, VL3_ACK_BYTES);
  return o + VL3_ACK_FRAME_BYTES;
}
