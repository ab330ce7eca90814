/**
 * Data-plane throughput: two nodes in network namespaces joined by a veth underlay
 * (MTU 1500), an instance namespace on each, iperf3 across the overlay (inner MTU 1450).
 *
 *   node --import tsx bench/dataplane/run.ts [--quick]         (root; iperf3)
 *
 * Data planes, each as a ratio to the first:
 *   kernel-vxlan      Linux vxlan devices configured statically, the instance is the node
 *                     namespace itself (the ceiling: no bridge, no veth)
 *   kernel-backend    rhumb's kernel backend layout (vxlan + bridge + veth into the instance,
 *                     the exact `ip` lines of src/agent/kernel/vnet.ts and plumbing/nic.ts), entries static
 *   kernel-backend-fw100  the same with both instances firewalled on the node side as the
 *                     agent does it (the node-wide state table, each instance's bridge
 *                     table on its port) under a 100-rule policy whose last rule admits iperf3
 *   userspace-nooff   rhumb's native fast path, every offload off (one frame per read/write,
 *                     no batching either: mmsg off)
 *   userspace-mmsg    fast path with recvmmsg/sendmmsg batching, offloads off
 *   userspace         fast path with every offload it probed (TAP TSO/USO, UDP GSO/GRO,
 *                     coalescing towards the TAP, batching), its TAP the instance's interface
 *                     (the layout before the userspace backend's node-side port)
 *   userspace-port    the same engine in the userspace backend's layout: the TAP in the node's
 *                     namespace, in a bridge of its own with the host end of a veth into the
 *                     instance (src/agent/userspace/port.ts), the NIC bridges' tables loaded
 *   userspace-port-fw100  that layout firewalled node-side as the agent does it (the state
 *                     table, each instance's bridge table on its host veth), 100 rules
 * Encrypted underlay (issue #20; this kernel has no WireGuard module: wireguard-go):
 *   wireguard-go      wireguard-go alone between the two node namespaces, iperf3 between
 *                     their tunnel addresses (the ceiling of anything carried inside it)
 *   kernel-backend-wg the kernel backend's layout with VXLAN between tunnel addresses
 *                     (vxlan `local` and FDB dst), inside wireguard-go; instance MTU 1390
 *   userspace-wg      the fast path (every offload) bound to the tunnel address, path MTU
 *                     1440, inside wireguard-go; instance MTU 1390
 * The distributed gateway (issue #12), per backend, through real agents (./edge.ts):
 *   kernel-agent-same     the kernel backend run by `rhumb agent`: same subnet, across nodes
 *   kernel-agent-routed   between two networks a router connects, across nodes
 *   kernel-agent-nat      from an instance to a host beyond the node's external side (SNAT)
 *   userspace-agent-…     the same three on the userspace backend
 *   (`--only kernel-agent,userspace-agent` selects each group of three)
 * Measures: TCP Gbit/s with 1 and 4 streams, 64-byte UDP datagrams/s received.
 *
 * The machine has 2 cores shared by both nodes, iperf3 and the engines; figures are
 * for comparison on this machine only. Writes bench/results/dataplane.json
 * (dataplane.quick.json with --quick).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Table from 'cli-table3';
import type { Offload } from '../../src/dataplane/fastpath.js';
import { hostSideCommands, instanceCommands, tapAddress } from '../../src/agent/plumbing/nic.js';
import { renderNicBridgeTables } from '../../src/agent/userspace/port.js';
import { generatePrivateKey, publicKeyOf } from '../../src/agent/wireguard/keys.js';
import { vnetCommands } from '../../src/agent/kernel/vnet.js';
import { hostVethName, nicBridgeName, nicTapName, vnetGroup } from '../../src/agent/plumbing/names.js';
import { loadNft } from '../../src/fw/applier.js';
import { PolicyWorld } from '../../src/fw/compile.js';
import { parseRule, serialize } from '../../src/fw/lang/index.js';
import { renderRuleset, renderStateTable } from '../../src/fw/nft.js';
import { NetnsLab, netnsSkipReason, underlayAddr } from '../../test/helpers/netns.js';
import { type FastPathNode, startFastPathNode } from '../../test/netns/fastpath-harness.js';
import { type EdgePath, startEdgeStack } from './edge.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const quick = process.argv.includes('--quick');
/** `--only userspace,kernel-vxlan`: a subset (ratios need kernel-vxlan first). */
const onlyArg = process.argv.indexOf('--only');
const only = onlyArg > 0 ? new Set((process.argv[onlyArg + 1] ?? '').split(',')) : undefined;
const SECONDS = quick ? 2 : 6;
const VNET = 7001;
const MAC = ['02:00:5e:20:00:01', '02:00:5e:20:00:02'] as const;
const IP = ['10.66.0.1', '10.66.0.2'] as const;

