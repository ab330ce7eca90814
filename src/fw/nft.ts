/**
 * nftables text for a compiled policy (checked with `nft -c` by ./nft-check.ts before it
 * is stored or published).
 *
 * Every ruleset is a complete transaction file: create the table (a no-op if present),
 * delete it, and define it afresh — loaded as one batch it applies atomically, so an
 * instance never runs without a policy and a failed load leaves the old one in place.
 *
 * renderRuleset: the node-side table (family bridge, in the node's namespace), filtering
 * the frames that leave or reach the instance's ports (host ends of its veths, named from
 * its MACs). The instance cannot touch it: flushing every table in its own namespace
 * changes nothing. The bridge family has no conntrack on kernels without
 * nf_conntrack_bridge, so the node-wide table of renderStateTable (family inet, seeing
 * bridged IP traffic through br_netfilter) copies each packet's conntrack state into two
 * mark bits, which the per-instance tables read. (renderNetnsRemoval only clears the
 * in-namespace tables older agents loaded.)
 */
import { spawn } from 'node:child_process';
import type { IcmpType } from './lang/index.js';
import type { CompiledPolicy, Direction, PolicyEntry } from './types.js';
import { tableName, uuidHex } from './compile.js';
import { VNET_GROUP_BASE, VNET_GROUP_LAST } from '../net/ports.js';
import { FW_BITS, FW_CLASSIFY_PRIORITY, FW_ESTABLISHED, FW_INVALID, markHex as hex } from '../net/marks.js';

/** IPv6 cannot work without neighbour discovery; the default inbound block keeps it. */
const ND_TYPES = 'nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert';
/**
 * Multicast listener discovery is link-local (RFC 4890 4.4.1: not to be dropped there):
 * only as the RFCs send it, from a link-local address (or `::` before one is valid) with a
 * hop limit of 1, so it can never carry anything else past the rules.
 */
const MLD = 'ip6 saddr { ::, fe80::/10 } ip6 hoplimit 1 icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, mld2-listener-report }';

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

/** The statement that ends evaluation on a match: the node-side outbound chain returns an allow. */
export interface Verdicts {
  allow: string;
  block: string;
  /** Node-side: a logged rule sends its matches to the node's NFLOG group, naming this instance. */
  flowLogInstance?: string;
}
const PLAIN: Verdicts = { allow: 'accept', block: 'drop' };

/** The NFLOG group of a node's logged rules (one per node namespace; the agent reads it). */
export const FLOW_LOG_GROUP = 2701;

/** What a logged rule's NFLOG prefix names (at most 80 characters; nft allows 127). */
export interface FlowLogTag {
  rule_uuid: string;
  action: 'allow' | 'block';
  direction: Direction;
  instance: string;
}

