/**
 * SVP v1 wire codec (the portolan / varpd "SDC VXLAN Protocol"). Pure: no I/O.
 *
 * Frame = 16-byte header (version u16, op u16, size u32, id u32, crc32 u32, all big-endian)
 * followed by exactly `size` payload bytes. The CRC is zlib CRC-32 over the header with the
 * crc field zeroed, then the payload. Ids are 4 opaque bytes; we carry them as the u32 read
 * big-endian, which writes back the identical bytes.
 *
 * Addresses travel as 16 bytes (IPv4 as ::ffff:a.b.c.d), MACs as 6 raw bytes, log ids as
 * 16 raw UUID bytes, as the SVP contract specifies.
 */
import { crc32Range, crc32Zero4, frameCrcAt } from './crc32.js';

export const SVP_VERSION = 1;
export const SVP_DEFAULT_PORT = 1296;
export const HEADER_BYTES = 16;
/** Default bound on a frame's size field (payload bytes). */
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024;

export enum SvpOp {
  PING = 0x01,
  PONG = 0x02,
  VL2_REQ = 0x03,
  VL2_ACK = 0x04,
  VL3_REQ = 0x05,
  VL3_ACK = 0x06,
  BULK_REQ = 0x07,
  BULK_ACK = 0x08,
  LOG_REQ = 0x09,
  LOG_ACK = 0x0a,
  LOG_RM = 0x0b,
  LOG_RM_ACK = 0x0c,
  SHOOTDOWN = 0x0d,
}

export enum SvpStatus {
  OK = 0,
  FATAL = 1,
  NOTFOUND = 2,
  BADL3TYPE = 3,
  BADBULK = 4,
}

export enum Vl3Type {
  IPV4 = 1,
  IPV6 = 2,
}

export enum LogType {
  VL2 = 1,
  VL3 = 2,
}

export enum BulkType {
  VL2 = 1,
  VL3 = 2,
}

export const VL2_REQ_BYTES = 12;
export const VL2_ACK_BYTES = 20;
export const VL3_REQ_BYTES = 24;
export const VL3_ACK_BYTES = 28;
export const BULK_REQ_BYTES = 4;
export const LOG_REQ_BYTES = 20;
export const LOG_RM_ACK_BYTES = 4;
export const SHOOTDOWN_BYTES = 12;
export const LOG_VL2_BYTES = 32;
export const LOG_VL3_BYTES = 44;

const REQUEST_OPS: ReadonlySet<number> = new Set([
  SvpOp.PING,
  SvpOp.VL2_REQ,
  SvpOp.VL3_REQ,
  SvpOp.BULK_REQ,
  SvpOp.LOG_REQ,
  SvpOp.LOG_RM,
  SvpOp.SHOOTDOWN,
]);
const RESPONSE_OPS: ReadonlySet<number> = new Set([
  SvpOp.PONG,
  SvpOp.VL2_ACK,
  SvpOp.VL3_ACK,
  SvpOp.BULK_ACK,
  SvpOp.LOG_ACK,
  SvpOp.LOG_RM_ACK,
]);

export function isRequestOp(op: number): boolean {
  return REQUEST_OPS.has(op);
}
export function isResponseOp(op: number): boolean {
  return RESPONSE_OPS.has(op);
}

export function opName(op: number): string {
  return SvpOp[op] ?? `op 0x${op.toString(16).padStart(2, '0')}`;
}

export function statusName(status: number): string {
  return SvpStatus[status] ?? `status ${status}`;
}

