/**
 * The native frame sender (native/src/packet.c, src/dataplane/packet.ts) and the kernel
 * backend's announcement through it (src/agent/plumbing/garp.ts sendGarp), against the
 * real kernel: a child in namespace A sends out of its end of a veth; `rhumb trace` on
 * the other end, in namespace B, must see the gratuitous ARP and the neighbour
 * advertisement as built. Refusals must be clear errors: no interface, an interface that
 * is down, frames too short or too long, wrong argument types.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { PacketRecord } from '../../src/agent/trace/records.js';
import { ProcessOutput, exited } from '../helpers/datacenter.js';
import { NetnsLab, netnsSkipReason } from '../helpers/netns.js';
import { CLI } from '../helpers/processes.js';

const GARP = fileURLToPath(new URL('../../src/agent/plumbing/garp.ts', import.meta.url));
const PACKET = fileURLToPath(new URL('../../src/dataplane/packet.ts', import.meta.url));
const MAC = '02:00:0a:55:00:07';

/* The child: each line of argv[1] (JSON) is one call; prints what each returned or threw. */
const CHILD = `
import { sendGarp } from ${JSON.stringify(GARP)};
import { sendFrame } from ${JSON.stringify(PACKET)};
const calls = JSON.parse(process.argv[1]);
const fns = { sendGarp, sendFrame: (dev, hex) => sendFrame(dev, typeof hex === 'string' ? Buffer.from(hex, 'hex') : hex) };
for (const [fn, ...args] of calls) {
  try {
    fns[fn](...args);
    console.log(JSON.stringify({ ok: true }));
  } catch (err) {
    console.log(JSON.stringify({ ok: false, name: err.constructor.name, code: err.code, message: err.message }));
  }
}
`;

interface Outcome {
  ok: boolean;
  name?: string;
  code?: string;
  message?: string;
}

const skip = netnsSkipReason();

describe('native frame sender', { skip }, () => {
  let lab: NetnsLab;
  let a: string;
  let b: string;
  let devA: string;
  let devB: string;
  let devDown: string;

  before(async () => {
    lab = new NetnsLab('pk');
    a = await lab.addNetns('a');
    b = await lab.addNetns('b');
    [devA, devB] = await lab.addVeth({ ns: a, name: lab.name('a') }, { ns: b, name: lab.name('b') });
    [devDown] = await lab.addVeth({ ns: a, name: lab.name('d') }, { ns: a, name: lab.name('e') });
    await lab.ip(a, 'link', 'set', devA, 'up');
    await lab.ip(b, 'link', 'set', devB, 'up');
  });
  after(async () => {
    await lab?.cleanup();
  });

  async function callsIn(ns: string, calls: unknown[][]): Promise<Outcome[]> {
    const child = lab.spawnNetOnly(ns, [process.execPath, '--import', 'tsx', '--input-type=module', '-e', CHILD, JSON.stringify(calls)]);
    const out = new ProcessOutput(child);
    const code = await exited(child);
    assert.equal(code, 0, `child failed: ${out.stderr}`);
    return out.lines.map((l) => JSON.parse(l) as Outcome);
  }

  it('puts the announcements on the wire as built, out of the named interface only', async () => {
    const trace = lab.spawnIn(b, [process.execPath, CLI, 'trace', '--iface', devB, '--json', '--filter', 'arp or ip6', '--timeout', '30']);
    const out = new ProcessOutput(trace);
    try {
      await out.until(() => /listening on/.test(out.stderr), 20_000, 'the trace to start');
      const got = await callsIn(a, [
        ['sendGarp', devA, '10.85.0.7', MAC],
        ['sendGarp', devA, 'fd00:85::7', MAC],
      ]);
      assert.deepEqual(got, [{ ok: true }, { ok: true }]);
      const records = (): PacketRecord[] => out.lines.map((l) => JSON.parse(l) as PacketRecord);
      const advert = (): PacketRecord | undefined => records().find((r) => r.ip?.version === 6 && r.ip.src === 'fd00:85::7');
      await out.until(() => records().some((r) => r.arp) && advert() !== undefined, 10_000, 'both announcements on the wire');
      const arp = records().find((r) => r.arp)!;
      assert.equal(arp.link?.dst, 'ff:ff:ff:ff:ff:ff');
      assert.equal(arp.link?.src, MAC);
      assert.equal(arp.arp?.op, 'reply');
      assert.equal(arp.arp?.senderIp, '10.85.0.7');
      assert.equal(arp.arp?.targetIp, '10.85.0.7');
      assert.equal(arp.arp?.senderMac, MAC);
      const na = advert()!;
      assert.deepEqual([na.ip?.dst, na.ip?.proto, na.ip?.ttl], ['ff02::1', 58, 255]);
      assert.equal(na.link?.dst, '33:33:00:00:00:01');
      assert.equal(na.link?.src, MAC);
    } finally {
      trace.kill('SIGTERM');
      await exited(trace);
    }
  });

  it('refuses with a clear error: no such interface, interface down, bad frames, bad arguments', async () => {
    const frame = 'ff'.repeat(6) + MAC.replaceAll(':', '') + '0806' + '00'.repeat(28);
    const got = await callsIn(a, [
      ['sendFrame', lab.name('zz'), frame],
      ['sendFrame', devDown, frame],
      ['sendFrame', devA, 'ff'.repeat(13)],
      ['sendFrame', devA, '00'.repeat(9019)],
      ['sendFrame', devA, 42],
      ['sendFrame', '', frame],
      ['sendFrame', 'x'.repeat(16), frame],
      ['sendFrame', 'a/b', frame],
      ['sendGarp', lab.name('zz'), '10.85.0.7', MAC],
    ]);
    assert.equal(got.length, 9);
    assert.equal(got[0]!.code, 'ENODEV');
    assert.match(got[0]!.message!, /sendFrame\('pk/);
    assert.equal(got[1]!.code, 'ENETDOWN');
    assert.deepEqual([got[2]!.name, got[2]!.code], ['RangeError', 'ERR_OUT_OF_RANGE']);
    assert.deepEqual([got[3]!.name, got[3]!.code], ['RangeError', 'ERR_OUT_OF_RANGE']);
    assert.deepEqual([got[4]!.name, got[4]!.code], ['TypeError', 'ERR_INVALID_ARG_TYPE']);
    assert.deepEqual([got[5]!.name, got[5]!.code], ['TypeError', 'ERR_INVALID_ARG_VALUE']);
    assert.deepEqual([got[6]!.name, got[6]!.code], ['TypeError', 'ERR_INVALID_ARG_VALUE']);
    assert.deepEqual([got[7]!.name, got[7]!.code], ['TypeError', 'ERR_INVALID_ARG_VALUE']);
    assert.equal(got[8]!.ok, false);
    assert.match(got[8]!.message!, /announcing 10\.85\.0\.7 on pk.*zz: .*ENODEV/);
  });
});
