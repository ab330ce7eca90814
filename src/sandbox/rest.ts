/** JSON over HTTP for the sandbox: the controller's REST API and the agents' local APIs. */

export class RestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'RestError';
  }
}

/** token: sent as a bearer token (the controller of a sandbox up with --auth). */
export async function rest<T = unknown>(base: string, method: string, path: string, body?: unknown, timeoutMs = 30_000, token?: string): Promise<T> {
  let res: Response;
  try {
    res = await fetch(base + path, {
      method,
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const cause = (err as Error & { cause?: Error }).cause;
    throw new RestError(0, `${method} ${base}${path}: ${cause?.message ?? (err as Error).message}`);
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = text;
  }
  if (res.status >= 300) {
    const msg = (parsed as { message?: string } | undefined)?.message ?? text.slice(0, 200);
    throw new RestError(res.status, `${method} ${path}: ${res.status} ${msg}`);
  }
  return parsed as T;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Thrown from a waitFor() probe: stop waiting, this will not get better. */
export class GiveUp extends Error {}

/** Polls fn until it returns a value (not undefined), or throws `what` after ms; GiveUp ends it at once. */
export async function waitFor<T>(fn: () => Promise<T | undefined>, ms: number, what: string, everyMs = 100): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      if (err instanceof GiveUp) throw err;
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (${(last as Error).message})` : ''}`);
    await sleep(everyMs);
  }
}
