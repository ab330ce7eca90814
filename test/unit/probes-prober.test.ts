import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import {
  type IcmpSocket,
  type IpFamily,
  ICMP_ECHO_REPLY,
  ICMPV6_ECHO_REPLY,
  Prober,
  type ProbeResult,
  internetChecksum,
  parseEcho,
} from '../../src/agent/probes.js';

/**
 * In-memory "network": addresses in `reachable` answer every echo request (after the send
 * completes, like a real reply would), others stay silent; `failing` addresses fail to send.
 */
class FakeNet {
  reachable = new Set<string>();
  failing = new Set<string>();
  /** Address -> how the reply's source is spelled (IPv6 formatting differences). */
  replyFrom = new Map<string, string>();
  sent: Array<{ family: IpFamily; address: string; packet: Buffer }> = [];
  sockets: FakeSocket[] = [];
  factory = (family: IpFamily): IcmpSocket => {
    const s = new FakeSocket(this, family);
    this.sockets.push(s);
    return s;
  };
}

class FakeSocket implements IcmpSocket {
  closed = false;
  private message?: (packet: Buffer, source: string) => void;
  error?: (err: Error) => void;
  close_?: () => void;
  constructor(
    private net: FakeNet,
    readonly family: IpFamily,
  ) {}
  send(packet: Buffer, address: string, done: (err: Error | null) => void): void {
    this.net.sent.push({ family: this.family, address, packet });
    if (this.net.failing.has(address)) {
      setImmediate(() => done(new Error('EHOSTUNREACH')));
      return;
    }
    setImmediate(() => done(null));
    if (this.net.reachable.has(address)) setImmediate(() => this.deliver(this.replyTo(packet), this.net.replyFrom.get(address) ?? address));
  }
  deliver(packet: Buffer, source: string): void {
    this.message?.(packet, source);
  }
  replyTo(req: Buffer): Buffer {
    const rep = Buffer.from(req);
    if (this.family === 6) {
      rep[0] = ICMPV6_ECHO_REPLY;
      return rep;
    }
    rep[0] = ICMP_ECHO_REPLY;
    rep.writeUInt16BE(0, 2);
    rep.writeUInt16BE(internetChecksum(rep), 2);
    const ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip.writeUInt16BE(20 + rep.length, 2);
    return Buffer.concat([ip, rep]);
  }
  onMessage(fn: (packet: Buffer, source: string) => void): void {
    this.message = fn;
  }
  onError(fn: (err: Error) => void): void {
    this.error = fn;
  }
  onClose(fn: () => void): void {
    this.close_ = fn;
  }
  close(): void {
    this.closed = true;
  }
}

const probers: Prober[] = [];
function makeProber(net: FakeNet, registry?: Registry, downAfter = 2): Prober {
  const p = new Prober({ socketFactory: net.factory, registry, intervalMs: 20, timeoutMs: 30, downAfter, identifier: 0x4242 });
  probers.push(p);
  return p;
}
afterEach(() => {
  for (const p of probers.splice(0)) p.stop();
});

async function metricValue(registry: Registry, name: string, peer: string): Promise<number | undefined> {
  const m = await registry.getSingleMetric(name)?.get();
  return m?.values.find((v) => v.labels.peer === peer && !('le' in v.labels))?.value;
}

