/**
 * Published ports (`docker run -p HOSTPORT:PORT`), reachable on the node's address.
 *
 * Without an external side the fabric's gateway routes nothing back to a client outside
 * it, so a published container gets a second, private link instead: a veth pair
 * between the node's namespace (`rhp<mac>`, 169.254.0.1) and the container (`rhumb-pub`,
 * a link-local address of its own), and the node DNATs HOSTPORT to that address and
 * masquerades to 169.254.0.1, so replies come back the same way. Nothing else crosses
 * that link: the node drops anything from it that is not a reply to a DNATed connection,
 * and the container's firewall still decides what enters (see below).
 * The fabric, the container's default route and its other traffic are untouched.
 *
 * One nftables table in the node's namespace (`ip rhumb_publish`), replaced atomically
 * from the whole set of publications. Rendering is pure (unit-tested); Publisher runs it.
 *
 * Why not the agent's published ports (PUT /published-ports/:mac, DNAT by the distributed
 * gateway, ../edge/plan.ts), which would need no second link: that path exists only with
 * `--external-iface`, answers only on the external address arriving on the external
 * interface, and routes every reply through the vnet's table out of that interface. Docker's
 * -p must work on any node (no external side configured), on the node's own address (the
 * underlay) or the `-p ADDR:…` host address, and for connections from the node itself
 * (the output chain below). Moving -p there would take an external side from every Docker
 * node and break `-p` on the underlay address, so it stays here.
 *
 * The container's firewall still decides what enters: it sits node-side (on both backends
 * the bridge table on the instance's port, which this routed link bypasses), so the agent
 * gives the instance a second table filtering the link at postrouting, before the
 * masquerade, so its rules see the client's own address (withPublicationLinks in
 * ../fw/nft.ts; the guard below puts it in place before a link carries anything). A
 * backend enforcing inside the container would see every published connection coming from
 * 169.254.0.1. `fw explain` says which (the agent's ingress report, ../agent/ingress-report.ts).
 */
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { intProblem, ipv4Problem, macProblem } from '../agent/plumbing/checks.js';
import { inNetns, ip, ipBatch, nftApply } from '../agent/plumbing/iproute.js';
import { canonicalMac, macHex } from '../net/addr.js';
import type { IngressEntry } from '../fw/ingress.js';
import type { PortBinding } from './protocol.js';
import { PluginRequestError } from './protocol.js';

export const PUBLISH_TABLE = 'rhumb_publish';
/** The node's end of every publication link. */
export const NODE_LINK_ADDR = '169.254.0.1';
/** The container's end of its publication link. */
export const CONTAINER_LINK_NAME = 'rhumb-pub';
const LINK_PREFIX = 'rhp';

export interface Publication {
  /** The endpoint's MAC (names the node's end of the link). */
  mac: string;
  /** The container's end address (169.254.x.y). */
  address: string;
  /** The node address to answer on. */
  nodeIp: string;
  bindings: PortBinding[];
}

export function nodeLinkName(mac: string): string {
  return `${LINK_PREFIX}${macHex(mac)}`;
}

/** The container address of publication link number i (1..64769): 169.254.1.0 onwards, never 169.254.0.x. */
export function linkAddress(i: number): string {
  if (!Number.isInteger(i) || i < 1 || i > 253 * 256) throw new RangeError(`publication link index out of range: ${i}`);
  const n = i - 1 + 256;
  return `169.254.${n >> 8}.${n & 255}`;
}

function publicationProblem(p: Publication): string | undefined {
  const problems = [
    macProblem(p.mac),
    ipv4Problem('container link address', p.address),
    ipv4Problem('node address', p.nodeIp),
    ...p.bindings.flatMap((b) => [
      intProblem('container port', b.port, 1, 65535),
      intProblem('host port', b.hostPort, 1, 65535),
      b.proto === 'tcp' || b.proto === 'udp' ? undefined : `protocol ${String(b.proto)}`,
      b.hostIp === '' ? undefined : ipv4Problem('host address', b.hostIp),
    ]),
  ];
  return problems.find((x) => x !== undefined);
}

/** Host ports that two publications (or two bindings) both want, as "addr:port/proto". */
export function conflicts(pubs: readonly Publication[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const p of pubs) {
    for (const b of p.bindings) {
      const k = `${b.hostIp || p.nodeIp}:${b.hostPort}/${b.proto}`;
      if (seen.has(k)) out.push(k);
      seen.add(k);
    }
  }
  return out;
}

