/**
 * The encrypted underlay (issue #20) in a datacenter of network namespaces, on both
 * data-plane backends: the controller with --encryption wireguard, agents bringing up
 * WireGuard (wireguard-go here: this kernel has no module) and following each other's
 * keys. What the underlay bridge carries is captured with tcpdump: WireGuard UDP between
 * node addresses only, never VXLAN's port 4789 nor the bytes the instances send.
 * Then: a node joining later and one leaving, a key rotation under a running TCP
 * transfer, an interface that cannot be made, and turning encryption on while traffic
 * flows.
 *
 * Needs root, a built dist/, wireguard-go and wireguard-tools (scripts/setup.sh).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomInt, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { wireguardIfname } from '../../src/agent/wireguard/device.js';
import {
  type Backend,
  Datacenter,
  type Instance,
  type Node,
  ProcessOutput,
  eventually,
  exited,
  ping,
  sendTcp,
  sleep,
  startTcpSink,
  stopAgent,
  sumMetric,
} from '../helpers/datacenter.js';
import { netnsSkipReason, run } from '../helpers/netns.js';
import { CLI, http } from '../helpers/processes.js';

const BACKENDS = ['kernel', 'userspace'] as const;
const skip = netnsSkipReason() || (hasWireguardTools() ? false : 'wg / wireguard-go are not installed (run scripts/setup.sh)');
const OWNER = 'cccccccc-0000-4000-8000-00000000002a';
const TCP_PORT = 7720;
const WG_PORT = 51820;

function hasWireguardTools(): boolean {
  return ['/usr/bin/wg', '/usr/bin/wireguard-go'].every((p) => existsSync(p));
}

// Writes the marker over TCP to the sink (many times) and prints the sink's reply.
const MARKER_SEND = `
const net = require('node:net');
const [host, port, marker, times] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port), timeout: 5000 }, () => { for (let i = 0; i < Number(times); i++) s.write(marker); s.end(); });
s.on('timeout', () => { console.log('timeout'); s.destroy(); });
let reply = '';
s.on('data', (d) => (reply += d));
s.on('end', () => console.log(reply));
s.on('error', (e) => console.log('error ' + e.code));
`;

/** The shared datacenter with one fabric network, an instance (and TCP sink) per running node, and the underlay's capture. */
class WgDatacenter extends Datacenter {
  network = '';
  instances: Instance[] = [];
  readonly sinks: ChildProcess[] = [];

  /** nodes, of which the first `running` get an agent and an instance in build(). */
  constructor(tag: string, backend: Backend, nodes: number, running: number, encryption?: 'wireguard') {
    super(tag, { nodes, running, stateTag: 'wg-state', backend, firewall: false, agentArgs: () => ['--report-interval', '0'], ...(encryption ? { encryption } : {}) });
  }

  async build(): Promise<void> {
    await this.start();
    this.network = await this.fabricNetwork(OWNER, { vlan_id: 7, name: 'enc' }, {
      name: 'enc',
      subnet: '10.88.0.0/24',
      provision_start_ip: '10.88.0.10',
      provision_end_ip: '10.88.0.200',
    });
    for (const n of this.nodes.slice(0, this.opts.running)) await this.addSinkInstance(n);
  }

  /** One more instance on the node, i<N>, with a TCP sink. */
  async addSinkInstance(n: Node): Promise<Instance> {
    const inst = await this.addInstance(`i${this.instances.length + 1}`, OWNER, this.network, n);
    this.sinks.push(await startTcpSink(this.lab, inst.ns, inst.name, TCP_PORT));
    this.instances.push(inst);
    return inst;
  }