/** The ACK op a request op is answered with (SHOOTDOWN has none). */
export function ackOpFor(op: SvpOp): SvpOp | undefined {
  switch (op) {
    case SvpOp.PING:
      return SvpOp.PONG;
    case SvpOp.VL2_REQ:
      return SvpOp.VL2_ACK;
    case SvpOp.VL3_REQ:
      return SvpOp.VL3_ACK;
    case SvpOp.BULK_REQ:
      return SvpOp.BULK_ACK;
    case SvpOp.LOG_REQ:
      return SvpOp.LOG_ACK;
    case SvpOp.LOG_RM:
      return SvpOp.LOG_RM_ACK;
    default:
      return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// Errors

export type ProtocolErrorCause =
  | 'bad_version'
  | 'bad_crc'
  | 'oversize'
  | 'unknown_op'
  | 'response_op'
  | 'request_op'
  | 'bad_size'
  | 'truncated';

/** Input that breaks the protocol; the receiver closes the connection. */
export class SvpProtocolError extends Error {
  readonly code = 'SvpProtocol';
  constructor(
    readonly reason: ProtocolErrorCause,
    message: string,
  ) {
    super(message);
    this.name = 'SvpProtocolError';
  }
}

function checkU32(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${name} must be a u32, got ${v}`);
}
function checkU16(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffff) throw new RangeError(`${name} must be a u16, got ${v}`);
}
function checkBytes(name: string, b: Uint8Array, n: number): void {
  if (b.length !== n) throw new RangeError(`${name} must be ${n} bytes, got ${b.length}`);
}

// ---------------------------------------------------------------------------------------
// Frames

export interface Frame {
  version: number;
  op: number;
  /** The 4 id bytes read as big-endian u32. */
  id: number;
  /** Exactly `size` bytes (may be a view into the receive buffer: copy to keep it). */
  payload: Buffer;
}

/** CRC of a frame given its header (crc field ignored) and payload. */
export function frameCrc(header: Uint8Array, payload: Uint8Array): number {
  const crc = crc32Zero4(crc32Range(header, 0, 12));
  return payload.length > 0 ? crc32Range(payload, 0, payload.length, crc) : crc;
}

/** Allocates a frame with the header filled in (crc left zero) and `size` payload bytes. */
export function allocFrame(op: number, id: number, size: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_BYTES + size);
  buf.writeUInt16BE(SVP_VERSION, 0);
  buf.writeUInt16BE(op, 2);
  buf.writeUInt32BE(size, 4);
  buf.writeUInt32BE(id >>> 0, 8);
  buf.writeUInt32BE(0, 12);
  return buf;
}

/** Computes and stores the CRC of a complete frame in place; returns the frame. */
export function sealFrame(frame: Buffer): Buffer {
  frame.writeUInt32BE(frameCrcAt(frame, 0, frame.length - HEADER_BYTES), 12);
  return frame;
}

/** A complete frame for op/id/payload, CRC included. */
export function encodeFrame(op: number, id: number, payload: Uint8Array = new Uint8Array(0), version = SVP_VERSION): Buffer {
  checkU32('id', id);
  checkU16('op', op);
  const buf = allocFrame(op, id, payload.length);
  buf.writeUInt16BE(version, 0);
  buf.set(payload, HEADER_BYTES);
  return sealFrame(buf);
}

export type DecoderRole = 'server' | 'client' | 'any';

export interface FrameDecoderOptions {
  /** Largest accepted size field (payload bytes). Default 64 KiB. */
  maxFrameBytes?: number;
  /**
   * 'server' accepts only request ops, 'client' only response ops, 'any' every known op.
   * Unknown ops are always an error.
   */
  role?: DecoderRole;
}

export interface DecodeResult {
  frames: Frame[];
  /** Set when the stream broke the protocol; frames before the fault are still returned. */
  error?: SvpProtocolError;
}

/**
 * Accumulates bytes from a stream and cuts complete, validated frames. The header is
 * checked as soon as it is complete (so an oversize size field is refused before any
 * payload is buffered). After an error the decoder is dead and repeats that error.
 */
export class FrameDecoder {
  readonly maxFrameBytes: number;
  readonly role: DecoderRole;
  private pending: Buffer | null = null;
  private failed: SvpProtocolError | undefined;

  constructor(opts: FrameDecoderOptions = {}) {
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.role = opts.role ?? 'any';
  }

  /** Bytes held for an incomplete frame. */
  get buffered(): number {
    return this.pending ? this.pending.length : 0;
  }

  get error(): SvpProtocolError | undefined {
    return this.failed;
  }

  push(chunk: Buffer): DecodeResult {
    const frames: Frame[] = [];
    if (this.failed) return { frames, error: this.failed };
    let buf = chunk;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
    }
    let off = 0;
    const len = buf.length;
    while (len - off >= HEADER_BYTES) {
      const size = buf.readUInt32BE(off + 4);
      const headerError = checkFrameHeader(buf.readUInt16BE(off), buf.readUInt16BE(off + 2), size, this.role, this.maxFrameBytes);
      if (headerError) {
        this.failed = headerError;
        return { frames, error: headerError };
      }
      if (len - off < HEADER_BYTES + size) break;
      const crcError = checkFrameCrc(buf, off, size);
      if (crcError) {
        this.failed = crcError;
        return { frames, error: this.failed };
      }
      const payload = buf.subarray(off + HEADER_BYTES, off + HEADER_BYTES + size);
      frames.push({ version: SVP_VERSION, op: buf.readUInt16BE(off + 2), id: buf.readUInt32BE(off + 8), payload });
      off += HEADER_BYTES + size;
    }
    if (off < len) this.pending = Buffer.from(buf.subarray(off)); // own a copy: the caller may reuse chunk
    return { frames };
  }

  /** The stream ended: an error if part of a frame is still buffered. */
  end(): SvpProtocolError | undefined {
    if (this.failed) return this.failed;
    if (this.pending && this.pending.length > 0) {
      this.failed = new SvpProtocolError('truncated', `stream ended inside a frame (${this.pending.length} bytes buffered)`);
      this.pending = null;
      return this.failed;
    }
    return undefined;
  }

}

/**
 * Why a receiver in `role` refuses a frame header (checked as soon as its 16 bytes are in,
 * before any payload is buffered), or undefined when it is acceptable.
 */
export function checkFrameHeader(
  version: number,
  op: number,
  size: number,
  role: DecoderRole,
  maxFrameBytes: number,
): SvpProtocolError | undefined {
  if (version !== SVP_VERSION) return new SvpProtocolError('bad_version', `unsupported SVP version ${version}`);
  if (!isRequestOp(op) && !isResponseOp(op)) return new SvpProtocolError('unknown_op', `unknown ${opName(op)}`);
  if (role === 'server' && !isRequestOp(op))
    return new SvpProtocolError('response_op', `${opName(op)} is a response; a server only takes requests`);
  if (role === 'client' && !isResponseOp(op))
    return new SvpProtocolError('request_op', `${opName(op)} is a request; a client only takes responses`);
  if (size > maxFrameBytes) return new SvpProtocolError('oversize', `${opName(op)} size ${size} exceeds the ${maxFrameBytes}-byte bound`);
  return undefined;
}

/** A bad_crc error if the complete frame at buf[off] (payload `size` bytes) fails its CRC. */
export function checkFrameCrc(buf: Buffer, off: number, size: number): SvpProtocolError | undefined {
  const crc = buf.readUInt32BE(off + 12);
  const want = frameCrcAt(buf, off, size);
  if (crc === want) return undefined;
  return new SvpProtocolError(
    'bad_crc',
    `bad CRC on ${opName(buf.readUInt16BE(off + 2))}: got 0x${crc.toString(16)}, want 0x${want.toString(16)}`,
  );
}

// ---------------------------------------------------------------------------------------
// Messages

export interface PingMsg {
  op: SvpOp.PING;
}
export interface PongMsg {
  op: SvpOp.PONG;
}
export interface Vl2ReqMsg {
  op: SvpOp.VL2_REQ;
  mac: Buffer; // 6 bytes
  vnetId: number;
}
export interface Vl2AckMsg {
  op: SvpOp.VL2_ACK;
  /** 16 bits on the wire. */
  status: number;
  port: number;
  ip: Buffer; // 16 bytes
}
export interface Vl3ReqMsg {
  op: SvpOp.VL3_REQ;
  ip: Buffer; // 16 bytes
  type: number;
  vnetId: number;
}
export interface Vl3AckMsg {
  op: SvpOp.VL3_ACK;
  status: number;
  mac: Buffer; // 6 bytes
  port: number;
  ip: Buffer; // 16 bytes
}
export interface BulkReqMsg {
  op: SvpOp.BULK_REQ;
  type: number;
}
export interface BulkAckMsg {
  op: SvpOp.BULK_ACK;
  status: number;
  type: number;
  /** Undefined format upstream; carried opaquely. */
  data: Buffer;
}
export interface LogReqMsg {
  op: SvpOp.LOG_REQ;
  /** Most LOG_ACK payload bytes the client accepts (status word included). */
  count: number;
  ip: Buffer; // 16 bytes
}
export type LogEntry =
  | { type: LogType.VL2; id: Buffer; mac: Buffer; vnetId: number }
  | { type: LogType.VL3; id: Buffer; ip: Buffer; vlan: number; vnetId: number };
export interface LogAckMsg {
  op: SvpOp.LOG_ACK;
  status: number;
  entries: LogEntry[];
}
export interface LogRmMsg {
  op: SvpOp.LOG_RM;
  ids: Buffer[]; // 16 bytes each
}
export interface LogRmAckMsg {
  op: SvpOp.LOG_RM_ACK;
  status: number;
}
export interface ShootdownMsg {
  op: SvpOp.SHOOTDOWN;
  mac: Buffer;
  vnetId: number;
}

export type SvpRequest = PingMsg | Vl2ReqMsg | Vl3ReqMsg | BulkReqMsg | LogReqMsg | LogRmMsg | ShootdownMsg;
export type SvpResponse = PongMsg | Vl2AckMsg | Vl3AckMsg | BulkAckMsg | LogAckMsg | LogRmAckMsg;
export type SvpMessage = SvpRequest | SvpResponse;

export function logEntryBytes(e: LogEntry): number {
  return e.type === LogType.VL2 ? LOG_VL2_BYTES : LOG_VL3_BYTES;
}

/** Writes one log entry at off; returns the offset after it. */
export function writeLogEntry(buf: Buffer, off: number, e: LogEntry): number {
  checkBytes('log id', e.id, 16);
  checkU32('vnet id', e.vnetId);
  buf.writeUInt32BE(e.type, off);
  buf.set(e.id, off + 4);
  if (e.type === LogType.VL2) {
    checkBytes('mac', e.mac, 6);
    buf.set(e.mac, off + 20);
    buf.writeUInt16BE(0, off + 26);
    buf.writeUInt32BE(e.vnetId, off + 28);
    return off + LOG_VL2_BYTES;
  }
  checkBytes('ip', e.ip, 16);
  checkU16('vlan', e.vlan);
  buf.set(e.ip, off + 20);
  buf.writeUInt16BE(0, off + 36);
  buf.writeUInt16BE(e.vlan, off + 38);
  buf.writeUInt32BE(e.vnetId, off + 40);
  return off + LOG_VL3_BYTES;
}

/** One log entry as its own buffer (the server precomputes these). */
export function encodeLogEntry(e: LogEntry): Buffer {
  const buf = Buffer.alloc(logEntryBytes(e));
  writeLogEntry(buf, 0, e);
  return buf;
}

/** Parses LOG_ACK entries; throws bad_size on a truncated entry or an unknown type. */
export function decodeLogEntries(payload: Buffer, start: number): LogEntry[] {
  const entries: LogEntry[] = [];
  let off = start;
  while (off < payload.length) {
    if (payload.length - off < 4) throw new SvpProtocolError('bad_size', 'LOG_ACK: trailing bytes after the last entry');
    const type = payload.readUInt32BE(off);
    if (type === LogType.VL2) {
      if (payload.length - off < LOG_VL2_BYTES) throw new SvpProtocolError('bad_size', 'LOG_ACK: truncated VL2 entry');
      entries.push({
        type: LogType.VL2,
        id: Buffer.from(payload.subarray(off + 4, off + 20)),
        mac: Buffer.from(payload.subarray(off + 20, off + 26)),
        vnetId: payload.readUInt32BE(off + 28),
      });
      off += LOG_VL2_BYTES;
    } else if (type === LogType.VL3) {
      if (payload.length - off < LOG_VL3_BYTES) throw new SvpProtocolError('bad_size', 'LOG_ACK: truncated VL3 entry');
      entries.push({
        type: LogType.VL3,
        id: Buffer.from(payload.subarray(off + 4, off + 20)),
        ip: Buffer.from(payload.subarray(off + 20, off + 36)),
        vlan: payload.readUInt16BE(off + 38),
        vnetId: payload.readUInt32BE(off + 40),
      });
      off += LOG_VL3_BYTES;
    } else {
      throw new SvpProtocolError('bad_size', `LOG_ACK: unknown log entry type ${type}`);
    }
  }
  return entries;
}

function fixedSize(op: SvpOp): number | undefined {
  switch (op) {
    case SvpOp.PING:
    case SvpOp.PONG:
      return 0;
    case SvpOp.VL2_REQ:
      return VL2_REQ_BYTES;
    case SvpOp.VL2_ACK:
      return VL2_ACK_BYTES;
    case SvpOp.VL3_REQ:
      return VL3_REQ_BYTES;
    case SvpOp.VL3_ACK:
      return VL3_ACK_BYTES;
    case SvpOp.BULK_REQ:
      return BULK_REQ_BYTES;
    case SvpOp.LOG_REQ:
      return LOG_REQ_BYTES;
    case SvpOp.LOG_RM_ACK:
      return LOG_RM_ACK_BYTES;
    case SvpOp.SHOOTDOWN:
      return SHOOTDOWN_BYTES;
    default:
      return undefined;
  }
}

/** Payload of a message (no header). */
export function encodePayload(msg: SvpMessage): Buffer {
  switch (msg.op) {
    case SvpOp.PING:
    case SvpOp.PONG:
      return Buffer.alloc(0);
    case SvpOp.VL2_REQ:
    case SvpOp.SHOOTDOWN:
    case SvpOp.VL2_ACK:
    case SvpOp.VL3_REQ:
    case SvpOp.VL3_ACK:
      return encodeLookupPayload(msg);
    case SvpOp.BULK_REQ:
    case SvpOp.BULK_ACK:
      return encodeBulkPayload(msg);
    case SvpOp.LOG_REQ:
    case SvpOp.LOG_ACK:
    case SvpOp.LOG_RM:
    case SvpOp.LOG_RM_ACK:
      return encodeLogPayload(msg);
  }
}

type MessageOf<O extends SvpOp> = Extract<SvpMessage, { op: O }>;

/** VL2 and VL3 lookups and their answers, and SHOOTDOWN (laid out as VL2_REQ). */
function encodeLookupPayload(msg: MessageOf<SvpOp.VL2_REQ | SvpOp.SHOOTDOWN | SvpOp.VL2_ACK | SvpOp.VL3_REQ | SvpOp.VL3_ACK>): Buffer {
  switch (msg.op) {
    case SvpOp.VL2_REQ:
    case SvpOp.SHOOTDOWN: {
      checkBytes('mac', msg.mac, 6);
      checkU32('vnet id', msg.vnetId);
      const b = Buffer.alloc(12);
      b.set(msg.mac, 0);
      b.writeUInt32BE(msg.vnetId, 8);
      return b;
    }
    case SvpOp.VL2_ACK: {
      checkU16('VL2 status', msg.status);
      checkU16('port', msg.port);
      checkBytes('ip', msg.ip, 16);
      const b = Buffer.alloc(VL2_ACK_BYTES);
      b.writeUInt16BE(msg.status, 0);
      b.writeUInt16BE(msg.port, 2);
      b.set(msg.ip, 4);
      return b;
    }
    case SvpOp.VL3_REQ: {
      checkBytes('ip', msg.ip, 16);
      checkU32('type', msg.type);
      checkU32('vnet id', msg.vnetId);
      const b = Buffer.alloc(VL3_REQ_BYTES);
      b.set(msg.ip, 0);
      b.writeUInt32BE(msg.type, 16);
      b.writeUInt32BE(msg.vnetId, 20);
      return b;
    }
    case SvpOp.VL3_ACK: {
      checkU32('status', msg.status);
      checkBytes('mac', msg.mac, 6);
      checkU16('port', msg.port);
      checkBytes('ip', msg.ip, 16);
      const b = Buffer.alloc(VL3_ACK_BYTES);
      b.writeUInt32BE(msg.status, 0);
      b.set(msg.mac, 4);
      b.writeUInt16BE(msg.port, 10);
      b.set(msg.ip, 12);
      return b;
    }
  }
}

/** BULK_REQ and its answer (status, type, the data as is). */
function encodeBulkPayload(msg: MessageOf<SvpOp.BULK_REQ | SvpOp.BULK_ACK>): Buffer {
  switch (msg.op) {
    case SvpOp.BULK_REQ: {
      checkU32('type', msg.type);
      const b = Buffer.alloc(BULK_REQ_BYTES);
      b.writeUInt32BE(msg.type, 0);
      return b;
    }
    case SvpOp.BULK_ACK: {
      checkU32('status', msg.status);
      checkU32('type', msg.type);
      const b = Buffer.alloc(8 + msg.data.length);
      b.writeUInt32BE(msg.status, 0);
      b.writeUInt32BE(msg.type, 4);
      b.set(msg.data, 8);
      return b;
    }
  }
}

/** The shootdown log: LOG_REQ and its entries, LOG_RM and its acknowledgement. */
function encodeLogPayload(msg: MessageOf<SvpOp.LOG_REQ | SvpOp.LOG_ACK | SvpOp.LOG_RM | SvpOp.LOG_RM_ACK>): Buffer {
  switch (msg.op) {
    case SvpOp.LOG_REQ: {
      checkU32('count', msg.count);
      checkBytes('ip', msg.ip, 16);
      const b = Buffer.alloc(LOG_REQ_BYTES);
      b.writeUInt32BE(msg.count, 0);
      b.set(msg.ip, 4);
      return b;
    }
    case SvpOp.LOG_ACK: {
      checkU32('status', msg.status);
      let size = 4;
      for (const e of msg.entries) size += logEntryBytes(e);
      const b = Buffer.alloc(size);
      b.writeUInt32BE(msg.status, 0);
      let off = 4;
      for (const e of msg.entries) off = writeLogEntry(b, off, e);
      return b;
    }
    case SvpOp.LOG_RM: {
      const b = Buffer.alloc(4 + 16 * msg.ids.length);
      b.writeUInt32BE(msg.ids.length, 0);
      msg.ids.forEach((id, i) => {
        checkBytes('log id', id, 16);
        b.set(id, 4 + 16 * i);
      });
      return b;
    }
    case SvpOp.LOG_RM_ACK: {
      checkU32('status', msg.status);
      const b = Buffer.alloc(LOG_RM_ACK_BYTES);
      b.writeUInt32BE(msg.status, 0);
      return b;
    }
  }
}

/** A complete frame (header, payload, CRC) for a message. */
export function encodeMessage(msg: SvpMessage, id: number): Buffer {
  return encodeFrame(msg.op, id, encodePayload(msg));
}

/**
 * Parses a frame's payload into its message. Throws SvpProtocolError('bad_size') when the
 * payload length does not fit the op (including LOG_RM whose length is not 4 + 16·count),
 * 'unknown_op' for ops outside v1. Buffers in the result are copies.
 */
export function decodeMessage(frame: Pick<Frame, 'op' | 'payload'>): SvpMessage {
  const { op, payload: p } = frame;
  const want = fixedSize(op);
  if (want !== undefined && p.length !== want)
    throw new SvpProtocolError('bad_size', `${opName(op)} payload must be ${want} bytes, got ${p.length}`);
  switch (op) {
    case SvpOp.PING:
      return { op };
    case SvpOp.PONG:
      return { op };
    case SvpOp.VL2_REQ:
      return { op, mac: Buffer.from(p.subarray(0, 6)), vnetId: p.readUInt32BE(8) };
    case SvpOp.SHOOTDOWN:
      return { op, mac: Buffer.from(p.subarray(0, 6)), vnetId: p.readUInt32BE(8) };
    case SvpOp.VL2_ACK:
      return { op, status: p.readUInt16BE(0), port: p.readUInt16BE(2), ip: Buffer.from(p.subarray(4, 20)) };
    case SvpOp.VL3_REQ:
      return { op, ip: Buffer.from(p.subarray(0, 16)), type: p.readUInt32BE(16), vnetId: p.readUInt32BE(20) };
    case SvpOp.VL3_ACK:
      return {
        op,
        status: p.readUInt32BE(0),
        mac: Buffer.from(p.subarray(4, 10)),
        port: p.readUInt16BE(10),
        ip: Buffer.from(p.subarray(12, 28)),
      };
    case SvpOp.BULK_REQ:
      return { op, type: p.readUInt32BE(0) };
    case SvpOp.BULK_ACK:
      if (p.length < 8) throw new SvpProtocolError('bad_size', `BULK_ACK payload must be at least 8 bytes, got ${p.length}`);
      return { op, status: p.readUInt32BE(0), type: p.readUInt32BE(4), data: Buffer.from(p.subarray(8)) };
    case SvpOp.LOG_REQ:
      return { op, count: p.readUInt32BE(0), ip: Buffer.from(p.subarray(4, 20)) };
    case SvpOp.LOG_ACK:
      if (p.length < 4) throw new SvpProtocolError('bad_size', `LOG_ACK payload must be at least 4 bytes, got ${p.length}`);
      return { op, status: p.readUInt32BE(0), entries: decodeLogEntries(p, 4) };
    case SvpOp.LOG_RM: {
      const n = logRmCount(p);
      const ids: Buffer[] = [];
      for (let i = 0; i < n; i++) ids.push(Buffer.from(p.subarray(4 + 16 * i, 20 + 16 * i)));
      return { op, ids };
    }
    case SvpOp.LOG_RM_ACK:
      return { op, status: p.readUInt32BE(0) };
    default:
      throw new SvpProtocolError('unknown_op', `unknown ${opName(op)}`);
  }
}

/** The id count of a LOG_RM payload, checking its length is exactly 4 + 16·count. */
export function logRmCount(p: Buffer): number {
  if (p.length < 4) throw new SvpProtocolError('bad_size', `LOG_RM payload must be at least 4 bytes, got ${p.length}`);
  const n = p.readUInt32BE(0);
  if (p.length !== 4 + 16 * n)
    throw new SvpProtocolError('bad_size', `LOG_RM with count ${n} must carry ${4 + 16 * n} bytes, got ${p.length}`);
  return n;
}

// ---------------------------------------------------------------------------------------
// Fast encoders for the server's hot path (no intermediate objects)

const ZERO16 = Buffer.alloc(16);
const ZERO6 = Buffer.alloc(6);

export function encodePong(id: number): Buffer {
  return sealFrame(allocFrame(SvpOp.PONG, id, 0));
}

/** VL2_ACK; ip null means zero-filled (NOTFOUND and friends). */
export function encodeVl2Ack(id: number, status: number, port: number, ip: Uint8Array | null): Buffer {
  const b = allocFrame(SvpOp.VL2_ACK, id, VL2_ACK_BYTES);
  b.writeUInt16BE(status, 16);
  b.writeUInt16BE(port, 18);
  b.set(ip ?? ZERO16, 20);
  return sealFrame(b);
}

/** VL3_ACK; mac/ip null mean zero-filled. */
export function encodeVl3Ack(id: number, status: number, mac: Uint8Array | null, port: number, ip: Uint8Array | null): Buffer {
  const b = allocFrame(SvpOp.VL3_ACK, id, VL3_ACK_BYTES);
  b.writeUInt32BE(status, 16);
  b.set(mac ?? ZERO6, 20);
  b.writeUInt16BE(port, 26);
  b.set(ip ?? ZERO16, 28);
  return sealFrame(b);
}

export function encodeLogRmAck(id: number, status: number): Buffer {
  const b = allocFrame(SvpOp.LOG_RM_ACK, id, LOG_RM_ACK_BYTES);
  b.writeUInt32BE(status, 16);
  return sealFrame(b);
}

export function encodeBulkAck(id: number, status: number, type: number): Buffer {
  const b = allocFrame(SvpOp.BULK_ACK, id, 8);
  b.writeUInt32BE(status, 16);
  b.writeUInt32BE(type >>> 0, 20);
  return sealFrame(b);
}

/** LOG_ACK from pre-encoded entries. */
export function encodeLogAck(id: number, status: number, entries: readonly Uint8Array[]): Buffer {
  let size = 4;
  for (const e of entries) size += e.length;
  const b = allocFrame(SvpOp.LOG_ACK, id, size);
  b.writeUInt32BE(status, 16);
  let off = 20;
  for (const e of entries) {
    b.set(e, off);
    off += e.length;
  }
  return sealFrame(b);
}
