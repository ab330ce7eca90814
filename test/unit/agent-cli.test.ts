import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { registerAgentCommands } from '../../src/cli/agent.js';

function program(): Command {
  const p = new Command().exitOverride().enablePositionalOptions();
  p.configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerAgentCommands(p);
  return p;
}

test('rhumb agent: attach and detach subcommands, the agent flags, required values checked', async () => {
  const p = program();
  const agent = p.commands.find((c) => c.name() === 'agent')!;
  assert.deepEqual(agent.commands.map((c) => c.name()).sort(), ['attach', 'detach']);
  const flags = agent.options.map((o) => o.long);
  for (const f of ['--node', '--underlay-ip', '--controller', '--svp', '--backend', '--api', '--underlay-dev']) assert.ok(flags.includes(f), f);
  await assert.rejects(p.parseAsync(['node', 'rhumb', 'agent']), /--node is required/);
  await assert.rejects(p.parseAsync(['node', 'rhumb', 'agent', '--node', 'nope']), /--node must be a UUID/);
  await assert.rejects(
    program().parseAsync(['node', 'rhumb', 'agent', '--node', 'aaaaaaaa-0000-4000-8000-00000000000a', '--underlay-ip', '198.18.0.1', '--controller', 'http://x', '--svp', 'x:1', '--backend', 'dpdk']),
    /--backend must be one of kernel/,
  );
  await assert.rejects(program().parseAsync(['node', 'rhumb', 'agent', 'attach', '--agent', '127.0.0.1:9']), /required option/);
});
