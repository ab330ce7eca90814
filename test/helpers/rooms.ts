/**
 * The room graph of src/: which top-level directory ("room") imports which, read from the
 * import statements of every .ts file (static, type-only, re-exports and dynamic import()
 * alike: a type-only import is still a dependency). Pure functions over that graph find
 * cycles and imports that go against the intended layering. Used by test/unit/rooms.test.ts.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

/** One import of one room by another, with a file that makes it. */
export interface RoomEdge {
  from: string;
  to: string;
  /** A file (relative to the repository) whose import makes the edge, and the specifier. */
  file: string;
  specifier: string;
}

/** from -> to -> the first edge seen. */
export type RoomGraph = Map<string, Map<string, RoomEdge>>;

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The room of a path under srcDir, or undefined for anything outside it. */
function roomOf(srcDir: string, path: string): string | undefined {
  const rel = relative(srcDir, path);
  if (rel.startsWith('..') || rel === '') return undefined;
  const parts = rel.split(sep);
  return parts.length > 1 ? parts[0] : undefined;
}

/** Reads every import of src/**\/*.ts and returns the room graph (edges between different rooms only). */
export function readRoomGraph(repoRoot: string): { rooms: string[]; graph: RoomGraph } {
  const srcDir = resolve(repoRoot, 'src');
  const rooms = readdirSync(srcDir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  const edges: RoomEdge[] = [];
  for (const file of tsFiles(srcDir).sort()) {
    const from = roomOf(srcDir, file);
    if (!from) continue;
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    for (const imp of info.importedFiles) {
      if (!imp.fileName.startsWith('.')) continue;
      const to = roomOf(srcDir, resolve(dirname(file), imp.fileName));
      if (to && to !== from) edges.push({ from, to, file: relative(repoRoot, file), specifier: imp.fileName });
    }
  }
  return { rooms, graph: graphOf(edges) };
}

export function graphOf(edges: Iterable<RoomEdge>): RoomGraph {
  const graph: RoomGraph = new Map();
  for (const e of edges) {
    let out = graph.get(e.from);
    if (!out) graph.set(e.from, (out = new Map()));
    if (!out.has(e.to)) out.set(e.to, e);
  }
  return graph;
}

export function edgesOf(graph: RoomGraph): RoomEdge[] {
  return [...graph.values()].flatMap((out) => [...out.values()]);
}

/**
 * Every elementary cycle through the graph's strongly connected parts, each once, as a
 * room path that starts and ends at its smallest room (['fw', 'napi', 'fw']).
 */
export function findCycles(graph: RoomGraph): string[][] {
  const cycles = new Map<string, string[]>();
  const nodes = [...new Set([...graph.keys(), ...edgesOf(graph).map((e) => e.to)])].sort();
  // Johnson-style enumeration restricted to cycles whose smallest node is `start`: small graphs only.
  for (const start of nodes) {
    const path: string[] = [start];
    const onPath = new Set([start]);
    const walk = (node: string): void => {
      for (const next of [...(graph.get(node)?.keys() ?? [])].sort()) {
        if (next === start) {
          const cycle = [...path, start];
          cycles.set(cycle.join('>'), cycle);
        } else if (!onPath.has(next) && next > start) {
          path.push(next);
          onPath.add(next);
          walk(next);
          onPath.delete(next);
          path.pop();
        }
      }
    };
    walk(start);
  }
  return [...cycles.values()];
}

/** "napi -> fw (src/napi/routes/index.ts imports ../../fw/api.js) -> napi (…)" */
export function describeCycle(graph: RoomGraph, cycle: string[]): string {
  let s = cycle[0];
  for (let i = 1; i < cycle.length; i++) {
    const e = graph.get(cycle[i - 1])!.get(cycle[i])!;
    s += ` -> ${cycle[i]} (${e.file} imports ${e.specifier})`;
  }
  return s;
}

/**
 * Edges that go against the layering: a room may import rooms of lower layers only (not
 * its own layer's other rooms, not higher ones). Rooms missing from the layers are
 * reported as such.
 */
export function layeringViolations(graph: RoomGraph, layers: readonly (readonly string[])[]): { edge: RoomEdge; why: string }[] {
  const layerOf = new Map<string, number>();
  layers.forEach((rooms, i) => rooms.forEach((r) => layerOf.set(r, i)));
  const out: { edge: RoomEdge; why: string }[] = [];
  for (const e of edgesOf(graph)) {
    const a = layerOf.get(e.from);
    const b = layerOf.get(e.to);
    if (a === undefined || b === undefined) {
      out.push({ edge: e, why: `room ${a === undefined ? e.from : e.to} has no layer` });
    } else if (b === a) {
      out.push({ edge: e, why: `${e.from} and ${e.to} are peers (one layer): neither imports the other` });
    } else if (b > a) {
      out.push({ edge: e, why: `${e.to} is above ${e.from}` });
    }
  }
  return out;
}
