/** What every NAPI route handler gets: the REST context plus NAPI's configuration. */
import type { RestContext } from '../rest/context.js';

export interface OverlayConfig {
  enabled: boolean;
  /** MTU of fabric networks (and the overlay nic tag): underlay MTU minus VXLAN's 50 bytes. */
  defaultOverlayMTU: number;
  defaultUnderlayMTU: number;
  overlayNicTag: string;
  underlayNicTag: string;
}

export interface NapiConfig {
  datacenter: string;
  /** Treated as an owner of every network and pool, as ufdsAdminUuid is in NAPI. */
  adminUuid: string;
  /** MAC prefix for allocated MACs: 3 bytes as 6 hex digits, e.g. '90b8d0'. */
  macOUI: string;
  overlay: OverlayConfig;
  /** Permit "linklocal" as a route gateway. */
  allowLinklocal: boolean;
}

export interface NapiContext extends RestContext {
  config: NapiConfig;
}

export const DEFAULT_MAC_OUI = '90b8d0';
