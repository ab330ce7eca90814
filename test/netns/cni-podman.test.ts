/**
 * A real CNI runtime on rhumb fabrics: Debian's Podman (CNI network backend, its own
 * network config dir with rhumb conflists, started with `nsenter --net=` in node
 * namespaces of a simulated datacenter) runs busybox containers from an image imported
 * offline, on two nodes. They ping each other and move a TCP stream across nodes; two
 * owners with the same subnet (and the same addresses) stay isolated; `podman rm -f`
 * releases every NIC, address, interface and record.
 *
 * Needs root, a built dist/, the native addon, podman, runc, busybox-static and
 * containernetworking-plugins (scripts/setup.sh installs them).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEBIAN_CNI_DIR } from '../helpers/cni.js';
import { Datacenter, type DatacenterNode, type RunningAgent, eventually } from '../helpers/datacenter.js';
import { netnsSkipReason } from '../helpers/netns.js';
import { PodmanHost, PodmanNode, podmanSkipReason } from '../helpers/podman.js';
import { CLI, http } from '../helpers/processes.js';

const skip = netnsSkipReason() || podmanSkipReason();
const ACME = 'aaaaaaaa-0000-4000-8000-0000000000d1';
const GLOBEX = 'aaaaaaaa-0000-4000-8000-0000000000d2';
const IMAGE = 'localhost/rhumb-busybox:test';
const BYTES = 4_000_000;

describe('Podman (CNI backend) runs containers on rhumb fabrics', { skip, timeout: 300_000 }, () => {
  const dc = new Datacenter('pod', { nodes: 2, stateTag: 'pod', firewall: false });
  const { lab, api } = dc;
  let nodes: DatacenterNode[] = [];
  const agents: RunningAgent[] = [];
  const podmen: PodmanNode[] = [];
  let host: PodmanHost | undefined;
  const ip = async (p: PodmanNode, name: string) => /inet (\S+)\//.exec(await p.exec(name, 'ip', '-4', 'addr', 'show', 'dev', 'eth0'))?.[1];
  const mac = async (p: PodmanNode, name: string) => /link\/ether (\S+)/.exec(await p.exec(name, 'ip', 'link', 'show', 'dev', 'eth0'))?.[1];
  const pings = (p: PodmanNode, name: string, target: string) => p.exec(name, 'ping', '-c', '2', '-W', '3', target).then(() => true, () => false);

  before(async () => {
    await dc.start();
    nodes = dc.nodes;
    agents.push(...dc.nodes.map((n) => n.agent!));
    const tmp = dc.stateRoot;
    host = new PodmanHost(tmp, `rhumb-test-${randomBytes(4).toString('hex')}`);
    const pluginDir = join(tmp, 'cni-bin');
    execFileSync(process.execPath, [CLI, 'cni', 'install', '--dir', pluginDir]);
    // Two owners, one subnet: 10.90.0.0/24 each, on their own vnets.
    const nets: Record<string, string> = {};
    for (const owner of [ACME, GLOBEX]) {
      await api('POST', `/fabrics/${owner}/vlans`, { vlan_id: 10, name: 'pods' });
      nets[owner] = (
        await api('POST', `/fabrics/${owner}/vlans/10/networks`, {
          name: 'pods', subnet: '10.90.0.0/24', provision_start_ip: '10.90.0.10', provision_end_ip: '10.90.0.250', gateway: '10.90.0.1', resolvers: ['10.90.0.53'],
        })
      ).uuid;
    }
    const tar = await host.busyboxImageTar({
      // Receives a TCP stream on stdin (nc -e) and writes how many bytes came.
      tcpsink: '#!/bin/sh\nwc -c > /tmp/received\n',
      tcpsend: `#!/bin/sh\nhead -c ${BYTES} /dev/zero\n`,
    });
    for (const [i, n] of nodes.entries()) {
      const p = new PodmanNode({ host, nodeNs: n.ns, pluginDirs: [pluginDir, DEBIAN_CNI_DIR], name: n.name });
      await p.init();
      const agent = agents[i]!.api.replace('http://', '');
      // acme's network by owner and name, globex's by UUID; portmap chained after rhumb.
      await p.writeConflist('acme', {
        cniVersion: '1.0.0', name: 'acme',
        plugins: [{ type: 'rhumb', network: 'pods', owner_uuid: ACME, agent }, { type: 'portmap', capabilities: { portMappings: true } }],
      });
      await p.writeConflist('globex', { cniVersion: '1.0.0', name: 'globex', plugins: [{ type: 'rhumb', network: nets[GLOBEX], agent }] });
      await p.podman('import', tar, IMAGE);
      podmen.push(p);
    }
  });

  after(async () => {
    await host?.cleanup(podmen);
    await dc.stop();
  });

  it('containers on two nodes ping each other and move a TCP stream across nodes; MAC and IP requests are honoured', async () => {
    const [p1, p2] = podmen as [PodmanNode, PodmanNode];
    await p1.runDetached('a1', 'acme', IMAGE, ['sleep', '3600'], ['--ip', '10.90.0.21', '--mac-address', '02:aa:00:00:00:21', '-p', '18081:80']);
    await p2.runDetached('a2', 'acme', IMAGE, ['sleep', '3600'], ['--ip', '10.90.0.22']);
    assert.equal(await ip(p1, 'a1'), '10.90.0.21');
    assert.equal(await mac(p1, 'a1'), '02:aa:00:00:00:21');
    assert.equal(await ip(p2, 'a2'), '10.90.0.22');
    assert.match(await p1.exec('a1', 'cat', '/etc/resolv.conf'), /nameserver 10\.90\.0\.53/);
    assert.ok(await pings(p1, 'a1', '10.90.0.22'), 'a1 (n1) pings a2 (n2)');
    assert.ok(await pings(p2, 'a2', '10.90.0.21'), 'a2 (n2) pings a1 (n1)');

    // A TCP stream from n1 to n2: a2 counts what arrives.
    await p2.podman('exec', '-d', 'a2', 'nc', '-l', '-p', '5000', '-e', '/bin/tcpsink');
    await eventually(async () => (await p2.exec('a2', 'netstat', '-ltn')).includes(':5000 '), 10_000, 'a2 listens');
    await p1.exec('a1', 'nc', '10.90.0.22', '5000', '-e', '/bin/tcpsend');
    await eventually(async () => (await p2.exec('a2', 'cat', '/tmp/received').catch(() => '')).trim() === String(BYTES), 10_000, 'a2 received the stream');
  });

  it('two owners with the same subnet and the same addresses stay isolated', async () => {
    const [p1, p2] = podmen as [PodmanNode, PodmanNode];
    // globex gets acme's addresses, on the other nodes: b1 (n2) = a1's, b2 (n1) = a2's.
    await p2.runDetached('b1', 'globex', IMAGE, ['sleep', '3600'], ['--ip', '10.90.0.21']);
    await p1.runDetached('b2', 'globex', IMAGE, ['sleep', '3600'], ['--ip', '10.90.0.22']);
    // Each container answers TCP port 5001 with its name.
    for (const [p, name] of [[p2, 'a2'], [p1, 'b2']] as const) await p.podman('exec', '-d', name, 'nc', '-ll', '-p', '5001', '-e', '/bin/hostname');
    const ask = (p: PodmanNode, from: string) => p.exec(from, 'nc', '-w', '3', '10.90.0.22', '5001').then((s) => s.trim(), () => '');
    await eventually(async () => (await ask(p1, 'a1')) === 'a2', 10_000, 'a1 reaches a2');
    assert.equal(await ask(p2, 'b1'), 'b2', '10.90.0.22 is b2 for globex');
    assert.equal(await ask(p1, 'a1'), 'a2', '… and a2 for acme');
    assert.ok(await pings(p2, 'b1', '10.90.0.22'));
    // A globex address acme does not have: unreachable from acme.
    await p1.runDetached('b3', 'globex', IMAGE, ['sleep', '3600'], ['--ip', '10.90.0.23']);
    assert.ok(await pings(p2, 'b1', '10.90.0.23'), 'b1 reaches b3');
    assert.equal(await pings(p2, 'a2', '10.90.0.23'), false, 'a2 does not reach globex');
  });

  it('podman rm -f releases everything: no NIC, address, interface, record or namespace left', async () => {
    for (const p of podmen) await p.removeAll();
    for (const [i, n] of nodes.entries()) {
      assert.deepEqual((await http(agents[i]!.api, 'GET', '/workloads')).body, [], `no workload records on ${n.name}`);
      assert.deepEqual(await api('GET', `/nics?cn_uuid=${n.uuid}&belongs_to_type=zone`), [], `no NIC on ${n.name}`);
      const links = (JSON.parse(await lab.ip(n.ns, '-j', 'link', 'show')) as Array<{ ifname: string }>).map((l) => l.ifname);
      assert.deepEqual(links.filter((l) => /^(rv|rbr|rvx)/.test(l)), [], `no rhumb device on ${n.name}`);
    }
    assert.deepEqual(await host!.leftoverNetns(), []);
  });
});
