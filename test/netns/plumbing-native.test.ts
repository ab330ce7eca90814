/**
 * The native plumbing (src/dataplane/links.ts, nftables.ts; native/src/links.c) against the
 * real kernel, from a process inside a "node" namespace whose PATH is empty (so nothing
 * it does can start `ip` or `nft`): the kernel backend's vnet devices (a bridge, a vxlan
 * device in it), a veth whose instance end is born in the instance namespace, address,
 * routes and default route inside it, bridge port flags, traffic between two instances;
 * bad names and paths refused before anything is made; a namespace that vanishes half-way
 * leaves nothing behind; a link deleted without waiting for the end of its teardown
 * (delUnlisted); the gateway's addresses, table routes and rules (edgeApply); a device
 * group deleted in one request; nftables tables loaded in
 * one batch, and a batch the kernel refuses changes nothing.
 */
import assert from 'node:assert/strict';
import { writeFile, rm } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { NetnsLab, netnsSkipReason, underlayAddr } from '../helpers/netns.js';
import { type Rpc, startRpc } from '../helpers/rpc-child.js';

const skip = netnsSkipReason();
const FIXTURE = fileURLToPath(new URL('./plumbing-rpc.fixture.ts', import.meta.url));
const MAC_A = '02:00:5e:44:00:0a';
const MAC_B = '02:00:5e:44:00:0b';
const LOCAL = underlayAddr(0x4401);

interface IpLink {
  ifname: string;
  mtu: number;
  address?: string;
  master?: string;
  flags: string[];
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown>; info_slave_data?: Record<string, unknown> };
}

async function links(lab: NetnsLab, ns: string): Promise<IpLink[]> {
  return JSON.parse(await lab.ip(ns, '-d', '-j', 'link', 'show')) as IpLink[];
}

