/**
 * nftables text for a compiled policy (checked with `nft -c` by ./nft-check.ts before it
 * is stored or published).
 *
 * Every ruleset is a complete transaction file: create the table (a no-op if present),
 * delete it, and define it afresh — `nft -f` applies all of that atomically, so an
 * instance never runs without a policy and a failed load leaves the old one in place.
 */
import { spawn } from 'node:child_process';
import type { IcmpType } from './lang/index.js';
import type { CompiledPolicy, PolicyEntry } from './types.js';
import { tableName } from './compile.js';

/** IPv6 cannot work without neighbour discovery; the default inbound block keeps it. */
const ND_TYPES = 'nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert';

function portsMatch(proto: string, ports: Array<[number, number]> | 'all'): string {
  if (ports === 'all') return `meta l4proto ${proto}`;
  const items = ports.map(([s, e]) => (s === e ? String(s) : `${s}-${e}`));
  return `${proto} dport ${items.length === 1 ? items[0] : `{ ${items.join(', ')} }`}`;
}

/** One match per line: plain types share a set, type+code pairs get their own line. */
function icmpMatches(proto: 'icmp' | 'icmp6', types: IcmpType[]): string[] {
  const kw = proto === 'icmp' ? 'icmp' : 'icmpv6';
  if (types.includes('all')) return [`meta l4proto ${proto === 'icmp' ? 'icmp' : 'ipv6-icmp'}`];
  const plain: number[] = [];
  const out: string[] = [];
  for (const t of types as Array<{ type: number; code?: number }>) {
    if (t.code === undefined) plain.push(t.type);
  }
  const uniquePlain = [...new Set(plain)];
  if (uniquePlain.length > 0) {
    out.push(`${kw} type ${uniquePlain.length === 1 ? uniquePlain[0] : `{ ${uniquePlain.join(', ')} }`}`);
  }
  for (const t of types as Array<{ type: number; code?: number }>) {
    if (t.code !== undefined) out.push(`${kw} type ${t.type} ${kw} code ${t.code}`);
  }
  return out;
}

function protoMatches(e: PolicyEntry): string[] {
  switch (e.protocol) {
    case 'tcp':
    case 'udp':
      return [portsMatch(e.protocol, e.ports ?? 'all')];
    case 'icmp':
    case 'icmp6':
      return icmpMatches(e.protocol, e.types ?? ['all']);
    default:
      return [`meta l4proto ${e.protocol}`];
  }
}

/** The nft lines for one entry (none when the peer has no addresses). */
export function entryLines(e: PolicyEntry): string[] {
  const dirKw = e.direction === 'in' ? 'saddr' : 'daddr';
  const peers: string[] = [];
  if (e.peer.any) peers.push('');
  else {
    if (e.peer.v4) peers.push(`ip ${dirKw} @${e.peer.v4} `);
    if (e.peer.v6) peers.push(`ip6 ${dirKw} @${e.peer.v6} `);
  }
  const verdict = e.action === 'allow' ? 'accept' : 'drop';
  const log = e.log ? `log prefix "rhumb-fw ${e.rule_uuid.slice(0, 8)} ${verdict}: " ` : '';
  const comment = ` comment "rule ${e.rule_uuid}${e.priority > 0 ? ` priority ${e.priority}` : ''}"`;
  const lines: string[] = [];
  for (const p of peers) {
    // An icmp match never pairs with the other family's addresses (compiler drops them).
    for (const m of protoMatches(e)) lines.push(`${p}${m} ${log}${verdict}${comment}`);
  }
  return lines;
}

/** Joined set elements, cached per elements array (shared by every instance using the set). */
const elementsText = new WeakMap<readonly string[], string>();
function joinElements(elements: readonly string[]): string {
  let text = elementsText.get(elements);
  if (text === undefined) elementsText.set(elements, (text = elements.join(', ')));
  return text;
}