  async status(n: Node): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
    return (await http(n.agent!.api, 'GET', '/status')).body;
  }

  async metric(n: Node, name: string, labels: Record<string, string> = {}): Promise<number> {
    return sumMetric(String((await http(n.agent!.api, 'GET', '/metrics')).body), name, labels);
  }

  /** The public keys configured as peers on the node's WireGuard interface. */
  async peerKeys(n: Node): Promise<string[]> {
    const out = await this.lab.exec(n.ns, 'wg', 'show', wireguardIfname(n.uuid), 'peers').catch(() => '');
    return out.split('\n').filter(Boolean).sort();
  }

  async publishedKey(n: Node): Promise<string | undefined> {
    const r = await http(this.ctl!.restUrl, 'GET', `/wireguard/nodes/${n.uuid}`);
    return r.status === 200 ? r.body.public_key : undefined;
  }

  /** The marker over TCP and in ping payloads, from one instance to another; true when it arrived. */
  async sendMarker(from: Instance, to: Instance, marker: string): Promise<boolean> {
    const out = await this.lab.exec(from.ns, process.execPath, '-e', MARKER_SEND, to.ip, String(TCP_PORT), marker, '20');
    const okTcp = out.trim() === `${to.name} ${marker.length * 20}`;
    const pattern = Buffer.from(marker.slice(0, 16)).toString('hex');
    const okPing = await this.lab.exec(from.ns, 'ping', '-c', '2', '-i', '0.2', '-W', '3', '-q', '-p', pattern, to.ip).then(
      () => true,
      () => false,
    );
    return okTcp && okPing;
  }

  /** Everything the underlay bridge carries while fn runs: tcpdump's lines for UDP, and the raw capture. */
  async capture(fn: () => Promise<void>): Promise<{ udp: string[]; raw: Buffer }> {
    const file = join(this.stateRoot, `capture-${randomInt(1e9)}.pcap`);
    const dump = this.lab.spawnIn(this.underlayNs, ['tcpdump', '-i', 'ulbr', '-nn', '-s', '0', '--immediate-mode', '-U', '-w', file]);
    const out = new ProcessOutput(dump);
    await out.until(() => /listening on/.test(out.stderr), 10_000, 'tcpdump');
    try {
      await fn();
      await sleep(300);
    } finally {
      dump.kill('SIGINT');
      await exited(dump);
    }
    const udp = (await run('tcpdump', ['-r', file, '-nn', 'udp'])).split('\n').filter(Boolean);
    return { udp, raw: await readFile(file) };
  }

  /** Asserts the capture holds no VXLAN, no marker bytes, and only WireGuard between node addresses; returns the WireGuard lines. */
  assertOnlyWireguard(cap: { udp: string[]; raw: Buffer }, marker: string): string[] {
    const nodeIps = new Set(this.nodes.map((n) => n.ip));
    assert.deepEqual(cap.udp.filter((l) => /\.4789[:\s]/.test(l)), [], 'VXLAN (UDP 4789) on the underlay');
    assert.equal(cap.raw.indexOf(Buffer.from(marker)), -1, 'the marker crossed the underlay in cleartext');
    const wgLines = cap.udp.filter((l) => {
      const m = /IP (\S+)\.(\d+) > (\S+)\.(\d+):/.exec(l);
      return m && nodeIps.has(m[1]!) && nodeIps.has(m[3]!) && Number(m[2]) === WG_PORT && Number(m[4]) === WG_PORT;
    });
    assert.deepEqual(cap.udp.filter((l) => !wgLines.includes(l)), [], 'UDP other than WireGuard between nodes');
    return wgLines;
  }

  async cleanup(): Promise<void> {
    // wireguard-go removes its socket when it ends; a killed one would leave it behind.
    assert.deepEqual(await this.stop(), [], 'wireguard-go sockets left behind');
  }
}