interface Result {
  plane: string;
  tcp1Gbps: number | null;
  tcp4Gbps: number | null;
  udp64Pps: number | null;
  note?: string;
  offloads?: Record<string, boolean>;
  counters?: unknown;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

interface Setup {
  lab: NetnsLab;
  node: [string, string];
  /** Where iperf3 runs: the instances. */
  inst: [string, string];
  /** The address iperf3's server listens on (default: the second instance's). */
  server?: string;
  stop: () => Promise<void>;
  offloads?: Record<string, boolean>;
  /** Engine counters of both nodes (userspace only): what the traffic cost in frames and syscalls. */
  counters?: () => Promise<unknown>;
}

async function underlay(tag: string): Promise<{ lab: NetnsLab; node: [string, string]; ul: [string, string] }> {
  const lab = new NetnsLab(tag);
  const a = await lab.addNetns('a');
  const b = await lab.addNetns('b');
  await lab.addVeth({ ns: a, name: 'ul0' }, { ns: b, name: 'ul0' });
  const ul: [string, string] = [underlayAddr(0x2001), underlayAddr(0x2002)];
  await lab.ip(a, 'addr', 'add', `${ul[0]}/24`, 'dev', 'ul0');
  await lab.ip(b, 'addr', 'add', `${ul[1]}/24`, 'dev', 'ul0');
  await lab.ip(a, 'link', 'set', 'ul0', 'up');
  await lab.ip(b, 'link', 'set', 'ul0', 'up');
  return { lab, node: [a, b], ul };
}

/** Tunnel addresses of the two nodes (as 198.18.32.1/2 derive to in 100.64.0.0/10). */
const TUNNEL = ['100.82.32.1', '100.82.32.2'] as const;
const WG_MTU = 1500 - 60;
const WG_INSTANCE_MTU = WG_MTU - 50;

/** wireguard-go in both node namespaces, each the other's peer; tunnel addresses on them. */
async function wireguardPair(lab: NetnsLab, node: [string, string], ul: [string, string]): Promise<void> {
  const keys = [generatePrivateKey(), generatePrivateKey()];
  const names = [lab.name('wa'), lab.name('wb')];
  for (const i of [0, 1] as const) {
    const file = join(tmpdir(), `${names[i]}.key`);
    await writeFile(file, `${keys[i]}\n`, { mode: 0o600 });
    await lab.exec(node[i], 'env', 'WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1', 'wireguard-go', names[i]!);
    await lab.exec(node[i], 'wg', 'set', names[i]!, 'listen-port', '51820', 'private-key', file);
    await rm(file, { force: true });
    await lab.ip(node[i], 'addr', 'add', `${TUNNEL[i]}/10`, 'dev', names[i]!);
    await lab.ip(node[i], 'link', 'set', names[i]!, 'mtu', String(WG_MTU), 'up');
  }
  for (const i of [0, 1] as const) {
    const o = 1 - i;
    await lab.exec(node[i], 'wg', 'set', names[i]!, 'peer', publicKeyOf(keys[o]!), 'endpoint', `${ul[o]}:51820`, 'allowed-ips', `${TUNNEL[o]}/32`);
  }
}

async function wireguardGo(): Promise<Setup> {
  const { lab, node, ul } = await underlay('bwg');
  await wireguardPair(lab, node, ul);
  // iperf3 between the tunnel addresses: the instances are the nodes.
  return { lab, node, inst: node, server: TUNNEL[1], stop: () => lab.cleanup() };
}

async function kernelBackendWireguard(): Promise<Setup> {
  const { lab, node, ul } = await underlay('bkw');
  await wireguardPair(lab, node, ul);
  const inst: [string, string] = [await lab.addNetns('i'), await lab.addNetns('j')];
  for (const i of [0, 1] as const) {
    const o = 1 - i;
    const p = {
      mac: MAC[i], ip: IP[i], prefix: 24, mtu: WG_INSTANCE_MTU, routes: [], vnet: VNET, vlan: 0,
      allowMacSpoofing: false, allowIpSpoofing: false, netns: `/run/netns/${inst[i]}`, ifname: 'eth0',
    };
    await ipBatchIn(lab, node[i], vnetCommands({ vnet: VNET, underlayIp: TUNNEL[i], mtu: 1450 }));
    await ipBatchIn(lab, node[i], hostSideCommands(p));
    await ipBatchIn(lab, inst[i], instanceCommands(p));
    await lab.exec(node[i], 'bridge', 'fdb', 'add', MAC[o], 'dev', `rvx${VNET}`, 'dst', TUNNEL[o], 'self', 'permanent');
    await lab.ip(inst[i], 'neigh', 'replace', IP[o], 'lladdr', MAC[o], 'dev', 'eth0', 'nud', 'permanent');
  }
  return { lab, node, inst, stop: () => lab.cleanup() };
}

async function kernelVxlan(): Promise<Setup> {
  const { lab, node, ul } = await underlay('bkv');
  for (const i of [0, 1] as const) {
    const o = 1 - i;
    await lab.ip(node[i], 'link', 'add', 'vx0', 'address', MAC[i], 'mtu', '1450', 'type', 'vxlan', 'id', String(VNET), 'dstport', '4789', 'local', ul[i], 'nolearning', 'udpcsum');
    await lab.ip(node[i], 'addr', 'add', `${IP[i]}/24`, 'dev', 'vx0');
    await lab.ip(node[i], 'link', 'set', 'vx0', 'up');
    await lab.ip(node[i], 'neigh', 'replace', IP[o], 'lladdr', MAC[o], 'dev', 'vx0', 'nud', 'permanent');
    await lab.exec(node[i], 'bridge', 'fdb', 'add', MAC[o], 'dev', 'vx0', 'dst', ul[o], 'self', 'permanent');
  }
  return { lab, node, inst: node, stop: () => lab.cleanup() };
}

async function ipBatchIn(lab: NetnsLab, ns: string, lines: string[]): Promise<void> {
  for (const l of lines) await lab.ip(ns, ...l.split(' '));
}

async function kernelBackendLayout(tag = 'bkb'): Promise<Setup> {
  const { lab, node, ul } = await underlay(tag);
  const inst: [string, string] = [await lab.addNetns('i'), await lab.addNetns('j')];
  for (const i of [0, 1] as const) {
    const o = 1 - i;
    const p = {
      mac: MAC[i], ip: IP[i], prefix: 24, mtu: 1450, routes: [], vnet: VNET, vlan: 0,
      allowMacSpoofing: false, allowIpSpoofing: false, netns: `/run/netns/${inst[i]}`, ifname: 'eth0',
    };
    await ipBatchIn(lab, node[i], vnetCommands({ vnet: VNET, underlayIp: ul[i], underlayDev: 'ul0', mtu: 1450 }));
    await ipBatchIn(lab, node[i], hostSideCommands(p));
    await ipBatchIn(lab, inst[i], instanceCommands(p));
    // What the agent installs after the miss: FDB (MAC -> VTEP) and the neighbour entry.
    await lab.exec(node[i], 'bridge', 'fdb', 'add', MAC[o], 'dev', `rvx${VNET}`, 'dst', ul[o], 'self', 'permanent');
    await lab.ip(inst[i], 'neigh', 'replace', IP[o], 'lladdr', MAC[o], 'dev', 'eth0', 'nud', 'permanent');
  }
  return { lab, node, inst, stop: () => lab.cleanup() };
}

/** 100 rules on each instance: 99 that never match iperf3 (other ports), then its port. */
async function firewall100(s: Setup): Promise<Setup> {
  const owner = 'aaaaaaaa-0000-4000-8000-00000000be01';
  const uuids = ['b0000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-000000000002'] as const;
  const world = new PolicyWorld();
  for (const i of [0, 1] as const) world.upsertInstance({ uuid: uuids[i], owner_uuid: owner, tags: { role: 'bench' }, firewall_enabled: true, addresses: [IP[i]], nodes: [] });
  const texts = [
    ...Array.from({ length: 97 }, (_, k) => `FROM tag role = bench TO tag role = bench ALLOW tcp PORT ${10_000 + k}`),
    'FROM any TO tag role = bench BLOCK udp PORT 9999 PRIORITY 1',
    'FROM tag role = bench TO tag role = bench ALLOW tcp PORT 5201',
    'FROM tag role = bench TO tag role = bench ALLOW udp PORT 5201',
  ];
  texts.forEach((text, k) => {
    const model = parseRule(text);
    const uuid = `c0000000-0000-4000-8000-${k.toString(16).padStart(12, '0')}`;
    world.upsertRule({ stored: { uuid, rule: serialize(model), enabled: true, log: false, version: '1', owner_uuid: owner }, model });
  });
  for (const i of [0, 1] as const) {
    const text = renderStateTable() + renderRuleset(uuids[i], world.compile(uuids[i]), [hostVethName(MAC[i])]);
    const error = await loadNft(`/run/netns/${s.node[i]}`, text);
    if (error !== undefined) throw new Error(`firewall on ${s.node[i]}: ${error}`);
  }
  return s;
}

/**
 * The userspace backend's layout (src/agent/userspace/port.ts) as `ip` lines: the engine's
 * TAP in the node's namespace, a bridge joining it to the host end of the instance's veth.
 */
async function userspacePort(tag: string): Promise<Setup> {
  const { lab, node, ul } = await underlay(tag);
  const inst: [string, string] = [await lab.addNetns('i'), await lab.addNetns('j')];
  const fps: FastPathNode[] = [];
  for (const i of [0, 1] as const) {
    const o = 1 - i;
    const p = {
      mac: MAC[i], ip: IP[i], prefix: 24, mtu: 1450, routes: [], vnet: VNET, vlan: 0,
      allowMacSpoofing: false, allowIpSpoofing: false, netns: `/run/netns/${inst[i]}`, ifname: 'eth0',
    };
    const [tap, bridge, veth] = [nicTapName(MAC[i]), nicBridgeName(MAC[i]), hostVethName(MAC[i])];
    fps.push(
      await startFastPathNode(lab, node[i], {
        underlayIp: ul[i],
        underlayMtu: 1500,
        disable: [],
        nics: [{ netns: '', ifname: tap, mac: MAC[i], ip: IP[i], vnet: VNET, vlan: 0, mtu: 1450 }],
        directory: [{ vnet: VNET, ip: IP[o], mac: MAC[o], underlay: ul[o] }],
      }),
    );
    const error = await loadNft(`/run/netns/${node[i]}`, renderNicBridgeTables());
    if (error !== undefined) throw new Error(`NIC bridge tables on ${node[i]}: ${error}`);
    await ipBatchIn(lab, node[i], [
      `link add ${bridge} mtu 1450 group ${vnetGroup(VNET)} type bridge`,
      `link set ${tap} address ${tapAddress(MAC[i])} master ${bridge} up`,
      hostSideCommands(p)[0]!,
      `link set ${veth} master ${bridge} up`,
      `link set ${bridge} up`,
    ]);
    await ipBatchIn(lab, inst[i], instanceCommands(p));
  }
  return {
    lab,
    node,
    inst,
    offloads: fps[0]!.offloads as unknown as Record<string, boolean>,
    stop: async () => {
      for (const f of fps) await f.stop();
      await lab.cleanup();
    },
  };
}

async function userspace(tag: string, disable: Offload[], encrypted = false): Promise<Setup> {
  const { lab, node, ul } = await underlay(tag);
  if (encrypted) await wireguardPair(lab, node, ul);
  const vtep = encrypted ? TUNNEL : ul;
  const inst: [string, string] = [await lab.addNetns('i'), await lab.addNetns('j')];
  const fps: FastPathNode[] = [];
  for (const i of [0, 1] as const) {
    const o = 1 - i;
    fps.push(
      await startFastPathNode(lab, node[i], {
        underlayIp: vtep[i],
        underlayMtu: encrypted ? WG_MTU : 1500,
        disable,
        nics: [{ netns: `/run/netns/${inst[i]}`, ifname: 'eth0', mac: MAC[i], ip: IP[i], vnet: VNET, vlan: 0, mtu: encrypted ? WG_INSTANCE_MTU : 1450 }],
        directory: [{ vnet: VNET, ip: IP[o], mac: MAC[o], underlay: vtep[o] }],
      }),
    );
    await lab.ip(inst[i], 'addr', 'add', `${IP[i]}/24`, 'dev', 'eth0');
    await lab.ip(inst[i], 'link', 'set', 'eth0', 'up');
  }
  return {
    lab,
    node,
    inst,
    offloads: fps[0]!.offloads as unknown as Record<string, boolean>,
    counters: async () => {
      const pick = (c: Record<string, number>): Record<string, number> =>
        Object.fromEntries(Object.entries(c).filter(([, v]) => v > 0));
      return Promise.all(fps.map(async (f) => pick((await f.counters()).nics[0]!)));
    },
    stop: async () => {
      for (const f of fps) await f.stop();
      await lab.cleanup();
    },
  };
}

/** The parts of `iperf3 -J` output read here. */
interface IperfSum {
  bits_per_second: number;
  seconds?: number;
  packets?: number;
  lost_packets?: number;
}
interface IperfReport {
  end: { sum_received?: IperfSum; sum?: IperfSum };
}

async function iperf(s: Setup, args: string[]): Promise<IperfReport | null> {
  const at = s.server ?? IP[1];
  const server = s.lab.spawnIn(s.inst[1], ['iperf3', '-s', '-1', '-B', at]);
  await sleep(400);
  try {
    const out = await s.lab.exec(s.inst[0], 'timeout', String(SECONDS + 15), 'iperf3', '-c', at, '-t', String(SECONDS), '-J', ...args);
    return JSON.parse(out) as IperfReport;
  } catch (err) {
    console.error(`iperf3 ${args.join(' ')}: ${(err as Error).message.slice(0, 300)}`);
    return null;
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL');
  }
}

async function measure(plane: string, make: () => Promise<Setup>): Promise<Result> {
  const s = await make();
  try {
    return await measureOn(plane, s);
  } finally {
    await s.stop();
  }
}

/** same, routed and NATed through one backend's agents: one stack, three rows. */
async function measureEdge(backend: 'kernel' | 'userspace'): Promise<Result[]> {
  const stack = await startEdgeStack(backend);
  try {
    const out: Result[] = [];
    for (const path of ['same', 'routed', 'nat'] as EdgePath[]) {
      const p = stack.pairs[path];
      process.stderr.write(`${backend}-agent-${path} ...\n`);
      out.push(await measureOn(`${backend}-agent-${path}`, { ...p, node: p.inst, stop: async () => {} }));
    }
    return out;
  } finally {
    await stack.stop();
  }
}

async function measureOn(plane: string, s: Setup): Promise<Result> {
  // Warm up (first contact resolves misses / ARP).
  await s.lab.exec(s.inst[0], 'ping', '-c', '3', '-i', '0.2', '-W', '2', s.server ?? IP[1]).catch(() => undefined);
  const t1 = await iperf(s, []);
  const t4 = await iperf(s, ['-P', '4']);
  const u = await iperf(s, ['-u', '-l', '64', '-b', '0']);
  const gbps = (j: IperfReport | null): number | null => (j ? j.end.sum_received!.bits_per_second / 1e9 : null);
  let pps: number | null = null;
  if (u) {
    const sum = (u.end.sum_received ?? u.end.sum)!;
    const received = (sum.packets ?? 0) - (sum.lost_packets ?? 0);
    pps = sum.seconds ? received / sum.seconds : null;
  }
  const r: Result = { plane, tcp1Gbps: gbps(t1), tcp4Gbps: gbps(t4), udp64Pps: pps };
  if (s.offloads) r.offloads = s.offloads;
  if (s.counters) r.counters = await s.counters();
  return r;
}

async function main(): Promise<void> {
  const skip = netnsSkipReason();
  if (skip) {
    console.error(`bench/dataplane: ${skip}`);
    process.exit(1);
  }
  const results: Result[] = [];
  const plan: Array<[string, () => Promise<Setup>]> = [
    ['kernel-vxlan', kernelVxlan],
    ['kernel-backend', () => kernelBackendLayout()],
    ['kernel-backend-fw100', async () => firewall100(await kernelBackendLayout('bkf'))],
    ['userspace-nooff', () => userspace('bun', ['tso', 'uso', 'gso', 'gro', 'coalesce', 'mmsg'])],
    ['userspace-mmsg', () => userspace('bum', ['tso', 'uso', 'gso', 'gro', 'coalesce'])],
    ['userspace', () => userspace('buo', [])],
    ['userspace-port', () => userspacePort('bup')],
    ['userspace-port-fw100', async () => firewall100(await userspacePort('buf'))],
    ['wireguard-go', wireguardGo],
    ['kernel-backend-wg', kernelBackendWireguard],
    ['userspace-wg', () => userspace('buw', [], true)],
  ];
  for (const [name, make] of plan.filter(([n]) => !only || only.has(n))) {
    process.stderr.write(`${name} ...\n`);
    results.push(await measure(name, make));
  }
  for (const backend of ['kernel', 'userspace'] as const) {
    if (!only || only.has(`${backend}-agent`)) results.push(...(await measureEdge(backend)));
  }
  const base = results[0]!;
  const ratio = (v: number | null, b: number | null): string => (v !== null && b ? `${(v / b).toFixed(2)}×` : 'n/a');
  const table = new Table({ head: ['data plane', 'TCP 1 stream Gbit/s', 'ratio', 'TCP 4 streams Gbit/s', 'ratio', 'UDP 64 B pps', 'ratio'] });
  for (const r of results) {
    table.push([
      r.plane,
      r.tcp1Gbps?.toFixed(2) ?? 'n/a', ratio(r.tcp1Gbps, base.tcp1Gbps),
      r.tcp4Gbps?.toFixed(2) ?? 'n/a', ratio(r.tcp4Gbps, base.tcp4Gbps),
      r.udp64Pps !== null ? Math.round(r.udp64Pps).toLocaleString('en') : 'n/a', ratio(r.udp64Pps, base.udp64Pps),
    ]);
  }
  console.log(table.toString());
  // Encrypted next to cleartext, where both ran.
  for (const [wg, clear] of [['kernel-backend-wg', 'kernel-backend'], ['userspace-wg', 'userspace']] as const) {
    const e = results.find((r) => r.plane === wg);
    const c = results.find((r) => r.plane === clear);
    if (e && c) console.log(`${wg} / ${clear}: TCP 1 stream ${ratio(e.tcp1Gbps, c.tcp1Gbps)}, 4 streams ${ratio(e.tcp4Gbps, c.tcp4Gbps)}`);
  }
  // Through the gateway next to the same subnet, on one backend's agents.
  for (const backend of ['kernel', 'userspace'] as const) {
    const same = results.find((r) => r.plane === `${backend}-agent-same`);
    for (const path of ['routed', 'nat'] as const) {
      const r = results.find((x) => x.plane === `${backend}-agent-${path}`);
      if (r && same) console.log(`${r.plane} / ${same.plane}: TCP 1 stream ${ratio(r.tcp1Gbps, same.tcp1Gbps)}, 4 streams ${ratio(r.tcp4Gbps, same.tcp4Gbps)}`);
    }
  }
  const out = join(root, 'bench', 'results', quick ? 'dataplane.quick.json' : 'dataplane.json');
  mkdirSync(dirname(out), { recursive: true });
  const withRatios = results.map((r) => ({
    ...r,
    ratioToKernelVxlan: {
      tcp1: r.tcp1Gbps !== null && base.tcp1Gbps ? r.tcp1Gbps / base.tcp1Gbps : null,
      tcp4: r.tcp4Gbps !== null && base.tcp4Gbps ? r.tcp4Gbps / base.tcp4Gbps : null,
      udp64: r.udp64Pps !== null && base.udp64Pps ? r.udp64Pps / base.udp64Pps : null,
    },
  }));
  writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), quick, seconds: SECONDS, cores: 2, results: withRatios }, null, 2)}\n`);
  console.log(`wrote ${out}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
