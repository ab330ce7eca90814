/**
 * CPU profiles of one phase of bench/scale (--cpu-prof DIR): the controller runs with
 * node's --cpu-prof for its whole life, so its profile is cut afterwards to the phase's
 * window (V8's sample clock and process.hrtime are both the monotonic clock); this
 * process is profiled through the inspector for the phase only.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';

interface Profile {
  nodes: unknown[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** The monotonic clock in µs, as V8 stamps profile samples. */
export const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);

/** node flags for a child to profile itself into dir. */
export function childProfileArgs(dir: string): string[] {
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}

/** Cuts the newest profile in dir whose process was pid (node names it CPU.<date>.<pid>.…) to [fromUs, toUs]. */
export function cutChildProfile(dir: string, pid: number, fromUs: number, toUs: number, out: string): boolean {
  const file = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile') && f.split('.')[3] === String(pid)).sort().pop();
  if (!file) return false;
  const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile;
  const samples: number[] = [];
  const deltas: number[] = [];
  let t = p.startTime;
  let last = fromUs;
  p.samples.forEach((id, i) => {
    t += p.timeDeltas[i] ?? 0;
    if (t < fromUs || t > toUs) return;
    samples.push(id);
    deltas.push(t - last);
    last = t;
  });
  writeFileSync(out, JSON.stringify({ ...p, samples, timeDeltas: deltas, startTime: fromUs, endTime: toUs }));
  return true;
}

/** Profiles this process until the returned stop() writes the profile to out. */
export async function profileSelf(): Promise<(out: string) => Promise<void>> {
  const s = new Session();
  s.connect();
  await s.post('Profiler.enable');
  await s.post('Profiler.start');
  return async (out) => {
    const { profile } = await s.post('Profiler.stop');
    writeFileSync(out, JSON.stringify(profile));
    s.disconnect();
  };
}
