/**
 * fetch for clients of the controller's REST API (the agent's NAPI client, ruleset feed
 * and reports; the CLI): over HTTPS it verifies the controller against the CA and shows
 * the client's certificate when it has one; with a token every request carries
 * `Authorization: Bearer …`. Without either it is the global fetch, unchanged.
 */
import { Agent, fetch as undiciFetch } from 'undici';
import { type ClientTls, clientTlsOptions } from './tls.js';

export type Fetch = typeof fetch;

export interface RestClientAuth {
  tls?: ClientTls | undefined;
  token?: string | undefined;
  /** The fetch to use without TLS (tests inject theirs). Default: the global fetch. */
  plain?: Fetch | undefined;
}

export function restFetch(auth: RestClientAuth = {}): Fetch {
  const plain = auth.plain ?? ((input, init) => fetch(input, init));
  const base: Fetch = auth.tls ? tlsFetch(auth.tls) : plain;
  const token = auth.token;
  if (!token) return base;
  return (input, init) => {
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${token}`);
    return base(input, { ...init, headers });
  };
}

/** A fetch over connections of its own, and renew(): those connections dropped, new ones from then on. */
export interface RenewableFetch {
  fetch: Fetch;
  renew(): void;
}

/**
 * A request that was in flight on connections renew() dropped: no answer, and no fault of
 * the server or the request; ask again at once (long-poll loops do, without counting it).
 */
export class ConnectionsRenewedError extends Error {
  constructor(cause: unknown) {
    super('the connection to the controller was dropped (an address of this node went); ask again', { cause });
    this.name = 'ConnectionsRenewedError';
  }
}

/**
 * restFetch over a connection pool the caller can drop: the agent's, whose kept-alive
 * connections to the controller left from the node's address and are dead once that
 * address is gone (a request on one waits for its time-out). renew() destroys them;
 * requests in flight on them fail at once with ConnectionsRenewedError, and the next
 * requests open connections from the addresses the node has now.
 */
export function renewableRestFetch(auth: Omit<RestClientAuth, 'plain'> = {}): RenewableFetch {
  const options = auth.tls ? { connect: clientTlsOptions(auth.tls) } : {};
  let dispatcher = new Agent(options);
  const base = (async (input: Parameters<Fetch>[0], init?: Parameters<Fetch>[1]) => {
    const used = dispatcher;
    try {
      return await undiciFetch(input as Parameters<typeof undiciFetch>[0], { ...(init as Parameters<typeof undiciFetch>[1]), dispatcher: used });
    } catch (err) {
      throw used === dispatcher ? err : new ConnectionsRenewedError(err);
    }
  }) as unknown as Fetch;
  return {
    fetch: restFetch({ token: auth.token, plain: base }),
    renew() {
      const old = dispatcher;
      dispatcher = new Agent(options);
      old.destroy().catch(() => undefined);
    },
  };
}

function tlsFetch(tls: ClientTls): Fetch {
  const dispatcher = new Agent({ connect: clientTlsOptions(tls) });
  // undici's own fetch with its own dispatcher (the same API as the global fetch).
  return ((input: Parameters<Fetch>[0], init?: Parameters<Fetch>[1]) =>
    undiciFetch(input as Parameters<typeof undiciFetch>[0], { ...(init as Parameters<typeof undiciFetch>[1]), dispatcher })) as unknown as Fetch;
}

/** The token the CLI and the agent use when no flag gives one. */
export function tokenFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const t = env.RHUMB_TOKEN?.trim();
  return t ? t : undefined;
}
