/**
 * A node whose underlay address changes (issue 21): its underlay NIC updated through the
 * API and its interface re-addressed, with nothing restarted. The API write shoots down
 * the node's NICs on every vnet it shares (peers forget where they were and ask again),
 * and the node's own agent moves its VXLAN source to the new address. Run on both
 * backends: two nodes, the second one moves.
 *
 * Encrypted too (--encryption wireguard, wireguard-go here: this kernel has no module):
 * the moved node's WireGuard interface takes the tunnel address its new underlay address
 * derives to and it publishes its new endpoint; its peer configures it there from the
 * peers feed, and nothing is left at the old addresses.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { wireguardIfname } from '../../src/agent/wireguard/device.js';
import { tunnelAddress } from '../../src/overlay/wireguard.js';
import { Datacenter, type Node, type RunningAgent, eventually, ping } from '../helpers/datacenter.js';
import { netnsSkipReason, run } from '../helpers/netns.js';
import { CLI, http } from '../helpers/processes.js';

const skip = netnsSkipReason();
const wgSkip = skip || (['/usr/bin/wg', '/usr/bin/wireguard-go'].every((p) => existsSync(p)) ? false : 'wg / wireguard-go are not installed (run scripts/setup.sh)');
const OWNER = 'aaaaaaaa-0000-4000-8000-0000000000c1';
const SUBNET = '100.64.0.0/10';

for (const encryption of ['none', 'wireguard'] as const)
for (const backend of ['kernel', 'userspace'] as const)
describe(`a node's underlay address changes (${backend} backend${encryption === 'none' ? '' : ', encrypted'})`, { skip: encryption === 'none' ? skip : wgSkip, timeout: 180_000 }, () => {
  const encrypted = encryption === 'wireguard';
  const dc = new Datacenter(`u${encrypted ? 'w' : 'l'}${backend === 'kernel' ? 'k' : 'u'}`, {
    nodes: 2, stateTag: 'ulmove', backend, firewall: false, ...(encrypted ? { encryption: 'wireguard' as const } : {}),
  });
  const { lab, api, underlay24 } = dc;
  let nodes: Node[] = [];
  const agents: RunningAgent[] = [];
  const insts: Array<{ ns: string; ip: string }> = [];

  before(async () => {
    await dc.start();
    nodes = dc.nodes;
    agents.push(...nodes.map((n) => n.agent!));
    const net = await dc.fabricNetwork(OWNER, { vlan_id: 9, name: 'mv' }, {
      name: 'mv', subnet: '10.69.0.0/24', provision_start_ip: '10.69.0.10', provision_end_ip: '10.69.0.200',
    });
    for (const [i, n] of nodes.entries()) insts.push(await dc.addInstance(`i${i}`, OWNER, net, n));
  });

  // Encrypted, wireguard-go's sockets go too (it removes its own when its interface goes; a killed one would leave it behind).
  after(() => dc.stop());

  it('peers reach the moved node\'s instance again, nothing restarted', async (t) => {
    const [a, b] = insts as [{ ns: string; ip: string }, { ns: string; ip: string }];
    const moved = nodes[1]!;
    // Both directions work, so both nodes have cached each other's old address.
    assert.ok(await ping(lab, a.ns, b.ip, 1, 3), 'a reaches b before the move');
    assert.ok(await ping(lab, b.ns, a.ip, 1, 3), 'b reaches a before the move');
    const pids = agents.map((x) => x.proc.pid);

    const [ulNic] = (await api('GET', `/nics?belongs_to_uuid=${moved.uuid}&belongs_to_type=server`)) as Array<{ mac: string; ip: string }>;
    assert.equal(ulNic!.ip, moved.ip);
    const newIp = `${underlay24}.${100 + randomInt(0, 100)}`;
    // Echo requests every 50 ms across the move: when the replies resume says how long it took (a diagnostic).
    const pinger = lab.exec(a.ns, 'ping', '-D', '-n', '-i', '0.05', '-W', '1', '-w', '10', b.ip).catch((e: Error) => String((e.cause as { stdout?: string } | undefined)?.stdout ?? ''));
    const updated = await api('PUT', `/nics/${ulNic!.mac.replace(/:/g, '')}`, { ip: newIp });
    assert.equal(updated.ip, newIp);
    // Re-addressed (old one first: deleting a primary address takes its secondaries along).
    await lab.ip(moved.ns, 'addr', 'del', `${moved.ip}/24`, 'dev', 'ul0');
    await lab.ip(moved.ns, 'addr', 'add', `${newIp}/24`, 'dev', 'ul0');
    const movedAt = Date.now();

    // Within a second in practice (one shootdown, one lookup); the timeout is generous.
    await eventually(() => ping(lab, a.ns, b.ip, 1, 1), 20_000, 'a reaches b at its node\'s new address').catch(async (err: Error) => {
      const fdb = await lab.exec(nodes[0]!.ns, 'bridge', 'fdb', 'show').catch((e: Error) => e.message);
      const metrics = String((await http(agents[0]!.api, 'GET', '/metrics')).body).split('\n').filter((l) => /shootdowns_applied_total\{/.test(l)).join('\n');
      const wg = encrypted ? await lab.exec(nodes[0]!.ns, 'wg', 'show', 'all', 'dump').catch((e: Error) => e.message) : '';
      throw new Error(`${err.message}\n${fdb}\n${wg}\n${metrics}\n${agents.map((x, i) => `agent ${i}:\n${x.out.stderr.split("\n").slice(-25).join('\n')}`).join('\n')}`);
    });
    const resumed = (await pinger).split('\n').flatMap((l) => {
      const m = /^\[(\d+\.\d+)\] \d+ bytes from/.exec(l);
      return m && Number(m[1]) * 1000 > movedAt ? [Number(m[1]) * 1000 - movedAt] : [];
    })[0];
    t.diagnostic(`echo replies (50 ms apart) resumed ${resumed === undefined ? '(not within the capture)' : `${Math.round(resumed)} ms`} after the interface was re-addressed`);
    assert.ok(await ping(lab, b.ns, a.ip, 1, 3), 'b reaches a');
    assert.deepEqual(agents.map((x) => [x.proc.pid, x.proc.exitCode]), pids.map((p) => [p, null]), 'no agent restarted');
    assert.ok(agents[1]!.out.stderr.includes(`-> ${newIp}`), 'the moved node\'s agent followed its address');
    // The peer learnt through a shootdown of the moved node's NIC (a VL2), not by chance.
    const metrics = String((await http(agents[0]!.api, 'GET', '/metrics')).body);
    assert.match(metrics, /rhumb_agent_shootdowns_applied_total\{type="vl2"[^}]*\} [1-9]/);
    if (encrypted) await assertTunnelMoved(moved.ip, newIp);
  });

  /** The moved node's tunnel is at its new address everywhere, and nothing at its old one. */
  async function assertTunnelMoved(oldIp: string, newIp: string): Promise<void> {
    const [peer, moved] = nodes as [Node, Node];
    const [oldTunnel, newTunnel] = [tunnelAddress(oldIp, SUBNET), tunnelAddress(newIp, SUBNET)];
    assert.ok(!agents[1]!.out.stderr.includes('not followed'), 'the moved node followed under encryption');
    // The moved node's interface holds only the new tunnel address.
    const [link] = JSON.parse(await lab.exec(moved.ns, 'ip', '-j', '-4', 'addr', 'show', 'dev', wireguardIfname(moved.uuid)));
    assert.deepEqual(link.addr_info.map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`), [`${newTunnel}/10`]);
    // Its record carries the new endpoint.
    const rec = await api('GET', `/wireguard/nodes/${moved.uuid}`);
    assert.equal(rec.endpoint, `${newIp}:51820`);
    // The peer's interface: the moved node at its new endpoint and tunnel address, nothing at the old ones.
    const peerOf = async () => {
      const lines = (await lab.exec(peer.ns, 'wg', 'show', wireguardIfname(peer.uuid), 'dump')).trim().split('\n').slice(1);
      return lines.map((l) => l.split('\t')).map(([key, , endpoint, allowed]) => ({ key, endpoint, allowed }));
    };
    await eventually(async () => (await peerOf()).some((p) => p.key === rec.public_key && p.endpoint === `${newIp}:51820`), 10_000, 'the peer has the new endpoint');
    const peers = await peerOf();
    assert.deepEqual(peers, [{ key: rec.public_key, endpoint: `${newIp}:51820`, allowed: `${newTunnel}/32` }]);
    assert.ok(!JSON.stringify(peers).includes(`${oldTunnel}/`) && !JSON.stringify(peers).includes(`${oldIp}:`), 'old endpoint or allowed IPs linger');
    if (backend === 'kernel') {
      // VXLAN leaves the moved node from its new tunnel address; the peer's entries name it, none the old one.
      const vx = JSON.parse(await lab.exec(moved.ns, 'ip', '-d', '-j', 'link', 'show', 'type', 'vxlan')) as Array<{ linkinfo: { info_data: { local?: string } } }>;
      assert.ok(vx.length > 0);
      for (const d of vx) assert.equal(d.linkinfo.info_data.local, newTunnel);
      const fdb = await lab.exec(peer.ns, 'bridge', 'fdb', 'show');
      assert.match(fdb, new RegExp(`dst ${newTunnel.replace(/\./g, '\\.')} `));
      assert.doesNotMatch(fdb, new RegExp(`dst ${oldTunnel.replace(/\./g, '\\.')} `));
    }
    // The moved node still follows the peers feed (its long-poll from the removed address
    // was started again): the peer's new key reaches its interface.
    const peerKey = (await api('GET', `/wireguard/nodes/${peer.uuid}`)).public_key as string;
    const rotated = JSON.parse(await run(process.execPath, [CLI, 'node', 'rotate-key', '--agent', agents[0]!.api.replace('http://', '')])).public_key as string;
    assert.notEqual(rotated, peerKey);
    await eventually(async () => {
      const keys = (await lab.exec(moved.ns, 'wg', 'show', wireguardIfname(moved.uuid), 'peers')).split('\n').filter(Boolean);
      return keys.length === 1 && keys[0] === rotated;
    }, 10_000, 'the moved node has its peer\'s new key');
    assert.ok(await ping(lab, insts[0]!.ns, insts[1]!.ip, 1, 3), 'a reaches b after the peer\'s key rotation');
  }
});