/** The `nft -f` text replacing the node's publication table (only removing it when there is nothing to publish). */
export function renderPublishTable(pubs: readonly Publication[]): string {
  for (const p of pubs) {
    const problem = publicationProblem(p);
    if (problem) throw new PluginRequestError(`publication of ${p.mac}: ${problem}`);
  }
  const head = [`table ip ${PUBLISH_TABLE}`, `delete table ip ${PUBLISH_TABLE}`];
  if (pubs.every((p) => p.bindings.length === 0)) return `${head.join('\n')}\n`;
  const dnat: string[] = [];
  for (const p of [...pubs].sort((a, b) => (a.mac < b.mac ? -1 : 1))) {
    for (const b of p.bindings) {
      dnat.push(`\t\tip daddr ${b.hostIp || p.nodeIp} ${b.proto} dport ${b.hostPort} dnat to ${p.address}:${b.port} comment "${canonicalMac(p.mac)}"`);
    }
  }
  const links = `"${LINK_PREFIX}*"`;
  return `${[
    ...head,
    `table ip ${PUBLISH_TABLE} {`,
    '\tchain prerouting {',
    '\t\ttype nat hook prerouting priority dstnat; policy accept;',
    ...dnat,
    '\t}',
    '\tchain output {',
    '\t\ttype nat hook output priority -100; policy accept;',
    ...dnat,
    '\t}',
    '\tchain postrouting {',
    '\t\ttype nat hook postrouting priority srcnat; policy accept;',
    `\t\toifname ${links} masquerade`,
    '\t}',
    '\tchain forward {',
    '\t\ttype filter hook forward priority filter; policy accept;',
    `\t\tiifname ${links} ct status dnat accept`,
    `\t\tiifname ${links} drop`,
    `\t\toifname ${links} ct status dnat accept`,
    `\t\toifname ${links} drop`,
    '\t}',
    '\tchain input {',
    '\t\ttype filter hook input priority filter; policy accept;',
    `\t\tiifname ${links} ct state established,related accept`,
    `\t\tiifname ${links} drop`,
    '\t}',
    '}',
  ].join('\n')}\n`;
}

/** The DNAT rules of a listed publication table (`nft list table ip rhumb_publish`), as rendered above. */
export function parsePublishTable(text: string): Array<{ mac: string; daddr: string; proto: 'tcp' | 'udp'; hostPort: number; address: string; port: number }> {
  const out = [];
  const prerouting = /chain prerouting \{([^}]*)\}/.exec(text)?.[1] ?? '';
  const rule = /ip daddr (\d+\.\d+\.\d+\.\d+) (tcp|udp) dport (\d+) dnat (?:ip )?to (\d+\.\d+\.\d+\.\d+):(\d+) comment "([0-9a-f:]{17})"/g;
  for (const m of prerouting.matchAll(rule)) {
    out.push({ daddr: m[1]!, proto: m[2] as 'tcp' | 'udp', hostPort: Number(m[3]), address: m[4]!, port: Number(m[5]), mac: m[6]! });
  }
  return out;
}

function runNft(args: string[]): Promise<string> {
  return new Promise((resolve) => {
    execFile('nft', args, { encoding: 'utf8' }, (err, stdout) => resolve(err ? '' : stdout));
  });
}

/**
 * `ip -batch` lines, run inside the container's namespace, making its publication link:
 * the pair (the node's end sent to the namespace of process nodePid), its address, up.
 */
export function containerLinkCommands(p: Publication, nodePid: number): string[] {
  const problem = publicationProblem(p) ?? intProblem('node pid', nodePid, 1, 0x7fffffff);
  if (problem) throw new PluginRequestError(`publication of ${p.mac}: ${problem}`);
  return [
    `link add ${CONTAINER_LINK_NAME} type veth peer name ${nodeLinkName(p.mac)} netns ${nodePid}`,
    `addr add ${p.address} peer ${NODE_LINK_ADDR}/32 dev ${CONTAINER_LINK_NAME}`,
    `link set ${CONTAINER_LINK_NAME} up`,
  ];
}

/** `ip -batch` lines, in the node's namespace, for its end of the link. */
export function nodeLinkCommands(p: Publication): string[] {
  const problem = publicationProblem(p);
  if (problem) throw new PluginRequestError(`publication of ${p.mac}: ${problem}`);
  const dev = nodeLinkName(p.mac);
  return [`addr add ${NODE_LINK_ADDR} peer ${p.address}/32 dev ${dev}`, `link set ${dev} up`];
}

/**
 * Keeps the node's publications: links made when a container's namespace is there, the
 * table replaced on every change. One change at a time.
 */
export class Publisher {
  private readonly pubs = new Map<string, Publication>();
  private queue: Promise<unknown> = Promise.resolve();
  private forwarding = false;

  constructor(
    private readonly log: (msg: string) => void = () => {},
    /** Called after the set of publications changed (the node's ingress report follows). */
    private readonly onChange: () => void = () => {},
    /**
     * A publication link came (its node-side name) or went: the container's firewall,
     * where it sits outside the container, must cover the link before anything is
     * published through it (it throws when it cannot).
     */
    private readonly guard: (mac: string, link: string | undefined) => Promise<void> = async () => {},
  ) {}

  /**
   * The publications in force, for the controller's `fw explain` (../fw/ingress.ts): the
   * container sees every such connection coming from NODE_LINK_ADDR (masqueraded).
   */
  ingress(attached: (mac: string) => { ip: string; belongs_to_uuid?: string } | undefined): IngressEntry[] {
    const out: IngressEntry[] = [];
    for (const p of this.pubs.values()) {
      const a = attached(p.mac);
      if (!a?.belongs_to_uuid || !p.nodeIp) continue;
      for (const b of p.bindings) {
        out.push({
          address: b.hostIp || p.nodeIp,
          protocol: b.proto,
          host_port: b.hostPort,
          instance: a.belongs_to_uuid,
          mac: p.mac,
          ip: a.ip,
          port: b.port,
          via: 'docker',
          seen_from: NODE_LINK_ADDR,
        });
      }
    }
    return out;
  }

