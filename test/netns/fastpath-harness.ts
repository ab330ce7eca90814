/**
 * Starts test/netns/fastpath-node.fixture.ts inside a namespace and talks to it over
 * JSON lines (counters, table operations); used by the fast-path netns tests and the bench.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Counters, FastPathMiss, FastPathThreads, NicSpec, Offload, OffloadState, TableOp } from '../../src/dataplane/fastpath.js';
import type { NetnsLab } from '../helpers/netns.js';

export interface FastPathNodeConfig {
  underlayIp: string;
  underlayMtu?: number;
  disable?: Offload[];
  threads?: FastPathThreads;
  nics: NicSpec[];
  directory: Array<{ vnet: number; ip: string; mac: string; underlay: string; vlan?: number }>;
  /** Underlay addresses VXLAN is accepted from; default: the directory's underlays. */
  peers?: string[];
}

export interface FastPathNode {
  child: ChildProcess;
  offloads: OffloadState;
  misses: FastPathMiss[];
  /** Misses the fixture has answered (its table update made), in order. */
  answered: FastPathMiss[];
  counters(): Promise<{ engine: Counters; nics: Counters[] }>;
  ops(ops: TableOp[]): Promise<void>;
  /** Replaces the underlay addresses VXLAN is accepted from. */
  peers(addresses: string[]): Promise<void>;
  /** Removes NIC id (its TAP goes with it). */
  removeNic(id: number): Promise<void>;
  stop(): Promise<void>;
}

const FIXTURE = join(fileURLToPath(new URL('.', import.meta.url)), 'fastpath-node.fixture.ts');

export async function startFastPathNode(lab: NetnsLab, ns: string, cfg: FastPathNodeConfig): Promise<FastPathNode> {
  const child = lab.spawnIn(ns, [process.execPath, '--import', 'tsx', FIXTURE, JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'pipe'] });
  const misses: FastPathMiss[] = [];
  const answered: FastPathMiss[] = [];
  const waiters: Array<(msg: Record<string, unknown>) => boolean> = [];
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const rl = createInterface({ input: child.stdout! });
  rl.on('line', (line) => {
    let msg: Record<string, unknown>;
    try {
      msg = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if (msg.miss) misses.push(msg.miss as FastPathMiss);
    if (msg.answered) answered.push(msg.answered as FastPathMiss);
    const i = waiters.findIndex((w) => w(msg));
    if (i >= 0) waiters.splice(i, 1);
  });
  const next = <T>(pick: (m: Record<string, unknown>) => T | undefined, what: string): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`fast-path node: no ${what} (stderr: ${stderr})`)), 15_000);
      const onExit = (): void => reject(new Error(`fast-path node exited (stderr: ${stderr})`));
      child.once('exit', onExit);
      waiters.push((m) => {
        const v = pick(m);
        if (v === undefined) return false;
        clearTimeout(timer);
        child.off('exit', onExit);
        resolve(v);
        return true;
      });
    });
  const ready = await next((m) => (m.ready ? (m as { offloads: OffloadState }) : undefined), 'ready line');
  const send = (o: unknown): void => void child.stdin!.write(`${JSON.stringify(o)}\n`);
  return {
    child,
    offloads: ready.offloads,
    misses,
    answered,
    counters: () => {
      const p = next((m) => (m.counters as { engine: Counters; nics: Counters[] } | undefined), 'counters');
      send({ counters: true });
      return p;
    },
    ops: async (ops) => {
      const p = next((m) => (m.ok || m.error ? m : undefined), 'ops answer');
      send({ ops });
      const r = await p;
      if (r.error) throw new Error(String(r.error));
    },
    peers: async (addresses) => {
      const p = next((m) => (m.ok || m.error ? m : undefined), 'peers answer');
      send({ peers: addresses });
      const r = await p;
      if (r.error) throw new Error(String(r.error));
    },
    removeNic: async (id) => {
      const p = next((m) => (m.ok || m.error ? m : undefined), 'remove answer');
      send({ remove: id });
      const r = await p;
      if (r.error) throw new Error(String(r.error));
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.stdin!.end();
        setTimeout(() => child.kill('SIGKILL'), 3000);
      }),
  };
}
