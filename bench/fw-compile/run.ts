/**
 * Firewall compiler benchmark: R rules over N instances (default 1,000 × 10,000).
 *
 *   node --import tsx bench/fw-compile/run.ts [--quick] [--rules R] [--instances N] [--apply-samples K]
 *
 * Measures, on a seeded synthetic datacenter (100 instances per owner, tags role/app/env,
 * IPv4 for all and IPv6 for half, a realistic mix of owner-scoped tag rules, any→tag
 * service rules, vm→vm rules, subnet blocks with priority, all-vms icmp and global rules):
 * - full compile: loading rules and instances into the PolicyWorld, compiling every
 *   instance's policy, rendering every nft text;
 * - one-rule change: recompile + render of just the affected instances (median of runs),
 *   and the same for one instance's tag change;
 * - ruleset size per instance (bytes, lines);
 * - apply time per instance: a sample of rulesets applied into a throwaway network
 *   namespace (root only; skipped otherwise), in both forms: node-side (the bridge table on
 *   the instance's port, after the node-wide state table: what the kernel backend loads)
 *   and in-namespace (the userspace backend's); plus one `nft -c` of the node-side sample.
 * Prints a table and writes bench/results/fw-compile.json (fw-compile.quick.json).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Table from 'cli-table3';
import { PolicyWorld } from '../../src/fw/compile.js';
import { parseRule, serialize } from '../../src/fw/lang/index.js';
import { NftApplier, loadNft } from '../../src/fw/applier.js';
import { renderRuleset, renderStateTable } from '../../src/fw/nft.js';
import { checkRuleset } from '../../src/fw/nft-check.js';
import type { InstanceView, PolicyRule } from '../../src/fw/types.js';
import { FwEngine } from '../../src/fw/push.js';
import { instanceKey, ruleKey } from '../../src/fw/registry.js';
import { createRegistry } from '../../src/metrics/index.js';
import { nicKey } from '../../src/napi/keys.js';
import { MemoryStore } from '../../src/store/memory.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const argv = process.argv.slice(2);
const flag = (n: string) => argv.includes(n);
const value = (n: string) => {
  const i = argv.indexOf(n);
  return i >= 0 ? argv[i + 1] : undefined;
};
const quick = flag('--quick');
const RULES = Number(value('--rules') ?? (quick ? 200 : 1000));
const INSTANCES = Number(value('--instances') ?? (quick ? 2000 : 10_000));
const APPLY_SAMPLES = Number(value('--apply-samples') ?? (quick ? 5 : 50));
const CHANGE_RUNS = quick ? 5 : 21;

// ---- seeded synthetic datacenter ----

let seed = 0x5eed;
function rand(): number {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');
const uuidOf = (kind: number, n: number) => `${hex(kind, 8)}-0000-4000-8000-${hex(n, 12)}`;

const PER_OWNER = 100;
const OWNERS = Math.max(1, Math.ceil(INSTANCES / PER_OWNER));
const ROLES = ['web', 'db', 'cache', 'queue', 'api', 'worker', 'lb', 'search', 'auth', 'metrics', 'log', 'mail', 'dns', 'ci', 'git', 'cdn', 'batch', 'ml', 'admin', 'backup'];
const APPS = Array.from({ length: 50 }, (_, i) => `app${i}`);
const owner = (o: number) => uuidOf(0xa0000000, o);

function makeInstances(): InstanceView[] {
  const out: InstanceView[] = [];
  for (let i = 0; i < INSTANCES; i++) {
    const o = Math.floor(i / PER_OWNER);
    // Each owner's fabric: 10.<o>.x.y, addresses handed out in order (so sets merge some).
    const v4 = `10.${(o >> 8) & 255}.${o & 255}.${(i % PER_OWNER) + 10}`;
    const addresses = [v4];
    if (i % 2 === 0) addresses.push(`fd00:${hex(o, 4)}::${hex((i % PER_OWNER) + 10, 4)}`);
    out.push({
      uuid: uuidOf(0x10000000, i),
      owner_uuid: owner(o),
      tags: { role: pick(ROLES), app: pick(APPS), env: rand() < 0.7 ? 'prod' : 'dev' },
      firewall_enabled: rand() < 0.95,
      addresses,
      nodes: [uuidOf(0xc0000000, i % 200)],
    });
  }
  return out;
}

function ruleText(i: number, instances: InstanceView[]): { text: string; owner?: string } {
  const kind = rand();
  const o = Math.floor(rand() * OWNERS);
  const port = 1000 + Math.floor(rand() * 5000);
  if (kind < 0.6) return { text: `FROM tag role = ${pick(ROLES)} TO tag role = ${pick(ROLES)} ALLOW tcp PORT ${port}`, owner: owner(o) };
  if (kind < 0.75) return { text: `FROM any TO (tag app = ${pick(APPS)} OR tag role = ${pick(ROLES)}) ALLOW tcp (PORT 80 AND PORT 443 AND PORT ${port})`, owner: owner(o) };
  if (kind < 0.85) {
    const a = instances[o * PER_OWNER + Math.floor(rand() * PER_OWNER)] ?? instances[0]!;
    const b = instances[o * PER_OWNER + Math.floor(rand() * PER_OWNER)] ?? instances[1]!;
    return { text: `FROM vm ${a.uuid} TO vm ${b.uuid} ALLOW udp PORTS ${port} - ${port + 10}`, owner: owner(o) };
  }
  if (kind < 0.9) return { text: `FROM subnet 192.168.${i % 256}.0/24 TO tag env = prod BLOCK tcp PORT 22 PRIORITY ${1 + (i % 50)}`, owner: owner(o) };
  if (kind < 0.95) return { text: 'FROM all vms TO all vms ALLOW icmp TYPE 8', owner: owner(o) };
  // Global (operator) rules: mostly service rules from anywhere, some tag-to-tag across owners.
  if (rand() < 0.6) return { text: `FROM any TO tag role = ${pick(ROLES)} ALLOW tcp PORT ${port}` };
  return { text: `FROM (tag app = ${pick(APPS)} OR tag role = ${pick(ROLES)}) TO tag role = ${pick(ROLES)} ALLOW tcp PORT ${port}` };
}

function policyRule(uuid: string, text: string, ownerUuid?: string): PolicyRule {
  const model = parseRule(text);
  return {
    stored: { uuid, rule: serialize(model), enabled: true, log: false, version: '1.000001', ...(ownerUuid ? { owner_uuid: ownerUuid } : { global: true as const }) },
    model,
  };
}

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

// ---- run ----

const instances = makeInstances();
const rules = Array.from({ length: RULES }, (_, i) => {
  const r = ruleText(i, instances);
  return policyRule(uuidOf(0x20000000, i), r.text, r.owner);
});

const world = new PolicyWorld();
let t = process.hrtime.bigint();
for (const inst of instances) world.upsertInstance(inst);
for (const r of rules) world.upsertRule(r);
const loadMs = ms(t);

t = process.hrtime.bigint();
const compiled = world.compileAll();
const compileMs = ms(t);

t = process.hrtime.bigint();
const texts = new Map<string, string>();
// Each instance's port, as the kernel backend names the host end of its veth.
const portOf = (uuid: string) => `rv${uuid.slice(-12)}`;
for (const [uuid, p] of compiled) texts.set(uuid, renderRuleset(uuid, p, [portOf(uuid)]));
const renderMs = ms(t);

const withTable = [...compiled].filter(([, p]) => p !== null).map(([u]) => u);
const sizes = withTable.map((u) => Buffer.byteLength(texts.get(u)!));
const lines = withTable.map((u) => texts.get(u)!.split('\n').length);
const entries = withTable.map((u) => compiled.get(u)!.inbound.length + compiled.get(u)!.outbound.length);
const totalBytes = sizes.reduce((a, b) => a + b, 0);

// One-rule change: flip the port of a typical owner-scoped tag rule, recompile affected.
const ruleChange: number[] = [];
const ruleAffected: number[] = [];
for (let k = 0; k < CHANGE_RUNS; k++) {
  const r = rules[(k * 37) % rules.length]!;
  const changed = policyRule(r.stored.uuid, r.model.protocol.name === 'tcp' || r.model.protocol.name === 'udp' ? r.stored.rule.replace(/PORT(S?) (\d+)/, (_m, s, p) => `PORT${s} ${Number(p) + 1}`) : r.stored.rule, r.stored.owner_uuid);
  const start = process.hrtime.bigint();
  const affected = world.upsertRule(changed);
  for (const [uuid, p] of world.compileMany(affected)) texts.set(uuid, renderRuleset(uuid, p, [portOf(uuid)]));
  ruleChange.push(ms(start));
  ruleAffected.push(affected.size);
}

// One instance's tag change.
const tagChange: number[] = [];
const tagAffected: number[] = [];
for (let k = 0; k < CHANGE_RUNS; k++) {
  const inst = world.getInstance(instances[(k * 97) % instances.length]!.uuid)!;
  const start = process.hrtime.bigint();
  const affected = world.upsertInstance({ ...inst, tags: { ...inst.tags, role: pick(ROLES) } });
  for (const [uuid, p] of world.compileMany(affected)) texts.set(uuid, renderRuleset(uuid, p, [portOf(uuid)]));
  tagChange.push(ms(start));
  tagAffected.push(affected.size);
}

// The controller's real path: FwEngine.start() over a store holding the same rules,
// instance records and one NIC per address (range, parse, compile, render, index by node).
const store = new MemoryStore();
{
  const ops: Array<{ type: 'put'; key: string; value: string }> = [];
  let macN = 0;
  for (const inst of instances) {
    ops.push({ type: 'put', key: instanceKey(inst.uuid), value: JSON.stringify({ uuid: inst.uuid, owner_uuid: inst.owner_uuid, tags: inst.tags, firewall_enabled: inst.firewall_enabled }) });
    for (const ip of inst.addresses) {
      const mac = hex(++macN, 12);
      ops.push({ type: 'put', key: nicKey(mac), value: JSON.stringify({ mac, owner_uuid: inst.owner_uuid, belongs_to_uuid: inst.uuid, belongs_to_type: 'zone', primary: true, state: 'running', ip, cn_uuid: inst.nodes[0], created_timestamp: '', modified_timestamp: '' }) });
    }
  }
  for (const r of rules) ops.push({ type: 'put', key: ruleKey(r.stored.uuid), value: JSON.stringify(r.stored) });
  for (let i = 0; i < ops.length; i += 5000) await store.commit({ ops: ops.slice(i, i + 5000) });
}
const engine = new FwEngine(store, createRegistry('bench'));
t = process.hrtime.bigint();
await engine.start();
const engineStartMs = ms(t);
// One rule change through the store and the change feed, until the engine has published it.
const engineChange: number[] = [];
for (let k = 0; k < CHANGE_RUNS; k++) {
  const r = rules[(k * 53) % rules.length]!;
  const text = r.stored.rule.replace(/PORT(S?) (\d+)/, (_m, s2, p) => `PORT${s2} ${Number(p) + 2}`);
  const start = process.hrtime.bigint();
  await store.commit({ ops: [{ type: 'put', key: ruleKey(r.stored.uuid), value: JSON.stringify({ ...r.stored, rule: serialize(parseRule(text)) }) }] });
  await engine.sync();
  engineChange.push(ms(start));
}
engine.stop();
await store.close();

// Apply time per instance: a sample (including the largest ruleset) into a throwaway netns.
interface FormStats { p50_ms: number; p99_ms: number; max_ms: number; largest_bytes: number; largest_ms: number }
interface ApplyStats { samples: number; node_side: FormStats; check_ms: number }
let apply: ApplyStats | { skipped: string };
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (!isRoot) apply = { skipped: 'needs root' };
else {
  const ns = `fwbench${process.pid.toString(36)}`;
  const cleanup = () => {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      /* gone */
    }
  };
  process.once('exit', cleanup);
  try {
    execFileSync('ip', ['netns', 'add', ns]);
    const path = `/var/run/netns/${ns}`;
    const order = [...withTable].sort((a, b) => Buffer.byteLength(texts.get(b)!) - Buffer.byteLength(texts.get(a)!));
    const largest = order[0]!;
    const sample = [largest, ...Array.from({ length: APPLY_SAMPLES - 1 }, (_, i) => withTable[Math.floor((i * withTable.length) / APPLY_SAMPLES)]!)];
    const measure = async (textOf: (uuid: string) => string): Promise<FormStats> => {
      const applier = new NftApplier();
      const times: number[] = [];
      let largestMs = 0;
      for (const uuid of sample) {
        const start = process.hrtime.bigint();
        const res = await applier.apply(uuid, path, textOf(uuid));
        const took = ms(start);
        if (!res.ok) throw new Error(`apply failed for ${uuid}: ${res.error}`);
        if (uuid === largest) largestMs = took;
        times.push(took);
      }
      return { p50_ms: pct(times, 50), p99_ms: pct(times, 99), max_ms: Math.max(...times), largest_bytes: Buffer.byteLength(textOf(largest)), largest_ms: largestMs };
    };
    const stateError = await loadNft(path, renderStateTable());
    if (stateError !== undefined) throw new Error(`state table: ${stateError}`);
    const nodeSide = await measure((u) => texts.get(u)!);
    const cstart = process.hrtime.bigint();
    const check = await checkRuleset(sample.map((u) => texts.get(u)!).join(''));
    const checkMs = ms(cstart);
    if (!check.ok) throw new Error(`nft -c rejected the sample: ${check.error}`);
    apply = { samples: sample.length, node_side: nodeSide, check_ms: checkMs };
  } finally {
    cleanup();
  }
}

