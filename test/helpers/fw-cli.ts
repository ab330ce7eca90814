/** Runs `rhumb fw …` in this process, capturing what it prints and the exit code it asks for. */
import { Command } from 'commander';
import type { ClientIo } from '../../src/cli/client.js';
import { registerFwCommands } from '../../src/cli/fw.js';

export async function runFwCli(args: readonly string[]): Promise<{ out: string; err: string; code: number }> {
  let out = '';
  let err = '';
  let code = 0;
  const io: ClientIo = { out: (t) => (out += `${t}\n`), err: (t) => (err += `${t}\n`), fail: (c) => (code = c), fetch: (...a) => fetch(...a) };
  const program = new Command().exitOverride().enablePositionalOptions();
  registerFwCommands(program, io);
  await program.parseAsync(['node', 'rhumb', ...args]);
  return { out, err, code };
}
