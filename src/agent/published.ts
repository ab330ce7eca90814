/**
 * Published ports (issue #12, ingress): an instance's port reachable on the node's
 * external address, DNAT'ed by the distributed gateway (../edge/plan.ts). Node-local,
 * like the host port it takes: set through the agent's API per attached NIC
 * (`PUT /published-ports/:mac {"ports":[{"protocol":"tcp","port":80,"host_port":8080}]}`)
 * and kept in the agent's state directory, so a restarted agent publishes them again.
 * The instance's firewall still decides what it accepts. An IPv4 NIC's ports are published
 * on the external IPv4 address, an IPv6 NIC's on the external global IPv6 address.
 */
import { type ExternalSide, type PublishedPort, isV6, publishedProblem } from '../edge/plan.js';
import type { IngressEntry } from '../fw/ingress.js';
import type { StateFile } from './state-file.js';

/** One published port of a NIC, as the API takes and answers it. */
export interface PortMapping {
  protocol: 'tcp' | 'udp';
  port: number;
  host_port: number;
}

/** The API body's `ports` checked: a list of mappings, or the reason it is not one. */
export function parseMappings(v: unknown): PortMapping[] | string {
  if (!Array.isArray(v)) return 'ports must be a list of {protocol, port, host_port}';
  const out: PortMapping[] = [];
  for (const m of v) {
    if (!m || typeof m !== 'object') return 'ports must be a list of {protocol, port, host_port}';
    const { protocol = 'tcp', port, host_port: hostPort = port } = m as Record<string, unknown>;
    const mapping = { protocol, port, host_port: hostPort } as PortMapping;
    const problem = publishedProblem([{ protocol: mapping.protocol, port: mapping.port, hostPort: mapping.host_port }]);
    if (problem) return problem;
    out.push(mapping);
  }
  return out;
}

/**
 * Why a NIC with address ip cannot publish ports on this node's external side, or
 * undefined: there is none, or the NIC is IPv6 and the external interface had no global
 * IPv6 address at start.
 */
export function externalProblem(ip: string, external: ExternalSide | undefined): string | undefined {
  if (!external) return 'this agent has no external side (--external-iface): nothing can be published';
  if (isV6(ip) && !external.address6) return `${ip} is an IPv6 address and the external interface ${external.iface} has no global IPv6 address: an IPv6 NIC's ports cannot be published`;
  return undefined;
}

/** The external address a NIC with address ip publishes on (its family's), or undefined. */
export function publishedAddress(ip: string, external: ExternalSide): string | undefined {
  return isV6(ip) ? external.address6 : external.address;
}

export class PublishedPorts {
  private byMac = new Map<string, PortMapping[]>();

  constructor(private readonly file?: StateFile) {}

  /**
   * What the state file holds ({"ports": {mac: [...]}}), each NIC's list checked as the
   * API checks it (a list that is not valid is left out, not half-loaded). A file that
   * does not parse is an error naming it.
   */
  async load(): Promise<void> {
    if (!this.file) return;
    const byMac = new Map<string, PortMapping[]>();
    for (const [mac, v] of await this.file.readEntries('ports')) {
      const ports = parseMappings(v);
      if (typeof ports !== 'string' && ports.length > 0) byMac.set(mac, ports);
    }
    this.byMac = byMac;
  }

  get(mac: string): PortMapping[] {
    return this.byMac.get(mac) ?? [];
  }

  all(): Record<string, PortMapping[]> {
    return Object.fromEntries([...this.byMac.entries()].sort(([a], [b]) => (a < b ? -1 : 1)));
  }

  /**
   * Why mac cannot have these mappings next to the other NICs' (a host port of its
   * family taken), or undefined. ipOf: a NIC's address (its family picks the external
   * address); a NIC not known counts as IPv4.
   */
  conflict(mac: string, ports: readonly PortMapping[], ipOf: (mac: string) => string | undefined = () => undefined): string | undefined {
    const withIp = (m: string, list: readonly PortMapping[]) => {
      const ip = ipOf(m);
      return list.map((p) => ({ protocol: p.protocol, port: p.port, hostPort: p.host_port, ...(ip ? { ip } : {}) }));
    };
    const others = [...this.byMac.entries()].filter(([m]) => m !== mac).flatMap(([m, list]) => withIp(m, list));
    return publishedProblem([...others, ...withIp(mac, ports)]);
  }

  async set(mac: string, ports: readonly PortMapping[]): Promise<void> {
    if (ports.length === 0) this.byMac.delete(mac);
    else this.byMac.set(mac, [...ports]);
    if (!this.file) return;
    if (this.byMac.size === 0) await this.file.remove();
    else await this.file.write(JSON.stringify({ ports: this.all() }));
  }

  /** The data plane's view: every mapping of a NIC attached here (ip and vnet from its attachment). */
  resolve(attached: (mac: string) => { ip: string; vnet: number } | undefined): PublishedPort[] {
    const out: PublishedPort[] = [];
    for (const [mac, list] of this.byMac) {
      const a = attached(mac);
      if (!a) continue;
      for (const p of list) out.push({ vnet: a.vnet, ip: a.ip, protocol: p.protocol, port: p.port, hostPort: p.host_port });
    }
    return out;
  }

  /** The ingress report's view (all but the address): every mapping of a NIC attached here whose instance is known. */
  ingress(attached: (mac: string) => { ip: string; belongs_to_uuid?: string } | undefined): Array<Omit<IngressEntry, 'address'>> {
    const out: Array<Omit<IngressEntry, 'address'>> = [];
    for (const [mac, list] of this.byMac) {
      const a = attached(mac);
      if (!a?.belongs_to_uuid) continue;
      for (const p of list) out.push({ protocol: p.protocol, host_port: p.host_port, instance: a.belongs_to_uuid, mac, ip: a.ip, port: p.port, via: 'published' });
    }
    return out;
  }
}
