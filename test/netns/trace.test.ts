/**
 * `rhumb trace` and the underlay prober against real kernel traffic: two namespaces joined
 * by a veth underlay in 198.18.0.0/15, plain Linux vxlan devices configured statically on
 * both ends, ICMP across the overlay, the trace CLI capturing on the underlay veth.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { PacketRecord } from '../../src/agent/trace/records.js';
import { type ProbeResult, internetChecksum } from '../../src/agent/probes.js';
import { ProcessOutput, exited } from '../helpers/datacenter.js';
import { NetnsLab, netnsSkipReason } from '../helpers/netns.js';

const REPO_ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const MAIN = resolve(REPO_ROOT, 'src/cli/main.ts');
const PROBES = resolve(REPO_ROOT, 'src/agent/probes.ts');

const skip = netnsSkipReason();

type TraceJson = PacketRecord & { ts: number; iface: string; length: number; line: string };

/** Runs a Prober inside ns over the targets for `rounds` rounds; returns its results and metrics text. */
async function runProber(
  lab: NetnsLab,
  ns: string,
  targets: Record<string, string>,
  opts: { rounds: number; timeoutMs: number; downAfter: number },
): Promise<{ results: ProbeResult[]; metrics: string }> {
  const script = `
    import { Prober } from ${JSON.stringify(PROBES)};
    import { Registry } from 'prom-client';
    const registry = new Registry();
    const cfg = JSON.parse(process.env.PROBE_CFG);
    const p = new Prober({ registry, intervalMs: 100, timeoutMs: cfg.timeoutMs, downAfter: cfg.downAfter });
    for (const [addr, peer] of Object.entries(cfg.targets)) p.add(addr, peer);
    for (let i = 0; i < cfg.rounds; i++) await p.probeAll();
    const results = p.results();
    const metrics = await registry.metrics();
    p.stop();
    process.stdout.write(JSON.stringify({ results, metrics }) + '\\n');
  `;
  const child = lab.spawnIn(ns, [process.execPath, '--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: REPO_ROOT,
    env: { ...process.env, PROBE_CFG: JSON.stringify({ targets, ...opts }) },
  });
  const out = new ProcessOutput(child);
  const code = await exited(child);
  assert.equal(code, 0, `prober exited with ${code}: ${out.stderr}`);
  return JSON.parse(out.lines.join('')) as { results: ProbeResult[]; metrics: string };
}

/** Ethernet + 802.1Q + IPv4 + UDP (to the discard port) carrying "rhumb". */
function taggedFrame(src: string, dst: string, vlan: number, srcIp: string, dstIp: string): Buffer {
  const payload = Buffer.from('rhumb');
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(4242, 0);
  udp.writeUInt16BE(9, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + udp.length + payload.length, 2);
  ip[8] = 64;
  ip[9] = 17;
  ip.set(srcIp.split('.').map(Number), 12);
  ip.set(dstIp.split('.').map(Number), 16);
  ip.writeUInt16BE(internetChecksum(ip), 10);
  const mac = (m: string) => Buffer.from(m.replace(/:/g, ''), 'hex');
  const tag = Buffer.from([0x81, 0x00, vlan >> 8, vlan & 0xff, 0x08, 0x00]);
  return Buffer.concat([mac(dst), mac(src), tag, ip, udp, payload]);
}

/** Sends one raw frame out of an interface inside ns (pcap_inject through `cap`). */
async function injectFrame(lab: NetnsLab, ns: string, iface: string, frame: Buffer): Promise<void> {
  const script = `
    const { Cap } = require('cap');
    const c = new Cap();
    c.open(process.env.IFACE, 'less 1', 1 << 20, Buffer.alloc(65535));
    c.send(Buffer.from(process.env.FRAME, 'hex'));
    c.close();
  `;
  const child = lab.spawnIn(ns, [process.execPath, '-e', script], {
    cwd: REPO_ROOT,
    env: { ...process.env, IFACE: iface, FRAME: frame.toString('hex') },
  });
  const out = new ProcessOutput(child);
  const code = await exited(child);
  assert.equal(code, 0, `inject exited with ${code}: ${out.stderr}`);
}

