/**
 * Waiting for a runtime that plumbs interfaces itself (Docker's libnetwork): its sandbox
 * key becomes a network namespace when the container's namespace is bind-mounted there,
 * then the staged interface is moved in and renamed. Both are polled (a few milliseconds
 * apart, bounded by a deadline and an abort signal): the runtime tells nobody.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Links } from '../../dataplane/links.js';
import { canonicalMac } from '../../net/addr.js';
import { inNetns, ip } from './iproute.js';
import { instanceNetnsProblem } from './netns.js';
import { nativePlumbing } from './run.js';

export interface WaitOptions {
  /** Give up after this long (ms). */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Between polls (ms). Default 2. */
  intervalMs?: number;
}

async function pollUntil<T>(what: string, probe: () => Promise<T | undefined>, o: WaitOptions): Promise<T> {
  const deadline = Date.now() + o.timeoutMs;
  for (;;) {
    o.signal?.throwIfAborted();
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${o.timeoutMs} ms waiting for ${what}`);
    await sleep(o.intervalMs ?? 2, undefined, o.signal ? { signal: o.signal } : undefined);
  }
}

/** Resolves once path is a network namespace (other than the node's and the host's). */
export async function waitForNetns(path: string, o: WaitOptions): Promise<void> {
  await pollUntil(`namespace ${path}`, async () => ((await instanceNetnsProblem(path)) === undefined ? true : undefined), o);
}

/**
 * The name of the interface with this MAC in the namespace at path, once it has one other
 * than `notNamed` (the name it had before the runtime moved and renamed it).
 */
export async function waitForInterface(path: string, macInput: string, notNamed: string, o: WaitOptions): Promise<string> {
  const mac = canonicalMac(macInput);
  return pollUntil(
    `interface ${mac} in ${path}`,
    async () => {
      let links: Array<{ ifname?: string; address?: string }>;
      try {
        links = nativePlumbing()
          ? (await Links.list(path)).map((l) => ({ ifname: l.name, address: l.mac }))
          : (JSON.parse(await ip(['-j', 'link', 'show'], inNetns(path))) as Array<{ ifname?: string; address?: string }>);
      } catch {
        return undefined;
      }
      const l = links.find((x) => x.address !== undefined && x.ifname !== undefined && x.ifname !== notNamed && canonicalMac(x.address) === mac);
      return l?.ifname;
    },
    { ...o, intervalMs: o.intervalMs ?? 2 },
  );
}
