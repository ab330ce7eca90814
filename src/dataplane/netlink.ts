/**
 * Typed face of the native rtnetlink module (native/src/netlink.c): the kernel backend's
 * link to the Linux vxlan device. Misses (the kernel asking "who has this IP?" or "where
 * is this MAC?") arrive as events on the libuv loop; neighbour and FDB entries are
 * installed, removed and listed with synchronous netlink round trips — control plane
 * only, nothing here runs per packet.
 *
 * Everything works in the network namespace of the calling process: a vxlan device in
 * another namespace needs a process (or thread) started inside it.
 *
 *   const rt = Rtnetlink.open((miss) => { ... }, { ifindexes: [vx] });
 *   rt.neighSet(vx, '10.0.0.7', '02:08:20:aa:bb:cc');            // IP -> MAC, permanent
 *   rt.fdbSet(vx, '02:08:20:aa:bb:cc', '198.18.0.2', { vni: 4242 }); // MAC -> VTEP
 *   rt.close();
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Kernel neighbour state (NUD_*), by name. */
export type NeighState = 'permanent' | 'noarp' | 'reachable' | 'stale' | 'delay' | 'probe' | 'incomplete' | 'failed' | 'none';

/** How an entry is installed: permanent never ages; reachable decays to stale (and then misses again). */
export type InstallState = 'permanent' | 'reachable';

/** The kernel wants the MAC of an overlay IP (ARP / neighbour solicitation reached the vxlan device). */
export interface L3Miss {
  kind: 'l3';
  ifindex: number;
  ip: string;
  /** Present for 'resolving' events of stale entries: the MAC the kernel had. */
  mac?: string;
  /**
   * 'miss': RTM_GETNEIGH from the vxlan miss path (or app_solicit).
   * 'resolving': RTM_NEWNEIGH of an IP entry that is incomplete/stale/delay/probe — e.g. a
   * 'reachable' entry we installed went stale.
   */
  reason: 'miss' | 'resolving';
}

/** The kernel has no FDB entry (VTEP) for a destination MAC; the frame was dropped. */
export interface L2Miss {
  kind: 'l2';
  ifindex: number;
  mac: string;
  reason: 'miss';
}

export type MissEvent = L3Miss | L2Miss;

export interface NeighEntry {
  ifindex: number;
  ip: string;
  mac?: string;
  state: NeighState;
  router: boolean;
}

export interface FdbEntry {
  ifindex: number;
  mac: string;
  /** Remote VTEP (vxlan entries). */
  dst?: string;
  port?: number;
  vni?: number;
  state: NeighState;
  /** The device's own table (vxlan FDB, NTF_SELF) rather than its bridge master's. */
  self: boolean;
  /** The bridge holding the entry, for bridge-port entries. */
  masterIfindex?: number;
}

export interface FdbOptions {
  /** UDP destination port, when not the device's dstport. */
  port?: number;
  /** VNI, when not the device's id. */
  vni?: number;
  state?: InstallState;
}

/** Which remote of an FDB entry fdbDel removes: the kernel matches dst, port and vni. */
export interface FdbRemoteMatch {
  /** Default: the device's dstport. */
  port?: number;
  /** Default: the device's VNI. */
  vni?: number;
  /** The entry the bridge learned on this port (its master's table), not the device's own. */
  master?: boolean;
}

export interface RtnetlinkOptions {
  /** Deliver misses only for these devices (default: every device in the namespace). */
  ifindexes?: readonly number[];
  /** The kernel dropped notifications (ENOBUFS): some misses were lost. */
  onOverflow?: () => void;
  /** The notification socket failed and monitoring stopped; without a handler it is thrown. */
  onError?: (err: RtnetlinkError) => void;
}

/** A kernel (or socket) error; code is the errno name, errno is negative as in Node. */
export interface RtnetlinkError extends Error {
  code: string;
  errno: number;
  syscall?: string;
}

type NativeEvent =
  | MissEvent
  | { kind: 'overflow' }
  | { kind: 'error'; code: string; errno: number; message: string };

interface NativeRtnlSocket {
  neighSet(ifindex: number, ip: string, mac: string, state?: InstallState): void;
  neighDel(ifindex: number, ip: string): void;
  fdbSet(ifindex: number, mac: string, dst: string, opts?: FdbOptions): void;
  fdbDel(ifindex: number, mac: string, dst?: string, opts?: FdbRemoteMatch): void;
  neighList(ifindex?: number): NeighEntry[];
  fdbList(ifindex?: number): FdbEntry[];
  setFilter(ifindexes: readonly number[] | null): void;
  close(): void;
}

/** The parts of build/Release/rhumb_native.node this module uses. */
export interface NativeNetlinkAddon {
  RtnlSocket: new (onEvent?: (ev: NativeEvent) => void) => NativeRtnlSocket;
  ifIndex(name: string): number;
}

let addon: NativeNetlinkAddon | undefined;