const result = {
  bench: 'fw-compile',
  quick,
  date: new Date().toISOString(),
  node: process.version,
  rules: RULES,
  instances: INSTANCES,
  instances_with_table: withTable.length,
  full_compile: { load_ms: loadMs, compile_ms: compileMs, render_ms: renderMs, total_ms: loadMs + compileMs + renderMs },
  engine: { start_ms: engineStartMs, rule_change_via_store_median_ms: median(engineChange), rule_change_via_store_max_ms: Math.max(...engineChange) },
  one_rule_change: { median_ms: median(ruleChange), max_ms: Math.max(...ruleChange), median_affected: median(ruleAffected), runs: ruleChange.length },
  one_instance_tag_change: { median_ms: median(tagChange), max_ms: Math.max(...tagChange), median_affected: median(tagAffected), runs: tagChange.length },
  ruleset: {
    bytes_p50: pct(sizes, 50),
    bytes_p99: pct(sizes, 99),
    bytes_max: Math.max(...sizes),
    bytes_total: totalBytes,
    lines_p50: pct(lines, 50),
    lines_max: Math.max(...lines),
    entries_p50: pct(entries, 50),
    entries_max: Math.max(...entries),
  },
  apply,
};

const table = new Table({ head: ['measure', 'value'], style: { head: [], border: [] } });
const f = (n: number, d = 1) => n.toFixed(d);
table.push(
  ['rules × instances', `${RULES} × ${INSTANCES} (${withTable.length} with a table)`],
  ['full compile: load / compile / render', `${f(loadMs)} / ${f(compileMs)} / ${f(renderMs)} ms`],
  ['full compile total', `${f(loadMs + compileMs + renderMs)} ms`],
  ['controller engine start (store → published)', `${f(engineStartMs)} ms`],
  ['rule change via store feed (median, max)', `${f(median(engineChange), 2)} ms, ${f(Math.max(...engineChange), 2)} ms`],
  ['one-rule change (median, max)', `${f(median(ruleChange), 2)} ms, ${f(Math.max(...ruleChange), 2)} ms — ${median(ruleAffected)} instances recompiled`],
  ['one tag change (median, max)', `${f(median(tagChange), 2)} ms, ${f(Math.max(...tagChange), 2)} ms — ${median(tagAffected)} instances recompiled`],
  ['ruleset bytes p50 / p99 / max', `${pct(sizes, 50)} / ${pct(sizes, 99)} / ${Math.max(...sizes)}`],
  ['ruleset lines p50 / max; entries p50 / max', `${pct(lines, 50)} / ${Math.max(...lines)}; ${pct(entries, 50)} / ${Math.max(...entries)}`],
  ['all rulesets', `${(totalBytes / 1e6).toFixed(1)} MB`],
);
if ('skipped' in apply) table.push(['apply per instance', `skipped (${apply.skipped})`]);
else {
  table.push(
    ['node-side apply per instance p50 / p99 / max', `${f(apply.node_side.p50_ms)} / ${f(apply.node_side.p99_ms)} / ${f(apply.node_side.max_ms)} ms (${apply.samples} samples)`],
    ['node-side apply, largest ruleset', `${apply.node_side.largest_bytes} bytes in ${f(apply.node_side.largest_ms)} ms`],
    ['nft -c of the whole sample', `${f(apply.check_ms)} ms`],
  );
}
console.log(table.toString());
mkdirSync(join(root, 'bench', 'results'), { recursive: true });
const outFile = join(root, 'bench', 'results', quick ? 'fw-compile.quick.json' : 'fw-compile.json');
writeFileSync(outFile, JSON.stringify(result, null, 2) + '\n');
console.log(`wrote ${outFile}`);