const FLOW_PREFIX = 'rfw';
const HEX32 = /^[0-9a-f]{32}$/;
const dashed = (h: string): string => `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;

export function flowLogPrefix(t: FlowLogTag): string {
  return `${FLOW_PREFIX} ${uuidHex(t.rule_uuid)} ${t.action} ${t.direction} ${uuidHex(t.instance)}`;
}

/** The tag of a prefix flowLogPrefix made; undefined for anything else. */
export function parseFlowLogPrefix(prefix: string): FlowLogTag | undefined {
  const [tag, rule, action, direction, instance, ...rest] = prefix.trim().split(' ');
  if (tag !== FLOW_PREFIX || rest.length > 0 || !rule || !instance || !HEX32.test(rule) || !HEX32.test(instance)) return undefined;
  if ((action !== 'allow' && action !== 'block') || (direction !== 'in' && direction !== 'out')) return undefined;
  return { rule_uuid: dashed(rule), action, direction, instance: dashed(instance) };
}

/** The nft lines for one entry (none when the peer has no addresses). */
export function entryLines(e: PolicyEntry, verdicts: Verdicts = PLAIN): string[] {
  const dirKw = e.direction === 'in' ? 'saddr' : 'daddr';
  const peers: string[] = [];
  if (e.peer.any) peers.push('');
  else {
    if (e.peer.v4) peers.push(`ip ${dirKw} @${e.peer.v4} `);
    if (e.peer.v6) peers.push(`ip6 ${dirKw} @${e.peer.v6} `);
  }
  const verdict = e.action === 'allow' ? verdicts.allow : verdicts.block;
  const word = e.action === 'allow' ? 'accept' : 'drop';
  const flow = verdicts.flowLogInstance;
  const log = !e.log
    ? ''
    : flow !== undefined
      ? `log prefix "${flowLogPrefix({ rule_uuid: e.rule_uuid, action: e.action, direction: e.direction, instance: flow })}" group ${FLOW_LOG_GROUP} `
      : `log prefix "rhumb-fw ${e.rule_uuid.slice(0, 8)} ${word}: " `;
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

/** The address sets the emitted entries use (no-op entries are left out of the text). */
function setLines(policy: CompiledPolicy): string[] {
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
  return out;
}

/**
 * The nft -f file that removes the table an older agent loaded inside an instance's own
 * namespace (family inet) when rhumb still enforced there; a no-op when it is absent.
 */
export function renderNetnsRemoval(instanceUuid: string): string {
  const table = tableName(instanceUuid);
  return `table inet ${table}\ndelete table inet ${table}\n`;
}

/** The node-wide table (family inet) that copies conntrack state into mark bits. */
export const STATE_TABLE = 'rhumb_fw_state';
/** The state bits of the packet mark (../net/marks.ts has the node's whole mark layout, shared with the edge). */
export const MARK_ESTABLISHED = FW_ESTABLISHED;
export const MARK_INVALID = FW_INVALID;

/**
 * The node-wide state table: for IP traffic of the overlay's devices (their device group;
 * bridged frames reach these inet hooks through br_netfilter, with the bridge as device:
 * from a bridge at prerouting, into one when routed or sent by the node itself),
 * after conntrack has classified the packet, two mark bits say established/related and
 * invalid. A packet crossing into another namespace loses its mark, so an instance cannot
 * forge them.
 */
export function renderStateTable(): string {
  const groups = `${hex(VNET_GROUP_BASE)}-${hex(VNET_GROUP_LAST)}`;
  return [
    `table inet ${STATE_TABLE}`,
    `delete table inet ${STATE_TABLE}`,
    `table inet ${STATE_TABLE} {`,
    '\tchain prerouting {',
    // After the edge has marked a vnet's routed packets (it sets the whole mark).
    `\t\ttype filter hook prerouting priority ${FW_CLASSIFY_PRIORITY}; policy accept;`,
    `\t\tiifgroup ${groups} jump classify`,
    '\t}',
    // Routed towards an instance (the node forwards into a bridge): the bridge's output hook reads it.
    '\tchain forward {',
    '\t\ttype filter hook forward priority mangle; policy accept;',
    `\t\toifgroup ${groups} jump classify`,
    '\t}',
    '\tchain output {',
    '\t\ttype filter hook output priority mangle; policy accept;',
    `\t\toifgroup ${groups} jump classify`,
    '\t}',
    '\tchain classify {',
    `\t\tmeta mark set meta mark & ${hex(~FW_BITS >>> 0)}`,
    `\t\tct state established,related meta mark set meta mark | ${hex(MARK_ESTABLISHED)}`,
    `\t\tct state invalid meta mark set meta mark | ${hex(MARK_INVALID)}`,
    '\t}',
    '}',
    '',
  ].join('\n');
}

function portMatch(kw: 'iifname' | 'oifname', ports: readonly string[]): string {
  return `${kw} ${ports.length === 1 ? `"${ports[0]}"` : `{ ${ports.map((p) => `"${p}"`).join(', ')} }`}`;
}

/** Which of an instance's chains a node-side hook sends frames from (iifname) or to (oifname) its ports. */
const NODE_DISPATCH = {
  forward: [['iifname', 'outbound'], ['oifname', 'inbound']],
  input: [['iifname', 'outbound']],
  output: [['oifname', 'inbound']],
} as const;
type NodeHook = keyof typeof NODE_DISPATCH;

const nodeHookLine = (hook: NodeHook): string => `\t\ttype filter hook ${hook} priority 10; policy accept;`;

function dispatchLines(hook: NodeHook, ports: readonly string[]): string[] {
  return ports.length === 0 ? [] : NODE_DISPATCH[hook].map(([kw, chain]) => `\t\t${portMatch(kw, ports)} jump ${chain}`);
}

const PORT_NAME = /^[A-Za-z0-9_.-]{1,15}$/;
const DISPATCH_LINE = /^\t\t(?:iifname|oifname) (?:"([^"]+)"|\{ ([^}]+) \}) jump (?:inbound|outbound)$/;

function assertPorts(ports: readonly string[]): void {
  for (const p of ports) if (!PORT_NAME.test(p)) throw new TypeError(`firewall: bad port name ${JSON.stringify(p)}`);
}

/** The ports a node-side text (renderRuleset's) filters on, sorted. */
export function nodeRulesetPorts(text: string): string[] {
  const ports = new Set<string>();
  for (const line of text.split('\n')) {
    const m = DISPATCH_LINE.exec(line);
    if (!m) continue;
    if (m[1] !== undefined) ports.add(m[1]);
    else for (const q of m[2]!.split(', ')) ports.add(q.replace(/^"|"$/g, ''));
  }
  return [...ports].sort();
}

/**
 * A node-side text (renderRuleset's) that also filters on these ports: same policy, its
 * hooks' port matches widened. The agent adds the ports of an instance's NICs it plumbed
 * before the controller's text names them (a staged NIC gets carrier only once covered).
 * A text that removes the table, or already names every port, comes back as it was.
 */
export function withNodePorts(text: string, ports: readonly string[]): string {
  assertPorts(ports);
  const lines = text.split('\n');
  if (!lines[0]?.startsWith('table bridge ') || !lines.includes(`${lines[0]} {`)) return text;
  const have = nodeRulesetPorts(text);
  const all = [...new Set([...have, ...ports])].sort();
  if (all.length === have.length) return text;
  const out: string[] = [];
  for (const line of lines) {
    if (DISPATCH_LINE.test(line)) continue;
    out.push(line);
    const hook = (Object.keys(NODE_DISPATCH) as NodeHook[]).find((h) => line === nodeHookLine(h));
    if (hook) out.push(...dispatchLines(hook, all));
  }
  return out.join('\n');
}

/**
 * The node-side table body. Frames from the instance's ports run its outbound chain
 * (an allow returns, so a frame between two ports of one instance also meets the inbound
 * chain), frames to them its inbound chain: on the bridge (forward) and to or from the
 * node itself (input, output). Non-IP frames (ARP) pass: an inet-family table never sees
 * them either.
 */
function nodeTableBody(policy: CompiledPolicy, ports: readonly string[]): string[] {
  const out = setLines(policy);
  for (const hook of Object.keys(NODE_DISPATCH) as NodeHook[]) {
    out.push(`\tchain ${hook} {`);
    out.push(nodeHookLine(hook));
    out.push(...dispatchLines(hook, ports));
    out.push('\t}');
  }
  const established = `meta mark & ${hex(MARK_ESTABLISHED)} == ${hex(MARK_ESTABLISHED)}`;
  out.push('\tchain inbound {');
  out.push('\t\tmeta protocol != { ip, ip6 } accept');
  out.push(`\t\t${established} accept`);
  out.push(`\t\tmeta mark & ${hex(MARK_INVALID)} == ${hex(MARK_INVALID)} drop`);
  out.push(`\t\ticmpv6 type { ${ND_TYPES} } accept`);
  out.push(`\t\t${MLD} accept`);
  const flowLogInstance = policy.instance;
  for (const e of policy.inbound) if (!e.noop) for (const l of entryLines(e, { ...PLAIN, flowLogInstance })) out.push(`\t\t${l}`);
  out.push('\t\tdrop');
  out.push('\t}');
  out.push('\tchain outbound {');
  out.push('\t\tmeta protocol != { ip, ip6 } return');
  out.push(`\t\t${established} return`);
  out.push(`\t\ticmpv6 type { ${ND_TYPES} } return`);
  out.push(`\t\t${MLD} return`);
  for (const e of policy.outbound) if (!e.noop) for (const l of entryLines(e, { allow: 'return', block: 'drop', flowLogInstance })) out.push(`\t\t${l}`);
  out.push('\t}');
  return out;
}

/**
 * The node-side form: the nft -f file replacing an instance's table (family bridge) in the
 * node's namespace atomically, filtering on its ports (host ends of its NICs' veths); with
 * a null policy it only removes the table.
 */
export function renderRuleset(instanceUuid: string, policy: CompiledPolicy | null, ports: readonly string[] = []): string {
  const table = tableName(instanceUuid);
  assertPorts(ports);
  const lines = [`table bridge ${table}`, `delete table bridge ${table}`];
  if (policy) {
    lines.push(`table bridge ${table} {`, ...nodeTableBody(policy, [...new Set(ports)].sort()), '}');
  }
  return lines.join('\n') + '\n';
}

/** The table (family inet, node's namespace) filtering what reaches an instance over its publication links. */
export function publicationTableName(instanceUuid: string): string {
  return `rhumb_fwp_${uuidHex(instanceUuid)}`;
}

/**
 * A node-side text (renderRuleset's) that also filters what the node forwards or sends into
 * the instance's publication links (Docker -p, ../docker/publish.ts): links the bridge
 * table never sees, since they are routed, not bridged. The same sets and inbound chain in
 * a second table (family inet) at postrouting, before the links' masquerade, so rules see
 * the client's own address; replies and related packets pass on conntrack. With no links
 * (or a text that removes the table) the second table is only removed. The agent appends
 * this to the controller's text after checking it; rulesetProblem checks the result.
 */
export function withPublicationLinks(text: string, instanceUuid: string, links: readonly string[]): string {
  assertPorts(links);
  const t = publicationTableName(instanceUuid);
  const lines = text.replace(/\n+$/, '').split('\n');
  const out = [...lines, `table inet ${t}`, `delete table inet ${t}`];
  const open = lines.findIndex((l) => l.startsWith('table bridge ') && l.endsWith(' {'));
  const inbound = lines.indexOf('\tchain inbound {');
  if (links.length > 0 && open >= 0 && inbound > open) {
    const firstChain = lines.findIndex((l, i) => i > open && l.startsWith('\tchain '));
    const inboundEnd = lines.indexOf('\t}', inbound);
    const match = portMatch('oifname', [...new Set(links)].sort());
    out.push(
      `table inet ${t} {`,
      ...lines.slice(open + 1, firstChain),
      '\tchain postrouting {',
      '\t\ttype filter hook postrouting priority 10; policy accept;',
      `\t\t${match} ct state established,related accept`,
      `\t\t${match} jump inbound`,
      '\t}',
      ...lines.slice(inbound, inboundEnd + 1),
      '}',
    );
  }
  return out.join('\n') + '\n';
}

/** The links a text made by withPublicationLinks filters, and the text it was made from (undefined: not such a text). */
export function splitPublicationLinks(instanceUuid: string, text: string): { base: string; links: string[] } | undefined {
  const head = `\ntable inet ${publicationTableName(instanceUuid)}\n`;
  const at = text.indexOf(head);
  if (at < 0) return undefined;
  const m = /\t\toifname (?:"([^"]+)"|\{ ([^}]+) \}) jump inbound\n/.exec(text.slice(at));
  const links = m === null ? [] : m[1] !== undefined ? [m[1]] : m[2]!.split(', ').map((q) => q.replace(/^"|"$/g, ''));
  return { base: `${text.slice(0, at)}\n`, links };
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
  const named = `table bridge ${table}`;
  if (lines[0] !== named || lines[1] !== `delete ${named}`) return `the ruleset does not start by replacing ${named}`;
  const body = lines.slice(2).filter((l) => l !== '');
  if (body.length > 0 && (body[0] !== `${named} {` || body[body.length - 1] !== '}')) return `the ruleset defines something other than ${named}`;
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
