/**
 * `docker run` to first ping: how long a new container waits before it reaches another
 * one, on rhumb (across nodes, both backends, and on one node) and on Docker's own
 * `bridge` driver (one node), p50/p99 over 30 containers (8 with --quick).
 *
 *   node --import tsx bench/docker/run.ts [--quick] [--n N]        (root; needs dist/, docker.io)
 *
 * Setup as test/netns/docker.test.ts: a simulated datacenter (underlay bridge, controller,
 * four nodes: n1, n2 kernel backend, n3, n4 userspace), one real dockerd per node
 * namespace, each node's agent serving the plugin; a busybox image imported offline. A
 * target container waits on the far node (n2, n4) or the same node (n1). Each sample is
 * one `docker run --rm` whose command pings the target until it answers, then prints;
 * the containers run one after another.
 *
 *   run→ping   from spawning `docker run` to the container's line on the CLI's stdout
 *              (Docker's container start included, its teardown not)
 *   in-container   from the container's shell starting to its first answered ping
 *              (/proc/uptime, 10 ms resolution): how long the network kept it waiting
 *
 * Writes bench/results/docker.json (docker.quick.json with --quick).
 */
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Table from 'cli-table3';
import { type RunningAgent, buildUnderlay, controllerListenArgs, registerUnderlayNetwork, restClient, startAgent, stopAgent, svpEndpoint } from '../../test/helpers/datacenter.js';
import { DOCKER_CLI, type Dockerd, DockerLab, dockerSkipReason } from '../../test/helpers/docker.js';
import { NetnsLab } from '../../test/helpers/netns.js';
import { makeTempDir, startControllerProcess } from '../../test/helpers/processes.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const nArg = argv.indexOf('--n');
const N = nArg >= 0 ? Number(argv[nArg + 1]) : quick ? 8 : 30;
const OWNER = 'cccccccc-0000-4000-8000-0000000000d9';

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

interface Sample {
  runToPingMs: number;
  inContainerMs: number;
}

/** Seconds a sample's container keeps trying before it gives up (exit 3). */
const SAMPLE_LIMIT_S = 60;

/** One `docker run --rm` pinging target until it answers; times as above. */
function sample(d: Dockerd, network: string, image: string, target: string): Promise<Sample> {
  const script =
    `s=$(cut -d' ' -f1 /proc/uptime); until ping -c 1 -W 1 ${target} >/dev/null 2>&1; do ` +
    `n=$(cut -d' ' -f1 /proc/uptime); [ $(( \${n%.*} - \${s%.*} )) -ge ${SAMPLE_LIMIT_S} ] && exit 3; done; ` +
    `echo "up $s $(cut -d' ' -f1 /proc/uptime)"`;
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(DOCKER_CLI, ['-H', d.host, 'run', '--rm', '--network', network, image, 'sh', '-c', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DOCKER_CONFIG: join(d.dir, 'cli') },
    });
    let out = '';
    let err = '';
    let result: Sample | undefined;
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /up (\d+\.\d+) (\d+\.\d+)/.exec(out);
      if (m && !result) result = { runToPingMs: performance.now() - t0, inContainerMs: (Number(m[2]) - Number(m[1])) * 1000 };
    });
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.on('close', (code) => {
      if (result && code === 0) resolve(result);
      else if (code === 3) reject(new Error(`${target} did not answer within ${SAMPLE_LIMIT_S} s`));
      else reject(new Error(`docker run (${code}): ${err || out}`));
    });
  });
}

