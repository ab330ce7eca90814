/**
 * The distributed gateway's paths for bench/dataplane (issue #12): a controller and two
 * `rhumb agent` processes (one backend, `--external-iface ext0`, no firewall) in network
 * namespaces, as test/netns/edge-*.test.ts build them, with one owner's two fabric
 * networks connected by a router and an "internet" namespace on the nodes' external side.
 * Three client → server pairs on the same running stack:
 *
 *   same     instance on network A, node 1 → instance on network A, node 2 (one VXLAN hop)
 *   routed   instance on network A, node 1 → instance on network B, node 2 (routed by
 *            node 1's gateway, then one VXLAN hop)
 *   nat      instance on network A, node 1 → the internet host (SNAT to node 1's external address)
 *
 * Needs root and a built dist/ (npm run build): the agents are the real CLI.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type DatacenterNode, type RunningAgent, attachNic, buildInternet, buildUnderlay, controllerListenArgs, eventually, ping,
  registerUnderlayNetwork, restClient, startAgent, svpEndpoint,
} from '../../test/helpers/datacenter.js';
import { NetnsLab } from '../../test/helpers/netns.js';
import { type RunningController, makeTempDir, startControllerProcess } from '../../test/helpers/processes.js';

export type EdgePath = 'same' | 'routed' | 'nat';

/** One client → server pair: where iperf3's client and server run, and the server's address. */
export interface EdgePair {
  lab: NetnsLab;
  inst: [string, string];
  server: string;
}

export interface EdgeStack {
  pairs: Record<EdgePath, EdgePair>;
  stop(): Promise<void>;
}

const OWNER = 'aaaaaaaa-0000-4000-8000-0000000be012';

export async function startEdgeStack(backend: 'kernel' | 'userspace'): Promise<EdgeStack> {
  const lab = new NetnsLab(backend === 'kernel' ? 'bek' : 'beu');
  const block = randomInt(1, 250);
  let ctl: RunningController | undefined;
  const stateRoot = await makeTempDir('bench-edge');
  const stop = async () => {
    await lab.cleanup();
    await ctl?.stop();
    await rm(stateRoot, { recursive: true, force: true });
  };
  try {
    const { nodes } = await buildUnderlay(lab, { subnet24: `198.18.${block}`, nodeCount: 2, rootHosts: [254] });
    const internet = await buildInternet(lab, nodes, `198.19.${block}`);
    ctl = await startControllerProcess({ args: controllerListenArgs(`198.18.${block}.254`) });
    const api = restClient(() => ctl!.restUrl);
    await registerUnderlayNetwork(api, `198.18.${block}`);
    const agents: RunningAgent[] = [];
    for (const n of nodes) {
      agents.push(await startAgent(lab, n, {
        controller: ctl.restUrl, svp: svpEndpoint(ctl), stateDir: join(stateRoot, n.name),
        extraArgs: ['--backend', backend, '--external-iface', 'ext0', '--no-firewall', '--router-poll', '300'],
      }));
    }
    const nets: string[] = [];
    for (const [k, vlan] of [30, 31].entries()) {
      await api('POST', `/fabrics/${OWNER}/vlans`, { vlan_id: vlan });
      const n = await api('POST', `/fabrics/${OWNER}/vlans/${vlan}/networks`, {
        name: `bench${k}`, subnet: `10.93.${k}.0/24`, provision_start_ip: `10.93.${k}.10`, provision_end_ip: `10.93.${k}.200`, gateway: `10.93.${k}.1`,
      });
      nets.push(n.uuid);
    }
    await api('POST', `/fabrics/${OWNER}/routers`, { name: 'bench', networks: nets });
    const place = async (name: string, network: string, node: DatacenterNode, agent: RunningAgent) => {
      const nic = await api('POST', '/nics', { owner_uuid: OWNER, belongs_to_uuid: randomUUID(), belongs_to_type: 'zone', network_uuid: network, cn_uuid: node.uuid });
      const ns = await lab.addNetns(name);
      await attachNic(agent, nic.mac, ns);
      return { ns, ip: nic.ip as string };
    };
    const a1 = await place('a1', nets[0]!, nodes[0]!, agents[0]!);
    const a2 = await place('a2', nets[0]!, nodes[1]!, agents[1]!);
    const b2 = await place('b2', nets[1]!, nodes[1]!, agents[1]!);
    // The router reaches the agents with their next poll.
    await eventually(() => ping(lab, a1.ns, b2.ip, 1, 1), 15_000, 'a1 reaches b2 through the router');
    return {
      pairs: {
        same: { lab, inst: [a1.ns, a2.ns], server: a2.ip },
        routed: { lab, inst: [a1.ns, b2.ns], server: b2.ip },
        nat: { lab, inst: [a1.ns, internet.ns], server: internet.host },
      },
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
