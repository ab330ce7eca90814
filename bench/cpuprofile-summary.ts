/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): where the time goes, as text.
 *
 *   node --import tsx bench/cpuprofile-summary.ts FILE.cpuprofile [--top N] [--depth N] [--min PCT]
 *
 * Prints: time by area (rhumb's rooms of src/, each npm package, node internals, GC,
 * idle); the top functions by self time; rhumb's own functions by inclusive time (a
 * function counted once per sample however deep it recurses); and a top-down tree of the
 * busy (non-idle) samples, cut below --min percent and --depth levels.
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const argv = process.argv.slice(2);
const opt = (name: string, dflt: number): number => {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const file = argv.find((a) => a.endsWith('.cpuprofile'));
if (!file) throw new Error('usage: cpuprofile-summary.ts FILE.cpuprofile [--top N] [--depth N] [--min PCT]');
const TOP = opt('--top', 30);
const DEPTH = opt('--depth', 14);
const MIN_PCT = opt('--min', 1.5);

const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

/** A short place name: the path from src/ or node_modules/<pkg>/, or node's own. */
function place(url: string): string {
  if (url === '') return '';
  const src = url.lastIndexOf('/src/');
  if (src >= 0 && !url.includes('node_modules')) return url.slice(src + 1);
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  return url.replace(/^node:/, 'node:');
}

function frameName(f: CallFrame): string {
  const where = place(f.url);
  // tsx compiles each file to one line: a line number there says nothing.
  const line = f.lineNumber > 0 ? `:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'}${where ? ` ${where}${line}` : ''}`;
}

/** The area a frame belongs to: a room of src/, an npm package, node, or V8's own. */
function area(f: CallFrame): string {
  const u = f.url;
  if (u === '') return f.functionName.startsWith('(') ? f.functionName : '(native/V8)';
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = u.slice(nm + 'node_modules/'.length).split('/');
    return `npm:${rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  const src = u.lastIndexOf('/src/');
  if (src >= 0) return `rhumb:${u.slice(src + 5).split('/')[0]}`;
  if (u.startsWith('node:')) return `node:${u.slice(5).split('/')[0]}`;
  return 'other';
}

const isOwn = (f: CallFrame): boolean => f.url.includes('/src/') && !f.url.includes('node_modules');
const IDLE = new Set(['(idle)', '(program)', '(garbage collector)']);

const selfUs = new Map<number, number>();
let total = 0;
prof.samples.forEach((id, i) => {
  const dt = prof.timeDeltas[i] ?? 0;
  total += dt;
  selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
});

const ms = (us: number): string => (us / 1000).toFixed(1).padStart(8);
const pct = (us: number, of: number): string => `${((100 * us) / of).toFixed(1).padStart(5)}%`;

// ---- by area (self time) ----
const areas = new Map<string, number>();
for (const [id, us] of selfUs) {
  const a = area(byId.get(id)!.callFrame);
  areas.set(a, (areas.get(a) ?? 0) + us);
}
const idle = areas.get('(idle)') ?? 0;
const busy = total - idle;
process.stdout.write(`${file}\n  sampled ${ms(total)} ms, idle ${ms(idle)} ms, busy ${ms(busy)} ms\n\n== self time by area (% of busy) ==\n`);
for (const [a, us] of [...areas].filter(([a]) => a !== '(idle)').sort((x, y) => y[1] - x[1]).slice(0, TOP)) {
  process.stdout.write(`${ms(us)} ms ${pct(us, busy)}  ${a}\n`);
}

// ---- self time by function ----
const selfByFn = new Map<string, number>();
for (const [id, us] of selfUs) {
  const k = frameName(byId.get(id)!.callFrame);
  selfByFn.set(k, (selfByFn.get(k) ?? 0) + us);
}
process.stdout.write(`\n== top ${TOP} functions by self time (% of busy) ==\n`);
for (const [k, us] of [...selfByFn].filter(([k]) => !k.startsWith('(idle)')).sort((x, y) => y[1] - x[1]).slice(0, TOP)) {
  process.stdout.write(`${ms(us)} ms ${pct(us, busy)}  ${k}\n`);
}

// ---- inclusive time of rhumb's functions ----
const incl = new Map<string, number>();
for (const [id, us] of selfUs) {
  const seen = new Set<string>();
  for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
    const f = byId.get(n)!.callFrame;
    if (!isOwn(f)) continue;
    const k = frameName(f);
    if (seen.has(k)) continue;
    seen.add(k);
    incl.set(k, (incl.get(k) ?? 0) + us);
  }
}
process.stdout.write(`\n== rhumb's functions by inclusive time (% of busy) ==\n`);
for (const [k, us] of [...incl].sort((x, y) => y[1] - x[1]).slice(0, TOP)) {
  process.stdout.write(`${ms(us)} ms ${pct(us, busy)}  ${k}\n`);
}

// ---- top-down tree of busy samples ----
const inclNode = new Map<number, number>();
for (const [id, us] of selfUs) {
  if (IDLE.has(byId.get(id)!.callFrame.functionName) && byId.get(id)!.callFrame.functionName === '(idle)') continue;
  for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) inclNode.set(n, (inclNode.get(n) ?? 0) + us);
}
process.stdout.write(`\n== top-down (busy time, nodes ≥ ${MIN_PCT}%, depth ≤ ${DEPTH}; anonymous/async glue frames collapsed) ==\n`);
const root = prof.nodes[0];
function walk(id: number, depth: number, shown: number): void {
  const node = byId.get(id)!;
  const us = inclNode.get(id) ?? 0;
  if ((100 * us) / busy < MIN_PCT) return;
  const f = node.callFrame;
  // Collapse frames that say nothing (the root, anonymous node internals) to keep the tree short.
  const boring = id === root.id || (f.functionName === '' && !isOwn(f)) || f.functionName === 'processTicksAndRejections' || f.functionName === 'runMicrotasks';
  let nextShown = shown;
  if (!boring) {
    const selfShare = selfUs.get(id) ?? 0;
    process.stdout.write(`${ms(us)} ms ${pct(us, busy)} ${'  '.repeat(shown)}${frameName(f)}${selfShare > 0 ? `  [self ${(selfShare / 1000).toFixed(1)}]` : ''}\n`);
    nextShown = shown + 1;
  }
  if (nextShown > DEPTH) return;
  const kids = [...(node.children ?? [])].sort((a, b) => (inclNode.get(b) ?? 0) - (inclNode.get(a) ?? 0));
  for (const k of kids) walk(k, depth + 1, nextShown);
}
walk(root.id, 0, 0);