describe('Prober', () => {
  it('marks a replying peer up with an RTT and a silent one down after N losses', async () => {
    const net = new FakeNet();
    net.reachable.add('198.18.0.2');
    const registry = new Registry();
    const prober = makeProber(net, registry, 2);
    prober.add('198.18.0.2', 'node-b');
    prober.add('198.18.0.99', 'node-x');

    await prober.probeAll();
    assert.equal(prober.result('198.18.0.2')?.state, 'up');
    assert.ok((prober.result('198.18.0.2')?.lastRttMs ?? -1) >= 0);
    // One loss is not enough to call it down.
    assert.equal(prober.result('198.18.0.99')?.state, 'unknown');
    assert.equal(prober.result('198.18.0.99')?.consecutiveLosses, 1);

    await prober.probeAll();
    const x = prober.result('198.18.0.99')!;
    assert.equal(x.state, 'down');
    assert.deepEqual([x.sent, x.received, x.lost], [2, 0, 2]);

    assert.equal(await metricValue(registry, 'rhumb_probe_reachable', 'node-b'), 1);
    assert.equal(await metricValue(registry, 'rhumb_probe_reachable', 'node-x'), 0);
    assert.equal(await metricValue(registry, 'rhumb_probe_sent_total', 'node-b'), 2);
    assert.equal(await metricValue(registry, 'rhumb_probe_lost_total', 'node-x'), 2);
    assert.equal(await metricValue(registry, 'rhumb_probe_lost_total', 'node-b'), undefined);
    const text = await registry.metrics();
    assert.match(text, /rhumb_probe_rtt_seconds_count\{peer="node-b"\} 2/);
  });

  it('sends well-formed echo requests with its identifier and distinct sequence numbers', async () => {
    const net = new FakeNet();
    const prober = makeProber(net);
    prober.add('198.18.0.2');
    prober.add('198.18.0.3');
    await prober.probeAll();
    assert.equal(net.sent.length, 2);
    const seqs = net.sent.map(({ packet }) => {
      assert.equal(internetChecksum(packet), 0);
      assert.equal(packet[0], 8);
      assert.equal(packet.readUInt16BE(4), 0x4242);
      return packet.readUInt16BE(6);
    });
    assert.notEqual(seqs[0], seqs[1]);
  });

  it('comes back up after a recovery and emits state changes', async () => {
    const net = new FakeNet();
    const prober = makeProber(net, undefined, 1);
    const changes: ProbeResult[] = [];
    prober.on('change', (r) => changes.push(r));
    prober.add('198.18.0.2');
    await prober.probeAll();
    net.reachable.add('198.18.0.2');
    await prober.probeAll();
    net.reachable.delete('198.18.0.2');
    await prober.probeAll();
    assert.deepEqual(
      changes.map((c) => c.state),
      ['down', 'up', 'down'],
    );
  });

  it('ignores replies with the wrong identifier, wrong source, bad checksum or no magic', async () => {
    const net = new FakeNet();
    const prober = makeProber(net, undefined, 1);
    prober.add('198.18.0.2');
    const pending = prober.probe('198.18.0.2');
    await new Promise((r) => setImmediate(r));
    const sock = net.sockets[0]!;
    const req = net.sent[0]!.packet;
    const good = sock.replyTo(req);
    const wrongId = Buffer.from(good);
    wrongId.writeUInt16BE(0x1111, 24);
    const badSum = Buffer.from(good);
    badSum[good.length - 1] ^= 1;
    sock.deliver(wrongId, '198.18.0.2');
    sock.deliver(badSum, '198.18.0.2');
    sock.deliver(good, '198.18.0.77');
    const noMagic = Buffer.from(req);
    noMagic.fill(0, 8);
    sock.deliver(sock.replyTo(noMagic), '198.18.0.2');
    assert.equal(parseEcho(4, good)?.checksumOk, true);
    assert.equal(await pending, null);
    assert.equal(prober.result('198.18.0.2')?.state, 'down');
  });

  it('counts a failed send as a loss at once', async () => {
    const net = new FakeNet();
    const prober = makeProber(net, undefined, 1);
    net.failing.add('198.18.0.5');
    prober.add('198.18.0.5');
    assert.equal(await prober.probe('198.18.0.5'), null);
    assert.equal(prober.result('198.18.0.5')?.lost, 1);
  });

  it('probes IPv6 peers and matches replies however their source is spelled', async () => {
    const net = new FakeNet();
    net.reachable.add('2001:db8::2');
    net.replyFrom.set('2001:db8::2', '2001:0db8:0000::0002');
    const prober = makeProber(net);
    prober.add('2001:db8:0::2', 'v6peer');
    await prober.probeAll();
    assert.equal(net.sent[0]?.family, 6);
    assert.equal(net.sent[0]?.address, '2001:db8::2');
    assert.equal(prober.result('2001:db8::2')?.state, 'up');
    assert.equal(prober.results()[0]?.peer, 'v6peer');
  });

  it('removes a target with its metric series, and refuses non-addresses', async () => {
    const net = new FakeNet();
    net.reachable.add('198.18.0.2');
    const registry = new Registry();
    const prober = makeProber(net, registry);
    prober.add('198.18.0.2', 'node-b');
    await prober.probeAll();
    assert.equal(prober.remove('198.18.0.2'), true);
    assert.equal(prober.has('198.18.0.2'), false);
    assert.equal(prober.remove('198.18.0.2'), false);
    assert.equal(await metricValue(registry, 'rhumb_probe_reachable', 'node-b'), undefined);
    assert.throws(() => prober.add('node-b'), TypeError);
  });

  it('runs rounds on its interval once started and closes its sockets on stop', async () => {
    const net = new FakeNet();
    net.reachable.add('198.18.0.2');
    const prober = makeProber(net);
    prober.add('198.18.0.2');
    const upAgain = new Promise<void>((resolve) => {
      prober.on('change', () => {
        if ((prober.result('198.18.0.2')?.received ?? 0) >= 1) resolve();
      });
    });
    prober.start();
    await upAgain;
    while (net.sent.length < 3) await new Promise((r) => setTimeout(r, 10));
    prober.stop();
    assert.ok(net.sockets.every((s) => s.closed));
    const after = net.sent.length;
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(net.sent.length, after);
  });
});
