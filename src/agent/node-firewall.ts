/**
 * The agent's firewall, node-side: the controller's per-node ruleset feed applied to the
 * ports (and Docker publication links) of the NICs attached here (../fw/applier.ts), the
 * flow log of logged rules (./flowlog.ts), and what starting it takes — br_netfilter's
 * switches on, the tables older agents left inside instances removed.
 *
 * What it needs of the agent is the NICs attached here, as a function: it holds no copy.
 */
import { execFile } from 'node:child_process';
import { access, readFile, writeFile } from 'node:fs/promises';
import type { Registry } from 'prom-client';
import { FwFeedClient, installedInstances, loadNft } from '../fw/applier.js';
import { renderNetnsRemoval } from '../fw/nft.js';
import { nativeNflogAvailable } from '../dataplane/nflog.js';
import type { Logger } from '../log/index.js';
import { hostPortName } from '../net/ports.js';
import { FlowLog } from './flowlog.js';

/** What the firewall reads of a NIC attached here. */
export interface FirewalledNic {
  mac: string;
  belongs_to_uuid?: string;
  owner_uuid?: string;
  netns?: string;
}

export interface NodeFirewallConfig {
  controllerUrl: string;
  /** fetch carrying the node's credentials (TLS, token). */
  fetch?: typeof fetch;
  waitMs?: number;
  retryMs?: number;
  /** Where logged rules' connections are written (./flowlog.ts), rotated past maxBytes. */
  flowLog?: { path: string; maxBytes?: number };
}

export interface NodeFirewallOptions extends NodeFirewallConfig {
  nodeUuid: string;
  /** The NICs attached here now. */
  nics: () => Iterable<FirewalledNic>;
  /** A staged NIC (its runtime has not moved it into the workload yet). */
  isStaged: (mac: string) => boolean;
  /** Docker -p: the node-side publication link into a NIC's instance (absent: the agent has no such links). */
  publicationLinkOf?: (mac: string) => string | undefined;
  registry?: Registry;
  log: Logger;
}

export class NodeFirewall {
  private feed: FwFeedClient | undefined;
  private flowLog: FlowLog | undefined;

  constructor(private readonly o: NodeFirewallOptions) {}

  /** The NICs attached here that belong to this instance. */
  private nicsOf(instanceUuid: string): FirewalledNic[] {
    return [...this.o.nics()].filter((n) => n.belongs_to_uuid === instanceUuid);
  }

  async start(): Promise<void> {
    await ensureBridgeNetfilter((msg) => this.o.log.warn(msg));
    await this.removeNetnsFirewalls();
    this.startFlowLog();
    const linkOf = this.o.publicationLinkOf;
    this.feed = new FwFeedClient({
      controllerUrl: this.o.controllerUrl,
      ...(this.o.fetch ? { fetch: this.o.fetch } : {}),
      nodeUuid: this.o.nodeUuid,
      portsOf: (uuid) => this.nicsOf(uuid).map((n) => hostPortName(n.mac)),
      ...(linkOf ? { linksOf: (uuid: string) => this.nicsOf(uuid).flatMap((n) => linkOf(n.mac) ?? []) } : {}),
      listInstalled: () => installedInstances(undefined, 'bridge'),
      ...(this.o.registry ? { registry: this.o.registry } : {}),
      ...(this.o.waitMs !== undefined ? { waitMs: this.o.waitMs } : {}),
      ...(this.o.retryMs !== undefined ? { retryMs: this.o.retryMs } : {}),
      onRound: (r) => {
        if (r.applied.length > 0) this.o.log.info(`firewall: applied ${r.applied.length} ruleset(s) at revision ${r.revision}`);
        for (const [uuid, why] of r.failed) {
          // A staged NIC's workload has no namespace yet by design: activation applies its table.
          if (uuid !== '(feed)' && !this.stagedInstance(uuid)) this.o.log.warn(`firewall: ${uuid}: ${why}`);
        }
      },
    });
    this.feed.start();
  }

