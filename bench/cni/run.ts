/**
 * CNI ADD and DEL latency: the rhumb plugin next to the reference `bridge` + `host-local`
 * plugins (Debian's containernetworking-plugins) on the same machine, p50/p99 over 100
 * attachments (20 with --quick).
 *
 *   node --import tsx bench/cni/run.ts [--quick] [--n N]        (root; needs dist/)
 *
 * Each plugin is exec'd as a runtime execs it (test/helpers/cni.ts: `ip netns exec NODE
 * plugin`, CNI_* environment, configuration on stdin) in a node namespace of a simulated
 * datacenter (underlay bridge, controller, one `rhumb agent` on the kernel backend). The
 * N ADDs run one after another, each into its own fresh namespace (so N attachments are
 * live at the end), then the N DELs; wall time per exec. Also measured, to show where the
 * time goes: the plugin's VERSION exec (the process start alone: Node and the plugin's
 * modules), and the agent's workload API called directly (ADD/DEL without any exec).
 * The reference pair gets a host-local data dir in the bench's temporary directory.
 *
 * Writes bench/results/cni.json (cni.quick.json with --quick).
 */
import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Table from 'cli-table3';
import { DEBIAN_CNI_DIR, execPlugin } from '../../test/helpers/cni.js';
import { buildUnderlay, controllerListenArgs, registerUnderlayNetwork, restClient, startAgent, svpEndpoint } from '../../test/helpers/datacenter.js';
import { NetnsLab, netnsSkipReason } from '../../test/helpers/netns.js';
import { CLI, http, makeTempDir, startControllerProcess } from '../../test/helpers/processes.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const nArg = argv.indexOf('--n');
const N = nArg >= 0 ? Number(argv[nArg + 1]) : quick ? 20 : 100;
const OWNER = 'cccccccc-0000-4000-8000-0000000000c5';

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

interface Series {
  add: number[];
  del: number[];
}

