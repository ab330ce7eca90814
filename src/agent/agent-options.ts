/**
 * What the node agent is given (./agent.ts): its options, and the narrow faces of the
 * NAPI client, the SVP client and the underlay prober it calls.
 */
import type { Registry } from 'prom-client';
import type { ClientLogEntry, LogResult, LogRmResult, QueryOptions, Vl2Result, Vl3Result } from '../svp/client.js';
import type { DataplaneBackend } from './backend.js';
import type { UnderlayRouting } from './underlay-routing.js';
import type { NodeFirewallConfig } from './node-firewall.js';
import type { Logger } from '../log/index.js';
import type { NapiClient } from './napi-client.js';
import type { AttachmentState } from './state.js';
import type { ExternalSide } from '../edge/plan.js';
import type { StateFile } from './state-file.js';

/** The NAPI calls the agent makes (NapiClient implements it). */
/** (request: for following routers; a NAPI without it leaves the gateway without routers.) */
export type AgentNapi = Pick<NapiClient, 'getNic' | 'listNics' | 'listNetworks' | 'createNic'> & Partial<Pick<NapiClient, 'request'>>;

/** The SVP client calls the agent makes (SvpClient implements it). */
export interface SvpLookups {
  vl2(mac: string, vnetId: number, opts?: QueryOptions): Promise<Vl2Result>;
  vl3(ip: string, vnetId: number, opts?: QueryOptions): Promise<Vl3Result>;
  logReq(underlayIp: string, count?: number, opts?: QueryOptions): Promise<LogResult>;
  logRm(ids: readonly string[], opts?: QueryOptions): Promise<LogRmResult>;
}

export interface PeerProber {
  add(address: string, peer?: string): void;
}

export interface AgentOptions {
  nodeUuid: string;
  underlayIp: string;
  /** How often the node's own underlay address is checked for a change (ms, default 500). */
  underlayFollowMs?: number;
  /** Drops the connections to the controller (the underlay address in use is gone: they left from it). */
  renewControllerConnections?: () => void;
  underlayDev?: string;
  napi: AgentNapi;
  svp: SvpLookups;
  backend: DataplaneBackend;
  registry: Registry;
  prober?: PeerProber;
  /** Owner of the underlay NIC the agent registers. */
  adminUuid: string;
  underlayNicTag?: string;
  /** NOTFOUND answers are remembered this long. Default 2000 ms. */
  negativeTtlMs?: number;
  /** LOG_REQ query timeout; must exceed the controller's long-poll wait. Default 30000 ms. */
  logTimeoutMs?: number;
  /** Resolve a network's remote NICs when its vnet first appears here. Default true. */
  prefetch?: boolean;
  /** Where attachments (MAC -> namespace, interface, instance) survive a restart. */
  state?: AttachmentState;
  /**
   * Why a namespace path (of an accepted shape) is not an instance's, or undefined.
   * Default: it must be an existing network namespace other than the node's and the host's.
   */
  checkNetns?: (path: string) => Promise<string | undefined>;
  /** Apply the instances' firewall rulesets from the controller's feed (GET /fw/nodes/:node/rulesets), node-side. */
  firewall?: NodeFirewallConfig;
  /** Called for each shootdown applied, with the time (Unix ms) it took effect. */
  onShootdownApplied?: (entry: ClientLogEntry, appliedAt: number) => void;
  /** The agent's logger (pino; the CLI's root logger); none: silent. */
  logger?: Logger;
  /** The encrypted underlay (absent: VXLAN always between underlay addresses). */
  routing?: UnderlayRouting;
  /** The node's external side (egress NAT), resolved from `--external-iface`. */
  external?: ExternalSide;
  /**
   * Retry delay of the router feed after an error, and how often routers are read again
   * from a controller without the feed (ms). Default 5000.
   */
  routerPollMs?: number;
  /** Where published ports survive a restart (absent: memory only). */
  publishedState?: StateFile;
  /** Called after the data plane was handed changed published ports (the node's ingress report follows). */
  onPublishedChange?: () => void;
  /**
   * Docker -p reaches instances over publication links of their own (../docker/publish.ts),
   * routed beside their ports: node-side firewalls filter those links too.
   */
  publicationLinks?: boolean;
}