  /** The instance's table in place now, before a NIC of it carries traffic (FwFeedClient.protect). */
  async protect(instanceUuid: string): Promise<void> {
    await this.feed?.protect(instanceUuid);
  }

  /** The instance's publication links changed: its table covers them before anything is published. */
  async relink(instanceUuid: string): Promise<void> {
    await this.feed?.relink(instanceUuid);
  }

  status(): { enabled: true; revision: number; failures: Record<string, string> } {
    return { enabled: true, revision: this.feed?.revision ?? 0, failures: Object.fromEntries(this.feed?.failures ?? []) };
  }

  /** Tables stay: the instances stay protected while the agent is down. */
  async stop(): Promise<void> {
    await this.feed?.stop();
    await this.flowLog?.close();
  }

  private startFlowLog(): void {
    const cfg = this.o.flowLog;
    if (!cfg) return;
    if (!nativeNflogAvailable()) {
      this.o.log.warn('firewall: flow logs need the native addon (NFLOG); not collected');
      return;
    }
    const flows = new FlowLog({
      path: cfg.path,
      node: this.o.nodeUuid,
      ownerOf: (instance) => this.nicsOf(instance).find((n) => n.owner_uuid)?.owner_uuid,
      ...(cfg.maxBytes !== undefined ? { maxBytes: cfg.maxBytes } : {}),
      ...(this.o.registry ? { registry: this.o.registry } : {}),
      log: (msg) => this.o.log.warn(msg),
    });
    try {
      flows.start();
      this.flowLog = flows;
      this.o.log.info(`firewall: flow logs to ${cfg.path}`);
    } catch (err) {
      this.o.log.warn(`firewall: flow logs not collected: ${(err as Error).message}`);
    }
  }

  /**
   * Tables an agent that enforced inside instances' namespaces left there: with node-side
   * enforcement they would only hold stale rules.
   */
  private async removeNetnsFirewalls(): Promise<void> {
    const namespaces = new Set([...this.o.nics()].flatMap((n) => (n.netns ? [n.netns] : [])));
    for (const ns of namespaces) {
      for (const uuid of await installedInstances(ns, 'inet')) {
        const error = await loadNft(ns, renderNetnsRemoval(uuid));
        if (error !== undefined) this.o.log.warn(`firewall: removing ${uuid}'s table in ${ns}: ${error}`);
      }
    }
  }

  /** True when an instance's NICs here are all staged (waiting for their runtime to move them). */
  private stagedInstance(uuid: string): boolean {
    const mine = this.nicsOf(uuid);
    return mine.length > 0 && mine.every((n) => this.o.isStaged(n.mac));
  }
}

/**
 * Node-side firewalls read conntrack state that br_netfilter gives bridged IP traffic (on
 * by default in every namespace where the module is loaded): load the module when its
 * switches are missing, and switch them on if someone turned them off.
 */
async function ensureBridgeNetfilter(warn: (msg: string) => void): Promise<void> {
  if (!(await access('/proc/sys/net/bridge/bridge-nf-call-iptables').then(() => true, () => false))) {
    await new Promise<void>((resolve) =>
      execFile('modprobe', ['br_netfilter'], (err) => {
        if (err) warn(`firewall: modprobe br_netfilter: ${err.message.trim()}`);
        resolve();
      }),
    );
  }
  for (const family of ['iptables', 'ip6tables']) {
    const path = `/proc/sys/net/bridge/bridge-nf-call-${family}`;
    try {
      if ((await readFile(path, 'utf8')).trim() !== '1') {
        warn(`firewall: ${path} was off; node-side firewalls need it: switching it on`);
        await writeFile(path, '1\n');
      }
    } catch (err) {
      warn(`firewall: ${path}: ${(err as Error).message} (node-side firewalls cannot see connection state)`);
    }
  }
}
