/**
 * SVP in `rhumb trace`: every SVP frame in one TCP segment, described by the SVP codec.
 * There is no stream reassembly: frames cut by segment boundaries are marked as fragments.
 */
import { ipFromBytes, macFromBytes } from '../../net/addr.js';
import {
  HEADER_BYTES as SVP_HEADER_BYTES,
  LogType,
  SVP_VERSION,
  SvpOp,
  decodeMessage,
  frameCrc,
  isRequestOp,
  isResponseOp,
  opName,
  statusName,
} from '../../svp/codec.js';
import type { SvpInfo, SvpMessageInfo } from './records.js';

function idHex(n: number): string {
  return `0x${(n >>> 0).toString(16).padStart(8, '0')}`;
}

function looksLikeSvpHeader(b: Buffer, off: number): boolean {
  const op = b.readUInt16BE(off + 2);
  return b.readUInt16BE(off) === SVP_VERSION && (isRequestOp(op) || isResponseOp(op));
}

/**
 * Every SVP frame in one TCP segment's payload. A segment that starts mid-frame (the rest
 * of a frame sent earlier) shows up as a leading "fragment"; a frame that continues in the
 * next segment is marked with `fragment: { have, need }`.
 */
export function decodeSvpSegment(payload: Buffer): SvpInfo {
  const messages: SvpMessageInfo[] = [];
  let off = 0;
  while (off < payload.length) {
    const left = payload.length - off;
    if (left < SVP_HEADER_BYTES) {
      messages.push({ op: 'fragment', fragment: { have: left, need: SVP_HEADER_BYTES } });
      break;
    }
    if (!looksLikeSvpHeader(payload, off)) {
      // Mid-stream bytes: we cannot find the next frame boundary without reassembly.
      messages.push({ op: 'fragment', fragment: { have: left, need: 0 } });
      break;
    }
    const op = payload.readUInt16BE(off + 2);
    const size = payload.readUInt32BE(off + 4);
    const info: SvpMessageInfo = { op: opName(op), opCode: op, id: idHex(payload.readUInt32BE(off + 8)), size };
    messages.push(info);
    const total = SVP_HEADER_BYTES + size;
    if (left < total) {
      info.fragment = { have: left, need: total };
      break;
    }
    const header = payload.subarray(off, off + SVP_HEADER_BYTES);
    const body = payload.subarray(off + SVP_HEADER_BYTES, off + total);
    info.crcOk = frameCrc(header, body) === payload.readUInt32BE(off + 12);
    describeSvpMessage(info, op, body);
    off += total;
  }
  return { messages };
}

function describeSvpMessage(info: SvpMessageInfo, op: number, payload: Buffer): void {
  let msg;
  try {
    msg = decodeMessage({ op, payload });
  } catch (err) {
    info.error = (err as Error).message;
    return;
  }
  switch (msg.op) {
    case SvpOp.VL2_REQ:
    case SvpOp.SHOOTDOWN:
      info.mac = macFromBytes(msg.mac);
      info.vnet = msg.vnetId;
      return;
    case SvpOp.VL2_ACK:
      info.status = statusName(msg.status);
      info.ip = ipFromBytes(msg.ip);
      info.port = msg.port;
      return;
    case SvpOp.VL3_REQ:
      info.ip = ipFromBytes(msg.ip);
      info.type = msg.type;
      info.vnet = msg.vnetId;
      return;
    case SvpOp.VL3_ACK:
      info.status = statusName(msg.status);
      info.mac = macFromBytes(msg.mac);
      info.ip = ipFromBytes(msg.ip);
      info.port = msg.port;
      return;
    case SvpOp.BULK_REQ:
      info.type = msg.type;
      return;
    case SvpOp.BULK_ACK:
      info.status = statusName(msg.status);
      info.type = msg.type;
      return;
    case SvpOp.LOG_REQ:
      info.count = msg.count;
      info.ip = ipFromBytes(msg.ip);
      return;
    case SvpOp.LOG_ACK: {
      info.status = statusName(msg.status);
      let vl2 = 0;
      let vl3 = 0;
      const vnets = new Set<number>();
      for (const e of msg.entries) {
        if (e.type === LogType.VL2) vl2++;
        else vl3++;
        vnets.add(e.vnetId);
      }
      info.entries = { vl2, vl3 };
      info.vnets = [...vnets];
      return;
    }
    case SvpOp.LOG_RM:
      info.ids = msg.ids.length;
      return;
    case SvpOp.LOG_RM_ACK:
      info.status = statusName(msg.status);
      return;
    case SvpOp.PING:
    case SvpOp.PONG:
      return;
  }
}