async function main(): Promise<void> {
  const skip = netnsSkipReason();
  if (skip) throw new Error(`bench/cni: ${skip}`);
  execFileSync('test', ['-x', `${DEBIAN_CNI_DIR}/bridge`]);
  const lab = new NetnsLab('bcn');
  const tmp = await makeTempDir('bench-cni');
  const subnet24 = `198.18.${randomInt(1, 250)}`;
  let ctl: Awaited<ReturnType<typeof startControllerProcess>> | undefined;
  try {
    const pluginDir = join(tmp, 'bin');
    execFileSync(process.execPath, [CLI, 'cni', 'install', '--dir', pluginDir]);
    const dirs = [pluginDir, DEBIAN_CNI_DIR].join(':');
    const { nodes } = await buildUnderlay(lab, { subnet24, nodeCount: 1, rootHosts: [254] });
    const node = nodes[0]!;
    ctl = await startControllerProcess({ args: controllerListenArgs(`${subnet24}.254`) });
    const api = restClient(() => ctl!.restUrl);
    await registerUnderlayNetwork(api, subnet24);
    const agent = await startAgent(lab, node, { controller: ctl.restUrl, svp: svpEndpoint(ctl), stateDir: join(tmp, 'state') });
    await api('POST', `/fabrics/${OWNER}/vlans`, { vlan_id: 11, name: 'bench' });
    const net = await api('POST', `/fabrics/${OWNER}/vlans/11/networks`, {
      name: 'bench', subnet: '10.73.0.0/16', provision_start_ip: '10.73.0.10', provision_end_ip: '10.73.250.250', gateway: '10.73.0.1',
    });
    const rhumbConf = JSON.stringify({ cniVersion: '1.0.0', name: 'rhbench', type: 'rhumb', network: net.uuid, agent: agent.api.replace('http://', '') });
    const refConf = JSON.stringify({
      cniVersion: '1.0.0', name: 'refbench', type: 'bridge', bridge: 'cnibench0', isGateway: true, ipMasq: false,
      ipam: { type: 'host-local', ranges: [[{ subnet: '10.74.0.0/16' }]], dataDir: join(tmp, 'host-local') },
    });

    const spaces = async (tag: string) => {
      const out: string[] = [];
      for (let i = 0; i < N; i++) out.push(await lab.addNetns(`${tag}${i}`));
      return out;
    };
    const runPlugin = async (binary: string, conf: string, nss: string[]): Promise<Series> => {
      const s: Series = { add: [], del: [] };
      for (const [i, ns] of nss.entries()) {
        const r = await execPlugin(node.ns, binary, { command: 'ADD', containerId: `bench-${i}`, netns: `/run/netns/${ns}`, ifname: 'eth0', path: dirs }, conf);
        if (r.exitCode !== 0) throw new Error(`${binary} ADD: ${r.stdout} ${r.stderr}`);
        s.add.push(r.ms);
      }
      for (const [i, ns] of nss.entries()) {
        const r = await execPlugin(node.ns, binary, { command: 'DEL', containerId: `bench-${i}`, netns: `/run/netns/${ns}`, ifname: 'eth0', path: dirs }, conf);
        if (r.exitCode !== 0) throw new Error(`${binary} DEL: ${r.stdout} ${r.stderr}`);
        s.del.push(r.ms);
      }
      return s;
    };

    // Warm up both (first exec of a binary, the agent's first vnet).
    const warm = await spaces('w');
    await runPlugin(join(pluginDir, 'rhumb'), rhumbConf, warm.slice(0, 2));
    await runPlugin(`${DEBIAN_CNI_DIR}/bridge`, refConf, warm.slice(0, 2));

    console.log(`bench/cni: ${N} attachments per plugin, sequential ADDs then DELs`);
    const rhumb = await runPlugin(join(pluginDir, 'rhumb'), rhumbConf, await spaces('r'));
    const ref = await runPlugin(`${DEBIAN_CNI_DIR}/bridge`, refConf, await spaces('b'));

    // Where rhumb's time goes: the process start alone, and the agent's work alone.
    const version: number[] = [];
    for (let i = 0; i < N; i++) version.push((await execPlugin(node.ns, join(pluginDir, 'rhumb'), { command: 'VERSION', path: dirs }, '{"cniVersion":"1.0.0"}')).ms);
    const direct: Series = { add: [], del: [] };
    const directNs = await spaces('d');
    for (const [i, ns] of directNs.entries()) {
      const t0 = performance.now();
      const r = await http(agent.api, 'POST', '/workloads', { key: `direct/${i}/eth0`, network_uuid: net.uuid, netns: `/run/netns/${ns}`, ifname: 'eth0' });
      if (r.status !== 200) throw new Error(`agent ADD: ${JSON.stringify(r.body)}`);
      direct.add.push(performance.now() - t0);
    }
    for (let i = 0; i < directNs.length; i++) {
      const t0 = performance.now();
      await http(agent.api, 'DELETE', `/workloads/${encodeURIComponent(`direct/${i}/eth0`)}`);
      direct.del.push(performance.now() - t0);
    }

    // The agent's own account of each rhumb ADD and DEL (its log lines give the steps).
    const steps: Record<string, number[]> = { intent: [], NIC: [], plumbing: [], record: [] };
    const delSteps: Record<string, number[]> = { record: [], unplumbing: [], NIC: [], 'final record': [] };
    for (const line of agent.out.stderr.split('\n')) {
      if (!line.includes('workload cni/bench-')) continue;
      const a = /attached NIC .*\(intent ([\d.]+) ms, NIC ([\d.]+) ms, plumbing ([\d.]+) ms, record ([\d.]+) ms\)/.exec(line);
      if (a) (['intent', 'NIC', 'plumbing', 'record'] as const).forEach((k, i) => steps[k]!.push(Number(a[i + 1])));
      const d = /released NIC .*\(record ([\d.]+) ms, unplumbing ([\d.]+) ms, NIC ([\d.]+) ms, record ([\d.]+) ms\)/.exec(line);
      if (d) (['record', 'unplumbing', 'NIC', 'final record'] as const).forEach((k, i) => delSteps[k]!.push(Number(d[i + 1])));
    }

    const rows: Array<[string, Series | { add: number[]; del?: undefined }]> = [
      ['rhumb (exec: plugin → agent → controller)', rhumb],
      ['bridge + host-local (exec, reference)', ref],
      ['rhumb VERSION exec (process start only)', { add: version }],
      ['rhumb agent API direct (no exec)', direct],
    ];
    const table = new Table({ head: [`ms over ${N} attachments`, 'ADD p50', 'ADD p99', 'DEL p50', 'DEL p99'], style: { head: [], border: [] } });
    const f = (xs: number[] | undefined, p: number) => (xs && xs.length > 0 ? pct(xs, p).toFixed(1) : '-');
    for (const [name, s] of rows) table.push([name, f(s.add, 50), f(s.add, 99), f(s.del, 50), f(s.del, 99)]);
    console.log(table.toString());
    console.log('(the VERSION row is one exec each: it is the floor under every ADD and DEL of the plugin)');
    if (steps.intent!.length > 0) {
      console.log(`inside the agent, rhumb ADD p50: ${Object.entries(steps).map(([k, xs]) => `${k} ${pct(xs, 50).toFixed(1)} ms`).join(', ')} (${steps.intent!.length} ADDs)`);
    }
    if (delSteps.unplumbing!.length > 0) {
      console.log(`inside the agent, rhumb DEL p50: ${Object.entries(delSteps).map(([k, xs]) => `${k} ${pct(xs, 50).toFixed(1)} ms`).join(', ')} (${delSteps.unplumbing!.length} DELs)`);
    }

    const summary = (s: { add: number[]; del?: number[] }) => ({
      add: { p50: pct(s.add, 50), p99: pct(s.add, 99), samples: s.add.length },
      ...(s.del ? { del: { p50: pct(s.del, 50), p99: pct(s.del, 99), samples: s.del.length } } : {}),
    });
    const out = {
      bench: 'cni',
      quick,
      attachments: N,
      when: new Date().toISOString(),
      node: process.version,
      load: execFileSync('cat', ['/proc/loadavg']).toString().trim(),
      rhumb: summary(rhumb),
      bridge_host_local: summary(ref),
      rhumb_version_exec: summary({ add: version }),
      rhumb_agent_direct: summary(direct),
      rhumb_add_steps_p50_ms: Object.fromEntries(Object.entries(steps).map(([k, xs]) => [k, xs.length > 0 ? pct(xs, 50) : null])),
      rhumb_del_steps_p50_ms: Object.fromEntries(Object.entries(delSteps).map(([k, xs]) => [k, xs.length > 0 ? pct(xs, 50) : null])),
    };
    mkdirSync(join(root, 'bench/results'), { recursive: true });
    const file = join(root, 'bench/results', quick ? 'cni.quick.json' : 'cni.json');
    writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
    console.log(`wrote ${file}`);
  } finally {
    await lab.cleanup();
    await ctl?.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