async function waitUntil(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('native plumbing: links, addresses, routes, nftables', { skip, timeout: 120_000 }, () => {
  const lab = new NetnsLab('npl');
  let node = '';
  let instA = '';
  let instB = '';
  let rpc: Rpc;

  before(async () => {
    node = await lab.addNetns('n');
    instA = await lab.addNetns('a');
    instB = await lab.addNetns('b');
    await lab.addVeth({ ns: node, name: 'ul0' }, { ns: await lab.addNetns('u'), name: 'ul0' });
    await lab.ip(node, 'addr', 'add', `${LOCAL}/24`, 'dev', 'ul0');
    await lab.ip(node, 'link', 'set', 'ul0', 'up');
    rpc = await startRpc(lab, node, FIXTURE);
  });

  after(async () => {
    await lab.cleanup();
    await rm(`/run/netns/${lab.prefix}-notns`, { force: true });
  });

  test("a vnet's bridge and its vxlan device (nolearning proxy l2miss l3miss), in one request each", async () => {
    const br = await rpc.call<number>('add', { kind: 'bridge', name: 'rbr77', mtu: 1450, up: true });
    const vx = await rpc.call<number>('add', {
      kind: 'vxlan', name: 'rvx77', mtu: 1450, master: 'rbr77', up: true, vxlan: { vni: 77, local: LOCAL, dev: 'ul0' },
    });
    assert.ok(br > 0 && vx > 0 && br !== vx);
    const l = await links(lab, node);
    const v = l.find((x) => x.ifname === 'rvx77')!;
    assert.equal(v.linkinfo?.info_kind, 'vxlan');
    const d = v.linkinfo!.info_data!;
    assert.equal(d.id, 77);
    assert.equal(d.port, 4789);
    assert.equal(d.local, LOCAL);
    assert.equal(d.link, 'ul0');
    assert.equal(d.learning, false);
    assert.equal(d.proxy, true);
    assert.equal(d.l2miss, true);
    assert.equal(d.l3miss, true);
    assert.equal(v.master, 'rbr77');
    assert.equal(v.mtu, 1450);
    assert.ok(v.flags.includes('UP'));
    assert.ok(l.find((x) => x.ifname === 'rbr77')!.flags.includes('UP'));
    const listed = await rpc.call<Array<{ name: string; kind?: string; vni?: number; master?: string }>>('list');
    assert.deepEqual(
      listed.filter((x) => x.name === 'rvx77').map((x) => ({ kind: x.kind, vni: x.vni, master: x.master })),
      [{ kind: 'vxlan', vni: 77, master: 'rbr77' }],
    );
    const addrs = await rpc.call<Array<{ ifname: string; address: string; prefix: number }>>('addresses');
    assert.ok(addrs.some((a) => a.ifname === 'ul0' && a.address === LOCAL && a.prefix === 24));
    const again = await rpc.fails('add', { kind: 'bridge', name: 'rbr77' });
    assert.equal(again.code, 'EEXIST');
  });

  test('veths whose instance ends are born in the instance namespaces, configured there; traffic flows', async () => {
    for (const [ns, mac, host, ip] of [
      [instA, MAC_A, 'rv02005e44000a', '10.44.0.10'],
      [instB, MAC_B, 'rv02005e44000b', '10.44.0.11'],
    ] as const) {
      await rpc.call('add', { kind: 'veth', name: host, mtu: 1450, peer: { name: 'eth0', mtu: 1450, mac, netns: `/run/netns/${ns}` } });
      assert.ok(!(await links(lab, node)).some((x) => x.ifname === 'eth0'), 'the instance end never appears in the node namespace');
      await rpc.call('configureNetns', `/run/netns/${ns}`, {
        ifname: 'eth0',
        address: { ip, prefix: 24 },
        routes: [{ dst: '10.45.0.0/16', via: '10.44.0.1' }, { dst: '10.46.0.7/32' }],
        gateway: '10.44.0.1',
      });
      await rpc.call('set', host, { master: 'rbr77', up: true });
    }
    const eth = (await links(lab, instA)).find((x) => x.ifname === 'eth0')!;
    assert.equal(eth.address, MAC_A);
    assert.equal(eth.mtu, 1450);
    assert.ok(eth.flags.includes('UP'));
    assert.ok((await links(lab, instA)).find((x) => x.ifname === 'lo')!.flags.includes('UP'));
    const addr = JSON.parse(await lab.ip(instA, '-j', 'addr', 'show', 'dev', 'eth0')) as Array<{ addr_info: Array<{ local: string; prefixlen: number; family: string }> }>;
    assert.ok(addr[0]!.addr_info.some((a) => a.family === 'inet' && a.local === '10.44.0.10' && a.prefixlen === 24));
    const routes = JSON.parse(await lab.ip(instA, '-j', 'route', 'show')) as Array<{ dst: string; gateway?: string; dev: string; scope?: string }>;
    assert.ok(routes.some((r) => r.dst === 'default' && r.gateway === '10.44.0.1' && r.dev === 'eth0'));
    assert.ok(routes.some((r) => r.dst === '10.45.0.0/16' && r.gateway === '10.44.0.1'));
    assert.ok(routes.some((r) => r.dst === '10.46.0.7' && r.scope === 'link' && !r.gateway));
    const host = (await links(lab, node)).find((x) => x.ifname === 'rv02005e44000a')!;
    assert.equal(host.master, 'rbr77');
    await lab.exec(instA, 'ping', '-c', '1', '-W', '2', '10.44.0.11');
  });

  test('bridge port flags', async () => {
    await rpc.call('bridgePort', 'rv02005e44000b', { learning: false, flood: false });
    let port = (await links(lab, node)).find((x) => x.ifname === 'rv02005e44000b')!;
    assert.equal(port.linkinfo?.info_slave_data?.learning, false);
    assert.equal(port.linkinfo?.info_slave_data?.flood, false);
    await rpc.call('bridgePort', 'rv02005e44000b', { learning: true });
    port = (await links(lab, node)).find((x) => x.ifname === 'rv02005e44000b')!;
    assert.equal(port.linkinfo?.info_slave_data?.learning, true);
    assert.equal(port.linkinfo?.info_slave_data?.flood, false, 'a flag not named is left as it was');
  });

  test('bad names, paths and addresses are refused before anything is made', async () => {
    const before = (await links(lab, node)).map((l) => l.ifname).sort();
    const cases: Array<[string, unknown[]]> = [
      ['add', [{ kind: 'bridge', name: 'has space' }]],
      ['add', [{ kind: 'bridge', name: 'x;reboot' }]],
      ['add', [{ kind: 'bridge', name: 'sixteen-chars-xx' }]],
      ['add', [{ kind: 'bridge', name: '-lead' }]],
      ['add', [{ kind: 'bridge', name: '..' }]],
      ['add', [{ kind: 'bridge', name: 'ok0', mtu: 20 }]],
      ['add', [{ kind: 'macvlan', name: 'ok0' }]],
      ['add', [{ kind: 'vxlan', name: 'ok0', vxlan: { vni: 1 << 24, local: LOCAL } }]],
      ['add', [{ kind: 'vxlan', name: 'ok0', vxlan: { vni: 5, local: '10.0.0.300' } }]],
      ['add', [{ kind: 'veth', name: 'ok0', peer: { name: 'eth0', mac: '01:00:5e:00:00:01' } }]],
      ['add', [{ kind: 'veth', name: 'ok0', peer: { name: 'eth0', netns: '/run/netns/../netns/x' } }]],
      ['add', [{ kind: 'veth', name: 'ok0', peer: { name: 'eth0', netns: '/tmp/x' } }]],
      ['add', [{ kind: 'veth', name: 'ok0', peer: { name: 'eth0', netns: '/proc/self/ns/net' } }]],
      ['add', [{ kind: 'veth', name: 'ok0', peer: { name: 'eth0', netns: '/run/netns/a\nb' } }]],
      ['configureNetns', ['/var/run/netns/', { ifname: 'eth0' }]],
      ['configureNetns', [`/run/netns/${instA}`, { ifname: 'eth0', routes: [{ dst: '10.0.0.0/33' }] }]],
      ['configureNetns', [`/run/netns/${instA}`, { ifname: 'eth0', gateway: 'fe80::1' }]],
      ['nftApply', ['table inet t {}', '/run/netns/x y']],
    ];
    for (const [op, args] of cases) {
      const err = await rpc.fails(op, ...args);
      assert.ok(['TypeError', 'RangeError'].includes(err.name ?? ''), `${op} ${JSON.stringify(args)}: ${err.name} ${err.message}`);
    }
    assert.deepEqual((await links(lab, node)).map((l) => l.ifname).sort(), before, 'nothing was made');
  });

  test('a namespace path that is not a network namespace, or not there: refused, nothing left', async () => {
    const fake = `/run/netns/${lab.prefix}-notns`;
    await writeFile(fake, 'not a namespace');
    const before = (await links(lab, node)).map((l) => l.ifname).sort();
    const notNs = await rpc.fails('add', { kind: 'veth', name: 'rvfake0', peer: { name: 'eth0', netns: fake } });
    assert.equal(notNs.code, 'EOPNOTSUPP', notNs.message);
    assert.match(notNs.message, /not a network namespace/);
    const absent = await rpc.fails('add', { kind: 'veth', name: 'rvfake0', peer: { name: 'eth0', netns: `/run/netns/${lab.prefix}-none` } });
    assert.equal(absent.code, 'ENOENT', absent.message);
    const cfg = await rpc.fails('configureNetns', `/run/netns/${lab.prefix}-none`, { ifname: 'eth0' });
    assert.equal(cfg.code, 'ENOENT');
    assert.deepEqual((await links(lab, node)).map((l) => l.ifname).sort(), before);
  });

  test('the instance namespace vanishes half-way: configuring fails, and the veth goes with the namespace', async () => {
    const gone = await lab.addNetns('g');
    await rpc.call('add', { kind: 'veth', name: 'rvgone0', mtu: 1450, peer: { name: 'eth0', netns: `/run/netns/${gone}` } });
    await lab.ip(null, 'netns', 'del', gone);
    const err = await rpc.fails('configureNetns', `/run/netns/${gone}`, { ifname: 'eth0', address: { ip: '10.44.0.99', prefix: 24 } });
    assert.equal(err.code, 'ENOENT', err.message);
    await waitUntil(async () => !(await links(lab, node)).some((l) => l.ifname === 'rvgone0'), 5000, 'the host end to go with the namespace');
    assert.equal(await rpc.call('del', 'rvgone0'), false, 'deleting what is gone says so');
  });

  test('links go: a veth takes its instance end along; deleting twice says false', async () => {
    assert.equal(await rpc.call('del', 'rv02005e44000b'), true);
    assert.ok(!(await links(lab, instB)).some((l) => l.ifname === 'eth0'), 'the instance end went with it');
    assert.equal(await rpc.call('del', 'rv02005e44000b'), false);
    await rpc.call('set', 'rv02005e44000a', { master: null });
    assert.equal((await links(lab, node)).find((l) => l.ifname === 'rv02005e44000a')!.master, undefined);
  });

  test('delUnlisted: the veth and its instance end are gone when it resolves (the name reusable at once); false when absent', async () => {
    const peer = { name: 'eth7', netns: `/run/netns/${instB}` };
    await rpc.call('add', { kind: 'veth', name: 'rvu1', peer });
    for (let i = 0; i < 5; i++) {
      assert.equal(await rpc.call('delUnlisted', 'rvu1'), true);
      const left = [...(await links(lab, node)), ...(await links(lab, instB))].map((l) => l.ifname);
      assert.ok(!left.includes('rvu1') && !left.includes('eth7'), left.join(' '));
      // Both names are free for the next veth straight away (the old teardown may still run).
      await rpc.call('add', { kind: 'veth', name: 'rvu1', peer });
    }
    assert.equal(await rpc.call('delUnlisted', 'rvu1'), true);
    assert.equal(await rpc.call('delUnlisted', 'rvu1'), false, 'absent: false, as del');
    assert.equal((await rpc.fails('delUnlisted', 'a/b')).name, 'TypeError', 'a bad name is refused before anything runs');
  });

  test('a device group goes in one request; devices outside it stay', async () => {
    await rpc.call('add', { kind: 'bridge', name: 'rbrg1', up: true, group: 0x72000101 });
    await rpc.call('add', { kind: 'vxlan', name: 'rvxg1', master: 'rbrg1', group: 0x72000101, vxlan: { vni: 257, local: LOCAL, dev: 'ul0' } });
    await rpc.call('add', { kind: 'veth', name: 'rvg1', master: 'rbrg1', group: 0x72000101, peer: { name: 'eth9', netns: `/run/netns/${instB}` } });
    await rpc.call('add', { kind: 'bridge', name: 'rbrg2', group: 0x72000102 });
    assert.equal(await rpc.call('delGroup', 0x72000101), true);
    const left = (await links(lab, node)).map((l) => l.ifname);
    assert.ok(!left.some((n) => ['rbrg1', 'rvxg1', 'rvg1'].includes(n)), left.join(' '));
    assert.ok(left.includes('rbrg2'));
    assert.ok(!(await links(lab, instB)).some((l) => l.ifname === 'eth9'), "the veth's instance end went too");
    assert.equal(await rpc.call('delGroup', 0x72000101), false, 'an empty group says so');
    assert.equal((await rpc.fails('delGroup', 0)).name, 'RangeError', 'the default group is never deleted wholesale');
    await rpc.call('del', 'rbrg2');
  });

  test("edgeApply: the gateway's addresses, table routes and fwmark rules (IPv4 and IPv6) as iproute2 would make them; deleting what is gone is fine", async () => {
    await rpc.call('add', { kind: 'bridge', name: 'rbre1', up: true });
    // The port carries IPv6 only once enabled (ports are made with it off on the agent; here the kernel default).
    const T = 1912602700;
    const ops = [
      { op: 'addr', add: true, dev: 'rbre1', address: '10.70.0.1', prefix: 24 },
      { op: 'addr', add: true, dev: 'rbre1', address: 'fd00:70::1', prefix: 64 },
      { op: 'route', add: true, dst: '10.70.0.0', prefix: 24, table: T, dev: 'rbre1', src: '10.70.0.1', mtu: 1300 },
      { op: 'route', add: true, dst: 'fd00:70::', prefix: 64, table: T, dev: 'rbre1', src: 'fd00:70::1' },
      { op: 'rule', add: true, family: 4, pref: 1100, mark: 0x72000070, mask: 0xfaffffff, table: T },
      { op: 'rule', add: true, family: 6, pref: 1100, mark: 0x72000070, mask: 0xfaffffff, table: T },
    ];
    await rpc.call('edgeApply', ops);
    // Twice: replacing routes and addresses, and a rule already there, change nothing and fail nothing.
    await rpc.call('edgeApply', ops);
    const addrs = await lab.ip(node, 'addr', 'show', 'dev', 'rbre1');
    assert.match(addrs, /inet 10\.70\.0\.1\/24 scope global noprefixroute rbre1/);
    assert.match(addrs, /inet6 fd00:70::1\/64 scope global nodad noprefixroute/);
    assert.doesNotMatch(await lab.ip(node, 'route', 'show', 'table', 'main'), /10\.70\.0\.0/, 'noprefixroute: no route in main');
    assert.match(await lab.ip(node, 'route', 'show', 'table', String(T)), /^10\.70\.0\.0\/24 dev rbre1 scope link src 10\.70\.0\.1 mtu 1300\s*$/m);
    assert.match(await lab.ip(node, '-6', 'route', 'show', 'table', String(T)), /fd00:70::\/64 dev rbre1 src fd00:70::1/);
    const rule = `1100:\tfrom all fwmark 0x72000070/0xfaffffff lookup ${T}`;
    assert.equal((await lab.ip(node, 'rule', 'show')).split('\n').filter((l) => l.trim() === rule).length, 1, 'one IPv4 rule');
    assert.equal((await lab.ip(node, '-6', 'rule', 'show')).split('\n').filter((l) => l.trim() === rule).length, 1, 'one IPv6 rule');
    const undo = ops.map((o) => ({ ...o, add: false })).reverse();
    await rpc.call('edgeApply', undo);
    // Again, now that all of it is gone: nothing to delete is no failure.
    await rpc.call('edgeApply', undo);
    assert.doesNotMatch(await lab.ip(node, 'addr', 'show', 'dev', 'rbre1'), /10\.70|fd00:70/);
    assert.doesNotMatch(await lab.ip(node, 'rule', 'show'), /0x72000070/);
    assert.doesNotMatch(await lab.ip(node, '-6', 'rule', 'show'), /0x72000070/);
    assert.equal((await lab.ip(node, 'route', 'show', 'table', String(T))).trim(), '');
    // The routes and addresses of a port that is deleted went with it: deleting them then is fine too.
    await rpc.call('edgeApply', ops);
    await rpc.call('del', 'rbre1');
    await rpc.call('edgeApply', undo);
    assert.doesNotMatch(await lab.ip(node, 'rule', 'show'), /0x72000070/);
  });

  test('edgeApply: bad input is refused before anything is sent; a refusal stops there, naming the change, and what came before stays', async () => {
    const T = 1912602701;
    const bad = [
      [{ op: 'addr', add: true, dev: 'rbre2', address: '10.71.0.1/24', prefix: 24 }],
      [{ op: 'addr', add: true, dev: 'a b', address: '10.71.0.1', prefix: 24 }],
      [{ op: 'route', add: true, dst: '10.71.0.0', prefix: 33, table: T, dev: 'rbre2' }],
      [{ op: 'route', add: true, dst: '10.71.0.0', prefix: 24, table: T, dev: 'rbre2', src: 'fd00::1' }],
      [{ op: 'rule', add: true, family: 5, pref: 1100, mark: 1, mask: 1, table: T }],
      [{ op: 'link', add: true }],
      'not an array',
    ];
    await rpc.call('add', { kind: 'bridge', name: 'rbre2', up: true });
    for (const b of bad) {
      const err = await rpc.fails('edgeApply', b);
      assert.match(err.name ?? '', /TypeError|RangeError/, `${JSON.stringify(b)}: ${err.message}`);
    }
    assert.doesNotMatch(await lab.ip(node, 'addr', 'show', 'dev', 'rbre2'), /10\.71/, 'nothing sent');
    const err = await rpc.fails('edgeApply', [
      { op: 'addr', add: true, dev: 'rbre2', address: '10.71.0.1', prefix: 24 },
      { op: 'route', add: true, dst: '10.71.0.0', prefix: 24, table: T, dev: 'rbre-none', src: '10.71.0.1' },
      { op: 'rule', add: true, family: 4, pref: 1100, mark: 0x72000071, mask: 0xfaffffff, table: T },
    ]);
    assert.match(err.message, /rbre-none/);
    assert.match(await lab.ip(node, 'addr', 'show', 'dev', 'rbre2'), /10\.71\.0\.1\/24/, 'the change before the refused one stays');
    assert.doesNotMatch(await lab.ip(node, 'rule', 'show'), /0x72000071/, 'nothing after it was sent');
    await rpc.call('del', 'rbre2');
  });

  test('nftables: a table loaded in one batch, in the node or an instance namespace', async () => {
    const table = (v: number) => `table inet rhtest\ndelete table inet rhtest\ntable inet rhtest {\n  chain input {\n    type filter hook input priority filter; policy accept;\n    tcp dport ${v} drop\n  }\n}\n`;
    await rpc.call('nftApply', table(1001), `/run/netns/${instA}`);
    assert.match(await lab.exec(instA, 'nft', 'list', 'table', 'inet', 'rhtest'), /tcp dport 1001 drop/);
    assert.doesNotMatch(await lab.exec(node, 'nft', 'list', 'tables'), /rhtest/, 'only in the instance namespace');
    await rpc.call('nftApply', table(1002));
    assert.match(await lab.exec(node, 'nft', 'list', 'table', 'inet', 'rhtest'), /tcp dport 1002 drop/);
    assert.match(await rpc.call<string>('nftList', 'list tables', `/run/netns/${instA}`), /table inet rhtest/);
  });

  test('nftables: a batch the kernel refuses, or that does not parse, changes nothing', async () => {
    const before = await lab.exec(instA, 'nft', 'list', 'ruleset');
    // Replaces the table, adds another, then deletes a table that does not exist: the kernel refuses the batch.
    const refused = await rpc.fails(
      'nftApply',
      [
        'table inet rhtest',
        'delete table inet rhtest',
        'table inet rhtest {',
        '  chain input { type filter hook input priority filter; policy drop; }',
        '}',
        'table inet rhother {',
        '}',
        'delete table inet rhnosuch',
      ].join('\n'),
      `/run/netns/${instA}`,
    );
    assert.equal(refused.code, 'ERR_NFT');
    assert.match(refused.message, /rhnosuch|No such file/);
    const parse = await rpc.fails('nftApply', 'table inet rhtest {\n  chain input { type filter hook input priority filter; policy drop; }\n  bogus\n}\n', `/run/netns/${instA}`);
    assert.equal(parse.code, 'ERR_NFT');
    assert.equal(await lab.exec(instA, 'nft', 'list', 'ruleset'), before, 'the old table stands, nothing else was added');
  });
});
