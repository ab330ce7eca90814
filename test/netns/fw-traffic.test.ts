/**
 * The firewall end to end with real traffic: instances are network namespaces on one
 * bridge (in a "hub" namespace standing for the node); the controller's rules API
 * compiles, the agent's feed client applies the nftables tables; TCP connections (node's
 * net module inside `ip netns exec`) show what passes. Nothing is restarted between rule
 * changes. The tables are on the instances' ports in the node's namespace, where the
 * instance cannot remove them.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { FwFeedClient, NftApplier, installedInstances, loadNft } from '../../src/fw/applier.js';
import { renderNetnsRemoval, renderRuleset, rulesetProblem } from '../../src/fw/nft.js';
import { tableName } from '../../src/fw/compile.js';
import { hostPortName } from '../../src/net/ports.js';
import { checkRuleset } from '../../src/fw/nft-check.js';
import { tcpProbeProgram, tcpServersProgram } from '../helpers/datacenter.js';
import { NODE_1, OWNER_A, OWNER_B, mac, putNic, vm } from '../helpers/fw-fixtures.js';
import { startTestNapi, type TestNapi } from '../helpers/napi.js';
import { NetnsLab, netnsSkipReason, run } from '../helpers/netns.js';

const OWNER_C = 'cccccccc-0000-4000-8000-00000000000c';
const PORTS = [22, 80, 5432, 6000];

const SERVER = tcpServersProgram(PORTS, '::');

const PROBE = tcpProbeProgram(1200);

interface Inst {
  n: number;
  uuid: string;
  ns: string;
  v4: string;
  v6: string;
}

const skip = netnsSkipReason();

describe('firewall in namespaces (node-side tables)', { skip: skip || undefined }, () => {
  let lab: NetnsLab;
  let napi: TestNapi;
  let client: FwFeedClient;
  const insts = new Map<string, Inst>();
  /** What the agent would tell the feed client: instances' ports on this node. */
  const localPorts = new Map<string, string[]>();

  async function addInstance(name: string, n: number): Promise<Inst> {
    const ns = await lab.addNetns(name);
    const inside = lab.name(`i${n}`);
    // Tables filter on ports named from the NIC's MAC, as the backends name them.
    const outside = hostPortName(mac(n * 2));
    await lab.addVeth({ ns, name: inside }, { ns: hub, name: outside });
    await lab.ip(hub, 'link', 'set', outside, 'master', 'br0', 'up');
    const v4 = `10.77.0.${n}`;
    const v6 = `fd77::${n}`;
    await lab.ip(ns, 'addr', 'add', `${v4}/24`, 'dev', inside);
    await lab.ip(ns, 'addr', 'add', `${v6}/64`, 'dev', inside, 'nodad');
    await lab.ip(ns, 'link', 'set', inside, 'up');
    const server = lab.spawnIn(ns, [process.execPath, '-e', SERVER]);
    await new Promise<void>((resolve, reject) => {
      server.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      server.once('exit', (code) => reject(new Error(`server in ${ns} exited ${code}`)));
    });
    const inst = { n, uuid: vm(n), ns, v4, v6 };
    insts.set(name, inst);
    return inst;
  }
  let hub = '';
  const hubPath = () => `/var/run/netns/${hub}`;
  const listTable = (i: Inst) => run('ip', ['netns', 'exec', hub, 'nft', 'list', 'table', 'bridge', tableName(i.uuid)]);

  async function probe(from: string, targets: Array<[string, number]>): Promise<string[]> {
    const out = await lab.exec(insts.get(from)!.ns, process.execPath, '-e', PROBE, JSON.stringify(targets));
    return JSON.parse(out) as string[];
  }

  /** Which of these (to, port) pairs are reachable from `from` over IPv4 (or v6). */
  async function reach(from: string, pairs: Array<[string, number]>, family: 'v4' | 'v6' = 'v4'): Promise<string[]> {
    const res = await probe(from, pairs.map(([to, port]) => [insts.get(to)![family], port]));
    return res.map((r, i) => `${pairs[i]![0]}:${pairs[i]![1]} ${r === 'open' ? 'open' : 'blocked'}`);
  }

  async function settle(): Promise<void> {
    const engine = napi.fwEngine;
    await engine.sync();
    await client.waitForRevision(engine.revision);
  }

  async function rule(text: string, owner?: string, extra: Record<string, unknown> = {}): Promise<string> {
    const res = await napi.call('POST', '/rules', { rule: text, enabled: true, ...(owner ? { owner_uuid: owner } : { global: true }), ...extra });
    assert.equal(res.status, 202, JSON.stringify(res.body));
    return res.body.uuid as string;
  }

  async function register(name: string, body: Record<string, unknown>): Promise<void> {
    const res = await napi.call('PUT', `/fw/instances/${insts.get(name)!.uuid}`, body);
    assert.equal(res.status, 200, JSON.stringify(res.body));
  }

  before(async () => {
    lab = new NetnsLab('fwn');
    hub = await lab.addNetns('hub');
    // In a vnet's device group, as the kernel backend's bridges are (the state table's match).
    await lab.ip(hub, 'link', 'add', 'br0', 'group', '0x72000001', 'type', 'bridge');
    await lab.ip(hub, 'link', 'set', 'br0', 'up');
    const names: Array<[string, number]> = [['db', 1], ['web', 2], ['other', 3], ['out', 4], ['cdb', 11], ['cweb', 12], ['cmisc', 13]];
    for (const [name, n] of names) await addInstance(name, n);
    napi = await startTestNapi();
    await napi.app.listen({ host: '127.0.0.1', port: 0 });
    const port = (napi.app.server.address() as AddressInfo).port;
    for (const [name, n] of names) {
      const owner = name === 'other' || name === 'out' ? OWNER_B : name.startsWith('c') ? OWNER_C : OWNER_A;
      await putNic(napi.store, n * 2, { instance: vm(n), ip: `10.77.0.${n}`, cn: NODE_1, owner });
      await putNic(napi.store, n * 2 + 1, { instance: vm(n), ip: `fd77::${n}`, cn: NODE_1, owner });
    }
    client = new FwFeedClient({
      controllerUrl: `http://127.0.0.1:${port}`, nodeUuid: NODE_1, nodeNetns: hubPath(), waitMs: 1000, retryMs: 200,
      portsOf: (u) => localPorts.get(u) ?? [],
    });
    client.start();
  });

  after(async () => {
    await client?.stop();
    await napi?.close();
    await lab?.cleanup();
  });

  it('without a firewall everything is reachable; enabling it blocks inbound by default', async () => {
    assert.deepEqual(await reach('web', [['db', 5432]]), ['db:5432 open']);
    await register('db', { owner_uuid: OWNER_A, tags: { role: 'db' }, firewall_enabled: true });
    await register('web', { owner_uuid: OWNER_A, tags: { role: 'web' }, firewall_enabled: true });
    await register('other', { owner_uuid: OWNER_B, tags: { role: 'web' }, firewall_enabled: true });
    await settle();
    assert.deepEqual(await reach('web', [['db', 5432], ['db', 22]]), ['db:5432 blocked', 'db:22 blocked']);
    // Outbound is allowed by default: db (firewalled) reaches out (no firewall).
    assert.deepEqual(await reach('db', [['out', 22]]), ['out:22 open']);
  });

  let webToDb = '';
  it('an allowed port passes, other ports stay blocked, other owners are isolated (v4 and v6)', async () => {
    webToDb = await rule('FROM tag role = web TO tag role = db ALLOW tcp PORT 5432', OWNER_A);
    await settle();
    assert.deepEqual(await reach('web', [['db', 5432], ['db', 22], ['db', 80]]), ['db:5432 open', 'db:22 blocked', 'db:80 blocked']);
    assert.deepEqual(await reach('web', [['db', 5432], ['db', 22]], 'v6'), ['db:5432 open', 'db:22 blocked']);
    // 'other' has tag role=web but belongs to owner B: the owner-scoped rule does not match it.
    assert.deepEqual(await reach('other', [['db', 5432]]), ['db:5432 blocked']);
    // Replies pass back through web's firewall (stateful), so the connection completed above.
  });

  it('multicast listener discovery passes a default-blocked port (RFC 4890), like neighbour discovery', async () => {
    const db = insts.get('db')!;
    const out = insts.get('out')!;
    const dev = lab.name(`i${out.n}`);
    // Snooping would forward reports to multicast routers only: off, a report reaches every port.
    await lab.ip(hub, 'link', 'set', 'br0', 'type', 'bridge', 'mcast_snooping', '0');
    const reportsIn = async () => Number(/^Icmp6InType131\s+(\d+)/m.exec(await lab.exec(db.ns, 'cat', '/proc/net/snmp6'))?.[1] ?? 0);
    const before = await reportsIn();
    // An MLDv1 report goes to the group itself: out joins db's solicited-node group
    // (ff02::1:ff00:1, db has fd77::1) by taking an address ending in ::1.
    await lab.exec(out.ns, 'sysctl', '-qw', `net.ipv6.conf.${dev}.force_mld_version=1`);
    await lab.ip(out.ns, 'addr', 'add', 'fd78::1/64', 'dev', dev, 'nodad');
    try {
      let seen = before;
      for (let i = 0; i < 50 && seen === before; i++) {
        await new Promise((r) => setTimeout(r, 100));
        seen = await reportsIn();
      }
      assert.ok(seen > before, `db (firewalled, default policy) received out's MLD report (${before} -> ${seen})`);
      // The default policy still holds for everything else.
      assert.deepEqual(await reach('out', [['db', 22]]), ['db:22 blocked']);
    } finally {
      await lab.ip(out.ns, 'addr', 'del', 'fd78::1/64', 'dev', dev);
    }
  });

  it('priority decides; at equal priority inbound ALLOW beats BLOCK', async () => {
    await rule('FROM any TO tag role = db ALLOW tcp PORT 22');
    const tie = await rule('FROM ip 10.77.0.2 TO tag role = db BLOCK tcp PORT 22');
    await settle();
    assert.deepEqual(await reach('web', [['db', 22]]), ['db:22 open']);
    const res = await napi.call('PUT', `/rules/${tie}`, { rule: 'FROM ip 10.77.0.2 TO tag role = db BLOCK tcp PORT 22 PRIORITY 5' });
    assert.equal(res.status, 202);
    await settle();
    assert.deepEqual(await reach('web', [['db', 22]]), ['db:22 blocked']);
    assert.deepEqual(await reach('out', [['db', 22]]), ['db:22 open']);
  });

  it('at equal priority outbound BLOCK beats ALLOW; a higher-priority ALLOW overrides', async () => {
    await rule('FROM any TO tag role = db ALLOW tcp PORT 80');
    await rule('FROM tag role = web TO any BLOCK tcp PORT 80', OWNER_A);
    await rule('FROM tag role = web TO any ALLOW tcp PORT 80', OWNER_A);
    await settle();
    assert.deepEqual(await reach('out', [['db', 80]]), ['db:80 open']);
    assert.deepEqual(await reach('web', [['db', 80]]), ['db:80 blocked']);
    await rule('FROM tag role = web TO tag role = db ALLOW tcp PORT 80 PRIORITY 1', OWNER_A);
    await settle();
    assert.deepEqual(await reach('web', [['db', 80]]), ['db:80 open']);
    assert.deepEqual(await reach('web', [['out', 80]]), ['out:80 blocked']);
  });

  it('an instance that flushes every nftables table in its own namespace is still blocked as its rules say', async () => {
    const before = [await reach('web', [['out', 80], ['db', 22], ['db', 80]]), await reach('other', [['db', 5432]])];
    assert.deepEqual(before, [['out:80 blocked', 'db:22 blocked', 'db:80 open'], ['db:5432 blocked']]);
    for (const name of ['web', 'db']) {
      await lab.exec(insts.get(name)!.ns, 'nft', 'flush', 'ruleset');
      assert.equal(await lab.exec(insts.get(name)!.ns, 'nft', 'list', 'ruleset'), '');
    }
    // Outbound (web's BLOCK tcp 80) and inbound (db's default and priority-5 BLOCK) still hold.
    assert.deepEqual([await reach('web', [['out', 80], ['db', 22], ['db', 80]]), await reach('other', [['db', 5432]])], before);
    assert.match(await listTable(insts.get('db')!), /chain inbound/);
  });

  it('tag rules follow tag changes', async () => {
    await register('web', { tags: { role: 'cache' } });
    await settle();
    assert.deepEqual(await reach('web', [['db', 5432]]), ['db:5432 blocked']);
    await register('web', { tags: { role: 'web' } });
    await settle();
    assert.deepEqual(await reach('web', [['db', 5432]]), ['db:5432 open']);
  });

  it('a rule change takes effect without restarting anything', async () => {
    const res = await napi.call('PUT', `/rules/${webToDb}`, { rule: 'FROM tag role = web TO tag role = db ALLOW tcp PORT 6000' });
    assert.equal(res.status, 202);
    await settle();
    assert.deepEqual(await reach('web', [['db', 6000], ['db', 5432]]), ['db:6000 open', 'db:5432 blocked']);
    const off = await napi.call('PUT', `/rules/${webToDb}`, { enabled: false });
    assert.equal(off.status, 202);
    await settle();
    assert.deepEqual(await reach('web', [['db', 6000]]), ['db:6000 blocked']);
  });

  it('docker: icc on lets the owner\'s containers talk; icc off only links on exposed ports; published ports from anyone', async () => {
    const post = async (name: string, body: Record<string, unknown>) => {
      const res = await napi.call('POST', `/fw/docker/containers/${insts.get(name)!.uuid}`, { owner_uuid: OWNER_C, ...body });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    };
    await post('cdb', { name: 'db', exposed_ports: ['5432/tcp'], icc: true, env: ['POSTGRES_DB=app', 'PATH=/bin'] });
    const web = await post('cweb', { name: 'web', links: ['db:db-main'], exposed_ports: ['80'], published_ports: ['80:80'] });
    await post('cmisc', { name: 'misc' });
    assert.ok(web.env.includes('DB_MAIN_PORT_5432_TCP=tcp://10.77.0.11:5432'), web.env.join('\n'));
    assert.ok(web.env.includes('DB_MAIN_ENV_POSTGRES_DB=app'));
    assert.ok(!web.env.some((e: string) => e.startsWith('DB_MAIN_ENV_PATH')));
    assert.deepEqual(web.hosts, ['10.77.0.11\tdb-main db']);
    await settle();
    assert.deepEqual(await reach('cmisc', [['cdb', 5432], ['cdb', 6000]]), ['cdb:5432 open', 'cdb:6000 open']);
    assert.deepEqual(await reach('cweb', [['cdb', 6000]]), ['cdb:6000 open']);
    // Another owner's instance reaches only the published port.
    assert.deepEqual(await reach('out', [['cweb', 80], ['cweb', 22], ['cdb', 5432]]), ['cweb:80 open', 'cweb:22 blocked', 'cdb:5432 blocked']);

    await post('cdb', { icc: false });
    await settle();
    assert.deepEqual(await reach('cweb', [['cdb', 5432], ['cdb', 6000]]), ['cdb:5432 open', 'cdb:6000 blocked']);
    assert.deepEqual(await reach('cmisc', [['cdb', 5432]]), ['cdb:5432 blocked']);
    assert.deepEqual(await reach('out', [['cweb', 80]]), ['cweb:80 open']);
  });

  it('link env and hosts follow the target\'s address', async () => {
    await putNic(napi.store, 11 * 2, { instance: vm(11), ip: '10.77.0.111', cn: NODE_1, owner: OWNER_C });
    const got = await napi.call('GET', `/fw/docker/containers/${vm(12)}`);
    assert.ok(got.body.env.includes('DB_MAIN_PORT_5432_TCP_ADDR=10.77.0.111'), got.body.env.join('\n'));
    assert.deepEqual(got.body.hosts, ['10.77.0.111\tdb-main db']);
    await putNic(napi.store, 11 * 2, { instance: vm(11), ip: '10.77.0.11', cn: NODE_1, owner: OWNER_C });
    await settle();
  });

  it('a ruleset nft rejects is reported and the previous one stays in force', async () => {
    const db = insts.get('db')!;
    const applier = new NftApplier();
    const path = hubPath();
    const before = await listTable(db);
    const empty = renderRuleset(db.uuid, null);
    // Shaped like a replacement of db's own table (the agent's check passes it), but nft refuses it.
    const bad = `${empty}table bridge ${tableName(db.uuid)} {\n\tchain input {\n\t\ttcp dport 70000 accept\n\t}\n}\n`;
    assert.equal(rulesetProblem(db.uuid, bad), undefined);
    const res = await applier.apply(db.uuid, path, bad);
    assert.equal(res.ok, false);
    assert.match(res.error ?? '', /70000|out of range|Error/);
    assert.equal(await listTable(db), before);
    const check = await checkRuleset(bad);
    assert.equal(check.ok, false);
    assert.ok((await checkRuleset(renderRuleset(db.uuid, napi.fwEngine.policy(db.uuid), [hostPortName(mac(2))]))).ok);
    // Traffic still follows the old ruleset.
    assert.deepEqual(await reach('out', [['db', 22]]), ['db:22 open']);
  });

  it('protect(): a workload the feed has no ruleset for yet gets the default policy on its ports, then its own', async () => {
    // A container about to get carrier (Docker's activate): the controller does not place it here yet.
    const late = await addInstance('late', 5);
    localPorts.set(late.uuid, [hostPortName(mac(10))]);
    assert.deepEqual(await reach('out', [['late', 22]]), ['late:22 open']);
    assert.equal(await client.protect(late.uuid), 'default');
    assert.deepEqual(await reach('out', [['late', 22]]), ['late:22 blocked']);
    assert.match(await listTable(late), /iifname "rv[0-9a-f]{12}" jump outbound/);
    assert.deepEqual(await reach('late', [['out', 22]]), ['out:22 open'], 'outbound allowed, its replies pass');
    await lab.exec(late.ns, 'nft', 'flush', 'ruleset');
    assert.deepEqual(await reach('out', [['late', 22]]), ['late:22 blocked'], 'out of the workload\'s reach');
    // Its compiled ruleset replaces the default once the controller places it here (role=db: tcp 22 and 80 from anyone).
    await register('late', { owner_uuid: OWNER_A, tags: { role: 'db' }, firewall_enabled: true });
    await putNic(napi.store, 10, { instance: late.uuid, ip: late.v4, cn: NODE_1, owner: OWNER_A });
    await settle();
    assert.deepEqual(await reach('out', [['late', 22], ['late', 5432]]), ['late:22 open', 'late:5432 blocked']);
  });

  it('disabling an instance\'s firewall removes its table', async () => {
    const db = insts.get('db')!;
    const installed = () => installedInstances(hubPath(), 'bridge');
    assert.ok((await installed()).includes(db.uuid));
    await register('db', { firewall_enabled: false });
    await settle();
    assert.ok(!(await installed()).includes(db.uuid));
    assert.deepEqual(await reach('other', [['db', 5432]]), ['db:5432 open']);
  });

  it('a table an older agent loaded inside an instance\'s namespace is found and removed (what an agent does at start)', async () => {
    const web = insts.get('web')!;
    const path = `/var/run/netns/${web.ns}`;
    const t = tableName(web.uuid);
    // What rhumb once loaded there: an inet table with an input hook dropping by default.
    assert.equal(await loadNft(path, `table inet ${t} {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;\n\t}\n}\n`), undefined);
    assert.deepEqual(await installedInstances(path, 'inet'), [web.uuid]);
    assert.deepEqual(await installedInstances(path, 'bridge'), [], 'the node-side tables are not in the instance');
    assert.equal(await loadNft(path, renderNetnsRemoval(web.uuid)), undefined);
    assert.deepEqual(await installedInstances(path, 'inet'), []);
    // Removing it again is a no-op, not an error (an agent restarted midway).
    assert.equal(await loadNft(path, renderNetnsRemoval(web.uuid)), undefined);
  });
});
