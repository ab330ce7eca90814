/**
 * A simulated datacenter in network namespaces, driven only through the REST API and the
 * agents: an underlay bridge, three compute nodes (198.18.0.0/15), the controller in the
 * root namespace on a veth into the underlay bridge, and instances as namespaces. Two
 * owners each have a fabric VLAN with the SAME subnet; four instances per owner are spread
 * over the three nodes. Run once per data-plane backend (BACKENDS_UNDER_TEST), and once
 * more with security on (issue #13): the controller with --tls-dir and --auth-file, each
 * agent with its node certificate (REST over HTTPS and SVP over TLS, scoped to its node),
 * the test itself with an admin token.
 *
 * Needs root, a built dist/ (npm run build) and the native addon.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { PacketRecord } from '../../src/agent/trace/records.js';
import {
  Datacenter,
  type Node as DatacenterNode,
  ProcessOutput,
  attachNic,
  eventually,
  exited,
  ping as pingFrom,
  sendTcp,
  sleep,
  startTcpSink,
  sumMetric,
} from '../helpers/datacenter.js';
import { netnsSkipReason } from '../helpers/netns.js';
import { CLI, http } from '../helpers/processes.js';
import { restFetch } from '../../src/security/http-client.js';
import { loadClientTls } from '../../src/security/tls.js';
import { SvpClient } from '../../src/svp/client.js';
import { SvpStatus } from '../../src/svp/codec.js';

/** Adding the userspace backend to this suite is adding it here. */
const BACKENDS_UNDER_TEST = ['kernel', 'userspace'] as const;
/** Every backend in plaintext, and the kernel backend again over TLS with node certificates and tokens. */
const VARIANTS: ReadonlyArray<{ backend: (typeof BACKENDS_UNDER_TEST)[number]; tls: boolean }> = [
  ...BACKENDS_UNDER_TEST.map((backend) => ({ backend, tls: false })),
  { backend: 'kernel', tls: true },
];
const ADMIN_TOKEN = 'overlay-admin-0123456789';

const skip = netnsSkipReason();
const OWNER_A = 'aaaaaaaa-0000-4000-8000-00000000000a';
const OWNER_B = 'bbbbbbbb-0000-4000-8000-00000000000b';
const SUBNET = '10.77.0.0/24';
const FABRIC_VLAN = 5;
const TCP_PORT = 7777;

type TraceJson = PacketRecord & { ts: number; line: string };

interface Node extends DatacenterNode {
  /** Node 3's agent runs with --no-prefetch: its remote entries come from kernel misses. */
  prefetch: boolean;
}

interface Instance {
  name: string;
  ns: string;
  owner: string;
  node: Node;
  mac: string;
  ip: string;
}

