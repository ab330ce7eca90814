/**
 * Dependencies between the top-level rooms of src/ run one way (issue #19): no import
 * cycle between rooms, and every import goes down the layering below.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type RoomEdge,
  type RoomGraph,
  describeCycle,
  edgesOf,
  findCycles,
  graphOf,
  layeringViolations,
  readRoomGraph,
} from '../helpers/rooms.js';

/**
 * Lowest first. A room imports rooms of lower layers only; rooms of one layer are peers
 * and import neither each other. ARCHITECTURE's "store → net → overlay → {napi, fw,
 * mapping → svp} → controller / agent → cli", with the utility rooms at the bottom, the
 * data plane's typed face and what the REST APIs share (rest) beside overlay, the web
 * console under the controller that serves it, and the sandbox (which runs real
 * controller and agent processes) beside them; the Docker plugin, which the agent's
 * process serves, above the agent.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['log', 'metrics', 'security'],
  ['store'],
  ['net'],
  ['overlay', 'dataplane', 'rest', 'edge'],
  ['napi', 'fw', 'mapping'],
  ['svp'],
  ['console'],
  ['controller', 'agent', 'sandbox'],
  ['docker', 'cni'],
  ['cli'],
];

/** Imports against the layering that stay, each with the reason. Keep this list short. */
const EXCEPTIONS: ReadonlyArray<{ from: string; to: string; why: string }> = [
  {
    from: 'console',
    to: 'agent',
    why: "console/health.ts reads the agent's node report, whose format (types only) is defined next to the agent's sender in agent/report.ts",
  },
];

/**
 * Violations being removed on other branches of issue #19. When one lands this test
 * says its entry is stale: delete the entry (the list only shrinks).
 */
const KNOWN_VIOLATIONS: ReadonlyArray<{ from: string; to: string }> = [];

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const { rooms, graph } = readRoomGraph(repoRoot);

const isListed = (list: ReadonlyArray<{ from: string; to: string }>, e: RoomEdge): boolean => list.some((x) => x.from === e.from && x.to === e.to);

function without(g: RoomGraph, list: ReadonlyArray<{ from: string; to: string }>): RoomGraph {
  return graphOf(edgesOf(g).filter((e) => !isListed(list, e)));
}

describe('rooms of src/', () => {
  test('every room has a layer', () => {
    const placed = new Set(LAYERS.flat());
    assert.deepEqual(
      rooms.filter((r) => !placed.has(r)),
      [],
      'a new top-level directory under src/: give it a layer in test/unit/rooms.test.ts',
    );
  });

  test('no import cycle between rooms', () => {
    const cycles = findCycles(without(graph, KNOWN_VIOLATIONS)).map((c) => describeCycle(graph, c));
    assert.deepEqual(cycles, [], `import cycles between rooms:\n  ${cycles.join('\n  ')}`);
  });

  test('imports go down the layers', () => {
    const bad = layeringViolations(graph, LAYERS)
      .filter((v) => !isListed(EXCEPTIONS, v.edge) && !isListed(KNOWN_VIOLATIONS, v.edge))
      .map((v) => `${v.edge.from} -> ${v.edge.to}: ${v.why} (${v.edge.file} imports ${v.edge.specifier})`);
    assert.deepEqual(bad, [], `imports against the layering:\n  ${bad.join('\n  ')}`);
  });

  test('the exception lists hold only imports that still exist', () => {
    const stale = [...EXCEPTIONS, ...KNOWN_VIOLATIONS]
      .filter((x) => !graph.get(x.from)?.has(x.to))
      .map((x) => `${x.from} -> ${x.to}`);
    assert.deepEqual(stale, [], 'no longer imported: delete these entries from test/unit/rooms.test.ts');
  });
});

describe('the room checker itself', () => {
  const edge = (from: string, to: string): RoomEdge => ({ from, to, file: `src/${from}/x.ts`, specifier: `../${to}/y.js` });

  test('finds a cycle and names the files that make it', () => {
    const g = graphOf([edge('store', 'net'), edge('net', 'overlay'), edge('overlay', 'net'), edge('napi', 'fw'), edge('fw', 'napi')]);
    const cycles = findCycles(g);
    assert.deepEqual(cycles, [
      ['fw', 'napi', 'fw'],
      ['net', 'overlay', 'net'],
    ]);
    assert.equal(describeCycle(g, cycles[0]), 'fw -> napi (src/fw/x.ts imports ../napi/y.js) -> fw (src/napi/x.ts imports ../fw/y.js)');
    assert.deepEqual(findCycles(graphOf([edge('a', 'b'), edge('b', 'c'), edge('a', 'c')])), []);
    assert.deepEqual(findCycles(graphOf([edge('a', 'b'), edge('b', 'c'), edge('c', 'a')])), [['a', 'b', 'c', 'a']]);
  });

  test('reports imports upwards, between peers and of rooms without a layer', () => {
    const layers = [['store'], ['napi', 'fw'], ['cli']];
    const g = graphOf([edge('cli', 'store'), edge('store', 'cli'), edge('napi', 'fw'), edge('napi', 'edge')]);
    assert.deepEqual(
      layeringViolations(g, layers).map((v) => `${v.edge.from}->${v.edge.to}: ${v.why}`),
      ['store->cli: cli is above store', 'napi->fw: napi and fw are peers (one layer): neither imports the other', 'napi->edge: room edge has no layer'],
    );
  });

  test('reads the real tree (a reader that silently saw nothing would pass everything)', () => {
    assert.ok(edgesOf(graph).length > 20);
    assert.ok(graph.get('cli')?.has('controller'));
    assert.ok(graph.get('agent')?.has('svp'));
  });
});
