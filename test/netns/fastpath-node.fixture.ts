/**
 * A fast-path node for netns tests and bench/dataplane: runs inside a namespace (it binds
 * the underlay there), adds the NICs it is given and answers misses from a static
 * directory (unknown → NOTFOUND), like the agent would after an SVP lookup.
 *
 *   argv[2] = JSON { underlayIp, underlayMtu, disable?, nics: NicSpec[], directory: {vnet, ip, mac, underlay}[] }
 * stdout: JSON lines — {"ready":true,"nics":[ids],"offloads":{…}}, {"miss":…}
 * stdin:  JSON lines — {"counters":true} → {"counters":{engine, nics:[…]}}; {"ops":[…]} → {"ok":true}
 */
import { createInterface } from 'node:readline';
import { FastPath, type NicSpec, type Offload, type TableOp } from '../../src/dataplane/fastpath.js';

interface Config {
  underlayIp: string;
  underlayMtu?: number;
  disable?: Offload[];
  nics: NicSpec[];
  directory: Array<{ vnet: number; ip: string; mac: string; underlay: string }>;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as Config;
const say = (o: unknown): void => void process.stdout.write(`${JSON.stringify(o)}\n`);

const fp = FastPath.open({ underlayIp: cfg.underlayIp, underlayMtu: cfg.underlayMtu, disable: cfg.disable }, (miss) => {
  say({ miss });
  // Answer asynchronously, as the agent would after a lookup.
  setTimeout(() => {
    const ops: TableOp[] = [];
    if (miss.kind === 'l3') {
      const d = cfg.directory.find((e) => e.vnet === miss.vnet && e.ip === miss.ip);
      if (d) ops.push({ op: 'l2set', vnet: d.vnet, mac: d.mac, underlay: d.underlay }, { op: 'l3set', vnet: d.vnet, ip: d.ip, mac: d.mac });
      else ops.push({ op: 'l3notfound', vnet: miss.vnet, ip: miss.ip });
    } else {
      const d = cfg.directory.find((e) => e.vnet === miss.vnet && e.mac === miss.mac);
      if (d) ops.push({ op: 'l2set', vnet: d.vnet, mac: d.mac, underlay: d.underlay });
      else ops.push({ op: 'l2notfound', vnet: miss.vnet, mac: miss.mac });
    }
    fp.update(ops);
  }, 5);
});

const ids = cfg.nics.map((n) => fp.addNic(n));
say({ ready: true, nics: ids, offloads: fp.offloads() });

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const msg = JSON.parse(line) as { counters?: boolean; ops?: TableOp[]; entries?: number };
  try {
    if (msg.counters) say({ counters: { engine: fp.counters(), nics: ids.map((id) => fp.counters(id)) } });
    if (msg.ops) {
      fp.update(msg.ops);
      say({ ok: true });
    }
    if (msg.entries !== undefined) say({ entries: fp.entries(msg.entries) });
  } catch (err) {
    say({ error: (err as Error).message });
  }
});
rl.on('close', () => {
  fp.close();
  process.exit(0);
});