for (const { backend, tls } of VARIANTS) {
  describe(`overlay across three nodes (${backend} backend${tls ? ', TLS and tokens' : ''})`, { skip, timeout: 180_000 }, () => {
    const nodes: Node[] = [];
    const prefetches = (n: DatacenterNode) => n.name !== 'n3';
    const instances: Instance[] = [];
    const vnets: Record<string, number> = {};
    const sinks: ChildProcess[] = [];

    /** TLS: the deployment's PKI (the controller's certificate names its address) and the admin's fetch. */
    let pki = '';
    let adminFetch: typeof fetch | undefined;
    const secure: string[] = [];
    const dc = new Datacenter('ovk', {
      nodes: 3,
      stateTag: 'ovk-state',
      backend,
      agentArgs: (n) => [
        '--probe-interval', '500', ...(prefetches(n) ? [] : ['--no-prefetch']),
        // The node's own certificate: REST and SVP as this node only.
        ...(tls ? ['--tls-dir', pki, '--cert', `${n.name}.pem`, '--key', `${n.name}-key.pem`] : []),
      ],
      beforeAgents: async (d) => {
        for (const n of d.nodes) nodes.push(Object.assign(n, { prefetch: prefetches(n) }));
        if (!tls) return;
        pki = join(d.stateRoot, 'pki');
        const rhumb = (...args: string[]) => execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
        rhumb('pki', 'init', pki, '--san', d.controllerIp);
        for (const n of nodes) rhumb('pki', 'issue', pki, '--name', n.name, '--node', n.uuid);
        const authFile = join(d.stateRoot, 'auth.json');
        await writeFile(authFile, JSON.stringify({ tokens: [{ token: ADMIN_TOKEN, role: 'admin' }] }));
        await chmod(authFile, 0o600);
        secure.push('--tls-dir', pki, '--auth-file', authFile);
        adminFetch = restFetch({ tls: await loadClientTls({ tlsDir: pki }), token: ADMIN_TOKEN });
      },
      controllerArgs: () => secure,
      ...(tls ? { restFetch: () => adminFetch! } : {}),
    });
    const { lab, api } = dc;

    const startAgent = (n: Node) => dc.startAgent(n);
    const stopAgent = (n: Node) => dc.stopAgent(n);

    async function agentCall(n: Node, path: string, body: unknown): Promise<{ status: number; body: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
      return http(n.agent!.api, 'POST', path, body);
    }

    /** `rhumb agent attach|detach` run as an operator would, in the node's namespace. */
    async function cli(n: Node, ...args: string[]): Promise<string> {
      return lab.exec(n.ns, process.execPath, CLI, 'agent', ...args, '--agent', n.agent!.api.replace('http://', ''));
    }

    const ping = (from: Instance, ip: string, count = 1, waitS = 3) => pingFrom(lab, from.ns, ip, count, waitS);

    const send = (from: Instance, targets: string[], bytes: number, paceMs = 0) => sendTcp(lab, from.ns, targets, bytes, TCP_PORT, paceMs);

    /** The node's data-plane entries for a vnet, as its agent reports them. */
    async function entries(n: Node, vnet: number): Promise<{ neighbours: Array<{ ip: string; mac: string }>; fdb: Array<{ mac: string; underlay: string }> }> {
      const r = await http(n.agent!.api, 'GET', `/vnets/${vnet}/entries`);
      assert.equal(r.status, 200);
      return r.body;
    }

    /** Kernel backend only: every FDB line (the bridge's learned entries too) and neighbour line. */
    async function kernelEntries(n: Node, vnet: number): Promise<string> {
      const fdb = await lab.exec(n.ns, 'bridge', 'fdb', 'show', 'dev', `rvx${vnet}`).catch(() => '');
      const neigh = await lab.exec(n.ns, 'ip', 'neigh', 'show', 'dev', `rvx${vnet}`).catch(() => '');
      return `${fdb}${neigh}`;
    }

    const ownerOf = (o: string) => instances.filter((i) => i.owner === o);

    before(async () => {
      await dc.start();
      if (tls) {
        assert.match(dc.ctl!.restUrl, /^https:/);
        // Nothing answers without credentials.
        assert.equal((await http(dc.ctl!.restUrl, 'GET', '/nics', undefined, restFetch({ tls: await loadClientTls({ tlsDir: pki }) }))).status, 401);
      }

      // Two owners, the same VLAN id and the same subnet.
      const nets: Record<string, string> = {};
      for (const owner of [OWNER_A, OWNER_B]) {
        const vlan = await api('POST', `/fabrics/${owner}/vlans`, { vlan_id: FABRIC_VLAN, name: 'prod' });
        vnets[owner] = vlan.vnet_id;
        const net = await api('POST', `/fabrics/${owner}/vlans/${FABRIC_VLAN}/networks`, {
          name: 'prod',
          subnet: SUBNET,
          provision_start_ip: '10.77.0.1',
          provision_end_ip: '10.77.0.200',
          gateway: '10.77.0.1',
        });
        nets[owner] = net.uuid;
      }
      assert.notEqual(vnets[OWNER_A], vnets[OWNER_B]);

      // Owner A gets .20-.23, owner B .22-.25: two addresses exist in both fabrics.
      const placement = [0, 1, 2, 0];
      for (const [owner, tag, firstIp] of [
        [OWNER_A, 'a', 20],
        [OWNER_B, 'b', 22],
      ] as const) {
        for (let k = 0; k < 4; k++) {
          const node = nodes[(placement[k] + (tag === 'b' ? 1 : 0)) % 3];
          const nic = await api('POST', '/nics', {
            owner_uuid: owner,
            belongs_to_uuid: randomUUID(),
            belongs_to_type: 'zone',
            network_uuid: nets[owner],
            ip: `10.77.0.${firstIp + k}`,
            cn_uuid: node.uuid,
          });
          const ns = await lab.addNetns(`${tag}${k + 1}`);
          instances.push({ name: `${tag}${k + 1}`, ns, owner, node, mac: nic.mac, ip: nic.ip });
        }
      }
      // Plumb everything through the agents' API; start a TCP sink in every instance.
      for (const inst of instances) {
        const attached = await attachNic(inst.node.agent!, inst.mac, inst.ns);
        assert.equal(attached.vnet, vnets[inst.owner]);
        sinks.push(await startTcpSink(lab, inst.ns, inst.name, TCP_PORT));
      }
    });

    after(() => dc.stop());

    it('registers each node\'s underlay NIC and plumbs NICs with the API\'s address, MAC and routes', async () => {
      for (const n of nodes) {
        const nics = await api('GET', `/nics?belongs_to_uuid=${n.uuid}&underlay=true`);
        assert.equal(nics.length, 1);
        assert.equal(nics[0].ip, n.ip);
        assert.equal(nics[0].belongs_to_type, 'server');
      }
      const a1 = instances[0];
      const link = await lab.exec(a1.ns, 'ip', '-j', 'addr', 'show', 'dev', 'eth0');
      const [info] = JSON.parse(link);
      assert.equal(info.address, a1.mac);
      assert.equal(info.mtu, 1450);
      assert.ok(info.addr_info.some((x: { local: string; prefixlen: number }) => x.local === a1.ip && x.prefixlen === 24));
      const routes = await lab.exec(a1.ns, 'ip', 'route', 'show', 'default');
      assert.match(routes, /default via 10\.77\.0\.1 dev eth0/);
      // A second attach of the same NIC is refused; a NIC placed on another node too.
      const again = await agentCall(a1.node, '/attach', { mac: a1.mac, netns: `/run/netns/${a1.ns}` });
      assert.equal(again.status, 409);
      const elsewhere = instances.find((i) => i.node !== a1.node)!;
      const wrong = await agentCall(a1.node, '/attach', { mac: elsewhere.mac, netns: `/run/netns/${a1.ns}`, ifname: 'eth9' });
      assert.equal(wrong.status, 409);
      assert.match(wrong.body.message, /not this node/);
    });

    /** Sum over the agents of a counter's samples whose labels include all of `labels`. */
    async function agentCounter(name: string, labels: Record<string, string>, on: Node[] = nodes): Promise<number> {
      let sum = 0;
      for (const n of on) sum += sumMetric(String((await http(n.agent!.api, 'GET', '/metrics')).body), name, labels);
      return sum;
    }

    it('every pair within an owner exchanges ping and a TCP transfer', async () => {
      // Remote destinations were prefetched when each node's first NIC of the vnet arrived
      // (or announced by VL3 events when created later): first contact needs no lookup
      // there. Node 3 does not prefetch: its kernel misses are resolved over SVP.
      const prefetching = nodes.filter((n) => n.prefetch);
      const onDemand = { kind: 'vl3', result: 'ok', source: 'lookup' };
      const onDemandBefore = await agentCounter('rhumb_agent_lookups_total', onDemand, prefetching);
      const n3Before = await agentCounter('rhumb_agent_lookups_total', onDemand, [nodes[2]]);
      const checks: Array<Promise<void>> = [];
      for (const owner of [OWNER_A, OWNER_B]) {
        const group = ownerOf(owner);
        for (const from of group) {
          for (const to of group) {
            if (from === to) continue;
            checks.push(ping(from, to.ip, 1, 4).then((ok) => assert.ok(ok, `${from.name} -> ${to.name} (${to.ip}) ping`)));
          }
          checks.push(
            send(from, group.filter((g) => g !== from).map((g) => g.ip), 256 * 1024).then((rs) => {
              for (const r of rs) {
                const to = group.find((g) => g.ip === r.host)!;
                assert.equal(r.reply, `${to.name} ${256 * 1024}`, `${from.name} -> ${to.name} TCP: ${JSON.stringify(r)}`);
              }
            }),
          );
        }
      }
      await Promise.all(checks);
      assert.equal(await agentCounter('rhumb_agent_lookups_total', onDemand, prefetching), onDemandBefore);
      assert.ok((await agentCounter('rhumb_agent_lookups_total', onDemand, [nodes[2]])) > n3Before, 'node 3 resolved misses on demand');
      assert.ok((await agentCounter('rhumb_agent_misses_total', { kind: 'l3' }, [nodes[2]])) > 0);
    });

    it('nothing crosses between owners, even at addresses both fabrics use', async () => {
      // Addresses only the other owner uses are unreachable, both ways.
      const probes: Array<Promise<void>> = [];
      for (const [mine, theirs] of [
        [OWNER_A, OWNER_B],
        [OWNER_B, OWNER_A],
      ]) {
        for (const a of ownerOf(mine)) {
          for (const b of ownerOf(theirs).filter((b) => !ownerOf(mine).some((x) => x.ip === b.ip))) {
            probes.push(ping(a, b.ip, 2, 1).then((ok) => assert.equal(ok, false, `${a.name} must not reach ${b.name}`)));
          }
        }
      }
      await Promise.all(probes);
      // At a shared address each owner reaches its own instance.
      const shared = ownerOf(OWNER_A).find((a) => ownerOf(OWNER_B).some((b) => b.ip === a.ip))!;
      for (const owner of [OWNER_A, OWNER_B]) {
        const from = ownerOf(owner).find((i) => i.ip !== shared.ip)!;
        const target = ownerOf(owner).find((i) => i.ip === shared.ip)!;
        const [r] = await send(from, [shared.ip], 1000);
        assert.equal(r.reply, `${target.name} 1000`);
        const neigh = await lab.exec(from.ns, 'ip', 'neigh', 'show', shared.ip, 'dev', 'eth0');
        assert.match(neigh, new RegExp(target.mac));
      }
    });

    /** ICMP seen on an instance's eth0 while fn runs (rhumb trace in its namespace). */
    async function icmpSeenBy(inst: Instance, fn: () => Promise<void>): Promise<TraceJson[]> {
      const trace = lab.spawnIn(inst.ns, [process.execPath, CLI, 'trace', '--iface', 'eth0', '--json', '--filter', 'icmp', '--timeout', '60']);
      const out = new ProcessOutput(trace);
      await out.until(() => /listening on/.test(out.stderr), 20_000, `a trace in ${inst.name}`);
      try {
        await fn();
        await sleep(300);
      } finally {
        trace.kill('SIGTERM');
        await exited(trace);
      }
      return out.lines.map((l) => JSON.parse(l) as TraceJson);
    }

    it('instances cannot spoof their MAC or IP; fabric VLANs of one owner are cut off on a node', async () => {
      const [x, peer] = [ownerOf(OWNER_A)[1], ownerOf(OWNER_A).find((i) => i.node !== ownerOf(OWNER_A)[1].node)!];
      const seen = await icmpSeenBy(peer, async () => {
        assert.ok(await ping(x, peer.ip, 1, 3), 'x reaches peer with its own addresses');
        // A second address the API never gave it …
        await lab.exec(x.ns, 'ip', 'addr', 'add', '10.77.0.150/24', 'dev', 'eth0');
        await lab.exec(x.ns, 'ping', '-c', '2', '-W', '1', '-q', '-I', '10.77.0.150', peer.ip).catch(() => undefined);
        await lab.exec(x.ns, 'ip', 'addr', 'del', '10.77.0.150/24', 'dev', 'eth0');
        // … and another MAC.
        await lab.exec(x.ns, 'ip', 'link', 'set', 'eth0', 'address', '02:00:00:00:00:99');
        await ping(x, peer.ip, 2, 1);
        await lab.exec(x.ns, 'ip', 'link', 'set', 'eth0', 'address', x.mac);
      });
      const requests = seen.filter((r) => r.icmp?.name === 'echo request');
      assert.ok(requests.some((r) => r.ip?.src === x.ip && r.link?.src === x.mac), 'the genuine echo request arrived');
      assert.deepEqual(requests.filter((r) => r.ip?.src === '10.77.0.150').map((r) => r.line), [], 'spoofed IP arrived');
      assert.deepEqual(requests.filter((r) => r.link?.src === '02:00:00:00:00:99').map((r) => r.line), [], 'spoofed MAC arrived');
      await eventually(() => ping(x, peer.ip, 1, 1), 10_000, 'traffic with the real MAC again');

      // Owner A's second VLAN: one instance next to x, one on another node.
      await api('POST', `/fabrics/${OWNER_A}/vlans`, { vlan_id: FABRIC_VLAN + 1, name: 'dev' });
      const net = await api('POST', `/fabrics/${OWNER_A}/vlans/${FABRIC_VLAN + 1}/networks`, {
        name: 'dev',
        subnet: '10.78.0.0/24',
        provision_start_ip: '10.78.0.1',
        provision_end_ip: '10.78.0.200',
        gateway: '10.78.0.1',
      });
      const other: Instance[] = [];
      for (const [k, node] of [x.node, peer.node].entries()) {
        const nic = await api('POST', '/nics', { owner_uuid: OWNER_A, belongs_to_uuid: randomUUID(), belongs_to_type: 'zone', network_uuid: net.uuid, cn_uuid: node.uuid });
        const ns = await lab.addNetns(`v${k + 1}`);
        const attached = await attachNic(node.agent!, nic.mac, ns);
        assert.equal(attached.vnet, vnets[OWNER_A], 'one vnet per owner');
        other.push({ name: `v${k + 1}`, ns, owner: OWNER_A, node, mac: nic.mac, ip: nic.ip });
      }
      assert.ok(await ping(other[0], other[1].ip, 1, 4), 'the second VLAN works across nodes');
      // Both make the other's subnet on-link: still nothing passes between them on their node.
      await lab.exec(x.ns, 'ip', 'route', 'add', '10.78.0.0/24', 'dev', 'eth0');
      await lab.exec(other[0].ns, 'ip', 'route', 'add', '10.77.0.0/24', 'dev', 'eth0');
      assert.equal(await ping(x, other[0].ip, 2, 1), false, 'VLAN 5 -> VLAN 6 on one node');
      assert.equal(await ping(other[0], x.ip, 2, 1), false, 'VLAN 6 -> VLAN 5 on one node');
      await lab.exec(x.ns, 'ip', 'route', 'del', '10.78.0.0/24', 'dev', 'eth0');
      for (const o of other) {
        assert.equal((await agentCall(o.node, '/detach', { mac: o.mac })).status, 200);
        await api('DELETE', `/nics/${o.mac}`);
      }
    });

    it('on the wire: UDP 4789, the owner\'s VNI, I flag, inner frame intact, no ARP leaves a node', async () => {
      const from = ownerOf(OWNER_A).find((i) => i.node === nodes[0])!;
      const to = ownerOf(OWNER_A).find((i) => i.node !== nodes[0])!;
      const trace = lab.spawnIn(nodes[0].ns, [process.execPath, CLI, 'trace', '--iface', 'ul0', '--json', '--filter', 'udp port 4789', '--timeout', '30']);
      const out = new ProcessOutput(trace);
      await out.until(() => /listening on/.test(out.stderr), 20_000, 'the trace to start');
      // Forget the neighbour so the instance ARPs: the ARP must be answered on the node.
      await lab.exec(from.ns, 'ip', 'neigh', 'flush', 'dev', 'eth0');
      assert.ok(await ping(from, to.ip, 3, 3));
      const recs = () => out.lines.map((l) => JSON.parse(l) as TraceJson);
      await out.until(() => recs().filter((r) => r.vxlan?.inner.icmp).length >= 6, 10_000, 'six ICMP packets in VXLAN');
      trace.kill('SIGTERM');
      await exited(trace);
      const vx = recs().filter((r) => r.vxlan);
      assert.ok(vx.length >= 6);
      for (const r of vx) {
        assert.equal(r.udp?.dstPort, 4789);
        assert.equal(r.vxlan!.i, true);
        assert.equal(r.vxlan!.vni, vnets[OWNER_A], 'only owner A traffic was sent');
        assert.equal(r.vxlan!.inner.arp, undefined, `ARP left the node: ${r.line}`);
        assert.notEqual(r.vxlan!.inner.link?.dst, 'ff:ff:ff:ff:ff:ff', `broadcast left the node: ${r.line}`);
        // The kernel backend carries fabric frames untagged (see src/agent/kernel/vnet.ts).
        if (backend === 'kernel') assert.equal(r.vxlan!.inner.link?.vlan, undefined);
        else assert.equal(r.vxlan!.inner.link?.vlan, FABRIC_VLAN);
      }
      const req = vx.find((r) => r.vxlan!.inner.icmp?.name === 'echo request')!;
      assert.equal(req.ip?.src, from.node.ip);
      assert.equal(req.ip?.dst, to.node.ip);
      assert.equal(req.vxlan!.inner.link?.src, from.mac);
      assert.equal(req.vxlan!.inner.link?.dst, to.mac);
      assert.equal(req.vxlan!.inner.ip?.src, from.ip);
      assert.equal(req.vxlan!.inner.ip?.dst, to.ip);
      const rep = vx.find((r) => r.vxlan!.inner.icmp?.name === 'echo reply')!;
      assert.equal(rep.vxlan!.inner.ip?.src, to.ip);
      assert.equal(rep.vxlan!.inner.link?.src, to.mac);
    });

    it('TLS: each agent acts as its node only; its certificate reads no other node\'s shootdowns', { skip: !tls }, async () => {
      // Everything the agents asked for so far (NICs, rulesets, reports, the WireGuard peers
      // feed) was theirs to ask: nothing refused, the feed followed over TLS.
      const before = String((await api('GET', '/metrics')) as string);
      assert.equal(sumMetric(before, 'rhumb_rest_refused_total', { reason: 'forbidden' }), 0, 'no agent request refused');
      for (const n of nodes) {
        const am = String((await http(n.agent!.api, 'GET', '/metrics')).body);
        assert.equal(sumMetric(am, 'rhumb_wireguard_errors_total', { reason: 'feed' }), 0, `${n.name}: the peers feed over TLS`);
        assert.equal((await http(n.agent!.api, 'GET', '/status')).body.encryption?.mode, 'none', `${n.name}: learnt the setting from the feed`);
      }
      const creds = await loadClientTls({ tlsDir: pki, cert: `${nodes[0]!.name}.pem`, key: `${nodes[0]!.name}-key.pem` });
      const asNode1 = new SvpClient({ servers: [dc.svp], tls: creds, timeoutMs: 5000, keepaliveMs: 0, resolveIntervalMs: 0 });
      try {
        const a = instances[0]!;
        assert.equal((await asNode1.vl3(a.ip, vnets[a.owner]!)).ip, a.node.ip, 'lookups answered');
        // (Its own log is what its agent long-polls all along.) Another node's: FATAL at once.
        assert.equal((await asNode1.logReq(nodes[1]!.ip, 65536)).status, SvpStatus.FATAL);
      } finally {
        asNode1.close();
      }
      const node1 = restFetch({ tls: creds });
      assert.equal((await http(dc.ctl!.restUrl, 'GET', `/fw/nodes/${nodes[0]!.uuid}/rulesets?wait=0`, undefined, node1)).status, 200);
      assert.equal((await http(dc.ctl!.restUrl, 'GET', `/fw/nodes/${nodes[1]!.uuid}/rulesets?wait=0`, undefined, node1)).status, 404);
      assert.equal((await http(dc.ctl!.restUrl, 'GET', '/rules', undefined, node1)).status, 403);
      // The agents did all of the above over TLS with their certificates: no refusal was needed.
      const m = String((await api('GET', '/metrics')) as string);
      assert.equal(sumMetric(m, 'rhumb_rest_refused_total', { reason: 'tls' }), 0);
      assert.ok(sumMetric(m, 'rhumb_svp_requests_total', { op: 'log_req' }) > 0);
    });

    it('agent metrics: misses, lookups, cache sizes, probe results', async () => {
      const m = await http(nodes[0].agent!.api, 'GET', '/metrics');
      assert.equal(m.status, 200);
      const text = String(m.body);
      assert.match(text, /rhumb_agent_lookups_total\{[^}]*kind="vl3"[^}]*\} [1-9]/);
      assert.match(text, /rhumb_agent_cache_entries\{[^}]*kind="vl3",state="positive"[^}]*\} [1-9]/);
      assert.match(text, /rhumb_agent_lookup_seconds_count/);
      assert.match(text, /rhumb_agent_misses_total/);
      assert.match(text, new RegExp(`rhumb_probe_reachable\\{[^}]*peer="${nodes[1].ip.replace(/\./g, '\\.')}"[^}]*\\} 1`));
      if (backend === 'userspace') {
        // The fast path's own counters, per NIC and per reason.
        assert.match(text, /rhumb_fastpath_engine_total\{[^}]*\} [1-9]/);
        assert.match(text, /rhumb_fastpath_nic_total\{[^}]*counter="[a-z_]+"[^}]*\} [1-9]/);
      }
    });

    it('migration: after PUT cn_uuid, detach and attach elsewhere, every peer reaches it again', async () => {
      const moving = ownerOf(OWNER_A)[0];
      const from = moving.node;
      const to = nodes.find((n) => n !== from && !ownerOf(OWNER_A).some((i) => i !== moving && i.node === n))
        ?? nodes.find((n) => n !== from)!;
      // A peer instance watches its own interface for the re-announcement (gratuitous ARP).
      const watcher = ownerOf(OWNER_A).find((i) => i !== moving && i.node !== to && i.node !== from)
        ?? ownerOf(OWNER_A).find((i) => i !== moving)!;
      const arpTrace = lab.spawnIn(watcher.ns, [process.execPath, CLI, 'trace', '--iface', 'eth0', '--json', '--filter', 'arp', '--timeout', '30']);
      const arpOut = new ProcessOutput(arpTrace);
      await arpOut.until(() => /listening on/.test(arpOut.stderr), 20_000, 'the ARP trace to start');

      await api('PUT', `/nics/${moving.mac}`, { cn_uuid: to.uuid });
      await cli(from, 'detach', '--mac', moving.mac);
      await cli(to, 'attach', '--mac', moving.mac, '--netns', `/run/netns/${moving.ns}`);
      moving.node = to;
      for (const peer of ownerOf(OWNER_A).filter((i) => i !== moving)) {
        await eventually(() => ping(peer, moving.ip, 1, 1), 10_000, `${peer.name} reaches ${moving.name} on ${to.name}`);
        const [r] = await send(peer, [moving.ip], 64 * 1024);
        assert.equal(r.reply, `${moving.name} ${64 * 1024}`);
      }
      // Nodes other than the new one now send its MAC to the new node.
      for (const peer of ownerOf(OWNER_A).filter((i) => i.node !== to)) {
        const e = await entries(peer.node, vnets[OWNER_A]);
        assert.deepEqual(e.fdb.filter((f) => f.mac === moving.mac), [{ mac: moving.mac, underlay: to.ip }], `${peer.node.name} fdb`);
      }
      const garp = () =>
        arpOut.lines
          .map((l) => JSON.parse(l) as TraceJson)
          .find((r) => r.arp?.op === 'reply' && r.arp.senderIp === moving.ip && r.arp.targetIp === moving.ip && r.link?.dst === 'ff:ff:ff:ff:ff:ff');
      await arpOut.until(() => garp() !== undefined, 10_000, `a gratuitous ARP for ${moving.ip} in ${watcher.name}`);
      assert.equal(garp()!.arp!.senderMac, moving.mac);
      arpTrace.kill('SIGTERM');
      await exited(arpTrace);
      assert.ok((await agentCounter('rhumb_agent_shootdowns_applied_total', { type: 'vl2' })) > 0);
      assert.ok((await agentCounter('rhumb_agent_shootdowns_applied_total', { type: 'vl3' })) > 0);
    });

    it('delete: a deleted NIC stops being reachable and its entries leave every peer', async () => {
      const victim = ownerOf(OWNER_A)[3];
      const peers = ownerOf(OWNER_A).filter((i) => i !== victim);
      for (const p of peers) assert.ok(await ping(p, victim.ip, 1, 3));
      for (const p of peers.filter((p) => p.node !== victim.node)) {
        // They had entries for it (the pings above went through them) …
        const had = await entries(p.node, vnets[OWNER_A]);
        assert.ok(had.neighbours.some((n) => n.ip === victim.ip) || had.fdb.some((f) => f.mac === victim.mac), `${p.node.name} had entries`);
      }
      await api('DELETE', `/nics/${victim.mac}`);
      for (const p of peers.filter((p) => p.node !== victim.node)) {
        // … and lose them.
        let seen = '';
        await eventually(
          async () => {
            const e = await entries(p.node, vnets[OWNER_A]);
            seen = JSON.stringify(e);
            if (e.neighbours.some((n) => n.ip === victim.ip || n.mac === victim.mac) || e.fdb.some((f) => f.mac === victim.mac)) return false;
            if (backend !== 'kernel') return true;
            seen = await kernelEntries(p.node, vnets[OWNER_A]);
            return !seen.includes(victim.mac) && !seen.includes(`${victim.ip} `);
          },
          10_000,
          `entries for ${victim.name} gone on ${p.node.name}`,
        ).catch((err: Error) => {
          throw new Error(`${err.message}; still there:\n${seen}`);
        });
      }
      for (const p of peers) assert.equal(await ping(p, victim.ip, 1, 1), false, `${p.name} must not reach deleted ${victim.name}`);
      // Its own node's agent unplumbed it: the instance has no interface left.
      await eventually(async () => {
        const st = await http(victim.node.agent!.api, 'GET', '/status');
        return !(st.body.nics as Array<{ mac: string }>).some((n) => n.mac === victim.mac);
      }, 10_000, 'the NIC unplumbed on its node');
      assert.doesNotMatch(await lab.ip(victim.ns, 'link', 'show'), /eth0/);
      // It was the last owner-A NIC on its node: the vnet's devices went with it.
      if (!ownerOf(OWNER_A).some((i) => i !== victim && i.node === victim.node)) {
        const st = await http(victim.node.agent!.api, 'GET', '/status');
        assert.ok(!(st.body.vnets as number[]).includes(vnets[OWNER_A]));
        if (backend === 'kernel') await assert.rejects(lab.ip(victim.node.ns, 'link', 'show', `rvx${vnets[OWNER_A]}`));
      }
      instances.splice(instances.indexOf(victim), 1);
    });

    it('agent restart under traffic: a TCP transfer across the overlay survives it', async () => {
      const group = ownerOf(OWNER_B);
      const from = group[0];
      const to = group.find((i) => i.node !== from.node)!;
      const node = from.node;
      const transfer = send(from, [to.ip], 4 * 1024 * 1024, 4000);
      await sleep(800);
      await stopAgent(node);
      // While it is down, another NIC on its node is deleted.
      const gone = group.find((i) => i !== from && i.node === node);
      if (gone) {
        await api('DELETE', `/nics/${gone.mac}`);
        instances.splice(instances.indexOf(gone), 1);
      }
      await sleep(300);
      await startAgent(node);
      const [r] = await transfer;
      assert.equal(r.reply, `${to.name} ${4 * 1024 * 1024}`, JSON.stringify(r));
      // The restarted agent adopted what was plumbed (and unplumbed the deleted NIC), and the
      // overlay still works both ways.
      if (gone) {
        await eventually(async () => !(await lab.ip(gone.ns, 'link', 'show')).includes('eth0'), 10_000, `${gone.name} unplumbed`);
      }
      const st = await http(node.agent!.api, 'GET', '/status');
      const macs = (st.body.nics as Array<{ mac: string }>).map((n) => n.mac).sort();
      assert.deepEqual(macs, instances.filter((i) => i.node === node).map((i) => i.mac).sort());
      for (const n of st.body.nics as Array<{ mac: string; netns?: string }>) {
        assert.equal(n.netns, `/run/netns/${instances.find((i) => i.mac === n.mac)!.ns}`, `${n.mac}: namespace known again (state file)`);
      }
      if (backend === 'kernel') assert.ok(st.body.cache.vl3.positive > 0, 'cache rebuilt from the kernel entries');
      // The engine's tables start empty: the cache fills from the transfer's misses (its
      // instance kept its ARP entry, the veth never lost carrier: a MAC lookup).
      else assert.ok(st.body.cache.vl3.positive + st.body.cache.vl2.positive > 0, 'cache refilled from misses');
      assert.ok(await ping(to, from.ip, 1, 3));
      // It found its underlay NIC registered and did not add another.
      const ul = await api('GET', `/nics?belongs_to_uuid=${node.uuid}&underlay=true`);
      assert.equal(ul.length, 1);
    });
  });
}
