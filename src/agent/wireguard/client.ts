/**
 * The agent's calls to the controller for the encrypted underlay: the peers feed
 * (long-poll) and publishing or withdrawing the node's record, through the agent's fetch
 * (TLS and token when configured).
 */
import type { PeersFeed, WireguardNodeRecord } from '../../overlay/wireguard.js';

export class ControllerCallError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ControllerCallError';
  }
}

export class WireguardClient {
  private readonly base: string;

  constructor(
    controllerUrl: string,
    private readonly nodeUuid: string,
    private readonly doFetch: typeof fetch = fetch,
  ) {
    this.base = controllerUrl.replace(/\/+$/, '');
  }

  private async call<T>(method: string, path: string, body: unknown, timeoutMs: number): Promise<T | undefined> {
    const res = await this.doFetch(this.base + path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    if (res.status >= 400) {
      let msg = text;
      try {
        msg = (JSON.parse(text) as { message?: string }).message ?? text;
      } catch {
        /* not JSON */
      }
      throw new ControllerCallError(res.status, `${method} ${path}: ${res.status} ${msg}`);
    }
    return text ? (JSON.parse(text) as T) : undefined;
  }

  /** What changed after since (waiting up to waitMs for a change). */
  async peers(since: number, waitMs: number): Promise<PeersFeed> {
    const feed = await this.call<PeersFeed>('GET', `/wireguard/peers?since=${since}&wait=${waitMs}`, undefined, waitMs + 15_000);
    if (!feed || typeof feed.revision !== 'number' || !Array.isArray(feed.peers)) throw new Error('the controller sent a malformed peers answer');
    return feed;
  }

  async publish(rec: Omit<WireguardNodeRecord, 'cn_uuid' | 'updated'>): Promise<void> {
    await this.call('PUT', `/wireguard/nodes/${this.nodeUuid}`, rec, 10_000);
  }

  async withdraw(): Promise<void> {
    try {
      await this.call('DELETE', `/wireguard/nodes/${this.nodeUuid}`, undefined, 10_000);
    } catch (err) {
      if (!(err instanceof ControllerCallError && err.status === 404)) throw err;
    }
  }
}
