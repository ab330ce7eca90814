/**
 * The node's bridge-port filter (nftables, bridge family, table `rhumb_ports` in the node
 * namespace), rendered from the NICs plumbed here and replaced atomically with `nft -f`:
 *
 * - Anti-spoofing: frames an instance sends must carry its NIC's MAC (Ethernet and ARP
 *   sender) and IP (IPv4 and ARP sender; 0.0.0.0 allowed for DHCP and ARP probes; an IPv6
 *   NIC's IPv6 source may also be link-local or ::), unless the NIC has
 *   allow_mac_spoofing / allow_ip_spoofing.
 * - VLAN isolation on the node: two local ports of one vnet on different fabric VLANs
 *   exchange nothing. (Across nodes the kernel backend carries frames untagged: see
 *   ../kernel/vnet.ts.)
 *
 * Pure rendering here; KernelBackend applies it.
 */
import { isIPv6 } from 'node:net';
import { firstProblem, ipProblem, macProblem } from './checks.js';
import { hostVethName } from './names.js';

export const PORT_TABLE = 'rhumb_ports';

export interface PortPolicy {
  mac: string;
  ip: string;
  vnet: number;
  vlan: number;
  allowMacSpoofing?: boolean;
  allowIpSpoofing?: boolean;
}

/** A complete `nft -f` transaction replacing the table (creating it first if missing). */
export function renderPortFilter(ports: readonly PortPolicy[]): string {
  for (const p of ports) {
    // Only plain values reach the nft text (it runs as root).
    const problem = firstProblem(macProblem(p.mac), ipProblem('ip', p.ip));
    if (problem) throw new TypeError(`port filter: ${problem}`);
  }
  const sorted = [...ports].sort((a, b) => a.vnet - b.vnet || a.vlan - b.vlan || a.mac.localeCompare(b.mac));
  const rules: string[] = [];
  for (const p of sorted) {
    const port = `"${hostVethName(p.mac)}"`;
    if (!p.allowMacSpoofing) {
      rules.push(`iifname ${port} ether saddr != ${p.mac} drop`);
      rules.push(`iifname ${port} arp saddr ether != ${p.mac} drop`);
    }
    if (!p.allowIpSpoofing && isIPv6(p.ip)) {
      // An IPv6 NIC: its address, link-local (neighbour discovery) and :: (DAD); no IPv4 of its own.
      rules.push(`iifname ${port} arp saddr ip != 0.0.0.0 drop`);
      rules.push(`iifname ${port} ether type ip ip saddr != 0.0.0.0 drop`);
      rules.push(`iifname ${port} ether type ip6 ip6 saddr != { ${p.ip}, fe80::/10, :: } drop`);
    } else if (!p.allowIpSpoofing) {
      // An IPv4 NIC: its address (0.0.0.0 for DHCP and probes); IPv6 only link-local (as the userspace fast path).
      rules.push(`iifname ${port} arp saddr ip != { ${p.ip}, 0.0.0.0 } drop`);
      rules.push(`iifname ${port} ether type ip ip saddr != { ${p.ip}, 0.0.0.0 } drop`);
      rules.push(`iifname ${port} ether type ip6 ip6 saddr != { fe80::/10, :: } drop`);
    }
    const otherVlans = sorted.filter((q) => q.vnet === p.vnet && q.vlan !== p.vlan).map((q) => `"${hostVethName(q.mac)}"`);
    if (otherVlans.length > 0) rules.push(`iifname ${port} oifname { ${otherVlans.join(', ')} } drop`);
  }
  return [
    `table bridge ${PORT_TABLE}`,
    `delete table bridge ${PORT_TABLE}`,
    `table bridge ${PORT_TABLE} {`,
    '  chain forward {',
    '    type filter hook forward priority 0; policy accept;',
    ...rules.map((r) => `    ${r}`),
    '  }',
    '}',
    '',
  ].join('\n');
}
