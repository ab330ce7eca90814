/**
 * The node's published ports, told to the controller so that `fw explain` can follow a
 * packet from this node's address and port to an instance (../fw/ingress.ts):
 *
 *   PUT {controller}/fw/nodes/:cn_uuid/ingress   {entries: [...]}: the whole table
 *
 * The agent stays the truth (it owns the host ports and applies the DNAT, with or without
 * the controller); the controller's copy is for explaining only. The table is sent when it
 * differs from the last one the controller accepted: soon after a change (poke), and on
 * every interval, which also retries after a failure.
 */
import type { IngressEntry } from '../fw/ingress.js';
import type { Logger } from '../log/index.js';

/**
 * The node's ingress report: the agent's published ports and Docker's, each saying when
 * the instance's firewall does not see it here. Docker -p arrives masqueraded over the
 * container's publication link (src/docker/publish.ts), but the node-side firewall filters
 * the link before the masquerade: its rules see the client's own address, not the link's
 * (the entry's seen_from).
 */
export function ingressTable(published: IngressEntry[], docker: IngressEntry[], o: { firewall: boolean }): IngressEntry[] {
  const dockerSeen = docker.map((e) => {
    const { seen_from: _masqueraded, ...seenAsClient } = e;
    return seenAsClient;
  });
  return [...published, ...dockerSeen].map((e) => (o.firewall ? e : { ...e, unfiltered: 'this node applies no firewall (--no-firewall)' }));
}

export interface IngressReporterOptions {
  controllerUrl: string;
  /** fetch carrying the node's credentials; default the global fetch. */
  fetch?: typeof fetch;
  nodeUuid: string;
  /** Every published port in force on this node now. */
  collect: () => IngressEntry[];
  /** Between checks when nothing is poked (and between retries). */
  intervalMs: number;
  logger?: Logger;
}

export class IngressReporter {
  private timer: NodeJS.Timeout | undefined;
  private accepted: string | undefined;
  private sending: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private failing = false;

  constructor(private readonly o: IngressReporterOptions) {}

  start(): void {
    this.poke();
  }

  /** The table may have changed: check (and send) now. */
  poke(): void {
    if (this.stopped) return;
    if (this.sending) {
      this.again = true;
      return;
    }
    this.sending = this.send().finally(() => {
      this.sending = undefined;
      if (this.again) {
        this.again = false;
        this.poke();
      } else this.schedule();
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Resolves when no send is under way (tests). */
  async settled(): Promise<void> {
    while (this.sending) await this.sending;
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.poke(), this.o.intervalMs);
    this.timer.unref();
  }

  private async send(): Promise<void> {
    const body = JSON.stringify({ entries: this.o.collect() });
    if (body === this.accepted) return;
    try {
      const res = await (this.o.fetch ?? fetch)(`${this.o.controllerUrl.replace(/\/$/, '')}/fw/nodes/${this.o.nodeUuid}/ingress`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(5000),
      });
      const text = await res.text().catch(() => '');
      if (res.status >= 400) throw new Error(`HTTP ${res.status} ${text.slice(0, 200)}`);
      this.accepted = body;
      if (this.failing) this.o.logger?.info('ingress report: the controller accepts it again');
      this.failing = false;
    } catch (err) {
      // Said once per outage, not every interval.
      if (!this.failing) this.o.logger?.warn(`ingress report: ${(err as Error).message} (will retry)`);
      this.failing = true;
    }
  }
}
