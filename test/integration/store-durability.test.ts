/**
 * Crash safety of LevelStore: a child process commits multi-key batches and is SIGKILLed
 * mid-burst. Every acknowledged commit must survive, and no batch may be half-applied.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { LevelStore, StoreLockedError } from '../../src/store/leveldb.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const SCRIPT = join(ROOT, 'test/helpers/store-burst.ts');
const GUARD_MS = 60_000;

interface Ack {
  revision: number;
  n: number;
}

/**
 * Runs the burst child until it has acknowledged `killAfter` commits, calls whileRunning
 * once it is ready, SIGKILLs it, and returns every acknowledgement it printed.
 */
async function burstAndKill(dir: string, ns: string, killAfter: number, whileRunning?: () => Promise<void>): Promise<Ack[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, dir, ns, '8'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const acks: Ack[] = [];
  const guard = setTimeout(() => child.kill('SIGKILL'), GUARD_MS);
  try {
    let killed = false;
    for await (const line of createInterface({ input: child.stdout })) {
      if (line === 'ready') {
        if (whileRunning) await whileRunning();
        continue;
      }
      const m = /^ack (\d+) (\d+)$/.exec(line);
      if (!m) continue;
      acks.push({ revision: Number(m[1]), n: Number(m[2]) });
      if (!killed && acks.length >= killAfter) {
        child.kill('SIGKILL');
        killed = true;
      }
    }
    const how = await exited;
    assert.equal(how, 'SIGKILL', `child ended by ${String(how)} before being killed; stderr:\n${stderr}`);
  } finally {
    clearTimeout(guard);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
  return acks;
}

async function verify(store: LevelStore, ns: string, acks: Ack[]): Promise<void> {
  const objs = new Map((await store.range({ prefix: `${ns}/obj/` })).kvs.map((kv) => [kv.key.slice(`${ns}/obj/`.length), kv]));
  const idxs = new Map((await store.range({ prefix: `${ns}/idx/` })).kvs.map((kv) => [kv.key.slice(`${ns}/idx/`.length), kv]));

  // All-or-nothing: an object and its index exist together, written by the same commit.
  assert.deepEqual([...objs.keys()].sort(), [...idxs.keys()].sort(), 'object without index or index without object');
  for (const [n, obj] of objs) {
    assert.equal(idxs.get(n)?.modRevision, obj.modRevision, `batch ${n} split across revisions`);
    assert.equal(idxs.get(n)?.value, `${ns}/obj/${n}`);
  }

  // Every acknowledged commit is there, unless a later applied batch deleted it.
  for (const { revision, n } of acks) {
    const obj = objs.get(String(n));
    if (obj) {
      assert.equal(obj.modRevision, revision, `batch ${n} acknowledged at ${revision}`);
      assert.deepEqual(JSON.parse(obj.value), { n });
    } else {
      const deleter = n + 3;
      assert.ok(deleter % 5 === 0 && objs.has(String(deleter)), `acknowledged batch ${n} (revision ${revision}) is missing`);
    }
  }
  // A deleting batch that landed took its victim with it.
  for (const n of objs.keys()) if (Number(n) % 5 === 0 && Number(n) > 3) assert.equal(objs.has(String(Number(n) - 3)), false);
  const maxAcked = Math.max(0, ...acks.map((a) => a.revision));
  assert.ok((await store.revision()) >= maxAcked, 'store revision went backwards');
}

describe('LevelStore crash safety', () => {
  it('keeps every acknowledged batch, whole, across SIGKILL', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rhumb-durability-'));
    try {
      const rounds: Array<{ ns: string; acks: Ack[] }> = [];
      const killPoints = [150, 400, 60, 250];
      for (let round = 0; round < killPoints.length; round++) {
        const ns = `round${round}`;
        const acks = await burstAndKill(dir, ns, killPoints[round] as number, round === 0
          ? async () => {
              // While the child holds the directory, nobody else may open it.
              await assert.rejects(LevelStore.open(dir), (err: Error) => err instanceof StoreLockedError);
            }
          : undefined);
        assert.ok(acks.length >= (killPoints[round] as number), `round ${round}: only ${acks.length} acks`);
        rounds.push({ ns, acks });

        const store = await LevelStore.open(dir);
        try {
          // Revisions keep counting across crashes: later rounds start after earlier ones.
          const prev = rounds.at(-2);
          if (prev) assert.ok(Math.min(...acks.map((a) => a.revision)) > Math.max(...prev.acks.map((a) => a.revision)));
          for (const r of rounds) await verify(store, r.ns, r.acks);
        } finally {
          await store.close();
        }
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
