/**
 * What a backend's distributed gateway is planned from (../edge/plan.ts): the network of
 * each NIC plumbed here, the node's external side, the routers and the published ports.
 * Both backends keep one and plan from it after every change; only how a plan is carried
 * out differs between them.
 */
import { type EdgePlan, type EdgeRouter, type ExternalSide, type PublishedPort, edgeNetworkOf, planEdge } from '../edge/plan.js';
import { canonicalMac } from '../net/addr.js';
import type { NicPlumbing } from './plumbing/nic.js';

export class EdgeInputs {
  private readonly nets = new Map<string, ReturnType<typeof edgeNetworkOf>>();
  external: ExternalSide | undefined;
  routers: readonly EdgeRouter[] = [];
  published: readonly PublishedPort[] = [];

  /** A NIC plumbed here: its network gets the gateway. */
  addNic(p: NicPlumbing): void {
    this.nets.set(canonicalMac(p.mac), edgeNetworkOf(p));
  }

  /** False when the NIC was not known (nothing to re-plan). */
  removeNic(mac: string): boolean {
    return this.nets.delete(canonicalMac(mac));
  }

  /** The plan for the networks whose vnet has its devices here (a NIC whose plumbing failed brings none). */
  plan(hasVnet: (vnet: number) => boolean): EdgePlan {
    const nets = [...this.nets.values()].filter((n) => hasVnet(n.vnet));
    return planEdge(nets, { external: this.external, routers: this.routers, published: this.published });
  }
}
