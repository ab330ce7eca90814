/**
 * What the firewall's netns tests between instances share: TCP echo servers and a client
 * that sends bytes and counts the echo (data both ways on one connection, so replies must
 * pass), a UDP probe that tells an ICMP port unreachable (a related error) from silence,
 * and a wait until the agents have applied what the controller published.
 */
import type { NetnsLab } from './netns.js';
import { type RestCall, type RunningAgent, eventually } from './datacenter.js';
import { http } from './processes.js';

/** TCP echo servers on each port, on host ('::' is dual-stack); prints "ready" once all listen. */
export function echoServersProgram(ports: number[], host: '0.0.0.0' | '::'): string {
  const listen = host === '::' ? `{ port: p, host: '::', ipv6Only: false }` : `p, '0.0.0.0'`;
  return `
const net = require('node:net');
let n = 0;
for (const p of ${JSON.stringify(ports)}) {
  net.createServer((s) => { s.on('error', () => {}); s.pipe(s); })
    .listen(${listen}, () => { if (++n === ${ports.length}) console.log('ready'); });
}`;
}

/**
 * argv: JSON [[host, port], …] and a byte count. For each target (concurrently): connects,
 * sends the bytes, half-closes and counts what is echoed until the server closes. Prints
 * one JSON line: for each, "echoed <n>", an error code, or "timeout" (nothing for 2 s:
 * dropped).
 */
const ECHO_SEND = `
const net = require('node:net');
const [targets, bytes] = [JSON.parse(process.argv[1]), Number(process.argv[2])];
Promise.all(targets.map(([host, port]) => new Promise((resolve) => {
  const s = net.connect({ host, port });
  let got = 0;
  s.setTimeout(2000, () => { s.destroy(); resolve('timeout'); });
  s.on('connect', async () => {
    const chunk = Buffer.alloc(65536, 7);
    for (let left = bytes; left > 0; left -= chunk.length) {
      if (!s.write(left >= chunk.length ? chunk : chunk.subarray(0, left))) await new Promise((r) => s.once('drain', r));
    }
    s.end();
  });
  s.on('data', (d) => { got += d.length; });
  s.on('end', () => resolve('echoed ' + got));
  s.on('error', (e) => resolve(e.code || 'error'));
}))).then((r) => console.log(JSON.stringify(r)));`;

/**
 * From namespace ns, bytes each way to every [host, port] at once: "<port> echoed" (all
 * came back), "<port> blocked" (nothing for 2 s) or "<port> <error code>", in order.
 */
export async function talk(lab: NetnsLab, ns: string, targets: Array<[string, number]>, bytes: number): Promise<string[]> {
  const out = await lab.exec(ns, process.execPath, '-e', ECHO_SEND, JSON.stringify(targets), String(bytes));
  return (JSON.parse(out) as string[]).map((r, i) => {
    const port = targets[i]![1];
    if (r === `echoed ${bytes}`) return `${port} echoed`;
    if (r === 'timeout') return `${port} blocked`;
    return `${port} ${r}`;
  });
}

/**
 * A program (argv: host, port): a connected UDP socket of the family sends a datagram every
 * 200 ms for 2 s; prints "refused" when an ICMP(v6) port unreachable came back (the
 * socket's error), else "silent".
 */
export function udpProbeProgram(family: 4 | 6): string {
  return `
const s = require('node:dgram').createSocket('udp${family}');
const done = (r) => { console.log(r); process.exit(0); };
s.on('error', (e) => done(e.code === 'ECONNREFUSED' ? 'refused' : e.code));
s.on('message', () => {});
s.connect(Number(process.argv[2]), process.argv[1], () => {
  const t = setInterval(() => s.send('x', (e) => e && done(e.code === 'ECONNREFUSED' ? 'refused' : e.code)), 200);
  setTimeout(() => { clearInterval(t); done('silent'); }, 2000);
});`;
}

/**
 * Waits until every node's agent has applied the newest ruleset the controller published
 * for it: the engine is synced for these instances (GET …/ruleset), each node's feed read
 * for its newest revision, and the agent reports at least that one with nothing failed.
 * (Not the feed's own revision: unrelated store writes advance it without waking agents.)
 */
export async function fwSettled(api: RestCall, nodes: ReadonlyArray<{ uuid: string; agent?: RunningAgent }>, instances: readonly string[]): Promise<void> {
  for (const uuid of instances) await api('GET', `/fw/instances/${uuid}/ruleset`);
  for (const node of nodes) {
    const full = await api('GET', `/fw/nodes/${node.uuid}/rulesets?since=0&wait=0`);
    const want = Math.max(0, ...full.rulesets.map((r: { revision: number }) => r.revision));
    let last = {};
    await eventually(
      async () => {
        const r = await http(node.agent!.api, 'GET', '/status');
        const fw = (r.body as { firewall: { enabled: boolean; revision?: number; failures?: Record<string, string> } }).firewall;
        last = fw;
        return fw.enabled && (fw.revision ?? 0) >= want && Object.keys(fw.failures ?? {}).length === 0;
      },
      15_000,
      `agent at fw revision ${want}`,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; agent reports ${JSON.stringify(last)}`);
    });
  }
}
