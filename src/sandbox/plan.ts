/**
 * What `rhumb sandbox up` builds, decided before anything is made (pure): the names of
 * every namespace and root link, the addresses, the owners with their fabrics, the
 * instances and where they run, the firewall rules. Options are validated here, so bad
 * input is refused before the first namespace exists.
 *
 * Layout (prefix P, underlay /24 U):
 *   P-ul            the underlay: a bridge every node's ul0 and the root link plug into
 *   P-c             root namespace end of the controller's veth, address U.254 (the
 *                   controller, its SVP server and, with --store etcd, etcd listen there)
 *   P-n1 … P-nN     compute nodes (agent in each), ul0 at U.1 … U.N
 *   P-<instance>    one namespace per instance, plumbed by its node's agent
 */
import { randomUUID } from 'node:crypto';
import ipaddr from 'ipaddr.js';

export type SandboxBackend = 'kernel' | 'userspace';
export type SandboxStoreKind = 'leveldb' | 'etcd';

export interface SandboxOptions {
  nodes: number;
  backend: SandboxBackend;
  store: SandboxStoreKind;
  /** Namespace and link name prefix. */
  prefix: string;
  /** The underlay /24, inside 198.18.0.0/15. */
  subnet: string;
  restPort: number;
  /** The controller asks who calls (an auth file: an admin token, a token per agent). */
  auth?: boolean;
  svpPort: number;
}

export const DEFAULTS: SandboxOptions = {
  nodes: 3,
  backend: 'kernel',
  store: 'leveldb',
  prefix: 'rhsb',
  subnet: '198.19.254.0/24',
  restPort: 8080,
  svpPort: 1296,
};

export const MIN_NODES = 2;
export const MAX_NODES = 16;
export const AGENT_API_PORT = 8090;
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;

export class SandboxInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SandboxInputError';
  }
}

export interface PlannedNode {
  name: string;
  ns: string;
  uuid: string;
  ip: string;
}

export interface PlannedOwner {
  name: string;
  uuid: string;
  vlanId: number;
  vlanName: string;
  network: { name: string; subnet: string; start: string; end: string; gateway: string };
  /** Whether this owner's instances have their firewall on. */
  firewall: boolean;
}

export interface PlannedInstance {
  name: string;
  ns: string;
  uuid: string;
  owner: string;
  node: string;
  tags: Record<string, string>;
}

export interface PlannedRule {
  owner: string;
  rule: string;
  description: string;
}

export interface SandboxPlan {
  options: SandboxOptions;
  underlayNs: string;
  rootLink: string;
  /** The underlay end of the root link, inside underlayNs. */
  rootLinkPeer: string;
  underlay24: string;
  controllerIp: string;
  nodes: PlannedNode[];
  owners: PlannedOwner[];
  instances: PlannedInstance[];
  rules: PlannedRule[];
}

const UNDERLAY_RANGE = ipaddr.parseCIDR('198.18.0.0/15');

/** Checks the options; throws SandboxInputError with what is wrong and how to fix it. */
export function validateOptions(o: SandboxOptions): SandboxOptions {
  if (!Number.isInteger(o.nodes) || o.nodes < MIN_NODES || o.nodes > MAX_NODES) {
    throw new SandboxInputError(`--nodes must be an integer from ${MIN_NODES} to ${MAX_NODES} (instances are spread over the nodes)`);
  }
  if (o.backend !== 'kernel' && o.backend !== 'userspace') throw new SandboxInputError('--backend must be kernel or userspace');
  if (o.store !== 'leveldb' && o.store !== 'etcd') throw new SandboxInputError('--store must be leveldb or etcd');
  // The root link is "<prefix>-c": an interface name of at most 15 characters.
  if (!/^[a-z][a-z0-9]{0,7}$/.test(o.prefix)) throw new SandboxInputError('--prefix must be 1-8 lower-case letters or digits, starting with a letter');
  let net: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    net = ipaddr.parseCIDR(o.subnet);
  } catch {
    throw new SandboxInputError(`--subnet must be an IPv4 /24 such as ${DEFAULTS.subnet}, got "${o.subnet}"`);
  }
  const [addr, bits] = net;
  if (addr.kind() !== 'ipv4' || bits !== 24) throw new SandboxInputError(`--subnet must be an IPv4 /24 such as ${DEFAULTS.subnet}, got "${o.subnet}"`);
  if (!addr.match(UNDERLAY_RANGE)) throw new SandboxInputError(`--subnet must lie in 198.18.0.0/15 (the benchmarking range kept for underlays), got "${o.subnet}"`);
  const octets = (addr as ipaddr.IPv4).octets;
  if (octets[3] !== 0) throw new SandboxInputError(`--subnet must be written as its network address (${octets.slice(0, 3).join('.')}.0/24)`);
  for (const [flag, port] of [
    ['--rest-port', o.restPort],
    ['--svp-port', o.svpPort],
  ] as const) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new SandboxInputError(`${flag} must be a port number`);
  }
  if (o.restPort === o.svpPort) throw new SandboxInputError('--rest-port and --svp-port must differ');
  const reserved = [AGENT_API_PORT, ...(o.store === 'etcd' ? [ETCD_CLIENT_PORT, ETCD_PEER_PORT] : [])];
  if (reserved.includes(o.restPort) || reserved.includes(o.svpPort)) {
    throw new SandboxInputError(`ports ${reserved.join(', ')} are taken by the sandbox's agents${o.store === 'etcd' ? ' and etcd' : ''}`);
  }
  return o;
}