/** The table body lines (sets and chains) of a policy. */
function tableBody(policy: CompiledPolicy): string[] {
  const out: string[] = [];
  // Sets only no-op entries use are left out of the text (the model keeps them).
  const used = new Set<string>();
  for (const e of [...policy.inbound, ...policy.outbound]) {
    if (e.noop) continue;
    if (e.peer.v4) used.add(e.peer.v4);
    if (e.peer.v6) used.add(e.peer.v6);
  }
  for (const set of policy.sets) {
    if (!used.has(set.name)) continue;
    out.push(`\tset ${set.name} {`);
    out.push(`\t\ttype ${set.family === 'ipv4' ? 'ipv4_addr' : 'ipv6_addr'}`);
    out.push('\t\tflags interval');
    out.push(`\t\telements = { ${joinElements(set.elements)} }`);
    out.push('\t}');
  }
  out.push('\tchain input {');
  out.push('\t\ttype filter hook input priority filter; policy drop;');
  out.push('\t\tct state established,related accept');
  out.push('\t\tct state invalid drop');
  out.push('\t\tiifname "lo" accept');
  out.push(`\t\ticmpv6 type { ${ND_TYPES} } accept`);
  for (const e of policy.inbound) if (!e.noop) for (const l of entryLines(e)) out.push(`\t\t${l}`);
  out.push('\t}');
  out.push('\tchain output {');
  out.push('\t\ttype filter hook output priority filter; policy accept;');
  out.push('\t\tct state established,related accept');
  out.push('\t\toifname "lo" accept');
  out.push(`\t\ticmpv6 type { ${ND_TYPES} } accept`);
  for (const e of policy.outbound) if (!e.noop) for (const l of entryLines(e)) out.push(`\t\t${l}`);
  out.push('\t}');
  return out;
}

/**
 * The nft -f file replacing an instance's table atomically; with a null policy (firewall
 * off, instance gone) it only removes the table.
 */
export function renderRuleset(instanceUuid: string, policy: CompiledPolicy | null): string {
  const table = tableName(instanceUuid);
  const lines = [`table inet ${table}`, `delete table inet ${table}`];
  if (policy) {
    lines.push(`table inet ${table} {`, ...tableBody(policy), '}');
  }
  return lines.join('\n') + '\n';
}

/**
 * Why the agent must not apply this text for this instance (undefined: it may): the text
 * must be what renderRuleset makes — the instance's own table replaced, nothing else
 * touched, nothing read from files. The controller renders it; the agent checks before
 * handing it to root's nft, so a ruleset can never reach beyond its instance's table.
 */
export function rulesetProblem(instanceUuid: string, text: string): string | undefined {
  let table: string;
  try {
    table = tableName(instanceUuid);
  } catch (err) {
    return (err as Error).message;
  }
  const lines = text.split('\n');
  if (lines[0] !== `table inet ${table}` || lines[1] !== `delete table inet ${table}`) return `the ruleset does not start by replacing table inet ${table}`;
  const body = lines.slice(2).filter((l) => l !== '');
  if (body.length > 0 && (body[0] !== `table inet ${table} {` || body[body.length - 1] !== '}')) return `the ruleset defines something other than table inet ${table}`;
  for (const l of body.slice(1, -1)) {
    if (!l.startsWith('\t')) return `a line outside the table: ${JSON.stringify(l.slice(0, 80))}`;
    if (/^\s*(table|include|define|flush|delete|add|insert|replace|reset|destroy|create|list|monitor|import|export)\b/.test(l)) {
      return `a statement the renderer never writes: ${JSON.stringify(l.slice(0, 80))}`;
    }
  }
  if (/[\\`$]|\binclude\b/.test(text)) return 'the ruleset has characters or statements the renderer never writes';
  return undefined;
}

/** Runs a command with stdin; resolves with exit code and output. */
export function runWithInput(cmd: string, args: string[], input: string): Promise<{ code: number; stdout: string; stderr: string; spawnError?: Error }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => resolve({ code: -1, stdout, stderr, spawnError: err }));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}
