/**
 * `rhumb docker install-spec | remove-spec`: tells the local Docker daemon where the
 * agent's plugin listens (a spec file under /etc/docker/plugins/). A plugin socket in
 * /run/docker/plugins/ is found without one.
 */
import { type Command, InvalidArgumentError } from 'commander';
import { parsePluginAddress } from '../docker/server.js';
import { DEFAULT_PLUGIN_NAME, DEFAULT_PLUGIN_SOCKET, DEFAULT_SPEC_DIR, installSpec, pluginNameProblem, removeSpec } from '../docker/spec.js';

function name(v: string): string {
  const problem = pluginNameProblem(v);
  if (problem) throw new InvalidArgumentError(problem);
  return v;
}

export function registerDockerCommands(program: Command): void {
  const docker = program.command('docker').description("Docker's network and IPAM plugin (served by `rhumb agent --docker-plugin`)");
  docker
    .command('install-spec')
    .description('write /etc/docker/plugins/NAME.spec pointing Docker at the agent\'s plugin address')
    .option('--address <addr>', "the agent's --docker-plugin address (socket path or HOST:PORT)", DEFAULT_PLUGIN_SOCKET)
    .option('--name <name>', 'plugin (driver) name', name, DEFAULT_PLUGIN_NAME)
    .option('--dir <dir>', 'plugin spec directory', DEFAULT_SPEC_DIR)
    .action(async (f: { address: string; name: string; dir: string }) => {
      let addr;
      try {
        addr = parsePluginAddress(f.address);
      } catch (err) {
        throw new InvalidArgumentError((err as Error).message);
      }
      const path = await installSpec({ dir: f.dir, name: f.name, address: addr });
      process.stdout.write(`${path}\n`);
    });
  docker
    .command('remove-spec')
    .description('remove the spec file install-spec wrote')
    .option('--name <name>', 'plugin (driver) name', name, DEFAULT_PLUGIN_NAME)
    .option('--dir <dir>', 'plugin spec directory', DEFAULT_SPEC_DIR)
    .action(async (f: { name: string; dir: string }) => {
      process.stdout.write(`${(await removeSpec(f)) ? 'removed' : 'nothing to remove'}\n`);
    });
}
