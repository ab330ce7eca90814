/**
 * Docker on rhumb fabrics with real Docker Engines (Debian's docker.io): one dockerd per
 * node namespace of a simulated datacenter, each talking to its node's agent, which serves
 * the plugin on the node's loopback (one spec file, tcp://127.0.0.1:PORT, finds each
 * node's own agent because each daemon runs in its node's namespace). n1 and n2 run the
 * kernel backend, n3 and n4 the userspace one. Images are busybox, imported offline.
 *
 * Daemons are shared by the tests of this file (starting one takes seconds); each test
 * uses networks of its own. Everything is removed at the end, spec file included.
 *
 * Needs root, a built dist/, the native addon, docker.io and busybox-static.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { workloadUuid } from '../../src/agent/workloads.js';
import { hostVethName } from '../../src/agent/plumbing/names.js';
import { tableName } from '../../src/fw/compile.js';
import { Datacenter, type DatacenterNode, type RunningAgent, eventually, stopAgent } from '../helpers/datacenter.js';
import { type Dockerd, DockerLab, dockerSkipReason } from '../helpers/docker.js';
import { http } from '../helpers/processes.js';

const skip = dockerSkipReason();
const OWNER_A = 'aaaaaaaa-0000-4000-8000-0000000000d1';
const OWNER_B = 'bbbbbbbb-0000-4000-8000-0000000000d2';
const OWNER_C = 'cccccccc-0000-4000-8000-0000000000d3';
const OWNER_D = 'dddddddd-0000-4000-8000-0000000000d4';

interface Nic {
  mac: string;
  ip: string;
  cn_uuid: string;
  belongs_to_uuid: string;
  network_uuid: string;
}

describe('Docker on rhumb fabrics (real Docker Engines)', { skip, timeout: 600_000 }, () => {
  // The agents start once their node's Docker Engine runs; they see its mounts (netOnly).
  const dc = new Datacenter('dkr', { nodes: 4, stateTag: 'dkr', running: 0, netOnly: true });
  const { lab, api, underlay24 } = dc;
  const dl = new DockerLab(lab.prefix);
  const plugin = `rhumb-${lab.prefix}`;
  const port = randomInt(20000, 30000);
  const backends = ['kernel', 'kernel', 'userspace', 'userspace'] as const;
  let nodes: DatacenterNode[] = [];
  const agents: RunningAgent[] = [];
  const daemons: Dockerd[] = [];
  const stateDir = (i: number) => dc.nodes[i]!.stateDir;
  const exitHook = () => dl.cleanupSync();

  const startNodeAgent = async (i: number) => {
    agents[i] = await dc.startAgent(dc.nodes[i]!, ['--backend', backends[i]!, '--docker-plugin', `127.0.0.1:${port}`, '--docker-host', daemons[i]!.host, '--docker-plugin-name', plugin]);
  };

  before(async () => {
    process.once('exit', exitHook);
    await dc.start();
    nodes = dc.nodes;
    await dl.installSpec(plugin, `tcp://127.0.0.1:${port}`);
    daemons.push(...(await Promise.all(nodes.map((n) => dl.start(n)))));
    await Promise.all(daemons.map((d) => dl.importBusybox(d)));
    for (let i = 0; i < nodes.length; i++) await startNodeAgent(i);
  });

  after(async () => {
    if (process.env.RHUMB_DOCKER_TEST_LOGS) {
      const { writeFileSync } = await import('node:fs');
      agents.forEach((a, i) => a && writeFileSync(`${process.env.RHUMB_DOCKER_TEST_LOGS}-n${i + 1}.log`, a.out.stderr));
    }
    await dl.cleanup();
    for (const a of agents) if (a) await stopAgent(a);
    await dc.stop();
    process.removeListener('exit', exitHook);
  });

  // ---- helpers -------------------------------------------------------------------------

  const net = (d: Dockerd, name: string, subnet: string, owner: string, ...opts: string[]) =>
    d.docker('network', 'create', '-d', plugin, '--ipam-driver', plugin, '--subnet', subnet, '-o', `owner=${owner}`, ...opts, name);
  /** A detached container (stop takes one second: busybox as PID 1 ignores SIGTERM). */
  const run = (d: Dockerd, name: string, network: string, extra: string[], ...cmd: string[]) =>
    d.docker('run', '-d', '--stop-timeout', '1', '--name', name, '--network', network, ...extra, dl.image, ...(cmd.length > 0 ? cmd : ['sleep', '100000']));
  /** A container serving /www over HTTP (busybox httpd) on each port, plus a 4 MiB /big. */
  const server = (d: Dockerd, name: string, network: string, ports: number[], extra: string[] = []) =>
    run(d, name, network, extra, 'sh', '-c', `dd if=/dev/zero of=/www/big bs=1024 count=4096 2>/dev/null; ${ports.map((p) => `httpd -p ${p} -h /www;`).join(' ')} sleep 100000`);
  const ipOf = async (d: Dockerd, name: string, network: string) =>
    (await d.docker('inspect', '--format', `{{(index .NetworkSettings.Networks "${network}").IPAddress}}`, name)).trim();
  const macOf = async (d: Dockerd, name: string, network: string) =>
    (await d.docker('inspect', '--format', `{{(index .NetworkSettings.Networks "${network}").MacAddress}}`, name)).trim();
  /** GET path from inside a container (busybox nc); the body's last line, '' when nothing answered in waitS. */
  const get = async (d: Dockerd, from: string, host: string, p: number, path = '/', waitS = 2) => {
    const r = await d.tryDocker('exec', from, 'sh', '-c', `printf 'GET ${path} HTTP/1.0\\r\\n\\r\\n' | nc -w ${waitS} ${host} ${p} | tail -n 1`);
    return r.stdout.trim();
  };
  const pingOk = async (d: Dockerd, from: string, ip: string, count = 2) => (await d.tryDocker('exec', from, 'ping', '-c', String(count), '-W', '2', ip)).code === 0;
  const nicsOf = (filter: Record<string, string>) => api('GET', `/nics?${new URLSearchParams({ belongs_to_type: 'zone', ...filter })}`) as Promise<Nic[]>;
  const fabricNets = (owner: string) => api('GET', `/networks?${new URLSearchParams({ fabric: 'true', owner_uuid: owner })}`) as Promise<Array<{ uuid: string; name: string; subnet: string; vlan_id: number }>>;
  const linkNames = async (ns: string) => (JSON.parse(await lab.ip(ns, '-j', 'link', 'show')) as Array<{ ifname: string }>).map((l) => l.ifname).sort();
  const tables = async (ns: string) => (await lab.exec(ns, 'nft', 'list', 'tables')).split('\n').filter(Boolean).sort();
  const dockerKeys = async (i: number) => {
    const text = await readFile(join(stateDir(i), 'workloads.json'), 'utf8').catch(() => '{"workloads":{}}');
    return Object.keys((JSON.parse(text) as { workloads: Record<string, unknown> }).workloads).filter((k) => k.startsWith('docker/')).sort();
  };
  /** A TCP request from the test's own (root) namespace: outside every fabric. */
  const outsideGet = (host: string, p: number) =>
    new Promise<string>((resolve) => {
      const s = connect({ host, port: p });
      let data = '';
      const t = setTimeout(() => {
        s.destroy();
        resolve('timeout');
      }, 3000);
      s.on('connect', () => s.write('GET / HTTP/1.0\r\n\r\n'));
      s.on('data', (c) => (data += c));
      s.on('end', () => {
        clearTimeout(t);
        resolve(data.trim().split('\n').pop() ?? '');
      });
      s.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(t);
        resolve(e.code ?? 'error');
      });
    });

  // ---- tests ---------------------------------------------------------------------------

  it('one network created on two nodes: containers ping and move a TCP stream across; NAPI holds their NICs', async () => {
    const [d1, d2] = [daemons[0]!, daemons[1]!];
    await net(d1, 'neta', '10.60.0.0/24', OWNER_A);
    await net(d2, 'neta', '10.60.0.0/24', OWNER_A);
    const nets = await fabricNets(OWNER_A);
    assert.equal(nets.length, 1, 'both daemons map to one fabric network');
    await eventually(async () => (await fabricNets(OWNER_A))[0]?.name === 'neta', 5000, 'the fabric network takes the Docker name');
    await server(d2, 'a2', 'neta', [8000]);
    await run(d1, 'a1', 'neta', []);
    const [ip1, ip2] = [await ipOf(d1, 'a1', 'neta'), await ipOf(d2, 'a2', 'neta')];
    assert.notEqual(ip1, ip2);
    assert.ok(await pingOk(d1, 'a1', ip2, 3), 'a1 (n1) pings a2 (n2)');
    const bytes = Number((await d1.docker('exec', 'a1', 'sh', '-c', `printf 'GET /big HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${ip2} 8000 | wc -c`)).trim());
    assert.ok(bytes > 4 * 1024 * 1024, `a 4 MiB TCP stream from n2 to n1 (got ${bytes} bytes)`);
    // The NICs are NAPI's: Docker's MAC and address, placed on the node, owned by the network's owner.
    const nics = await nicsOf({ network_uuid: nets[0]!.uuid });
    const n1nic = nics.find((n) => n.ip === ip1)!;
    assert.equal(n1nic.mac, await macOf(d1, 'a1', 'neta'));
    assert.equal(n1nic.cn_uuid, nodes[0]!.uuid);
    assert.equal(n1nic.belongs_to_uuid, workloadUuid(nodes[0]!.uuid, `docker/${n1nic.mac}`));
    assert.equal(nics.find((n) => n.ip === ip2)?.cn_uuid, nodes[1]!.uuid);
    const inspect = JSON.parse(await d1.docker('network', 'inspect', 'neta')) as Array<{ Driver: string; IPAM: { Config: Array<{ Subnet: string }> }; Containers: Record<string, { IPv4Address: string }> }>;
    assert.equal(inspect[0]!.Driver, plugin);
    assert.equal(inspect[0]!.IPAM.Config[0]!.Subnet, '10.60.0.0/24');
    assert.deepEqual(Object.values(inspect[0]!.Containers).map((c) => c.IPv4Address), [`${ip1}/24`]);
  });

  it("a second owner's network with the same subnet stays isolated (and Docker is told how to name its pool)", async () => {
    const [d1, d2] = [daemons[0]!, daemons[1]!];
    const refused = await d1.tryDocker('network', 'create', '-d', plugin, '--ipam-driver', plugin, '--subnet', '10.60.0.0/24', '-o', `owner=${OWNER_B}`, 'netb');
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /already has rhumb network neta on 10\.60\.0\.0\/24.*--ipam-opt owner=UUID/);
    assert.deepEqual(await fabricNets(OWNER_B), [], 'nothing made in NAPI');
    assert.doesNotMatch(await d1.docker('network', 'ls', '--format', '{{.Name}}'), /netb/);
    for (const d of [d1, d2]) await net(d, 'netb', '10.60.0.0/24', OWNER_B, '--ipam-opt', `owner=${OWNER_B}`);
    await run(d1, 'b1', 'netb', ['--ip', '10.60.0.200']);
    await run(d2, 'b2', 'netb', ['--ip', '10.60.0.201']);
    assert.ok(await pingOk(d1, 'b1', '10.60.0.201'), 'b1 pings b2 on its own network');
    const ipA2 = await ipOf(d2, 'a2', 'neta');
    const [aToB, bToA] = await Promise.all([pingOk(d1, 'a1', '10.60.0.201', 1), pingOk(d2, 'b2', ipA2, 1)]);
    assert.equal(aToB, false, "owner A's container does not reach owner B's");
    assert.equal(bToA, false, "owner B's container does not reach owner A's");
  });

  it('the userspace backend: containers on two nodes ping and stream; their firewall is node-side, -p included', async () => {
    const [d3, d4] = [daemons[2]!, daemons[3]!];
    await net(d3, 'neta', '10.60.0.0/24', OWNER_A);
    await net(d4, 'neta', '10.60.0.0/24', OWNER_A);
    await run(d3, 'u3', 'neta', []);
    await server(d4, 'u4', 'neta', [8000]);
    const ip4 = await ipOf(d4, 'u4', 'neta');
    assert.ok(await pingOk(d3, 'u3', ip4, 3), 'u3 (n3) pings u4 (n4)');
    const bytes = Number((await d3.docker('exec', 'u3', 'sh', '-c', `printf 'GET /big HTTP/1.0\\r\\n\\r\\n' | nc -w 5 ${ip4} 8000 | wc -c`)).trim());
    assert.ok(bytes > 4 * 1024 * 1024, `a 4 MiB TCP stream from n4 to n3 (got ${bytes} bytes)`);
    // The container's firewall is node-side here too: its table filters its host veth in the node's namespace.
    const mac4 = await macOf(d4, 'u4', 'neta');
    const table4 = tableName(workloadUuid(nodes[3]!.uuid, `docker/${mac4}`));
    await eventually(async () => (await tables(nodes[3]!.ns)).includes(`table bridge ${table4}`), 20_000, "u4's table in n4's namespace");
    assert.match(await lab.exec(nodes[3]!.ns, 'nft', 'list', 'table', 'bridge', table4), new RegExp(`oifname "${hostVethName(mac4)}" jump inbound`));
    // Published ports too: -p answers from outside, and a rule on the container stops it.
    await server(d3, 'upub', 'neta', [80], ['-p', '18081:80']);
    const n3 = nodes[2]!.ip;
    await eventually(async () => (await outsideGet(n3, 18081)) === 'ok', 20_000, 'the published port answers on n3');
    const upub = workloadUuid(nodes[2]!.uuid, `docker/${await macOf(d3, 'upub', 'neta')}`);
    const block = await api('POST', '/rules', { owner_uuid: OWNER_A, enabled: true, rule: `FROM any TO vm ${upub} BLOCK tcp PORT 80 PRIORITY 50` });
    await eventually(async () => (await outsideGet(n3, 18081)) !== 'ok', 20_000, 'the block rule stops -p on the userspace backend');
    await api('DELETE', `/rules/${block.uuid}`);
    await eventually(async () => (await outsideGet(n3, 18081)) === 'ok', 20_000, '-p answers again once the rule is gone');
    await d3.docker('rm', '-f', 'upub');
  });

  it('icc=false: a linked container reaches its target\'s exposed port only; others, here or on another node, nothing; published ports answer from outside', async () => {
    const [d1, d2] = [daemons[0]!, daemons[1]!];
    for (const d of [d1, d2]) await net(d, 'netc', '10.61.0.0/24', OWNER_C, '-o', 'icc=false');
    await server(d1, 'db', 'netc', [5432, 5433], ['--expose', '5432']);
    await run(d1, 'web', 'netc', ['--link', 'db:dbalias']);
    await run(d1, 'other', 'netc', []);
    await run(d2, 'far', 'netc', []);
    await server(d1, 'pub', 'netc', [80, 81], ['-p', '18080:80']);
    const db = await ipOf(d1, 'db', 'netc');
    // The link rule arrives once the daemon has started web and the plugin read it back.
    await eventually(async () => (await get(d1, 'web', db, 5432)) === 'ok', 20_000, 'web reaches db:5432 through its link');
    assert.equal(await get(d1, 'web', 'dbalias', 5432), 'ok', "Docker's link alias resolves, and reaches");
    const [web5433, other, far, otherPing] = await Promise.all([
      get(d1, 'web', db, 5433),
      get(d1, 'other', db, 5432),
      get(d2, 'far', db, 5432),
      pingOk(d1, 'other', db, 1),
    ]);
    assert.deepEqual({ web5433, other, far, otherPing }, { web5433: '', other: '', far: '', otherPing: false });
    // Published: the node's address forwards 18080 to pub:80; nothing else of pub is reachable from outside.
    const n1 = nodes[0]!.ip;
    await eventually(async () => (await outsideGet(n1, 18080)) === 'ok', 20_000, 'the published port answers from outside the fabric');
    assert.notEqual(await outsideGet(n1, 81), 'ok', 'an unpublished port does not');
    // The agent reports it: `fw explain` follows the node's address and port to the container,
    // whose node-side firewall filters its publication link before the masquerade (the rules see the client).
    const explain = (p: number) => http(dc.ctl!.restUrl, 'GET', `/fw/explain?from=${underlay24}.254&to=${n1}&proto=tcp&port=${p}`);
    await eventually(async () => (await explain(18080)).status === 200, 10_000, 'the controller knows the publication');
    const why = (await explain(18080)).body;
    assert.deepEqual(
      [why.ingress.via, why.ingress.port, why.ingress.ip, why.ingress.seen_from, why.inbound.enforced, why.allowed],
      ['docker', 80, await ipOf(d1, 'pub', 'netc'), undefined, true, true],
      JSON.stringify(why),
    );
    assert.equal((await explain(81)).status, 404);
    // A published port is open to anyone, on the fabric too.
    assert.equal(await get(d2, 'far', await ipOf(d1, 'pub', 'netc'), 80), 'ok');
    assert.equal(await get(d2, 'far', await ipOf(d1, 'pub', 'netc'), 81), '');
    // What explain says is what happens: a rule blocking port 80 stops the fabric and -p alike,
    // and one blocking only the outside client's address stops -p (the rules see the client).
    const pubIp = await ipOf(d1, 'pub', 'netc');
    const block = await api('POST', '/rules', { owner_uuid: OWNER_C, enabled: true, rule: `FROM any TO vm ${why.to} BLOCK tcp PORT 80 PRIORITY 50` });
    await eventually(async () => (await get(d2, 'far', pubIp, 80, '/', 1)) === '', 20_000, 'the block rule stops fabric traffic to pub:80');
    await eventually(async () => (await outsideGet(n1, 18080)) !== 'ok', 20_000, 'the block rule stops -p too');
    assert.equal((await explain(18080)).body.allowed, false);
    await api('PUT', `/rules/${block.uuid}`, { rule: `FROM ip ${underlay24}.254 TO vm ${why.to} BLOCK tcp PORT 80 PRIORITY 50` });
    await eventually(async () => (await get(d2, 'far', pubIp, 80)) === 'ok', 20_000, 'the fabric reaches pub:80 again');
    assert.notEqual(await outsideGet(n1, 18080), 'ok', 'the client\'s own address is what the rule matched');
    await api('DELETE', `/rules/${block.uuid}`);
    await eventually(async () => (await outsideGet(n1, 18080)) === 'ok', 20_000, '-p answers again once the rule is gone');
  });

  it('icc=true: every container of the network reaches every other, across nodes; other owners never', async () => {
    const [d1, d2] = [daemons[0]!, daemons[1]!];
    for (const d of [d1, d2]) await net(d, 'netd', '10.62.0.0/24', OWNER_D);
    await server(d1, 'db2', 'netd', [5432], ['--expose', '5432']);
    await run(d1, 'cx', 'netd', []);
    await run(d2, 'cy', 'netd', []);
    const db2 = await ipOf(d1, 'db2', 'netd');
    await eventually(async () => (await get(d1, 'cx', db2, 5432)) === 'ok', 20_000, 'x reaches db2 (same node)');
    assert.equal(await get(d2, 'cy', db2, 5432), 'ok', 'cy reaches db2 (other node)');
    assert.ok(await pingOk(d2, 'cy', db2, 1));
    assert.equal(await get(d1, 'web', db2, 5432), '', "another owner's container does not");
  });

  it('bad input: a clear error naming the cause, nothing left in NAPI, the kernel or Docker', async () => {
    const d1 = daemons[0]!;
    const before = { nets: await fabricNets(OWNER_A), vlans: await api('GET', `/fabrics/${OWNER_A}/vlans`), links: await linkNames(nodes[0]!.ns) };
    const create = (...args: string[]) => d1.tryDocker('network', 'create', '-d', plugin, '--ipam-driver', plugin, ...args);
    const cases: Array<[string[], RegExp]> = [
      [['--subnet', '10.63.0.0/24', 'bad1'], /option owner is required/],
      [['--subnet', '10.63.0.0/24', '-o', `owner=${OWNER_A}`, '-o', 'colour=blue', 'bad2'], /unknown option\(s\) colour/],
      [['--subnet', '10.60.0.0/16', '-o', `owner=${OWNER_A}`, 'bad3'], /overlaps owner .* fabric network neta \(10\.60\.0\.0\/24\)/],
      [['--subnet', '10.63.0.0/24', '-o', `owner=${OWNER_A}`, '-o', `vlan=${before.nets[0]!.vlan_id}`, 'bad4'], /VLAN \d+ of owner .* in use with another subnet: 10\.60\.0\.0\/24/],
      [['-o', `owner=${OWNER_A}`, 'bad5'], /--subnet/],
    ];
    for (const [args, pattern] of cases) {
      const r = await create(...args);
      assert.notEqual(r.code, 0, args.join(' '));
      assert.match(r.stderr, pattern);
    }
    // The controller unreachable from n1 (its REST port refused there): the cause is named.
    const restPort = new URL(dc.ctl!.restUrl).port;
    const block = `table inet dkrblock { chain out { type filter hook output priority 0; tcp dport ${restPort} reject with tcp reset; }; }`;
    await lab.exec(nodes[0]!.ns, 'sh', '-c', `echo '${block}' | nft -f -`);
    try {
      const r = await create('--subnet', '10.63.0.0/24', '-o', `owner=${OWNER_A}`, 'bad6');
      assert.match(r.stderr, /rhumb controller is unreachable/);
    } finally {
      await lab.exec(nodes[0]!.ns, 'nft', 'delete', 'table', 'inet', 'dkrblock');
    }
    assert.deepEqual(await fabricNets(OWNER_A), before.nets, 'no fabric network made');
    assert.deepEqual(await api('GET', `/fabrics/${OWNER_A}/vlans`), before.vlans, 'no VLAN made');
    assert.doesNotMatch(await d1.docker('network', 'ls', '--format', '{{.Name}}'), /bad\d/);
    // An exhausted range: a /30 has one address besides its gateway.
    await net(d1, 'tiny', '10.64.0.4/30', OWNER_A);
    await run(d1, 't1', 'tiny', []);
    const full = await d1.tryDocker('run', '--rm', '--network', 'tiny', dl.image, 'true');
    assert.notEqual(full.code, 0);
    assert.match(full.stderr, /no address on .*10\.64\.0\.4\/30.*(full|no more free|exhausted)/i);
    const tinyNet = (await fabricNets(OWNER_A)).find((n) => n.subnet === '10.64.0.4/30')!;
    assert.equal((await nicsOf({ network_uuid: tinyNet.uuid })).length, 1, 'only t1 has a NIC');
    await d1.docker('rm', '-f', 't1');
    assert.deepEqual(await linkNames(nodes[0]!.ns), before.links, 'no device left on n1');
  });

  it('network rm on one node leaves it working on the other; the last rm (or prune) deletes the fabric network', async () => {
    const [d1, d2] = [daemons[0]!, daemons[1]!];
    for (const d of [d1, d2]) await net(d, 'netr', '10.65.0.0/24', OWNER_A);
    await run(d2, 'r1', 'netr', []);
    await d1.docker('network', 'rm', 'netr');
    assert.ok((await fabricNets(OWNER_A)).some((n) => n.subnet === '10.65.0.0/24'), 'still in NAPI: n2 has it');
    await run(d2, 'r2', 'netr', []);
    assert.ok(await pingOk(d2, 'r2', await ipOf(d2, 'r1', 'netr')), 'n2 still runs containers on it');
    await d2.docker('rm', '-f', 'r1', 'r2');
    await d2.docker('network', 'prune', '-f');
    assert.doesNotMatch(await d2.docker('network', 'ls', '--format', '{{.Name}}'), /netr/);
    assert.ok(!(await fabricNets(OWNER_A)).some((n) => n.subnet === '10.65.0.0/24'), 'gone from NAPI with the last node');
  });

  it('50 `docker run --rm` cycles leave no NIC, address, interface, nftables table or state behind', async () => {
    const d1 = daemons[0]!;
    const netUuid = (await fabricNets(OWNER_A)).find((n) => n.name === 'neta')!.uuid;
    const ip2 = await ipOf(daemons[1]!, 'a2', 'neta');
    const snapshot = async () => ({
      nics: (await nicsOf({ cn_uuid: nodes[0]!.uuid })).map((n) => n.mac).sort(),
      ips: ((await api('GET', `/networks/${netUuid}/ips`)) as Array<{ ip: string; free?: boolean; reserved?: boolean; belongs_to_uuid?: string }>)
        .filter((r) => r.belongs_to_uuid).map((r) => r.ip).sort(),
      links: await linkNames(nodes[0]!.ns),
      tables: await tables(nodes[0]!.ns),
      keys: await dockerKeys(0),
    });
    const before = await snapshot();
    let reached = 0;
    await Promise.all(
      Array.from({ length: 5 }, async () => {
        for (let i = 0; i < 10; i++) {
          const r = await d1.tryDocker('run', '--rm', '--network', 'neta', dl.image, 'ping', '-c', '1', '-W', '3', ip2);
          if (r.code === 0) reached++;
        }
      }),
    );
    assert.equal(reached, 50, 'every short-lived container reached a2 across nodes');
    await eventually(async () => JSON.stringify(await snapshot()) === JSON.stringify(before), 10_000, 'everything released');
    assert.deepEqual(await snapshot(), before);
  });

  it('agent restart while containers run: traffic continues, nothing is made twice; daemon restart releases its stopped containers', async () => {
    const [d1, d2, d3] = [daemons[0]!, daemons[1]!, daemons[2]!];
    const ip2 = await ipOf(d2, 'a2', 'neta');
    const ip4 = await ipOf(daemons[3]!, 'u4', 'neta');
    const before = { nics: (await nicsOf({})).map((n) => n.mac).sort(), links1: await linkNames(nodes[0]!.ns), keys1: await dockerKeys(0), keys3: await dockerKeys(2) };
    await d1.docker('exec', '-d', 'a1', 'sh', '-c', `ping -i 0.2 -c 60 -W 1 ${ip2} > /tmp/ping.log 2>&1`);
    await stopAgent(agents[0]!);
    await stopAgent(agents[2]!);
    // Agent down: Docker says why it cannot reach the plugin; nothing is made.
    const down = await d1.tryDocker('network', 'create', '-d', plugin, '--ipam-driver', plugin, '--subnet', '10.66.0.0/24', '-o', `owner=${OWNER_A}`, 'nope');
    assert.notEqual(down.code, 0);
    assert.match(down.stderr, /127\.0\.0\.1:\d+.*(connection refused|connect)/i);
    await startNodeAgent(0);
    await startNodeAgent(2);
    assert.ok(await pingOk(d1, 'a1', ip2), 'n1 traffic after the restart');
    assert.ok(await pingOk(d3, 'u3', ip4), 'n3 (userspace) traffic after the restart');
    await eventually(async () => /packets received/.test(await d1.docker('exec', 'a1', 'cat', '/tmp/ping.log')), 30_000, 'the background ping finished');
    const log = await d1.docker('exec', 'a1', 'cat', '/tmp/ping.log');
    const received = Number(/(\d+) packets received/.exec(log)![1]);
    assert.ok(received >= 55, `traffic continued through the agent restart (${received}/60 answered)`);
    assert.deepEqual((await nicsOf({})).map((n) => n.mac).sort(), before.nics, 'no NIC made or lost');
    assert.deepEqual(await linkNames(nodes[0]!.ns), before.links1, 'no device made or lost on n1');
    assert.deepEqual([await dockerKeys(0), await dockerKeys(2)], [before.keys1, before.keys3]);
    assert.ok(!(await fabricNets(OWNER_A)).some((n) => n.subnet === '10.66.0.0/24'));
    // And a new container works on the restarted agent.
    assert.equal((await d1.tryDocker('run', '--rm', '--network', 'neta', dl.image, 'ping', '-c', '1', '-W', '3', ip2)).code, 0);

    // The daemon on n2 restarts (no live-restore): its containers stop, their NICs go, the network stays usable.
    const n2nics = async () => (await nicsOf({ cn_uuid: nodes[1]!.uuid })).length;
    assert.ok((await n2nics()) > 0);
    daemons[1] = await dl.restart(d2);
    await eventually(async () => (await n2nics()) === 0, 20_000, "n2's stopped containers released their NICs");
    await server(daemons[1]!, 'a2b', 'neta', [8000]);
    assert.ok(await pingOk(d1, 'a1', await ipOf(daemons[1]!, 'a2b', 'neta')), 'the network works on n2 again');
  });
});
