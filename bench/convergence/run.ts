/**
 * Convergence after a move: time from the API call that moves a NIC (PUT /nics/:mac with
 * a new cn_uuid) to the first packet delivered to it at its new node, p50/p99 over 50
 * moves (10 with --quick). Triton's varpd polls the log every 5–10 s; rhumb's agents
 * long-poll LOG_REQ, so shootdowns arrive as the write commits.
 *
 *   node --import tsx bench/convergence/run.ts [--quick] [--moves N] [--steps]   (root; needs dist/)
 *
 * --steps: the agents time each step of their attaches and detaches (RHUMB_STEP_TIMES,
 * src/agent/step-times.ts); a second table gives each step's p50 and max, and the JSON
 * carries them.
 *
 * Setup (network namespaces): an underlay bridge, three compute nodes each running
 * `rhumb agent` (kernel backend), the controller in the root namespace on a veth into the
 * underlay. One fabric network; a sender instance on node 1 sends a UDP datagram every
 * millisecond to the mover; the mover's instance namespace runs a receiver that stamps
 * each datagram. Each move is the orchestrator's sequence: PUT cn_uuid, detach on the old
 * node, attach on the new one (agent API). The mover has no interface between the detach
 * and the attach, so the first datagram it receives after the detach came through its new
 * node. Convergence = that datagram's receive time − the PUT's send time (one clock:
 * performance.timeOrigin + performance.now() in every process). Resolution: the 1 ms send
 * interval. Also reported: the PUT's own latency, the plumbing (detach + attach) time, and
 * the shootdown alone: PUT → the sender's node has its vxlan FDB entry for the mover
 * re-pointed at the new node (`bridge monitor fdb` in that node).
 *
 * The mover is the only NIC of its vnet on nodes 2 and 3, so every move also creates the
 * vnet's vxlan device and bridge on the new node and removes them from the old one — the
 * slow case for plumbing.
 *
 * Writes bench/results/convergence.json (convergence.quick.json with --quick).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { randomInt, randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import Table from 'cli-table3';
import { NetnsLab, netnsSkipReason } from '../../test/helpers/netns.js';
import { CLI, type RunningController, http, startControllerProcess } from '../../test/helpers/processes.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const movesArg = argv.indexOf('--moves');
const MOVES = movesArg >= 0 ? Number(argv[movesArg + 1]) : quick ? 10 : 50;
const stepsFile = argv.includes('--steps') ? join(mkdtempSync(join(tmpdir(), 'rhumb-cvb-')), 'steps.jsonl') : undefined;
// The agents inherit it.
if (stepsFile) process.env.RHUMB_STEP_TIMES = stepsFile;
const PORT = 9999;
const OWNER = 'cccccccc-0000-4000-8000-0000000000cc';

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const RECEIVER = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (m) => process.stdout.write((performance.timeOrigin + performance.now()).toFixed(3) + ' ' + m.toString() + '\\n'));
s.bind(${PORT}, () => console.log('listening'));
`;
const SENDER = `
const s = require('node:dgram').createSocket('udp4');
let seq = 0;
setInterval(() => s.send(String(seq++), ${PORT}, process.argv[1], () => {}), 1);
console.log('sending');
`;

function lines(child: ChildProcess, onLine: (l: string) => void): void {
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Each step's p50 and max per operation (attach, detach), from the agents' step timings. */
function stepSummary(file: string): Array<{ op: string; step: string; n: number; p50: number; max: number }> {
  const byStep = new Map<string, number[]>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const rec = JSON.parse(line) as { op: string; total: number; steps: Array<[string, number, number]> };
    const add = (step: string, ms: number) => {
      const key = `${rec.op}\t${step}`;
      byStep.set(key, [...(byStep.get(key) ?? []), ms]);
    };
    add('(total inside the agent)', rec.total);
    for (const [step, , ms] of rec.steps) add(step, ms);
  }
  return [...byStep].map(([key, xs]) => {
    const [op, step] = key.split('\t') as [string, string];
    const sorted = xs.sort((a, b) => a - b);
    return { op, step, n: sorted.length, p50: pct(sorted, 50), max: sorted[sorted.length - 1]! };
  });
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

interface Node {
  ns: string;
  uuid: string;
  ip: string;
  api: string;
}