describe('rhumb trace and underlay probes in network namespaces', { skip }, () => {
  const lab = new NetnsLab('tr');
  const subnet = randomInt(0, 256);
  const underlayA = `198.18.${subnet}.1`;
  const underlayB = `198.18.${subnet}.2`;
  const unusedUnderlay = `198.18.${subnet}.99`;
  const vni = randomInt(1000, 0xfffff0);
  const otherVni = vni + 1;
  const macA = '02:00:0a:c8:00:01';
  const macB = '02:00:0a:c8:00:02';
  let nsA = '';
  let nsB = '';
  let vethA = '';

  before(async () => {
    nsA = await lab.addNetns('a');
    nsB = await lab.addNetns('b');
    vethA = lab.name('a');
    const vethB = lab.name('b');
    await lab.addVeth({ ns: nsA, name: vethA }, { ns: nsB, name: vethB });
    const sides = [
      { ns: nsA, veth: vethA, local: underlayA, remote: underlayB, mac: macA, host: 1 },
      { ns: nsB, veth: vethB, local: underlayB, remote: underlayA, mac: macB, host: 2 },
    ];
    for (const s of sides) {
      await lab.ip(s.ns, 'addr', 'add', `${s.local}/24`, 'dev', s.veth);
      await lab.ip(s.ns, 'link', 'set', s.veth, 'up');
      // The fabric under test.
      await lab.ip(s.ns, 'link', 'add', 'vx0', 'address', s.mac, 'type', 'vxlan', 'id', String(vni),
        'local', s.local, 'remote', s.remote, 'dstport', '4789', 'dev', s.veth);
      await lab.ip(s.ns, 'addr', 'add', `10.200.0.${s.host}/24`, 'dev', 'vx0');
      await lab.ip(s.ns, 'link', 'set', 'vx0', 'up');
      // Another fabric on the same underlay, which `--vnet` must filter out.
      await lab.ip(s.ns, 'link', 'add', 'vx1', 'type', 'vxlan', 'id', String(otherVni),
        'local', s.local, 'remote', s.remote, 'dstport', '4789', 'dev', s.veth);
      await lab.ip(s.ns, 'addr', 'add', `10.202.0.${s.host}/24`, 'dev', 'vx1');
      await lab.ip(s.ns, 'link', 'set', 'vx1', 'up');
    }
  });

  after(async () => {
    await lab.cleanup();
  });

  it('decodes VXLAN on the underlay: UDP 4789, the VNI, the I flag, inner MACs, IPs, ARP and VLAN', async () => {
    const trace = lab.spawnIn(
      nsA,
      [process.execPath, '--import', 'tsx', MAIN, 'trace', '--iface', vethA, '--vnet', String(vni), '--json', '--count', '200', '--timeout', '60'],
      { cwd: REPO_ROOT },
    );
    const out = new ProcessOutput(trace);
    await out.until(() => /listening on/.test(out.stderr), 30000, 'the trace to start');
    assert.match(out.stderr, new RegExp(`listening on ${vethA} \\(ethernet\\), filter "udp port 4789 or tcp port 1296", vnet ${vni}`));

    const probe = await runProber(
      lab,
      nsA,
      { '10.200.0.2': 'overlay', '10.202.0.2': 'other-vnet' },
      { rounds: 3, timeoutMs: 2000, downAfter: 3 },
    );
    // A fabric VLAN tags the inner frame. Kernels without 8021q cannot make a VLAN device,
    // so inject one tagged frame into vx0 with libpcap; the kernel encapsulates it.
    await injectFrame(lab, nsA, 'vx0', taggedFrame(macA, macB, 42, '10.201.0.1', '10.201.0.2'));
    // Every overlay ping got through: the decoded traffic below is real round trips.
    for (const r of probe.results) assert.equal(r.state, 'up', `${r.peer}: ${JSON.stringify(r)}`);

    const records = (): TraceJson[] => out.lines.map((l) => JSON.parse(l) as TraceJson);
    const isEcho = (r: TraceJson, name: string, dst: string) =>
      r.vxlan?.inner.icmp?.name === name && r.vxlan.inner.ip?.dst === dst;
    await out.until(
      () => records().some((r) => r.vxlan?.inner.link?.vlan === 42) && records().some((r) => isEcho(r, 'echo reply', '10.200.0.1')),
      10000,
      'echo replies in the trace',
    );
    trace.kill('SIGTERM');
    assert.equal(await exited(trace), 0);
    const recs = records();

    const request = recs.find((r) => isEcho(r, 'echo request', '10.200.0.2'));
    assert.ok(request, `no inner echo request in:\n${recs.map((r) => r.line).join('\n')}`);
    assert.equal(request.ip?.src, underlayA);
    assert.equal(request.ip?.dst, underlayB);
    assert.equal(request.udp?.dstPort, 4789);
    assert.equal(request.vxlan?.vni, vni);
    assert.equal(request.vxlan?.i, true);
    assert.equal(request.vxlan?.flags, 0x08);
    assert.equal(request.vxlan?.inner.link?.src, macA);
    assert.equal(request.vxlan?.inner.link?.dst, macB);
    assert.equal(request.vxlan?.inner.link?.vlan, undefined);
    assert.equal(request.vxlan?.inner.ip?.src, '10.200.0.1');
    const esc = (s: string) => s.replace(/\./g, '\\.');
    assert.match(
      request.line,
      new RegExp(`^VXLAN ${esc(underlayA)}:\\d+ > ${esc(underlayB)}:4789 flags 0x08 \\[I\\] vni ${vni}: ${macA} > ${macB} IPv4 10\\.200\\.0\\.1 > 10\\.200\\.0\\.2 ICMP echo request id \\d+ seq \\d+$`),
    );

    const reply = recs.find((r) => isEcho(r, 'echo reply', '10.200.0.1'));
    assert.ok(reply);
    assert.equal(reply.ip?.src, underlayB);
    assert.equal(reply.vxlan?.inner.link?.src, macB);
    assert.equal(reply.vxlan?.inner.link?.dst, macA);

    // First contact resolves the peer with ARP inside the tunnel.
    const arp = recs.find((r) => r.vxlan?.inner.arp?.targetIp === '10.200.0.2');
    assert.ok(arp, 'no inner ARP for 10.200.0.2');
    assert.equal(arp.vxlan?.inner.arp?.senderMac, macA);
    assert.match(arp.line, /ARP who-has 10\.200\.0\.2 tell 10\.200\.0\.1/);

    const tagged = recs.find((r) => r.vxlan?.inner.link?.vlan === 42);
    assert.ok(tagged, 'no VLAN 42 frame');
    assert.equal(tagged.vxlan?.vni, vni);
    assert.equal(tagged.vxlan?.inner.udp?.dstPort, 9);
    assert.match(tagged.line, new RegExp(`vni ${vni}: ${macA} > ${macB} vlan 42 IPv4 10\\.201\\.0\\.1:4242 > 10\\.201\\.0\\.2:9 UDP len 5$`));

    // --vnet: the other fabric's traffic was on the wire but never printed.
    assert.ok(recs.every((r) => r.vxlan?.vni === vni), 'a record from another VNI was printed');
    const summary = /(\d+) packets shown, (\d+) filtered out/.exec(out.stderr);
    assert.ok(summary, out.stderr);
    assert.equal(Number(summary[1]), recs.length);
    assert.ok(Number(summary[2]) > 0, 'the other VNI traffic should have been filtered');
  });

  it('probes underlay peers: the veth peer is reachable, an unused address goes down', async () => {
    const { results, metrics } = await runProber(
      lab,
      nsA,
      { [underlayB]: 'node-b', [unusedUnderlay]: 'node-gone' },
      { rounds: 3, timeoutMs: 500, downAfter: 2 },
    );
    const byPeer = new Map(results.map((r) => [r.peer, r]));
    const b = byPeer.get('node-b')!;
    const gone = byPeer.get('node-gone')!;
    assert.equal(b.state, 'up');
    assert.equal(b.received, 3);
    assert.equal(b.lost, 0);
    assert.ok((b.lastRttMs ?? -1) >= 0);
    assert.equal(gone.state, 'down');
    assert.equal(gone.received, 0);
    assert.equal(gone.lost, 3);
    assert.match(metrics, /rhumb_probe_reachable\{peer="node-b"\} 1/);
    assert.match(metrics, /rhumb_probe_reachable\{peer="node-gone"\} 0/);
    assert.match(metrics, /rhumb_probe_sent_total\{peer="node-gone"\} 3/);
    assert.match(metrics, /rhumb_probe_lost_total\{peer="node-gone"\} 3/);
    assert.match(metrics, /rhumb_probe_rtt_seconds_count\{peer="node-b"\} 3/);
  });
});