async function main(): Promise<void> {
  const skip = dockerSkipReason();
  if (skip) throw new Error(`bench/docker: ${skip}`);
  const lab = new NetnsLab('bdk');
  const dl = new DockerLab(lab.prefix);
  const plugin = `rhumb-${lab.prefix}`;
  const port = randomInt(20000, 30000);
  const subnet24 = `198.18.${randomInt(1, 250)}`;
  const tmp = await makeTempDir('bench-docker');
  let ctl: Awaited<ReturnType<typeof startControllerProcess>> | undefined;
  const agents: RunningAgent[] = [];
  const exitHook = () => dl.cleanupSync();
  process.once('exit', exitHook);
  // Ctrl-C or a kill: finish the sample in flight, then clean up as on an error.
  let interrupted = false;
  const onSignal = (sig: string) => {
    interrupted = true;
    process.stderr.write(`bench/docker: ${sig}: cleaning up after the current step\n`);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const checkInterrupted = () => {
    if (interrupted) throw new Error('interrupted');
  };
  try {
    const { nodes } = await buildUnderlay(lab, { subnet24, nodeCount: 4, rootHosts: [254] });
    ctl = await startControllerProcess({ args: controllerListenArgs(`${subnet24}.254`) });
    const api = restClient(() => ctl!.restUrl);
    await registerUnderlayNetwork(api, subnet24);
    await dl.installSpec(plugin, `tcp://127.0.0.1:${port}`);
    const daemons = await Promise.all(nodes.map((n) => dl.start(n)));
    await Promise.all(daemons.map((d) => dl.importBusybox(d)));
    const backends = ['kernel', 'kernel', 'userspace', 'userspace'];
    for (const [i, n] of nodes.entries()) {
      agents.push(
        await startAgent(lab, n, {
          controller: ctl.restUrl, svp: svpEndpoint(ctl), stateDir: join(tmp, `n${i + 1}`), netOnly: true,
          extraArgs: ['--backend', backends[i]!, '--docker-plugin', `127.0.0.1:${port}`, '--docker-host', daemons[i]!.host, '--docker-plugin-name', plugin],
        }),
      );
    }
    for (const d of daemons) {
      await d.docker('network', 'create', '-d', plugin, '--ipam-driver', plugin, '--subnet', '10.90.0.0/24', '-o', `owner=${OWNER}`, 'bench');
    }
    await daemons[0]!.docker('network', 'create', '-d', 'bridge', '--subnet', '10.91.0.0/24', 'benchbr');
    const target = async (d: Dockerd, name: string, network: string) => {
      await d.docker('run', '-d', '--name', name, '--network', network, dl.image, 'sleep', '100000');
      return (await d.docker('inspect', '--format', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, name)).trim();
    };
    const cases: Array<{ name: string; d: Dockerd; network: string; target: string }> = [
      { name: 'rhumb kernel, across nodes', d: daemons[0]!, network: 'bench', target: await target(daemons[1]!, 'far', 'bench') },
      { name: 'rhumb userspace, across nodes', d: daemons[2]!, network: 'bench', target: await target(daemons[3]!, 'far', 'bench') },
      { name: 'rhumb kernel, one node', d: daemons[0]!, network: 'bench', target: await target(daemons[0]!, 'near', 'bench') },
      { name: 'Docker bridge, one node', d: daemons[0]!, network: 'benchbr', target: await target(daemons[0]!, 'nearbr', 'benchbr') },
    ];
    const results: Record<string, Sample[]> = {};
    for (const c of cases) {
      checkInterrupted();
      await sample(c.d, c.network, dl.image, c.target); // warm-up (plugin activation, image layers)
      results[c.name] = [];
      for (let i = 0; i < N; i++) {
        checkInterrupted();
        results[c.name]!.push(await sample(c.d, c.network, dl.image, c.target));
      }
      process.stderr.write(`bench/docker: ${c.name} done\n`);
    }
    const table = new Table({ head: [`ms over ${N} containers`, 'run→ping p50', 'run→ping p99', 'in-container p50', 'in-container p99'], style: { head: [], border: [] } });
    const summary: Record<string, Record<string, number>> = {};
    for (const [name, xs] of Object.entries(results)) {
      const run = xs.map((x) => x.runToPingMs);
      const inside = xs.map((x) => x.inContainerMs);
      summary[name] = { run_to_ping_p50_ms: pct(run, 50), run_to_ping_p99_ms: pct(run, 99), in_container_p50_ms: pct(inside, 50), in_container_p99_ms: pct(inside, 99) };
      table.push([name, ...Object.values(summary[name]!).map((v) => v.toFixed(0))]);
    }
    process.stdout.write(`${table.toString()}\n`);
    const out = { bench: 'docker', quick, containers: N, date: new Date().toISOString(), summary, samples: results };
    mkdirSync(join(root, 'bench/results'), { recursive: true });
    const file = join(root, 'bench/results', quick ? 'docker.quick.json' : 'docker.json');
    writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
    process.stdout.write(`wrote ${file}\n`);
  } finally {
    await dl.cleanup();
    for (const a of agents) await stopAgent(a);
    await lab.cleanup();
    await ctl?.stop();
    await rm(tmp, { recursive: true, force: true });
    process.removeListener('exit', exitHook);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

main().catch((err: Error) => {
  process.stderr.write(`bench/docker: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
