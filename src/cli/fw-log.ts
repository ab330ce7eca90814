/**
 * `rhumb fw log [--file PATH] [--follow] [--instance UUID] [--rule UUID]`: the connections
 * logged rules allowed or blocked on this node (the agent's flow log, src/agent/flowlog.ts),
 * one JSON object a line, filtered; --follow keeps printing new ones (across rotations).
 */
import { open, stat } from 'node:fs/promises';
import type { Command } from 'commander';

export const DEFAULT_FLOW_LOG = '/var/log/rhumb/fw-flows.jsonl';

export interface FlowLogFilter {
  instance?: string;
  rule?: string;
}

/** Whether a line passes the filter (lines that are not JSON objects never do). Pure. */
export function flowLineMatches(line: string, f: FlowLogFilter): boolean {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return false;
  }
  if (typeof v !== 'object' || v === null) return false;
  const rec = v as Record<string, unknown>;
  if (f.instance && rec.instance !== f.instance.toLowerCase()) return false;
  if (f.rule && rec.rule !== f.rule.toLowerCase()) return false;
  return true;
}

interface LogFlags extends FlowLogFilter {
  file: string;
  follow?: boolean;
  interval: number;
}

/** Prints matching lines of path from offset on; returns the new offset and any partial last line. */
async function drain(path: string, offset: number, partial: string, f: FlowLogFilter, out: (t: string) => void): Promise<{ offset: number; partial: string }> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size <= offset) return { offset, partial };
    const buf = Buffer.alloc(size - offset);
    await fh.read(buf, 0, buf.length, offset);
    const lines = (partial + buf.toString('utf8')).split('\n');
    const rest = lines.pop() ?? '';
    for (const l of lines) if (flowLineMatches(l, f)) out(l);
    return { offset: size, partial: rest };
  } finally {
    await fh.close();
  }
}

async function follow(flags: LogFlags, out: (t: string) => void, stop: AbortSignal): Promise<void> {
  let ino = -1;
  let pos = { offset: 0, partial: '' };
  while (!stop.aborted) {
    const s = await stat(flags.file).catch(() => undefined);
    if (s) {
      // Rotated (a new file under the name) or truncated: start over on it.
      if (s.ino !== ino || s.size < pos.offset) {
        ino = s.ino;
        pos = { offset: 0, partial: '' };
      }
      pos = await drain(flags.file, pos.offset, pos.partial, flags, out).catch(() => pos);
    }
    await new Promise((r) => setTimeout(r, flags.interval));
  }
}

export function registerFwLog(fw: Command, io: { out: (t: string) => void; err: (t: string) => void; fail: (code: number) => void }): void {
  fw.command('log')
    .description("connections logged rules allowed or blocked on this node (the agent's flow log)")
    .option('--file <path>', "the agent's flow log (its --flow-log)", DEFAULT_FLOW_LOG)
    .option('--follow', 'keep printing new connections')
    .option('--instance <uuid>', 'only this instance')
    .option('--rule <uuid>', 'only this rule')
    .option('--interval <ms>', 'how often --follow looks for more', (v) => Math.max(20, Number(v) || 200), 200)
    .action(async (f: LogFlags) => {
      if (f.follow) {
        const stop = new AbortController();
        const end = () => stop.abort();
        process.once('SIGINT', end);
        process.once('SIGTERM', end);
        await follow(f, io.out, stop.signal);
        return;
      }
      try {
        await drain(f.file, 0, '', f, io.out);
      } catch (err) {
        io.err(`error: no flow log at ${f.file}: ${(err as Error).message}`);
        io.fail(1);
      }
    });
}
