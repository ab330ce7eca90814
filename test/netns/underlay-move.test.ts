/**
 * A node whose underlay address changes (issue 21): its underlay NIC updated through the
 * API and its interface re-addressed, with nothing restarted. The API write shoots down
 * the node's NICs on every vnet it shares (peers forget where they were and ask again),
 * and the node's own agent moves its VXLAN source to the new address. Run on both
 * backends: two nodes, the second one moves.
 */
import assert from 'node:assert/strict';
import { randomInt, randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  type DatacenterNode,
  type RunningAgent,
  attachNic,
  buildUnderlay,
  controllerListenArgs,
  eventually,
  ping,
  registerUnderlayNetwork,
  restClient,
  startAgent,
  svpEndpoint,
} from '../helpers/datacenter.js';
import { NetnsLab, netnsSkipReason } from '../helpers/netns.js';
import { type RunningController, http, makeTempDir, startControllerProcess } from '../helpers/processes.js';

const skip = netnsSkipReason();
const OWNER = 'aaaaaaaa-0000-4000-8000-0000000000c1';

for (const backend of ['kernel', 'userspace'] as const)
describe(`a node's underlay address changes (${backend} backend)`, { skip, timeout: 120_000 }, () => {
  const lab = new NetnsLab(backend === 'kernel' ? 'ulk' : 'ulu');
  const underlay24 = `198.18.${randomInt(1, 250)}`;
  let ctl: RunningController | undefined;
  let nodes: DatacenterNode[] = [];
  const agents: RunningAgent[] = [];
  const insts: Array<{ ns: string; ip: string }> = [];
  let tmp = '';
  const api = restClient(() => ctl!.restUrl);

  before(async () => {
    tmp = await makeTempDir('ulmove');
    const ul = await buildUnderlay(lab, { subnet24: underlay24, nodeCount: 2, rootHosts: [254] });
    nodes = ul.nodes;
    ctl = await startControllerProcess({ args: controllerListenArgs(`${underlay24}.254`) });
    await registerUnderlayNetwork(api, underlay24);
    for (const [i, n] of nodes.entries()) {
      agents.push(await startAgent(lab, n, { controller: ctl.restUrl, svp: svpEndpoint(ctl), stateDir: join(tmp, `n${i}`), extraArgs: ['--backend', backend, '--no-firewall'] }));
    }
    await api('POST', `/fabrics/${OWNER}/vlans`, { vlan_id: 9, name: 'mv' });
    const net = await api('POST', `/fabrics/${OWNER}/vlans/9/networks`, {
      name: 'mv', subnet: '10.69.0.0/24', provision_start_ip: '10.69.0.10', provision_end_ip: '10.69.0.200',
    });
    for (const [i, n] of nodes.entries()) {
      const nic = await api('POST', '/nics', { owner_uuid: OWNER, belongs_to_uuid: randomUUID(), belongs_to_type: 'zone', network_uuid: net.uuid, cn_uuid: n.uuid });
      const ns = await lab.addNetns(`i${i}`);
      await attachNic(agents[i]!, nic.mac, ns);
      insts.push({ ns, ip: nic.ip });
    }
  });

  after(async () => {
    await lab.cleanup();
    await ctl?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('peers reach the moved node\'s instance again, nothing restarted', async () => {
    const [a, b] = insts as [{ ns: string; ip: string }, { ns: string; ip: string }];
    const moved = nodes[1]!;
    // Both directions work, so both nodes have cached each other's old address.
    assert.ok(await ping(lab, a.ns, b.ip, 1, 3), 'a reaches b before the move');
    assert.ok(await ping(lab, b.ns, a.ip, 1, 3), 'b reaches a before the move');
    const pids = agents.map((x) => x.proc.pid);

    const [ulNic] = (await api('GET', `/nics?belongs_to_uuid=${moved.uuid}&belongs_to_type=server`)) as Array<{ mac: string; ip: string }>;
    assert.equal(ulNic!.ip, moved.ip);
    const newIp = `${underlay24}.${100 + randomInt(0, 100)}`;
    const updated = await api('PUT', `/nics/${ulNic!.mac.replace(/:/g, '')}`, { ip: newIp });
    assert.equal(updated.ip, newIp);
    // Re-addressed (old one first: deleting a primary address takes its secondaries along).
    await lab.ip(moved.ns, 'addr', 'del', `${moved.ip}/24`, 'dev', 'ul0');
    await lab.ip(moved.ns, 'addr', 'add', `${newIp}/24`, 'dev', 'ul0');

    // Within a second in practice (one shootdown, one lookup); the timeout is generous.
    await eventually(() => ping(lab, a.ns, b.ip, 1, 1), 20_000, 'a reaches b at its node\'s new address').catch(async (err: Error) => {
      const fdb = await lab.exec(nodes[0]!.ns, 'bridge', 'fdb', 'show').catch((e: Error) => e.message);
      const metrics = String((await http(agents[0]!.api, 'GET', '/metrics')).body).split('\n').filter((l) => /shootdowns_applied_total\{/.test(l)).join('\n');
      throw new Error(`${err.message}\n${fdb}\n${metrics}\n${agents.map((x, i) => `agent ${i}:\n${x.out.stderr.split("\n").slice(-25).join('\n')}`).join('\n')}`);
    });
    assert.ok(await ping(lab, b.ns, a.ip, 1, 3), 'b reaches a');
    assert.deepEqual(agents.map((x) => [x.proc.pid, x.proc.exitCode]), pids.map((p) => [p, null]), 'no agent restarted');
    assert.ok(agents[1]!.out.stderr.includes(`-> ${newIp}`), 'the moved node\'s agent followed its address');
    // The peer learnt through a shootdown of the moved node's NIC (a VL2), not by chance.
    const metrics = String((await http(agents[0]!.api, 'GET', '/metrics')).body);
    assert.match(metrics, /rhumb_agent_shootdowns_applied_total\{type="vl2"[^}]*\} [1-9]/);
  });
});
