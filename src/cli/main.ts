/** The `rhumb` command. */
import { Command } from 'commander';
import { registerClientCommands } from './client.js';
import { registerAgentCommands } from './agent.js';
import { registerCniCommands } from './cni.js';
import { registerControllerCommand } from './controller.js';
import { registerDockerCommands } from './docker.js';
import { registerEncryptionCommands } from './encryption.js';
import { registerFwCommands } from './fw.js';
import { registerPkiCommands } from './pki.js';
import { registerSandboxCommands } from './sandbox.js';
import { registerSvpCommands } from './svp.js';
import { registerTraceCommand } from './trace.js';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('rhumb')
    .description('VXLAN overlay network controller: NAPI-compatible REST API, SVP mapping service, node agent')
    .showHelpAfterError()
    .enablePositionalOptions();
  registerControllerCommand(program);
  registerAgentCommands(program);
  registerCniCommands(program);
  registerClientCommands(program);
  registerSvpCommands(program);
  registerFwCommands(program);
  registerEncryptionCommands(program);
  registerTraceCommand(program);
  registerSandboxCommands(program);
  registerDockerCommands(program);
  registerPkiCommands(program);
  return program;
}

// A process started with no arguments does something useful: run the controller.
const argv = process.argv.length <= 2 ? [...process.argv, 'controller'] : process.argv;
buildProgram()
  .parseAsync(argv)
  .catch((err: Error) => {
    process.stderr.write(`rhumb: ${err.message}\n`);
    process.exit(1);
  });