async function main(): Promise<void> {
  const skip = netnsSkipReason();
  if (skip) throw new Error(`convergence bench ${skip}`);
  const lab = new NetnsLab('cvb');
  let ctl: RunningController | undefined;
  try {
    const block = randomInt(1, 250);
    const ul = (h: number) => `198.18.${block}.${h}`;
    const ulNs = await lab.addNetns('ul');
    await lab.ip(ulNs, 'link', 'add', 'name', 'ulbr', 'type', 'bridge');
    await lab.ip(ulNs, 'link', 'set', 'ulbr', 'up');
    const [rootEnd] = await lab.addVeth({ ns: null, name: lab.name('c') }, { ns: ulNs, name: 'c-ul' });
    await lab.ip(ulNs, 'link', 'set', 'c-ul', 'master', 'ulbr', 'up');
    await lab.ip(null, 'addr', 'add', `${ul(254)}/24`, 'dev', rootEnd);
    await lab.ip(null, 'link', 'set', rootEnd, 'up');
    ctl = await startControllerProcess({ args: ['--listen', `${ul(254)}:0`, '--svp-listen', `${ul(254)}:0`] });
    const api = async (method: string, path: string, body?: unknown) => {
      const r = await http(ctl!.restUrl, method, path, body);
      if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
      return r.body;
    };
    await api('POST', '/networks', { name: 'underlay', nic_tag: 'sdc_underlay', vlan_id: 0, subnet: `198.18.${block}.0/24`, provision_start_ip: ul(1), provision_end_ip: ul(250) });

    const nodes: Node[] = [];
    for (let i = 1; i <= 3; i++) {
      const ns = await lab.addNetns(`n${i}`);
      await lab.addVeth({ ns, name: 'ul0' }, { ns: ulNs, name: `n${i}-ul` });
      await lab.ip(ulNs, 'link', 'set', `n${i}-ul`, 'master', 'ulbr', 'up');
      await lab.ip(ns, 'addr', 'add', `${ul(i)}/24`, 'dev', 'ul0');
      await lab.ip(ns, 'link', 'set', 'ul0', 'up');
      const uuid = randomUUID();
      const agent = lab.spawnIn(ns, [process.execPath, CLI, 'agent', '--node', uuid, '--underlay-ip', ul(i), '--controller', ctl.restUrl, '--svp', `${ctl.svp!.host}:${ctl.svp!.port}`, '--api', `${ul(i)}:0`]);
      let apiUrl = '';
      lines(agent, (l) => {
        const m = /API (http:\/\/\S+)/.exec(l);
        if (m) apiUrl = m[1];
      });
      await waitFor(() => apiUrl !== '', 30_000, `agent ${i}`);
      nodes.push({ ns, uuid, ip: ul(i), api: apiUrl });
    }
    await api('POST', `/fabrics/${OWNER}/vlans`, { vlan_id: 10, name: 'bench' });
    const net = await api('POST', `/fabrics/${OWNER}/vlans/10/networks`, { name: 'bench', subnet: '10.66.0.0/24', provision_start_ip: '10.66.0.1', provision_end_ip: '10.66.0.250', gateway: '10.66.0.1' });
    const attach = async (n: Node, mac: string, ns: string) => {
      const r = await http(n.api, 'POST', '/attach', { mac, netns: `/run/netns/${ns}` });
      if (r.status !== 200) throw new Error(`attach: ${JSON.stringify(r.body)}`);
    };
    const detach = async (n: Node, mac: string) => {
      const r = await http(n.api, 'POST', '/detach', { mac });
      if (r.status !== 200) throw new Error(`detach: ${JSON.stringify(r.body)}`);
    };
    const mkNic = (cn: string) => api('POST', '/nics', { owner_uuid: OWNER, belongs_to_uuid: randomUUID(), belongs_to_type: 'zone', network_uuid: net.uuid, cn_uuid: cn });
    const senderNic = await mkNic(nodes[0].uuid);
    const moverNic = await mkNic(nodes[1].uuid);
    const senderNs = await lab.addNetns('snd');
    const moverNs = await lab.addNetns('mov');
    await attach(nodes[0], senderNic.mac, senderNs);
    await attach(nodes[1], moverNic.mac, moverNs);

    const received: number[] = [];
    const receiver = lab.spawnIn(moverNs, [process.execPath, '-e', RECEIVER]);
    let ready = false;
    lines(receiver, (l) => {
      if (l === 'listening') ready = true;
      else received.push(Number(l.split(' ')[0]));
    });
    await waitFor(() => ready, 10_000, 'receiver');
    lab.spawnIn(senderNs, [process.execPath, '-e', SENDER, moverNic.ip]);
    // The sender's node: when does its vxlan FDB point the mover's MAC at the new node?
    const fdbEvents: Array<{ t: number; line: string }> = [];
    const monitor = lab.spawnIn(nodes[0].ns, ['bridge', 'monitor', 'fdb']);
    lines(monitor, (line) => fdbEvents.push({ t: now(), line }));
    await waitFor(() => received.length > 50, 15_000, 'datagrams before the first move');

    const samples: Array<{ convergenceMs: number; putMs: number; plumbMs: number; peerFdbMs: number }> = [];
    let at = 1;
    for (let i = 0; i < MOVES; i++) {
      const from = nodes[at];
      const to = nodes[at === 1 ? 2 : 1];
      const t0 = now();
      await api('PUT', `/nics/${moverNic.mac}`, { cn_uuid: to.uuid });
      const tPut = now();
      await detach(from, moverNic.mac);
      const tDetached = now();
      await attach(to, moverNic.mac, moverNs);
      const tAttached = now();
      await waitFor(() => received.some((t) => t > tDetached), 15_000, `a datagram after move ${i + 1}`);
      const first = received.find((t) => t > tDetached)!;
      const installed = (e: { t: number; line: string }) => e.t > t0 && !e.line.startsWith('Deleted') && e.line.includes(moverNic.mac) && e.line.includes(`dst ${to.ip} `);
      await waitFor(() => fdbEvents.some(installed), 15_000, `the sender node's FDB after move ${i + 1}`);
      const peerFdb = fdbEvents.find(installed)!.t;
      samples.push({ convergenceMs: first - t0, putMs: tPut - t0, plumbMs: tAttached - tPut, peerFdbMs: peerFdb - t0 });
      fdbEvents.length = 0;
      received.length = 0;
      at = at === 1 ? 2 : 1;
      await sleep(100);
    }

    const conv = samples.map((s) => s.convergenceMs).sort((a, b) => a - b);
    const put = samples.map((s) => s.putMs).sort((a, b) => a - b);
    const plumb = samples.map((s) => s.plumbMs).sort((a, b) => a - b);
    const peerFdb = samples.map((s) => s.peerFdbMs).sort((a, b) => a - b);
    const afterPlumb = samples.map((s) => s.convergenceMs - s.putMs - s.plumbMs).sort((a, b) => a - b);
    const row = (name: string, xs: number[]) => [name, pct(xs, 50).toFixed(1), pct(xs, 99).toFixed(1), xs[xs.length - 1].toFixed(1)];
    const table = new Table({ head: ['ms (over ' + samples.length + ' moves)', 'p50', 'p99', 'max'] });
    table.push(
      row('PUT cn_uuid → first packet at new node', conv),
      row('  of which: PUT latency', put),
      row('  of which: detach + attach (agent API)', plumb),
      row('  after attach returned', afterPlumb),
      row('PUT cn_uuid → peer node FDB re-pointed (shootdown)', peerFdb),
    );
    console.log(table.toString());
    const p50 = pct(conv, 50);
    console.log(`Triton varpd polls every 5–10 s: rhumb's p50 is ${(5000 / p50).toFixed(0)}–${(10000 / p50).toFixed(0)}× under that; p99 ${pct(conv, 99).toFixed(0)} ms.`);
    console.log(`The shootdown alone (PUT → peer's FDB entry replaced): p50 ${pct(peerFdb, 50).toFixed(1)} ms, p99 ${pct(peerFdb, 99).toFixed(1)} ms.`);
    const steps = stepsFile ? stepSummary(stepsFile) : undefined;
    if (steps) {
      const t = new Table({ head: ['agent step (ms)', 'n', 'p50', 'max'] });
      for (const x of steps) t.push([`${x.op}: ${x.step}`, x.n, x.p50.toFixed(2), x.max.toFixed(2)]);
      console.log(t.toString());
    }
    const out = {
      bench: 'convergence',
      quick,
      moves: samples.length,
      backend: 'kernel',
      method: 'PUT /nics/:mac cn_uuid, detach old node, attach new node; first UDP datagram (1 ms interval) received after the detach',
      convergence_ms: { p50, p99: pct(conv, 99), max: conv[conv.length - 1] },
      put_ms: { p50: pct(put, 50), p99: pct(put, 99) },
      plumb_ms: { p50: pct(plumb, 50), p99: pct(plumb, 99) },
      after_attach_ms: { p50: pct(afterPlumb, 50), p99: pct(afterPlumb, 99) },
      peer_fdb_ms: { p50: pct(peerFdb, 50), p99: pct(peerFdb, 99), max: peerFdb[peerFdb.length - 1] },
      triton_varpd_poll_ms: [5000, 10000],
      samples,
      ...(steps ? { steps } : {}),
      date: new Date().toISOString(),
    };
    mkdirSync(join(root, 'bench/results'), { recursive: true });
    const file = join(root, 'bench/results', quick ? 'convergence.quick.json' : 'convergence.json');
    writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
    console.log(`wrote ${file}`);
  } finally {
    await lab.cleanup();
    await ctl?.stop();
    if (stepsFile) rmSync(dirname(stepsFile), { recursive: true, force: true });
  }
}

main().catch((err: Error) => {
  console.error(`convergence bench: ${err.message}`);
  process.exitCode = 1;
});