  private serial<T>(job: () => Promise<T>): Promise<T> {
    const run = this.queue.then(job, job);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * What a previous agent left: the links (their addresses are taken) and, from the
   * table, their bindings (kept as they are: running containers stay published).
   */
  async adopt(): Promise<void> {
    const links = JSON.parse(await ip(['-j', 'addr', 'show'])) as Array<{ ifname?: string; addr_info?: Array<{ local?: string; address?: string }> }>;
    for (const l of links) {
      if (!l.ifname || !/^rhp[0-9a-f]{12}$/.test(l.ifname)) continue;
      const peer = l.addr_info?.find((a) => a.local === NODE_LINK_ADDR)?.address;
      const mac = canonicalMac(l.ifname.slice(LINK_PREFIX.length));
      if (peer && isIPv4(peer)) this.pubs.set(mac, { mac, address: peer, nodeIp: '', bindings: [] });
    }
    const listed = await runNft(['list', 'table', 'ip', PUBLISH_TABLE]);
    for (const b of parsePublishTable(listed)) {
      const p = this.pubs.get(b.mac);
      if (!p || p.address !== b.address) continue;
      p.nodeIp = b.daddr;
      p.bindings.push({ proto: b.proto, port: b.port, hostIp: '', hostPort: b.hostPort });
    }
    this.forwarding = (await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8').catch(() => '0')).trim() === '1';
    // Their containers' firewalls cover the links again (a restarted agent starts without them).
    for (const mac of this.pubs.keys()) await this.guard(mac, nodeLinkName(mac)).catch((err: Error) => this.log(`firewall of ${mac}: ${err.message}`));
  }

  /** A binding's host port already published on this node, or undefined. */
  taken(mac: string, nodeIp: string, bindings: readonly PortBinding[]): string | undefined {
    const others = [...this.pubs.values()].filter((p) => p.mac !== canonicalMac(mac));
    return conflicts([...others, { mac, address: NODE_LINK_ADDR, nodeIp, bindings: [...bindings] }])[0];
  }

  private freeAddress(): string {
    const used = new Set([...this.pubs.values()].map((p) => p.address));
    for (let i = 1; i <= 253 * 256; i++) if (!used.has(linkAddress(i))) return linkAddress(i);
    throw new PluginRequestError('no publication link address left on this node');
  }

  /** Publishes an endpoint's bindings into the container namespace at netns. */
  publish(mac: string, netns: string, nodeIp: string, bindings: readonly PortBinding[]): Promise<void> {
    return this.serial(async () => {
      const m = canonicalMac(mac);
      const clash = this.taken(m, nodeIp, bindings);
      if (clash) throw new PluginRequestError(`port ${clash} is already published on this node`);
      const existing = this.pubs.get(m);
      const pub: Publication = { mac: m, address: existing?.address ?? this.freeAddress(), nodeIp, bindings: [...bindings] };
      if (!existing || existing.bindings.length === 0) {
        await ip(['link', 'del', nodeLinkName(m)]).catch(() => undefined);
        await ipBatch(containerLinkCommands(pub, process.pid), inNetns(netns));
        await ipBatch(nodeLinkCommands(pub));
      }
      if (!this.forwarding) {
        await writeFile('/proc/sys/net/ipv4/ip_forward', '1');
        this.forwarding = true;
      }
      this.pubs.set(m, pub);
      try {
        await this.guard(m, nodeLinkName(m));
        await nftApply(renderPublishTable([...this.pubs.values()]));
      } catch (err) {
        this.pubs.delete(m);
        await ip(['link', 'del', nodeLinkName(m)]).catch(() => undefined);
        await this.guard(m, undefined).catch(() => undefined);
        throw err;
      }
      this.onChange();
      this.log(`published ${bindings.map((b) => `${b.hostIp || nodeIp}:${b.hostPort}->${b.port}/${b.proto}`).join(', ')} for ${m}`);
    });
  }

  /** Withdraws an endpoint's publications (no-op when it has none). */
  unpublish(mac: string): Promise<void> {
    return this.serial(async () => {
      const m = canonicalMac(mac);
      if (!this.pubs.delete(m)) return;
      await nftApply(renderPublishTable([...this.pubs.values()]));
      this.onChange();
      await ip(['link', 'del', nodeLinkName(m)]).catch(() => undefined);
      await this.guard(m, undefined).catch((err: Error) => this.log(`firewall of ${m} after its publication: ${err.message}`));
    });
  }

  /** Publications of endpoints whose MAC is not in `live` are withdrawn (after a restart). */
  async keepOnly(live: ReadonlySet<string>): Promise<void> {
    for (const mac of [...this.pubs.keys()]) if (!live.has(mac)) await this.unpublish(mac);
  }
}