/** Loads the addon once: from the source tree (tsx) or from dist/ (compiled). */
function native(): NativeNetlinkAddon {
  if (addon) return addon;
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [join(here, '../../build/Release/rhumb_native.node'), join(here, '../../../build/Release/rhumb_native.node')];
  const path = candidates.find((p) => existsSync(p));
  if (!path) throw new Error(`rhumb native addon not built (looked for ${candidates.join(', ')}); run npm run build:native`);
  addon = createRequire(import.meta.url)(path) as NativeNetlinkAddon;
  return addon;
}

export function isRtnetlinkError(err: unknown): err is RtnetlinkError {
  return err instanceof Error && typeof (err as Partial<RtnetlinkError>).code === 'string' && typeof (err as Partial<RtnetlinkError>).errno === 'number';
}

function isAbsent(err: unknown): boolean {
  return isRtnetlinkError(err) && err.code === 'ENOENT';
}

/** Interface index by name in this network namespace; throws (code ENODEV) when absent. */
export function ifIndex(name: string): number {
  return native().ifIndex(name);
}

export class Rtnetlink {
  private readonly sock: NativeRtnlSocket;
  private isClosed = false;

  private constructor(onEvent: ((ev: NativeEvent) => void) | undefined) {
    const { RtnlSocket } = native();
    this.sock = onEvent ? new RtnlSocket(onEvent) : new RtnlSocket();
  }

  /**
   * Opens the request socket and, with onMiss, a RTNLGRP_NEIGH subscription polled on the
   * event loop (it keeps the loop alive until close()). An exception thrown by onMiss
   * surfaces as an uncaught exception, like any event handler's.
   */
  static open(onMiss?: (ev: MissEvent) => void, opts: RtnetlinkOptions = {}): Rtnetlink {
    const dispatch = onMiss
      ? (ev: NativeEvent): void => {
          switch (ev.kind) {
            case 'l2':
            case 'l3':
              onMiss(ev);
              return;
            case 'overflow':
              opts.onOverflow?.();
              return;
            case 'error': {
              const err = Object.assign(new Error(ev.message), { code: ev.code, errno: ev.errno }) as RtnetlinkError;
              if (opts.onError) opts.onError(err);
              else throw err;
            }
          }
        }
      : undefined;
    const rt = new Rtnetlink(dispatch);
    if (opts.ifindexes) rt.watch(opts.ifindexes);
    return rt;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Restricts miss delivery to these devices; null delivers every device's misses. */
  watch(ifindexes: readonly number[] | null): void {
    this.sock.setFilter(ifindexes);
  }

  /** IP -> MAC on a device (RTM_NEWNEIGH, create or replace). */
  neighSet(ifindex: number, ip: string, mac: string, state: InstallState = 'permanent'): void {
    this.sock.neighSet(ifindex, ip, mac, state);
  }

  /** Removes a neighbour entry; false when there was none. */
  neighDel(ifindex: number, ip: string): boolean {
    try {
      this.sock.neighDel(ifindex, ip);
      return true;
    } catch (err) {
      if (isAbsent(err)) return false;
      throw err;
    }
  }

  /**
   * MAC -> remote VTEP in the device's own FDB (AF_BRIDGE, NTF_SELF). A unicast MAC is
   * created or replaced (it moves to dst). The all-zeros and multicast MACs hold lists of
   * remotes (head-end replication): there dst is added to the list, since the kernel
   * refuses replace for them.
   */
  fdbSet(ifindex: number, mac: string, dst: string, opts: FdbOptions = {}): void {
    this.sock.fdbSet(ifindex, mac, dst, opts);
  }

  /**
   * Removes an FDB entry; false when the MAC had none. With match.master the entry the
   * bridge learned on this port goes instead of the device's own. With dst only that remote goes
   * (the whole entry when it was the last). Beware the kernel: a dst that matches no
   * remote (dst+port+vni, see FdbRemoteMatch) removes nothing and still succeeds.
   */
  fdbDel(ifindex: number, mac: string, dst?: string, match?: FdbRemoteMatch): boolean {
    try {
      if (dst === undefined && match === undefined) this.sock.fdbDel(ifindex, mac);
      else this.sock.fdbDel(ifindex, mac, dst, match ?? {});
      return true;
    } catch (err) {
      if (isAbsent(err)) return false;
      throw err;
    }
  }

  /** IPv4 and IPv6 neighbour entries, of one device or all. */
  neighList(ifindex?: number): NeighEntry[] {
    return ifindex === undefined ? this.sock.neighList() : this.sock.neighList(ifindex);
  }

  /** FDB entries (device-own and bridge), of one device or all. */
  fdbList(ifindex?: number): FdbEntry[] {
    return ifindex === undefined ? this.sock.fdbList() : this.sock.fdbList(ifindex);
  }

  ifIndex(name: string): number {
    return ifIndex(name);
  }

  /** Stops the subscription and closes both sockets; idempotent. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.sock.close();
  }
}
