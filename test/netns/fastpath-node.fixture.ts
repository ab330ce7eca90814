/**
 * A fast-path node for netns tests and bench/dataplane: runs inside a namespace (it binds
 * the underlay there), adds the NICs it is given and answers misses from a static
 * directory (unknown → NOTFOUND), like the agent would after an SVP lookup. VXLAN is
 * accepted from `peers` (default: the directory's underlay addresses), as the agent does
 * with the underlay NICs it knows of.
 *
 *   argv[2] = JSON { underlayIp, underlayMtu, disable?, threads?, nics: NicSpec[], directory: {vnet, ip, mac, underlay, vlan?}[], peers?: string[] }
 *             (a directory entry's vlan defaults to the VLAN of the first NIC on its vnet)
 * stdout: JSON lines — {"ready":true,"nics":[ids],"offloads":{…}}, {"miss":…}, {"answered":…}
 * stdin:  JSON lines — {"counters":true} → {"counters":{engine, nics:[…]}}; {"ops":[…]} → {"ok":true};
 *         {"peers":[…]} → {"ok":true}; {"remove":id} → {"ok":true} (the NIC and its TAP go)
 */
import { createInterface } from 'node:readline';
import { FastPath, type FastPathThreads, type NicSpec, type Offload, type TableOp } from '../../src/dataplane/fastpath.js';

interface Config {
  underlayIp: string;
  underlayMtu?: number;
  disable?: Offload[];
  threads?: FastPathThreads;
  nics: NicSpec[];
  directory: Array<{ vnet: number; ip: string; mac: string; underlay: string; vlan?: number }>;
  peers?: string[];
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as Config;
const say = (o: unknown): void => void process.stdout.write(`${JSON.stringify(o)}\n`);

let peers = cfg.peers ?? cfg.directory.map((d) => d.underlay);
const vlanOf = (d: Config['directory'][number]): number => d.vlan ?? cfg.nics.find((n) => n.vnet === d.vnet)?.vlan ?? 0;

const fp = FastPath.open({ underlayIp: cfg.underlayIp, underlayMtu: cfg.underlayMtu, disable: cfg.disable, threads: cfg.threads }, (miss) => {
  say({ miss });
  // Answer asynchronously, as the agent would after a lookup.
  setTimeout(() => {
    const ops: TableOp[] = [];
    if (miss.kind === 'peer') {
      fp.setPeers(peers); // the agent would ask the API for the underlay NICs again
      return;
    }
    if (miss.kind === 'l3') {
      const d = cfg.directory.find((e) => e.vnet === miss.vnet && e.ip === miss.ip);
      if (d) ops.push({ op: 'l2set', vnet: d.vnet, mac: d.mac, underlay: d.underlay, vlan: vlanOf(d) }, { op: 'l3set', vnet: d.vnet, ip: d.ip, mac: d.mac, vlan: vlanOf(d) });
      else ops.push({ op: 'l3notfound', vnet: miss.vnet, ip: miss.ip });
    } else {
      const d = cfg.directory.find((e) => e.vnet === miss.vnet && e.mac === miss.mac);
      if (d) ops.push({ op: 'l2set', vnet: d.vnet, mac: d.mac, underlay: d.underlay, vlan: vlanOf(d) });
      else ops.push({ op: 'l2notfound', vnet: miss.vnet, mac: miss.mac });
    }
    fp.update(ops);
    say({ answered: miss });
  }, 5);
});
fp.setPeers(peers);

const ids = cfg.nics.map((n) => fp.addNic(n));
const removed = new Set<number>();
say({ ready: true, nics: ids, offloads: fp.offloads() });

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const msg = JSON.parse(line) as { counters?: boolean; ops?: TableOp[]; entries?: number; peers?: string[]; remove?: number };
  try {
    if (msg.counters) say({ counters: { engine: fp.counters(), nics: ids.filter((id) => !removed.has(id)).map((id) => fp.counters(id)) } });
    if (msg.remove !== undefined) {
      fp.removeNic(msg.remove);
      removed.add(msg.remove);
      say({ ok: true });
    }
    if (msg.ops) {
      fp.update(msg.ops);
      say({ ok: true });
    }
    if (msg.entries !== undefined) say({ entries: fp.entries(msg.entries) });
    if (msg.peers) {
      peers = msg.peers;
      fp.setPeers(peers);
      say({ ok: true });
    }
  } catch (err) {
    say({ error: (err as Error).message });
  }
});
rl.on('close', () => {
  fp.close();
  process.exit(0);
});
