/**
 * Nothing a tenant writes reaches nft text (issue #13): rule text and tags full of nft and
 * shell metacharacters compile to a ruleset that `nft -c` accepts (as root) and that means
 * what the rule says (the peer's address in the rule's set, the port accepted), with none
 * of the hostile strings in it. The agent refuses, before nft runs, any text that is not
 * what the renderer makes for that instance.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { PolicyWorld, setName, tableName, uuidHex } from '../../src/fw/compile.js';
import { NftApplier } from '../../src/fw/applier.js';
import { checkRuleset, sharedChecker } from '../../src/fw/nft-check.js';
import { renderRuleset, rulesetProblem } from '../../src/fw/nft.js';
import { buildStoredRule, toPolicyRule } from '../../src/fw/registry.js';
import { OWNER_A, instance, ruid, vm } from '../helpers/fw-fixtures.js';
import { FW_INVALID } from '../../src/net/marks.js';

/** How the bridge tables spell the invalid-state mark bit. */
const invalidMark = `0x${FW_INVALID.toString(16).padStart(8, '0')}`;

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Strings an attacker would try: nft statements, shell substitutions, quotes, newlines. */
const HOSTILE = [
  '"; flush ruleset; #',
  '$(reboot)',
  '`id`',
  "a' b \" c",
  'x\ntable inet evil { chain c { type filter hook input priority 0; policy drop; } }',
  'include "/etc/shadow"',
  '} ; delete table inet rhumb_fw_0 ; {',
  '\\\\ \\" @set $var',
  'ünï©ødé ✓ \u0000\u001f',
  '{ 1.2.3.4, 5.6.7.8 }',
];

/** A string as an fwrule quoted string (JSON's escapes are the language's). */
const quoted = (s: string) => JSON.stringify(s);

after(() => sharedChecker().close?.());

describe('hostile rule text and tags', () => {
  for (const [i, s] of HOSTILE.entries()) {
    it(`tag ${JSON.stringify(s).slice(0, 40)} compiles to a valid ruleset that means the rule`, async () => {
      const stored = buildStoredRule({
        rule: `FROM tag ${quoted(s)} = ${quoted(s)} TO tag ${quoted(`db ${s}`)} ALLOW tcp PORT ${8000 + i}`,
        owner_uuid: OWNER_A,
        uuid: ruid(i + 1),
        enabled: true,
        description: s,
      });
      const rule = toPolicyRule(stored);
      const w = new PolicyWorld();
      w.upsertRule(rule);
      w.upsertInstance(instance(1, { tags: { [s]: s }, addresses: ['10.0.0.1'] }));
      w.upsertInstance(instance(2, { tags: { [`db ${s}`]: true }, addresses: ['10.0.0.2'] }));
      w.upsertInstance(instance(3, { tags: { [s]: 'other value' }, addresses: ['10.0.0.3'] }));
      const policy = w.compile(vm(2));
      assert.ok(policy);
      const text = renderRuleset(vm(2), policy);
      // No tenant string is in the text: only uuids, numbers and addresses are.
      for (const h of HOSTILE) assert.ok(!text.includes(h), `text contains ${JSON.stringify(h)}`);
      assert.equal(rulesetProblem(vm(2), text), undefined);
      // Intended meaning: inbound from exactly instance 1's address on the rule's port.
      const set = setName(ruid(i + 1), 'from', 'v4');
      assert.deepEqual(policy.sets.find((x) => x.name === set)?.elements, ['10.0.0.1']);
      assert.match(text, new RegExp(`ip saddr @${set} tcp dport ${8000 + i} accept comment "rule ${ruid(i + 1)}"`));
      if (isRoot) {
        const res = await checkRuleset(text);
        assert.equal(res.skipped, undefined, 'nft -c ran');
        assert.ok(res.ok, res.error);
      }
    });
  }

  it('the stored rule keeps the text exactly (round trip through the language)', () => {
    for (const s of HOSTILE) {
      const stored = buildStoredRule({ rule: `FROM tag ${quoted(s)} TO all vms ALLOW udp PORT 53`, owner_uuid: OWNER_A });
      const again = toPolicyRule(stored);
      assert.deepEqual(again.model.from.tags, [s]);
    }
  });
});

describe('what may reach nft names, and what the agent applies', () => {
  it('only UUIDs become table and set names', () => {
    assert.equal(tableName('10000000-0000-4000-8000-000000000001'), 'rhumb_fw_10000000000040008000000000000001');
    for (const bad of ['x; flush ruleset', '10000000-0000-4000-8000-00000000000g', '', '../etc']) {
      assert.throws(() => uuidHex(bad), /not a UUID/);
    }
  });

  it('every rendered ruleset passes the agent check; a foreign or tampered one does not', () => {
    const w = new PolicyWorld();
    w.upsertRule(toPolicyRule(buildStoredRule({ rule: 'FROM any TO all vms ALLOW icmp TYPE 8 CODE 0', owner_uuid: OWNER_A, uuid: ruid(99), enabled: true })));
    w.upsertInstance(instance(1, { addresses: ['10.0.0.1', 'fd00::1'] }));
    const t = tableName(vm(1));
    // The node-side table (bridge family), the only form an agent loads.
    const forms = [
      { family: 'bridge', good: renderRuleset(vm(1), w.compile(vm(1)), ['rv90b8d0000001']), other: renderRuleset(vm(2), w.compile(vm(1))), empty: renderRuleset(vm(1), null), line: `\t\tmeta mark & ${invalidMark} == ${invalidMark} drop`, policy: 'policy accept;' },
    ];
    // An inet table named for the instance (the in-namespace form rhumb no longer loads) is not one.
    assert.match(rulesetProblem(vm(1), `table inet ${t}\ndelete table inet ${t}\ntable inet ${t} {\n\tchain input {\n\t}\n}\n`) ?? '', /does not start by replacing table bridge/);
    for (const f of forms) {
      assert.equal(rulesetProblem(vm(1), f.good), undefined, f.family);
      assert.equal(rulesetProblem(vm(1), f.empty), undefined, f.family);
      const tampered = [
        f.other, // another instance's table
        f.good.replace(f.line, `${f.line}\n\tinclude "/etc/shadow"`),
        `${f.good}table inet rhumb_fw_other { }\n`,
        `${f.good}table bridge rhumb_fw_other { }\n`,
        f.good.replace(`table ${f.family} ${t} {`, 'flush ruleset\n' + `table ${f.family} ${t} {`),
        f.good.replace(f.policy, `${f.policy} $x`),
        `table ${f.family} ${t}\ndelete table ${f.family} ${t}\ndelete table inet filter\n`,
        // One family's header, the other's table.
        f.good.replace(`table ${f.family} ${t} {`, `table ${f.family === 'bridge' ? 'inet' : 'bridge'} ${t} {`),
      ];
      for (const text of tampered) {
        assert.notEqual(text, f.good, 'the tampering changed the text');
        assert.ok(rulesetProblem(vm(1), text), text);
      }
    }
  });

  it('the applier refuses a tampered ruleset without running nft', async () => {
    const applier = new NftApplier();
    const res = await applier.apply(vm(1), '/proc/1/ns/net', `table inet ${tableName(vm(1))}\ndelete table inet ${tableName(vm(1))}\nflush ruleset\n`);
    assert.equal(res.ok, false);
    assert.match(res.error ?? '', /^refused: /);
  });
});
