/**
 * `rhumb sandbox up|status|shell|down`: a datacenter in network namespaces on this
 * machine (src/sandbox). The state directory (default /run/rhumb/sandbox, or
 * $RHUMB_SANDBOX_DIR) holds the record of what `up` made, its logs and data.
 */
import { spawnSync } from 'node:child_process';
import { type Command, Option } from 'commander';
import { requireRoot, sandboxDown } from '../sandbox/down.js';
import { DEFAULTS, SandboxInputError, type SandboxOptions } from '../sandbox/plan.js';
import { DEFAULT_STATE_DIR, loadState } from '../sandbox/state.js';
import { formatHints, formatStatus, sandboxStatus } from '../sandbox/status.js';
import { sandboxUp } from '../sandbox/up.js';
import { parseIntArg } from './hostport.js';

const stateDirOption = () => new Option('--state-dir <dir>', 'where the sandbox records what it made').default(process.env.RHUMB_SANDBOX_DIR || DEFAULT_STATE_DIR);

const say = (line: string) => process.stdout.write(`rhumb sandbox: ${line}\n`);

interface UpFlags extends Omit<SandboxOptions, 'backend' | 'store'> {
  backend: SandboxOptions['backend'];
  store: SandboxOptions['store'];
  stateDir: string;
}

export function registerSandboxCommands(program: Command): void {
  const sandbox = program
    .command('sandbox')
    .description('a small datacenter in network namespaces on this machine (root): controller, agents, owners, instances');

  sandbox
    .command('up')
    .description('build the sandbox: underlay, controller, agents, two owners with fabrics, instances, firewall rules')
    .option('--nodes <n>', 'compute nodes', parseIntArg(1, 1000), DEFAULTS.nodes)
    .addOption(new Option('--backend <kind>', 'agents\' data plane').choices(['kernel', 'userspace']).default(DEFAULTS.backend))
    .addOption(new Option('--store <kind>', 'controller store').choices(['leveldb', 'etcd']).default(DEFAULTS.store))
    .option('--prefix <name>', 'prefix of every namespace and link it makes', DEFAULTS.prefix)
    .option('--subnet <cidr>', 'underlay /24 (inside 198.18.0.0/15); the controller is at .254', DEFAULTS.subnet)
    .option('--rest-port <port>', 'controller REST port (and console)', parseIntArg(1, 65535), DEFAULTS.restPort)
    .option('--svp-port <port>', 'controller SVP port', parseIntArg(1, 65535), DEFAULTS.svpPort)
    .option('--auth', 'the controller asks who calls: an auth file with an admin token (for the CLI and the console) and a token per agent', false)
    .addOption(stateDirOption())
    .action(async (f: UpFlags) => {
      const t0 = Date.now();
      let aborted = false;
      const onSignal = () => {
        if (!aborted) say('interrupted: stopping after the current step and removing what was made');
        aborted = true;
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      const options: SandboxOptions = { nodes: f.nodes, backend: f.backend, store: f.store, prefix: f.prefix, subnet: f.subnet, restPort: f.restPort, svpPort: f.svpPort, auth: f.auth };
      await sandboxUp(options, { stateDir: f.stateDir, log: (l) => say(l), aborted: () => aborted });
      const st = await sandboxStatus(f.stateDir);
      say(`up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      process.stdout.write(`${formatStatus(st)}\n${formatHints(st)}\n`);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    });

  sandbox
    .command('status')
    .description('what the sandbox made, and whether it runs')
    .option('--json', 'print JSON')
    .addOption(stateDirOption())
    .action(async (f: { json?: boolean; stateDir: string }) => {
      const st = await sandboxStatus(f.stateDir);
      process.stdout.write(f.json ? `${JSON.stringify(st, null, 2)}\n` : `${formatStatus(st)}\n`);
      if (!st.healthy) process.exitCode = 3;
    });

  sandbox
    .command('shell')
    .description('a shell (or COMMAND) inside an instance\'s or a node\'s namespace')
    .argument('<name>', 'instance (web1, app2, …) or node (n1, …)')
    .argument('[command...]', 'run this instead of a shell (put it after --)')
    .addOption(stateDirOption())
    .passThroughOptions()
    .action(async (name: string, command: string[], f: { stateDir: string }) => {
      requireRoot('shell');
      const s = await loadState(f.stateDir);
      if (!s) throw new SandboxInputError(`no sandbox is up: nothing is recorded in ${f.stateDir}`);
      const target = s.instances.find((i) => i.name === name || i.ns === name) ?? s.nodes.find((n) => n.name === name || n.ns === name);
      if (!target) {
        const names = [...s.instances.map((i) => i.name), ...s.nodes.map((n) => n.name)].join(', ');
        throw new SandboxInputError(`no instance or node named "${name}" in the sandbox (there are: ${names})`);
      }
      // passThroughOptions keeps the "--" that separates the command.
      const cmd = command[0] === '--' ? command.slice(1) : command;
      const argv = cmd.length > 0 ? cmd : [process.env.SHELL || '/bin/bash'];
      const r = spawnSync('ip', ['netns', 'exec', target.ns, ...argv], { stdio: 'inherit', env: { ...process.env, RHUMB_SANDBOX_NAME: name } });
      if (r.error) throw r.error;
      process.exitCode = r.status ?? 1;
    });

  sandbox
    .command('down')
    .description('remove every namespace, process and file the sandbox made (also after a crash of `up`)')
    .addOption(stateDirOption())
    .action(async (f: { stateDir: string }) => {
      const r = await sandboxDown(f.stateDir, (l) => say(l));
      say(`down: ${r.namespaces.length} namespace(s), ${r.processes} process(es) and the files in ${f.stateDir} removed`);
      if (r.left.length > 0) process.exitCode = 2;
    });
}
