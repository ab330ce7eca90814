/**
 * The pure compiler: which entries each instance gets, in which order, with which peer
 * sets — one test per semantic rule of the spec — plus the nft text's shape, determinism
 * and incremental affected-instance computation.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeAddresses } from '../../src/fw/addr.js';
import { PolicyWorld, setName, tableName, uuidHex } from '../../src/fw/compile.js';
import {
  FLOW_LOG_GROUP, MARK_ESTABLISHED, MARK_INVALID, STATE_TABLE, nodeRulesetPorts, parseFlowLogPrefix, renderNetnsRemoval, renderRuleset, renderStateTable,
  publicationTableName, rulesetProblem, splitPublicationLinks, withNodePorts, withPublicationLinks,
} from '../../src/fw/nft.js';
import { NftApplier, defaultRuleset } from '../../src/fw/applier.js';
import { markHex } from '../../src/net/marks.js';
import type { CompiledPolicy, PolicyEntry } from '../../src/fw/types.js';
import { OWNER_A, OWNER_B, instance, policyRule, ruid, vm } from '../helpers/fw-fixtures.js';

function world(): PolicyWorld {
  const w = new PolicyWorld();
  w.upsertInstance(instance(1, { tags: { role: 'db' }, addresses: ['10.0.0.1', 'fd00::1'] }));
  w.upsertInstance(instance(2, { tags: { role: 'web' }, addresses: ['10.0.0.2'] }));
  w.upsertInstance(instance(3, { tags: { role: 'web' }, addresses: ['10.0.0.3'] }));
  w.upsertInstance(instance(4, { owner_uuid: OWNER_B, tags: { role: 'web' }, addresses: ['10.0.1.4'] }));
  w.upsertInstance(instance(5, { tags: { role: 'web' }, firewall_enabled: false, addresses: ['10.0.0.5'] }));
  return w;
}

function pol(w: PolicyWorld, n: number): CompiledPolicy {
  const p = w.compile(vm(n));
  assert.ok(p, `instance ${n} should have a policy`);
  return p;
}

function elements(p: CompiledPolicy, name: string | undefined): string[] {
  assert.ok(name, 'expected a set');
  return p.sets.find((s) => s.name === name)!.elements;
}

const brief = (e: PolicyEntry) => `${e.direction} ${e.action} p${e.priority} ${e.rule_uuid.slice(-2)}`;

describe('compiler semantics', () => {
  it('applies inbound to TO-side instances with FROM-side addresses, outbound to FROM-side ones', () => {
    const w = world();
    w.upsertRule(policyRule(ruid(1), 'FROM tag role = web TO tag role = db ALLOW tcp PORT 5432', { owner_uuid: OWNER_A }));
    const db = pol(w, 1);
    assert.equal(db.inbound.length, 1);
    assert.equal(db.outbound.length, 0);
    const e = db.inbound[0]!;
    assert.deepEqual([e.action, e.protocol, e.ports, e.noop], ['allow', 'tcp', [[5432, 5432]], false]);
    // Owner-scoped: instance 4 (owner B) is not in the set; 5 (firewall off) still is.
    assert.deepEqual(elements(db, e.peer.v4), ['10.0.0.2/31', '10.0.0.5']);
    assert.equal(e.peer.v6, undefined);
    const web = pol(w, 2);
    assert.equal(web.outbound.length, 1);
    assert.equal(web.outbound[0]!.noop, true, 'outbound ALLOW at priority 0 is what the default does');
    assert.deepEqual(elements(web, web.outbound[0]!.peer.v4), ['10.0.0.1']);
    assert.deepEqual(elements(web, web.outbound[0]!.peer.v6), ['fd00::1']);
  });

  it('owner-scoped rules never select another owner\'s instances; global rules select all', () => {
    const w = world();
    w.upsertRule(policyRule(ruid(1), 'FROM any TO tag role = web ALLOW tcp PORT 80', { owner_uuid: OWNER_A }));
    w.upsertRule(policyRule(ruid(2), 'FROM any TO tag role = web ALLOW tcp PORT 443'));
    assert.deepEqual(pol(w, 4).inbound.map((e) => e.rule_uuid), [ruid(2)]);
    assert.deepEqual(pol(w, 2).inbound.map((e) => e.rule_uuid), [ruid(1), ruid(2)]);
  });

  it('disabled rules and firewall-disabled instances produce nothing', () => {
    const w = world();
    w.upsertRule(policyRule(ruid(1), 'FROM any TO all vms ALLOW tcp PORT 22', { enabled: false }));
    assert.deepEqual(pol(w, 1).inbound, []);
    w.upsertRule(policyRule(ruid(1), 'FROM any TO all vms ALLOW tcp PORT 22'));
    assert.equal(pol(w, 1).inbound.length, 1);
    assert.equal(w.compile(vm(5)), null);
    assert.equal(w.compile(vm(99)), null);
    assert.equal(renderRuleset(vm(5), null), `table bridge ${tableName(vm(5))}\ndelete table bridge ${tableName(vm(5))}\n`);
    assert.equal(renderNetnsRemoval(vm(5)), `table inet ${tableName(vm(5))}\ndelete table inet ${tableName(vm(5))}\n`);
  });

  it('orders by priority, then inbound ALLOW before BLOCK and outbound BLOCK before ALLOW', () => {
    const w = world();
    w.upsertRule(policyRule(ruid(1), 'FROM any TO tag role = db BLOCK tcp PORT 22'));
    w.upsertRule(policyRule(ruid(2), 'FROM any TO tag role = db ALLOW tcp PORT 22'));
    w.upsertRule(policyRule(ruid(3), 'FROM any TO tag role = db BLOCK tcp PORT 22 PRIORITY 3'));
    w.upsertRule(policyRule(ruid(4), 'FROM tag role = db TO any ALLOW udp PORT 53'));
    w.upsertRule(policyRule(ruid(5), 'FROM tag role = db TO any BLOCK udp PORT 53'));
    w.upsertRule(policyRule(ruid(6), 'FROM tag role = db TO any ALLOW udp PORT 53 PRIORITY 100'));
    const db = pol(w, 1);
    assert.deepEqual(db.inbound.map(brief), ['in block p3 03', 'in allow p0 02', 'in block p0 01']);
    assert.deepEqual(db.outbound.map(brief), ['out allow p100 06', 'out block p0 05', 'out allow p0 04']);
    assert.deepEqual([db.inbound[2]!.noop, db.outbound[2]!.noop, db.outbound[0]!.noop], [true, true, false]);
  });

  it('tags with and without values, vm targets, all vms, any, ip and subnet', () => {
    const w = world();
    w.upsertInstance(instance(6, { tags: { role: 'db', n: 1 }, addresses: ['10.0.0.6'] }));
    w.upsertRule(policyRule(ruid(1), 'FROM (ip 192.168.1.1 OR subnet 192.168.2.0/24 OR ip fd00::9) TO tag role ALLOW tcp PORT 1'));
    w.upsertRule(policyRule(ruid(2), `FROM vm ${vm(2)} TO tag n = 1 ALLOW tcp PORT 2`));
    w.upsertRule(policyRule(ruid(3), 'FROM any TO all vms ALLOW tcp PORT 3'));
    w.upsertRule(policyRule(ruid(4), `FROM all vms TO vm ${vm(6)} ALLOW tcp PORT 4`));
    const p = pol(w, 6);
    const byRule = new Map(p.inbound.map((e) => [e.rule_uuid, e]));
    assert.deepEqual(elements(p, byRule.get(ruid(1))!.peer.v4), ['192.168.1.1', '192.168.2.0/24']);
    assert.deepEqual(elements(p, byRule.get(ruid(1))!.peer.v6), ['fd00::9']);
    assert.deepEqual(elements(p, byRule.get(ruid(2))!.peer.v4), ['10.0.0.2'], 'tag n = 1 matches the number 1');
    assert.equal(byRule.get(ruid(3))!.peer.any, true);
    assert.deepEqual(elements(p, byRule.get(ruid(4))!.peer.v4), ['10.0.0.1-10.0.0.3', '10.0.0.5-10.0.0.6', '10.0.1.4']);
    // Tag name only matches any value; instance 2 (role=web) also gets rule 1.
    assert.deepEqual(pol(w, 2).inbound.map((e) => e.rule_uuid), [ruid(1), ruid(3)]);
  });

  it('icmp uses only IPv4 peers and icmp6 only IPv6 ones; types and codes kept', () => {
    const w = world();
    w.upsertRule(policyRule(ruid(1), 'FROM tag role = db TO tag role = web ALLOW icmp (TYPE 8 CODE 0 AND TYPE 0)'));
    w.upsertRule(policyRule(ruid(2), 'FROM tag role = db TO tag role = web ALLOW icmp6 TYPE all'));
    const p = pol(w, 2);
    const [icmp, icmp6] = p.inbound;
    assert.deepEqual([icmp!.peer.v4 !== undefined, icmp!.peer.v6], [true, undefined]);
    assert.deepEqual([icmp6!.peer.v4, icmp6!.peer.v6 !== undefined], [undefined, true]);
    assert.deepEqual(icmp!.types, [{ type: 0 }, { type: 8, code: 0 }]);
    const text = renderRuleset(vm(2), p);
    assert.match(text, /ip saddr @\S+ icmp type 0 accept/);
    assert.match(text, /ip saddr @\S+ icmp type 8 icmp code 0 accept/);
    assert.match(text, /ip6 saddr @\S+ meta l4proto ipv6-icmp accept/);
  });

  it('ports: merged spans, ranges and PORT all; ah and esp', () => {
    const w = world();
    w.upsertRule(policyRule(ruid(1), 'FROM any TO tag role = db ALLOW tcp PORTS 20 - 30, 25, 31, 80'));
    w.upsertRule(policyRule(ruid(2), 'FROM any TO tag role = db ALLOW udp PORT all'));
    w.upsertRule(policyRule(ruid(3), 'FROM any TO tag role = db ALLOW ah'));
    w.upsertRule(policyRule(ruid(4), 'FROM any TO tag role = db ALLOW esp'));
    const p = pol(w, 1);
    assert.deepEqual(p.inbound.map((e) => e.ports ?? e.protocol), [[[20, 31], [80, 80]], 'all', 'ah', 'esp']);
    const text = renderRuleset(vm(1), p);
    for (const line of ['tcp dport { 20-31, 80 } accept', 'meta l4proto udp accept', 'meta l4proto ah accept', 'meta l4proto esp accept']) {
      assert.ok(text.includes(line), `missing: ${line}`);
    }
  });

  it('an empty other side produces no line; an unknown vm matches once it appears', () => {
    const w = world();
    w.upsertRule(policyRule(ruid(1), `FROM vm ${vm(7)} TO tag role = db ALLOW tcp PORT 9`));
    const p = pol(w, 1);
    assert.deepEqual([p.inbound.length, p.inbound[0]!.peer.v4, p.inbound[0]!.peer.v6], [1, undefined, undefined]);
    assert.ok(!renderRuleset(vm(1), p).includes('dport 9'));
    const affected = w.upsertInstance(instance(7, { addresses: ['10.9.9.9'] }));
    assert.deepEqual([...affected].sort(), [vm(1), vm(7)]);
    assert.match(renderRuleset(vm(1), pol(w, 1)), /tcp dport 9 accept/);
  });
});

describe('nft text', () => {
  const PORTS = ['rv90b8d0000002', 'rv90b8d0000001'];
  function twoRules(): PolicyWorld {
    const w = world();
    w.upsertRule(policyRule(ruid(1), 'FROM tag role = web TO tag role = db ALLOW tcp PORT 5432', { owner_uuid: OWNER_A, log: true }));
    w.upsertRule(policyRule(ruid(2), 'FROM tag role = db TO any BLOCK udp PORT 53 PRIORITY 2'));
    w.upsertRule(policyRule(ruid(3), 'FROM tag role = db TO any ALLOW tcp PORT 80 PRIORITY 1'));
    return w;
  }

  it('node-side form: a bridge table on the instance\'s ports, complete and atomic, with sets, defaults, state and comments', () => {
    const text = renderRuleset(vm(1), pol(twoRules(), 1), PORTS);
    const t = tableName(vm(1));
    const set = setName(ruid(1), 'from', 'v4');
    assert.ok(text.startsWith(`table bridge ${t}\ndelete table bridge ${t}\ntable bridge ${t} {\n`));
    assert.ok(text.includes(`\tset ${set} {\n\t\ttype ipv4_addr\n\t\tflags interval\n\t\telements = { 10.0.0.2/31, 10.0.0.5 }\n\t}`));
    // Frames from its ports meet its outbound chain, frames to them its inbound chain.
    const ports = '{ "rv90b8d0000001", "rv90b8d0000002" }';
    assert.ok(text.includes(`\tchain forward {\n\t\ttype filter hook forward priority 10; policy accept;\n\t\tiifname ${ports} jump outbound\n\t\toifname ${ports} jump inbound\n\t}`));
    assert.ok(text.includes(`\tchain input {\n\t\ttype filter hook input priority 10; policy accept;\n\t\tiifname ${ports} jump outbound\n\t}`));
    assert.ok(text.includes(`\tchain output {\n\t\ttype filter hook output priority 10; policy accept;\n\t\toifname ${ports} jump inbound\n\t}`));
    // Default inbound drop (the chain's last statement), outbound allow (falls through).
    assert.match(text, /\tchain inbound \{\n(?:\t\t.*\n)*\t\tdrop\n\t\}/);
    assert.ok(text.includes(`meta mark & ${markHex(MARK_ESTABLISHED)} == ${markHex(MARK_ESTABLISHED)} accept`));
    assert.ok(text.includes(`meta mark & ${markHex(MARK_INVALID)} == ${markHex(MARK_INVALID)} drop`));
    // A logged rule sends its matches to the node's NFLOG group, naming rule, action, direction and instance.
    const tag = `rfw ${uuidHex(ruid(1))} allow in ${uuidHex(vm(1))}`;
    assert.ok(text.includes(`ip saddr @${set} tcp dport 5432 log prefix "${tag}" group ${FLOW_LOG_GROUP} accept comment "rule ${ruid(1)}"`));
    assert.deepEqual(parseFlowLogPrefix(tag), { rule_uuid: ruid(1), action: 'allow', direction: 'in', instance: vm(1) });
    assert.equal(parseFlowLogPrefix(`${tag} x`), undefined);
    assert.equal(parseFlowLogPrefix('rhumb-fw 20000000 accept: '), undefined);
    assert.ok(text.includes(`udp dport 53 drop comment "rule ${ruid(2)} priority 2"`));
    // An outbound allow returns: a frame between two ports of the instance meets inbound too.
    assert.ok(text.includes(`tcp dport 80 return comment "rule ${ruid(3)} priority 1"`));
    assert.throws(() => renderRuleset(vm(1), pol(twoRules(), 1), ['rv"; flush ruleset']), /bad port name/);
  });

  it('node-side form, widened: the agent adds ports of NICs it plumbed before the controller\'s text names them', () => {
    const p = pol(twoRules(), 1);
    const one = renderRuleset(vm(1), p, ['rv90b8d0000001']);
    assert.deepEqual(nodeRulesetPorts(one), ['rv90b8d0000001']);
    // Same text as if the controller had rendered both ports; unchanged when it already names them.
    assert.equal(withNodePorts(one, ['rv90b8d0000002']), renderRuleset(vm(1), p, PORTS));
    assert.equal(withNodePorts(renderRuleset(vm(1), p, PORTS), ['rv90b8d0000001']), renderRuleset(vm(1), p, PORTS));
    // From a text with no ports yet (no dispatch at all), and a removal stays a removal.
    assert.equal(withNodePorts(renderRuleset(vm(1), p, []), PORTS), renderRuleset(vm(1), p, PORTS));
    assert.equal(withNodePorts(renderRuleset(vm(1), null), PORTS), renderRuleset(vm(1), null));
    assert.equal(rulesetProblem(vm(1), withNodePorts(one, ['rv90b8d0000002'])), undefined);
    assert.throws(() => withNodePorts(one, ['rv"; flush ruleset']), /bad port name/);
  });

  it('publication links (Docker -p, routed beside the ports): the same sets and inbound chain at postrouting, checked before loading', async () => {
    const p = pol(twoRules(), 1);
    const base = renderRuleset(vm(1), p, ['rv90b8d0000001']);
    const t = publicationTableName(vm(1));
    const text = withPublicationLinks(base, vm(1), ['rhp90b8d0000001']);
    assert.ok(text.startsWith(base), 'the controller\'s text comes first, unchanged');
    const extra = text.slice(base.length);
    assert.ok(extra.startsWith(`table inet ${t}\ndelete table inet ${t}\ntable inet ${t} {\n`));
    assert.ok(extra.includes('\t\ttype filter hook postrouting priority 10; policy accept;\n\t\toifname "rhp90b8d0000001" ct state established,related accept\n\t\toifname "rhp90b8d0000001" jump inbound\n'));
    const inbound = /\tchain inbound \{\n[^]*?\n\t\}\n/.exec(base)![0];
    assert.ok(extra.includes(inbound), 'the very inbound chain of the bridge table');
    assert.ok(extra.includes(`set ${setName(ruid(1), 'from', 'v4')} {`), 'with the sets it reads');
    assert.doesNotMatch(extra, /chain outbound/);
    assert.deepEqual(splitPublicationLinks(vm(1), text), { base, links: ['rhp90b8d0000001'] });
    // No links, or a removal: the second table is only removed.
    assert.equal(withPublicationLinks(base, vm(1), []), `${base}table inet ${t}\ndelete table inet ${t}\n`);
    assert.equal(withPublicationLinks(renderRuleset(vm(1), null), vm(1), ['rhp90b8d0000001']), `${renderRuleset(vm(1), null)}table inet ${t}\ndelete table inet ${t}\n`);
    assert.throws(() => withPublicationLinks(base, vm(1), ['rhp"; flush ruleset']), /bad port name/);
    // The agent loads nothing but what it renders: a tampered second table is refused before nft runs.
    const applier = new NftApplier();
    for (const bad of [
      base + extra.replace('jump inbound\n\t}\n', 'jump inbound\n\t\taccept\n\t}\n'),
      text.replace(`table inet ${t} {`, `table inet ${t} {\n\tchain x {\n\t}`),
      `${text}flush ruleset\n`,
      withPublicationLinks(base, vm(2), ['rhp90b8d0000001']),
    ]) {
      // A namespace that does not exist: were the text let through, nothing could load it anywhere.
      const r = await applier.apply(vm(1), '/nonexistent/rhumb-test-ns', bad);
      assert.equal(r.ok, false);
      assert.match(r.error!, /^refused: /);
    }
  });

  it('the default policy (before a compiled ruleset arrives) on the instance\'s ports', () => {
    const node = defaultRuleset(vm(1), ['rv90b8d0000001']);
    assert.ok(node.startsWith(`table bridge ${tableName(vm(1))}\n`));
    assert.ok(node.includes('iifname "rv90b8d0000001" jump outbound'));
    assert.match(node, /\tchain inbound \{\n(?:\t\t.*\n)*\t\tdrop\n\t\}/);
    // Node-side without ports it would filter nothing: refused.
    assert.throws(() => defaultRuleset(vm(1), []), /needs its ports/);
  });

  it('neighbour and multicast listener discovery pass both chains before any rule, even a priority-100 block of every ICMPv6 message', () => {
    const w = world();
    w.upsertRule(policyRule(ruid(1), 'FROM any TO all vms BLOCK icmp6 TYPE all PRIORITY 100'));
    w.upsertRule(policyRule(ruid(2), 'FROM all vms TO any BLOCK icmp6 TYPE all PRIORITY 100'));
    const text = renderRuleset(vm(1), pol(w, 1), ['rv90b8d0000001']);
    const chain = (name: string) => /\tchain \w+ \{\n((?:\t\t.*\n)*)\t\}/.exec(text.slice(text.indexOf(`\tchain ${name} {`)))![1]!.split('\n');
    const nd = 'icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert }';
    // Multicast listener discovery too, but only link-local (or from ::) with a hop limit of 1.
    const mld = 'ip6 saddr { ::, fe80::/10 } ip6 hoplimit 1 icmpv6 type { mld-listener-query, mld-listener-report, mld-listener-done, mld2-listener-report }';
    for (const [name, pass] of [['inbound', 'accept'], ['outbound', 'return']] as const) {
      const lines = chain(name);
      const ndAt = lines.indexOf(`\t\t${nd} ${pass}`);
      const mldAt = lines.indexOf(`\t\t${mld} ${pass}`);
      const blockAt = lines.findIndex((l) => l.includes('meta l4proto ipv6-icmp drop'));
      assert.ok(ndAt >= 0 && blockAt > ndAt, `${name}: neighbour discovery before the block\n${lines.join('\n')}`);
      assert.ok(mldAt >= 0 && blockAt > mldAt, `${name}: MLD before the block\n${lines.join('\n')}`);
    }
    // The default policy (no rule at all) lets it through as well.
    assert.ok(defaultRuleset(vm(1), ['rv90b8d0000001']).includes(`\t\t${nd} accept\n`));
  });

  it('the node-wide state table copies conntrack state into mark bits for the overlay\'s devices only', () => {
    const text = renderStateTable();
    assert.ok(text.startsWith(`table inet ${STATE_TABLE}\ndelete table inet ${STATE_TABLE}\n`));
    assert.ok(text.includes('iifgroup 0x72000000-0x72ffffff jump classify'));
    // In prerouting after the edge has set a routed packet's whole mark (priority mangle).
    assert.ok(text.includes('\t\ttype filter hook prerouting priority mangle + 10; policy accept;\n\t\tiifgroup'));
    assert.equal(text.match(/oifgroup 0x72000000-0x72ffffff jump classify/g)?.length, 2, 'routed into a bridge, and sent by the node');
    // Bits outside the edge's tag (0x72): its marks keep their meaning (../../src/net/marks.ts).
    assert.ok(text.includes('meta mark set meta mark & 0xfaffffff\n'));
    assert.ok(text.includes('ct state established,related meta mark set meta mark | 0x01000000'));
    assert.ok(text.includes('ct state invalid meta mark set meta mark | 0x04000000'));
    assert.equal((MARK_ESTABLISHED | MARK_INVALID) & 0x72ffffff, 0);
  });

  it('is deterministic whatever the insertion order', () => {
    const texts = ['FROM tag role = web TO tag role = db ALLOW tcp PORT 1', 'FROM any TO all vms ALLOW tcp PORT 2', 'FROM all vms TO tag role = web BLOCK udp PORT 3 PRIORITY 4'];
    const build = (order: number[]) => {
      const w = new PolicyWorld();
      const insts = [1, 2, 3].map((n) => instance(n, { tags: { role: n === 1 ? 'db' : 'web' }, addresses: [`10.0.0.${n}`] }));
      for (const i of order) {
        w.upsertRule(policyRule(ruid(i + 1), texts[i]!));
        w.upsertInstance(insts[i]!);
      }
      return [...w.compileAll()].map(([u, p]) => renderRuleset(u, p)).join('');
    };
    assert.equal(build([0, 1, 2]), build([2, 0, 1]));
    assert.equal(build([1, 2, 0]), build([2, 1, 0]));
  });
});

describe('incremental recompilation', () => {
  it('a rule change affects exactly the instances its sides select (old and new)', () => {
    const w = world();
    assert.deepEqual([...w.upsertRule(policyRule(ruid(1), 'FROM tag role = web TO tag role = db ALLOW tcp PORT 1', { owner_uuid: OWNER_A }))].sort(), [vm(1), vm(2), vm(3), vm(5)]);
    assert.deepEqual([...w.upsertRule(policyRule(ruid(1), `FROM any TO vm ${vm(3)} ALLOW tcp PORT 1`, { owner_uuid: OWNER_A }))].sort(), [vm(1), vm(2), vm(3), vm(5)]);
    assert.deepEqual([...w.upsertRule(policyRule(ruid(1), `FROM any TO vm ${vm(3)} ALLOW tcp PORT 2`, { owner_uuid: OWNER_A }))], [vm(3)]);
    assert.deepEqual([...w.deleteRule(ruid(1))], [vm(3)]);
  });

  it('an instance change affects itself and the other side of rules selecting it', () => {
    const w = world();
    w.upsertRule(policyRule(ruid(1), 'FROM tag role = web TO tag role = db ALLOW tcp PORT 1', { owner_uuid: OWNER_A }));
    w.upsertRule(policyRule(ruid(2), 'FROM any TO tag role = cache ALLOW tcp PORT 2'));
    // Instance 2's address change: db holds it in a set.
    assert.deepEqual([...w.upsertInstance(instance(2, { tags: { role: 'web' }, addresses: ['10.0.0.22'] }))].sort(), [vm(1), vm(2)]);
    assert.deepEqual(elements(pol(w, 1), pol(w, 1).inbound[0]!.peer.v4), ['10.0.0.3', '10.0.0.5', '10.0.0.22']);
    // Tag change web -> cache: db loses it, and it gains rule 2 (whose other side is any).
    assert.deepEqual([...w.upsertInstance(instance(2, { tags: { role: 'cache' }, addresses: ['10.0.0.22'] }))].sort(), [vm(1), vm(2)]);
    assert.deepEqual(pol(w, 2).inbound.map((e) => e.rule_uuid), [ruid(2)]);
    // An instance no rule selects affects only itself.
    assert.deepEqual([...w.upsertInstance(instance(8, { tags: { x: 'y' }, addresses: ['10.0.0.8'] }))], [vm(8)]);
    assert.deepEqual([...w.deleteInstance(vm(3))].sort(), [vm(1), vm(3)]);
  });

  it('incremental results equal a full recompile from scratch', () => {
    const w = world();
    w.upsertRule(policyRule(ruid(1), 'FROM tag role = web TO tag role = db ALLOW tcp PORT 1'));
    w.upsertRule(policyRule(ruid(2), 'FROM all vms TO tag role = web BLOCK tcp PORT 2 PRIORITY 1'));
    w.compileAll();
    w.upsertInstance(instance(3, { tags: { role: 'db' }, addresses: ['10.0.0.33'] }));
    w.upsertRule(policyRule(ruid(1), 'FROM tag role = web TO tag role = db ALLOW tcp PORT 11'));
    const fresh = new PolicyWorld();
    for (const n of [1, 2, 4, 5]) fresh.upsertInstance(w.getInstance(vm(n))!);
    fresh.upsertInstance(instance(3, { tags: { role: 'db' }, addresses: ['10.0.0.33'] }));
    for (const r of w.allRules()) fresh.upsertRule(r);
    assert.deepEqual(w.compileAll(), fresh.compileAll());
  });
});

describe('address sets', () => {
  it('merges overlapping and adjacent addresses and prints CIDRs where exact', () => {
    assert.deepEqual(mergeAddresses(['10.0.0.0/24', '10.0.0.5', '10.0.1.0', '10.0.1.1', '10.0.2.7', 'fd00::1', 'fd00::/127', '2001:db8::/32']), {
      v4: ['10.0.0.0-10.0.1.1', '10.0.2.7'],
      v6: ['2001:db8::/32', 'fd00::/127'],
    });
    assert.deepEqual(mergeAddresses(['10.0.0.1', '10.0.0.2', '10.0.0.3']).v4, ['10.0.0.1-10.0.0.3']);
  });
});
