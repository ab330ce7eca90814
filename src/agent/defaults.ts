/**
 * Defaults the agent and its local clients (the CNI and Docker plugins, `rhumb agent
 * attach`) agree on. Imports nothing, so a plugin that starts once per container pays
 * nothing for it.
 */

/**
 * The agent's API address when `rhumb agent --api` is not given: a unix socket, mode 0600
 * (root only: the API plumbs namespaces). `--api HOST:PORT` serves TCP instead.
 */
export const DEFAULT_AGENT_API = '/run/rhumb/agent.sock';
