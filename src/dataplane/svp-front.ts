/**
 * The typed face of the addon's SVP front end (native/src/svp_front.c, svp_index.c):
 * plaintext SVP connections read, answered (PING, VL2, VL3) and written in C on the main
 * thread's loop, from the mapping index's own tables. src/svp/native-front.ts uses it.
 */
import { nativeAddon, nativeHas } from './addon.js';

/** Opaque handles made by the addon. */
export type SvpTablesHandle = { readonly __svpTables: unique symbol };
export type SvpIndexHandle = { readonly __svpIndex: unique symbol };
export type SvpFrontHandle = { readonly __svpFront: unique symbol };

/** What a connection tells JS (the `kind` of onEvent). */
export enum SvpEvent {
  /** arg: a Buffer of frames for the JS connection (not a lookup, or bad input). */
  DATA = 0,
  END = 1,
  DRAIN = 2,
  CLOSE = 3,
  /** arg: the errno of the failed read or send. */
  ERROR = 4,
  /** The first byte arrived (the connection is no longer silent). */
  FIRST_BYTE = 5,
}

export interface SvpFrontAddon {
  svpTablesCreate(): SvpTablesHandle;
  svpTablesStorage(t: SvpTablesHandle, which: number, keys: Uint32Array, vals: Uint32Array, used: Uint8Array): void;
  svpTablesUnderlay(t: SvpTablesHandle, node: number, ip: Buffer | null, port: number): void;
  svpIndexCreate(): SvpIndexHandle;
  svpIndexUse(ix: SvpIndexHandle, t: SvpTablesHandle): void;
  svpFrontCreate(
    ix: SvpIndexHandle,
    onEvent: (id: number, kind: SvpEvent, arg: Buffer | number) => void,
    maxFrameBytes: number,
    backlogBound: number,
    highWaterMark: number,
    latencyBounds: readonly number[],
  ): SvpFrontHandle;
  svpFrontRelease(f: SvpFrontHandle): void;
  /** Takes over a connected TCP socket (dup'ed; close the original). Returns its id. */
  svpAdopt(f: SvpFrontHandle, fd: number): number;
  /** Queues and sends; returns the unsent bytes, -1 when the connection is gone or ending. */
  svpWrite(f: SvpFrontHandle, id: number, buf: Buffer): number;
  svpPending(f: SvpFrontHandle, id: number): number;
  svpNeedDrain(f: SvpFrontHandle, id: number): boolean;
  svpPause(f: SvpFrontHandle, id: number): void;
  svpResume(f: SvpFrontHandle, id: number): void;
  svpEnd(f: SvpFrontHandle, id: number): void;
  svpDestroy(f: SvpFrontHandle, id: number): void;
  svpIdleMs(f: SvpFrontHandle, id: number): number;
  /** Counts since the last call; layout in svp_front.c's js_stats. */
  svpStats(f: SvpFrontHandle): Float64Array;
}

/** Whether this build of the addon has the SVP front end. */
export function svpFrontAvailable(): boolean {
  return nativeHas('svpFrontCreate', 'svpAdopt', 'svpTablesCreate');
}

export function svpFrontAddon(): SvpFrontAddon {
  return nativeAddon<SvpFrontAddon>();
}
