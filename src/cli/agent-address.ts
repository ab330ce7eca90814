/**
 * The command-line face of the agent's address, shared by `rhumb agent` (where it
 * listens) and every command that talks to a running agent (`agent attach|detach`,
 * `node rotate-key`): one default, the unix socket of src/agent/defaults.ts.
 */
import { InvalidArgumentError, Option } from 'commander';
import { type AgentAddress, AgentAddressError, DEFAULT_AGENT_SOCKET, agentRequest, parseAgentAddress } from '../agent/address.js';

/** An agent API address flag: a unix socket path or HOST:PORT. */
export function agentAddressArg(listening: boolean) {
  return (v: string): AgentAddress => {
    try {
      return parseAgentAddress(v, { listening });
    } catch (err) {
      if (err instanceof AgentAddressError) throw new InvalidArgumentError(err.message);
      throw err;
    }
  };
}

/** `--agent`: where a running agent's API is (RHUMB_AGENT; default its unix socket). */
export function agentOption(): Option {
  return new Option('--agent <path|host:port>', 'the agent API: its unix socket or HOST:PORT')
    .env('RHUMB_AGENT')
    .argParser(agentAddressArg(false))
    .default(parseAgentAddress(DEFAULT_AGENT_SOCKET), DEFAULT_AGENT_SOCKET);
}

/** POST to a running agent; a 4xx/5xx becomes an error carrying the agent's message. */
export async function callAgent(agent: AgentAddress, path: string, body: unknown): Promise<unknown> {
  const res = await agentRequest<{ message?: string } | undefined>(agent, 'POST', path, body, 60_000);
  if (res.status >= 400) throw new Error(`${path.slice(1)} failed (${res.status}): ${res.body?.message ?? 'no message'}`);
  return res.body;
}