for (const backend of BACKENDS) {
  describe(`encrypted underlay (${backend} backend)`, { skip, timeout: 240_000 }, () => {
    // n4 joins later; n5 (kernel run) has its interface name taken.
    const dc = new WgDatacenter(backend === 'kernel' ? 'wgk' : 'wgu', backend, backend === 'kernel' ? 5 : 4, 3, 'wireguard');
    const marker = `RHUMB-SECRET-${randomUUID()}`;

    before(() => dc.build());
    after(() => dc.cleanup());

    it('instances across nodes exchange ping and TCP, and the underlay carries only WireGuard', async () => {
      const [a, b, c] = dc.instances;
      const setting = await dc.api('GET', '/encryption');
      assert.equal(setting.mode, 'wireguard');
      assert.equal(setting.ready, 3);
      for (const n of dc.nodes.slice(0, 3)) {
        const s = (await dc.status(n)).encryption;
        assert.equal(s.mode, 'wireguard');
        assert.equal(s.device_up, true);
        assert.equal(s.peers, 2);
      }
      const cap = await dc.capture(async () => {
        for (const [x, y] of [[a, b], [b, c], [c, a], [b, a]] as const) assert.ok(await dc.sendMarker(x!, y!, marker), `${x!.name} -> ${y!.name}`);
        const [r] = await sendTcp(dc.lab, a!.ns, [c!.ip], 512 * 1024, TCP_PORT);
        assert.equal(r!.reply, `${c!.name} ${512 * 1024}`);
      });
      const wgLines = dc.assertOnlyWireguard(cap, marker);
      assert.ok(wgLines.length > 20, `WireGuard traffic seen (${wgLines.length} packets)`);
      // The instances' MTU leaves room for VXLAN inside WireGuard (1500 - 60 - 50).
      const [link] = JSON.parse(await dc.lab.exec(a!.ns, 'ip', '-j', 'link', 'show', 'dev', 'eth0'));
      assert.equal(link.mtu, 1390);
    });

    it('a restarted agent adopts its interface and key; traffic carries on', async () => {
      const [a, b] = dc.instances;
      const n1 = dc.nodes[0]!;
      const key = await dc.publishedKey(n1);
      const ifindex = JSON.parse(await dc.lab.exec(n1.ns, 'ip', '-j', 'link', 'show', wireguardIfname(n1.uuid)))[0].ifindex;
      await stopAgent(n1.agent!);
      // The interfaces outlive the agent: on the kernel backend traffic keeps flowing meanwhile
      // (the userspace fast path runs in the agent: its TAPs wait for the next one).
      if (backend === 'kernel') assert.ok(await ping(dc.lab, b!.ns, a!.ip, 1, 3), 'n2 reaches n1 while its agent is down');
      await dc.startAgent(n1);
      assert.equal(await dc.publishedKey(n1), key, 'same key');
      const now = JSON.parse(await dc.lab.exec(n1.ns, 'ip', '-j', 'link', 'show', wireguardIfname(n1.uuid)))[0].ifindex;
      assert.equal(now, ifindex, 'same interface');
      assert.equal((await dc.status(n1)).encryption.device_up, true);
      assert.ok(await ping(dc.lab, a!.ns, b!.ip, 1, 3), 'n1 reaches n2 after the restart');
    });

    it('a node added later reaches the others; a removed node is dropped by its peers', async () => {
      const n4 = dc.nodes[3]!;
      await dc.startAgent(n4);
      const d = await dc.addSinkInstance(n4);
      const a = dc.instances[0]!;
      await eventually(() => ping(dc.lab, d.ns, a.ip, 1, 2), 15_000, 'n4 reaches n1');
      assert.ok(await ping(dc.lab, a.ns, d.ip, 2, 3), 'n1 reaches n4');
      const [r] = await sendTcp(dc.lab, d.ns, [dc.instances[1]!.ip], 64 * 1024, TCP_PORT);
      assert.equal(r!.reply, `i2 ${64 * 1024}`);
      const key4 = await dc.publishedKey(n4);
      assert.ok(key4);
      for (const n of dc.nodes.slice(0, 3)) assert.ok((await dc.peerKeys(n)).includes(key4!), `${n.name} has n4 as a peer`);

      // Remove n4: its agent stops, its underlay NIC goes.
      await stopAgent(n4.agent!);
      const [ul] = await dc.api('GET', `/nics?belongs_to_uuid=${n4.uuid}&underlay=true`);
      await dc.api('DELETE', `/nics/${ul.mac}`);
      for (const n of dc.nodes.slice(0, 3)) {
        await eventually(async () => !(await dc.peerKeys(n)).includes(key4!), 10_000, `${n.name} drops n4`);
        // The agent counts its peers once `wg set` has returned, a moment after the device shows the change.
        await eventually(async () => (await dc.status(n)).encryption.peers === 2, 5_000, `${n.name} counts 2 peers`);
      }
    });

    it('a key rotation under a running TCP transfer', async (t) => {
      const [a, b] = dc.instances;
      const n2 = dc.nodes[1]!;
      const before = await dc.publishedKey(n2);
      const bytes = 6 * 1024 * 1024;
      const transfer = sendTcp(dc.lab, a!.ns, [b!.ip], bytes, TCP_PORT, 6000);
      // Echo requests every 20 ms across the rotation: the replies missing say how long it paused.
      const pinger = dc.lab.exec(a!.ns, 'ping', '-c', '250', '-i', '0.02', '-W', '1', b!.ip).catch((e: Error) => e.message);
      await sleep(1500);
      const out = await run(process.execPath, [CLI, 'node', 'rotate-key', '--agent', n2.agent!.api.replace('http://', '')]);
      const rotated = JSON.parse(out).public_key as string;
      const [r] = await transfer;
      assert.equal(r!.reply, `${b!.name} ${bytes}`, `transfer across the rotation: ${JSON.stringify(r)}`);
      const stats = /(\d+) packets transmitted, (\d+) received/.exec(await pinger);
      if (stats) t.diagnostic(`rotation: ${Number(stats[1]) - Number(stats[2])} of ${stats[1]} echo requests (20 ms apart) unanswered`);
      assert.notEqual(rotated, before);
      assert.equal(await dc.publishedKey(n2), rotated);
      for (const n of [dc.nodes[0]!, dc.nodes[2]!]) {
        await eventually(async () => {
          const keys = await dc.peerKeys(n);
          return keys.includes(rotated) && !keys.includes(before!);
        }, 10_000, `${n.name} has only n2's new key`);
      }
      assert.ok(await ping(dc.lab, dc.instances[2]!.ns, b!.ip, 1, 3), 'n3 reaches n2 after the rotation');
      assert.equal(await dc.metric(n2, 'rhumb_wireguard_key_rotations_total'), 1);
    });

    if (backend === 'kernel') {
      it('an interface that cannot be created is an error on that node, never cleartext', async () => {
        const n5 = dc.nodes[4]!;
        // Something else already holds the interface's name.
        await dc.lab.ip(n5.ns, 'link', 'add', wireguardIfname(n5.uuid), 'type', 'bridge');
        await dc.startAgent(n5);
        const s = (await dc.status(n5)).encryption;
        assert.equal(s.device_up, false);
        assert.match(s.device_error, /exists and is not a WireGuard interface/);
        assert.ok((await dc.metric(n5, 'rhumb_wireguard_errors_total', { reason: 'device' })) >= 1);
        assert.match(n5.agent!.out.stderr, /not a WireGuard interface/);
        const e = await dc.addSinkInstance(n5);
        const cap = await dc.capture(async () => {
          assert.equal(await dc.sendMarker(e, dc.instances[0]!, marker), false, 'n5 reached n1 without WireGuard');
        });
        dc.assertOnlyWireguard(cap, marker);
        assert.ok((await dc.metric(n5, 'rhumb_wireguard_cleartext_dropped_total', { direction: 'output' })) >= 0);
        // Its peers see it without a key: left out, counted.
        const n1 = dc.nodes[0]!;
        const left = (await dc.status(n1)).encryption.left_out as Array<{ cn_uuid: string; reason: string }>;
        assert.deepEqual(left.map((l) => [l.cn_uuid, l.reason]), [[n5.uuid, 'no_key']]);
        assert.ok((await dc.metric(n1, 'rhumb_wireguard_errors_total', { reason: 'no_key' })) >= 1);
      });
    }
  });

  describe(`turning encryption on while traffic flows (${backend} backend)`, { skip, timeout: 180_000 }, () => {
    const dc = new WgDatacenter(backend === 'kernel' ? 'wok' : 'wou', backend, 3, 3);
    const marker = `RHUMB-CLEAR-${randomUUID()}`;

    before(() => dc.build());
    after(() => dc.cleanup());

    it('cleartext before; traffic keeps flowing during the change; only WireGuard after', async () => {
      const [a, b, c] = dc.instances;
      assert.equal((await dc.api('GET', '/encryption')).mode, 'none');
      // Before: VXLAN in cleartext, the marker readable on the underlay (the capture sees it).
      const clear = await dc.capture(async () => {
        assert.ok(await dc.sendMarker(a!, b!, marker));
      });
      assert.ok(clear.udp.some((l) => /\.4789[:\s]/.test(l)), `cleartext VXLAN before: ${clear.udp.slice(0, 5).join('\n')}`);
      assert.notEqual(clear.raw.indexOf(Buffer.from(marker)), -1, 'the marker is readable before');

      // A paced transfer spans the whole change; the CLI returns once every node switched.
      const bytes = 4 * 1024 * 1024;
      const transfer = sendTcp(dc.lab, a!.ns, [b!.ip], bytes, TCP_PORT, 8000);
      await sleep(1000);
      const out = await run(process.execPath, [CLI, 'encryption', 'set', 'wireguard', '--wait', '--api', dc.ctl!.restUrl]);
      assert.match(out, /mode: wireguard/);
      const [r] = await transfer;
      assert.equal(r!.reply, `${b!.name} ${bytes}`, `transfer across the change: ${JSON.stringify(r)}`);

      // After (and after the grace period for peers still switching): nothing in cleartext.
      for (const n of dc.nodes) await eventually(async () => (await dc.status(n)).encryption.cleartext_accepted === false, 10_000, `${n.name} locked down`);
      const cap = await dc.capture(async () => {
        for (const [x, y] of [[a, b], [b, c], [c, a]] as const) assert.ok(await dc.sendMarker(x!, y!, marker), `${x!.name} -> ${y!.name} encrypted`);
      });
      assert.ok(dc.assertOnlyWireguard(cap, marker).length > 10);
    });

    it('turned off again: cleartext VXLAN, interfaces removed, keys withdrawn', async () => {
      const [a, b] = dc.instances;
      await run(process.execPath, [CLI, 'encryption', 'set', 'none', '--api', dc.ctl!.restUrl]);
      for (const n of dc.nodes) {
        await eventually(async () => (await dc.status(n)).encryption.mode === 'none' && (await dc.publishedKey(n)) === undefined, 10_000, `${n.name} off`);
        assert.equal(await dc.lab.exec(n.ns, 'ip', 'link', 'show', wireguardIfname(n.uuid)).catch(() => 'gone'), 'gone');
      }
      const cap = await dc.capture(async () => {
        await eventually(() => dc.sendMarker(a!, b!, marker), 10_000, 'cleartext traffic again');
      });
      assert.ok(cap.udp.some((l) => /\.4789[:\s]/.test(l)), 'cleartext VXLAN again');
    });
  });
}
