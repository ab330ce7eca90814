/** The local API's errors (./api.ts answers with their status and code). */
import { canonicalMac } from '../net/addr.js';

/** An error with the HTTP status the local API answers with. */
export class AgentError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** Machine-readable reason for API clients (default 'AgentError'), e.g. 'SubnetFull'. */
    readonly code = 'AgentError',
  ) {
    super(message);
    this.name = 'AgentError';
  }
}

/** A MAC from a request, canonical (400 when it is not a MAC). */
export function macParam(input: string): string {
  try {
    return canonicalMac(input);
  } catch (err) {
    throw new AgentError(400, (err as Error).message);
  }
}
