/**
 * The simulated datacenter of bench/scale, as plain data: N compute nodes, V vnets (one
 * fabric owner each), every node on K vnets (so V·(N·K/V) memberships), and M NICs spread
 * evenly over the vnets and, within a vnet, over its nodes. Deterministic for a seed.
 */

export interface Topology {
  nodes: number;
  vnets: number;
  perNode: number;
  /** vnet index -> its node indexes. */
  vnetNodes: number[][];
  /** node index -> its vnet indexes. */
  nodeVnets: number[][];
  /** NIC i: vnet index and node index it starts on. */
  nics: Array<{ vnet: number; node: number }>;
}

/** A small fast PRNG (mulberry32) so runs are repeatable. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function makeTopology(opts: { nodes: number; vnets: number; perNode: number; nics: number; seed?: number }): Topology {
  const { nodes, vnets, perNode } = opts;
  const perVnet = Math.round((nodes * perNode) / vnets);
  if (perVnet < 2 || perVnet > nodes) throw new Error(`nodes*perNode/vnets must be between 2 and nodes (is ${perVnet})`);
  const rand = rng(opts.seed ?? 1);
  // Every node appears perNode times; deal the slots out perVnet at a time, swapping
  // duplicates within a vnet away.
  const slots: number[] = [];
  for (let n = 0; n < nodes; n++) for (let k = 0; k < perNode; k++) slots.push(n);
  for (let i = slots.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [slots[i], slots[j]] = [slots[j]!, slots[i]!];
  }
  const vnetNodes: number[][] = [];
  for (let v = 0; v < vnets; v++) {
    const members = new Set<number>();
    for (let s = v * perVnet; s < (v + 1) * perVnet && s < slots.length; s++) {
      let node = slots[s]!;
      // A duplicate: trade with a later slot whose node is not here yet.
      if (members.has(node)) {
        for (let t = (v + 1) * perVnet; t < slots.length; t++) {
          if (!members.has(slots[t]!)) {
            [slots[s], slots[t]] = [slots[t]!, slots[s]!];
            node = slots[s]!;
            break;
          }
        }
      }
      members.add(node);
    }
    vnetNodes.push([...members]);
  }
  const nodeVnets: number[][] = Array.from({ length: nodes }, () => []);
  vnetNodes.forEach((ns, v) => ns.forEach((n) => nodeVnets[n]!.push(v)));
  const nics: Array<{ vnet: number; node: number }> = [];
  for (let i = 0; i < opts.nics; i++) {
    const vnet = i % vnets;
    const members = vnetNodes[vnet]!;
    nics.push({ vnet, node: members[Math.floor(i / vnets) % members.length]! });
  }
  return { nodes, vnets, perNode, vnetNodes, nodeVnets, nics };
}

export const nodeUuid = (n: number): string => `c0000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
export const ownerUuid = (v: number): string => `0e000000-0000-4000-8000-${v.toString(16).padStart(12, '0')}`;
export const vmUuid = (i: number): string => `a0000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
/** Underlay address of node n (198.18.0.0/15: benchmarking space, loopback only here). */
export const underlayIp = (n: number): string => `198.${18 + Math.floor(n / 62500)}.${Math.floor(n / 250) % 250}.${(n % 250) + 1}`;
