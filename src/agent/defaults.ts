/**
 * Defaults the agent and its local clients (the CNI and Docker plugins, `rhumb agent
 * attach`) agree on. Imports nothing, so a plugin that starts once per container pays
 * nothing for it.
 */

/** The agent's API address when `rhumb agent --api` is not given: TCP on loopback. */
export const DEFAULT_AGENT_API = '127.0.0.1:8090';