const OWNERS: Array<Omit<PlannedOwner, 'uuid'>> = [
  {
    name: 'acme',
    vlanId: 10,
    vlanName: 'acme-prod',
    network: { name: 'acme-web', subnet: '10.20.0.0/24', start: '10.20.0.10', end: '10.20.0.250', gateway: '10.20.0.1' },
    firewall: true,
  },
  {
    // The same addresses as acme's on purpose: fabrics are isolated by vnet.
    name: 'globex',
    vlanId: 10,
    vlanName: 'globex-apps',
    network: { name: 'globex-apps', subnet: '10.20.0.0/24', start: '10.20.0.10', end: '10.20.0.250', gateway: '10.20.0.1' },
    firewall: false,
  },
];

const INSTANCES: Array<{ name: string; owner: string; role: string }> = [
  { name: 'web1', owner: 'acme', role: 'web' },
  { name: 'web2', owner: 'acme', role: 'web' },
  { name: 'db1', owner: 'acme', role: 'db' },
  { name: 'app1', owner: 'globex', role: 'app' },
  { name: 'app2', owner: 'globex', role: 'app' },
];

const RULES: Array<Omit<PlannedRule, 'owner'> & { ownerName: string }> = [
  { ownerName: 'acme', rule: 'FROM any TO all vms ALLOW icmp TYPE 8 CODE 0', description: 'sandbox: ping between instances' },
  { ownerName: 'acme', rule: 'FROM tag "role" = "web" TO tag "role" = "db" ALLOW tcp PORT 5432', description: 'sandbox: web to db' },
];

/** The whole sandbox for these options; uuid makes the owner, node and instance UUIDs. */
export function planSandbox(options: SandboxOptions, uuid: () => string = randomUUID): SandboxPlan {
  const o = validateOptions(options);
  const underlay24 = o.subnet.split('.').slice(0, 3).join('.');
  const nodes: PlannedNode[] = [];
  for (let i = 1; i <= o.nodes; i++) nodes.push({ name: `n${i}`, ns: `${o.prefix}-n${i}`, uuid: uuid(), ip: `${underlay24}.${i}` });
  const owners: PlannedOwner[] = OWNERS.map((w) => ({ ...w, uuid: uuid() }));
  // Round-robin over the nodes: every owner has instances on at least two nodes.
  const instances: PlannedInstance[] = INSTANCES.map((inst, i) => ({
    name: inst.name,
    ns: `${o.prefix}-${inst.name}`,
    uuid: uuid(),
    owner: inst.owner,
    node: nodes[i % nodes.length]!.name,
    tags: { role: inst.role, name: inst.name },
  }));
  const rules = RULES.map((r) => ({ owner: r.ownerName, rule: r.rule, description: r.description }));
  return {
    options: o,
    underlayNs: `${o.prefix}-ul`,
    rootLink: `${o.prefix}-c`,
    rootLinkPeer: 'c-ul',
    underlay24,
    controllerIp: `${underlay24}.254`,
    nodes,
    owners,
    instances,
    rules,
  };
}

/** Every namespace the plan creates, in creation order. */
export function plannedNamespaces(p: SandboxPlan): string[] {
  return [p.underlayNs, ...p.nodes.map((n) => n.ns), ...p.instances.map((i) => i.ns)];
}
