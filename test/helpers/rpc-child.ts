/**
 * A child process inside a lab namespace that answers JSON-line calls
 * ({"id","op","args"} in, {"id","ok","result"|"error"} out, {"ready":true} first): the
 * test/netns fixtures that drive native code from inside a namespace use it.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { NetnsLab } from './netns.js';

export interface RpcError {
  name?: string;
  code?: string;
  errno?: number;
  syscall?: string;
  message: string;
}

export interface Rpc {
  child: ChildProcess;
  call<T = unknown>(op: string, ...args: unknown[]): Promise<T>;
  /** Resolves the error a call rejected with (fails the test when it succeeded). */
  fails(op: string, ...args: unknown[]): Promise<RpcError>;
}

export async function startRpc(lab: NetnsLab, ns: string, fixture: string): Promise<Rpc> {
  const child = lab.spawnIn(ns, [process.execPath, '--import', 'tsx', fixture], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const waiting = new Map<number, (m: { ok: boolean; result?: unknown; error?: RpcError }) => void>();
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const m = JSON.parse(line) as { ready?: boolean; id?: number; ok: boolean; result?: unknown; error?: RpcError };
    if (m.ready) return ready();
    waiting.get(m.id!)?.(m);
    waiting.delete(m.id!);
  });
  await Promise.race([
    isReady,
    new Promise((_, reject) => child.once('exit', () => reject(new Error(`rpc child exited: ${stderr}`)))),
  ]);
  let next = 1;
  const send = (op: string, args: unknown[]) =>
    new Promise<{ ok: boolean; result?: unknown; error?: RpcError }>((resolve) => {
      const id = next++;
      waiting.set(id, resolve);
      child.stdin!.write(`${JSON.stringify({ id, op, args })}\n`);
    });
  return {
    child,
    async call<T>(op: string, ...args: unknown[]): Promise<T> {
      const m = await send(op, args);
      if (!m.ok) throw Object.assign(new Error(m.error!.message), m.error);
      return m.result as T;
    },
    async fails(op: string, ...args: unknown[]): Promise<RpcError> {
      const m = await send(op, args);
      assert.equal(m.ok, false, `${op} should have failed, returned ${JSON.stringify(m.result)}`);
      return m.error!;
    },
  };
}

