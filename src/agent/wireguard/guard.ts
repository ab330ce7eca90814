/**
 * The node's guard against cleartext VXLAN while the deployment encrypts: one nftables
 * table in the node's namespace, whichever backend moves the frames (the kernel's vxlan
 * devices and the fast path's UDP sockets both pass the inet hooks). Output: VXLAN that
 * would leave by any interface but the node's WireGuard interface is dropped (and counted):
 * a data-plane entry still naming an underlay address, or a tunnel address routed
 * elsewhere because the WireGuard interface is missing, never goes out in cleartext.
 * Input: VXLAN that arrives by any other interface is dropped (no frames injected from the
 * underlay); switched on a grace period after output, so peers still switching over are
 * not cut off. Pure rendering and parsing; ./manager.ts applies it.
 */
import { ifnameProblem } from '../plumbing/checks.js';

export const GUARD_TABLE = 'rhumb_wireguard';

export interface GuardSpec {
  /** The WireGuard interface (the only way VXLAN may leave or arrive). */
  iface: string;
  /** The VXLAN UDP port. */
  port: number;
  output: boolean;
  input: boolean;
}

/** `nft -f` text: the table as the spec says (or only its removal when spec is null). */
export function guardRuleset(spec: GuardSpec | null): string {
  const lines = [`table inet ${GUARD_TABLE} {}`, `delete table inet ${GUARD_TABLE}`];
  if (!spec || (!spec.output && !spec.input)) return `${lines.join('\n')}\n`;
  const problem = ifnameProblem(spec.iface);
  if (problem) throw new Error(problem);
  if (!Number.isInteger(spec.port) || spec.port < 1 || spec.port > 65535) throw new Error(`bad VXLAN port ${spec.port}`);
  lines.push(`table inet ${GUARD_TABLE} {`);
  if (spec.output) {
    lines.push(
      '  chain output {',
      '    type filter hook output priority 0; policy accept;',
      `    oifname != "${spec.iface}" udp dport ${spec.port} counter drop comment "cleartext VXLAN out"`,
      '  }',
    );
  }
  if (spec.input) {
    lines.push(
      '  chain input {',
      '    type filter hook input priority 0; policy accept;',
      `    iifname != "${spec.iface}" udp dport ${spec.port} counter drop comment "cleartext VXLAN in"`,
      '  }',
    );
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

/** Packets dropped per chain, from `nft -j list table inet rhumb_wireguard`. */
export function guardCounters(json: string): { output: number; input: number } {
  const out = { output: 0, input: 0 };
  let parsed: { nftables?: Array<{ rule?: { chain?: string; expr?: Array<{ counter?: { packets?: number } }> } }> };
  try {
    parsed = JSON.parse(json);
  } catch {
    return out;
  }
  for (const item of parsed.nftables ?? []) {
    const r = item.rule;
    if (!r || (r.chain !== 'output' && r.chain !== 'input')) continue;
    for (const e of r.expr ?? []) if (e.counter?.packets !== undefined) out[r.chain] += e.counter.packets;
  }
  return out;
}
