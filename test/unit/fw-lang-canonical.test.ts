import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  addressesOnSide, canonicalize, FwRuleError, instancesOnSide, instancesTouched, parseRule,
  quote, serialize, sideMatchesInstance, tagEscape, tagMatches, validateRule, type FwRule, type ParseOptions,
} from '../../src/fw/lang/index.js';

const VM1 = '9a343ca8-b42a-4a27-a9c5-800f57d1e8ed';
const VM2 = '518908b6-8299-466d-8ea5-20a0ceff63ec';

function modelRejects(text: string, message: string, opts: ParseOptions = {}): void {
  assert.throws(() => parseRule(text, opts), (err: unknown) => {
    assert.ok(err instanceof FwRuleError);
    assert.equal(err.message, message, text);
    assert.equal(err.field, 'rule');
    return true;
  });
}

test('fwrule examples: all target types, canonical order ip, subnet, tag, vm', () => {
  const text = `FROM (ip 192.168.1.1 OR vm ${VM1} OR tag tag1 OR subnet 192.168.2.0/24) `
    + `TO (ip 10.2.0.3 OR vm ${VM2} OR tag tag2 OR subnet 10.2.1.0/24) ALLOW tcp port 80`;
  const rule = parseRule(text);
  assert.deepEqual(rule.from, {
    wildcards: [], ips: ['192.168.1.1'], subnets: ['192.168.2.0/24'], tags: ['tag1'], vms: [VM1],
  });
  assert.equal(canonicalize(text),
    `FROM (ip 192.168.1.1 OR subnet 192.168.2.0/24 OR tag "tag1" OR vm ${VM1}) `
    + `TO (ip 10.2.0.3 OR subnet 10.2.1.0/24 OR tag "tag2" OR vm ${VM2}) ALLOW tcp PORT 80`);
});

test('fwrule examples: any, all vms, tags, multiple ports, icmp', () => {
  const pairs: [string, string][] = [
    [`FROM (ip 192.168.3.2 OR subnet 192.168.0.0/16 OR tag "tag3" OR vm ${VM1}) TO any ALLOW tcp PORT 80`,
      `FROM (ip 192.168.3.2 OR subnet 192.168.0.0/16 OR tag "tag3" OR vm ${VM1}) TO any ALLOW tcp PORT 80`],
    ['FROM ip 192.168.3.2 TO all vms ALLOW tcp PORT 80', 'FROM ip 192.168.3.2 TO all vms ALLOW tcp PORT 80'],
    ['FROM ip 1.2.3.4 TO tag some-tag ALLOW tcp PORT 80', 'FROM ip 1.2.3.4 TO tag "some-tag" ALLOW tcp PORT 80'],
    ['FROM ip 1.2.3.4 TO (tag hasOwnProperty OR tag some-tag) ALLOW tcp PORT 80',
      'FROM ip 1.2.3.4 TO (tag "hasOwnProperty" OR tag "some-tag") ALLOW tcp PORT 80'],
    ['FROM ip 10.88.88.1 TO tag "tag2" ALLOW tcp PORTS 1002, 1052',
      'FROM ip 10.88.88.1 TO tag "tag2" ALLOW tcp (PORT 1002 AND PORT 1052)'],
    [`FROM any TO vm ${VM1} ALLOW icmp TYPE 8 CODE 0`, `FROM any TO vm ${VM1} ALLOW icmp TYPE 8 CODE 0`],
    [`FROM any TO vm ${VM1} ALLOW icmp (TYPE 30 AND TYPE 11 CODE 0 AND TYPE 8 CODE 0)`,
      `FROM any TO vm ${VM1} ALLOW icmp (TYPE 8 CODE 0 AND TYPE 11 CODE 0 AND TYPE 30)`],
    // Notes §3.5 worked example
    ['FROM tag role = www TO tag role = db ALLOW tcp PORT 5432',
      'FROM tag "role" = "www" TO tag "role" = "db" ALLOW tcp PORT 5432'],
    ['FROM subnet 10.0.1.0/24 TO tag role = db BLOCK tcp PORT 22 PRIORITY 1',
      'FROM subnet 10.0.1.0/24 TO tag "role" = "db" BLOCK tcp PORT 22 PRIORITY 1'],
    // sdc-docker's rules (notes §4.1)
    ['FROM tag sdc_docker TO tag sdc_docker ALLOW tcp PORT all',
      'FROM tag "sdc_docker" TO tag "sdc_docker" ALLOW tcp PORT all'],
    [`FROM any TO vm ${VM1} ALLOW tcp PORTS 80, 8000-8080`, `FROM any TO vm ${VM1} ALLOW tcp PORTS 80, 8000 - 8080`],
  ];
  for (const [input, canonical] of pairs) assert.equal(canonicalize(input), canonical, input);
});

test('keywords: ACTION upper, protocol lower, everything else as fwrule prints it', () => {
  assert.equal(canonicalize('from ANY to ALL VMS block UDP port 53'), 'FROM any TO all vms BLOCK udp PORT 53');
  assert.equal(canonicalize('FROM any TO all vms allow ICMP6 type ALL'), 'FROM any TO all vms ALLOW icmp6 TYPE all');
  assert.equal(canonicalize('FROM (any) TO (all vms) ALLOW AH'), 'FROM any TO all vms ALLOW ah');
  assert.equal(canonicalize('FROM any TO all vms ALLOW esp PRIORITY 3'), 'FROM any TO all vms ALLOW esp PRIORITY 3');
  assert.equal(canonicalize('FROM any TO all vms ALLOW tcp (PORT ALL)'), 'FROM any TO all vms ALLOW tcp PORT all');
});

test('targets are deduplicated and sorted as strings within each kind', () => {
  assert.equal(
    canonicalize(`FROM (vm ${VM1} OR vm ${VM2} OR vm ${VM1} OR ip 10.0.0.2 OR ip 10.0.0.10 OR ip 10.0.0.2 `
      + 'OR subnet fd00::/64 OR subnet 10.0.0.0/8 OR ip fe80::1) TO all vms ALLOW tcp PORT 1'),
    'FROM (ip 10.0.0.10 OR ip 10.0.0.2 OR ip fe80::1 OR subnet 10.0.0.0/8 OR subnet fd00::/64 '
      + `OR vm ${VM2} OR vm ${VM1}) TO all vms ALLOW tcp PORT 1`);
  // A single target left after dedupe loses its parentheses.
  assert.equal(canonicalize('FROM (tag a OR tag a) TO all vms ALLOW tcp PORT 1'),
    'FROM tag "a" TO all vms ALLOW tcp PORT 1');
});

test('tags: sorted by name then value; a bare name subsumes its values', () => {
  assert.equal(
    canonicalize('FROM (tag b = 2 OR tag b = 10 OR tag a = x OR tag c OR tag c = y OR tag a = x) TO all vms ALLOW ah'),
    'FROM (tag "a" = "x" OR tag "b" = "10" OR tag "b" = "2" OR tag "c") TO all vms ALLOW ah');
  assert.deepEqual(parseRule('FROM (tag c = y OR tag c) TO all vms ALLOW ah').from.tags, ['c']);
});

test('IPv6 addresses are printed as typed (lowercase is all the lexer accepts)', () => {
  assert.equal(canonicalize('FROM ip 2001:0db8:0000::0001 TO all vms ALLOW tcp PORT 1'),
    'FROM ip 2001:0db8:0000::0001 TO all vms ALLOW tcp PORT 1');
});

test('tag quoting and escaping round-trips (fwrule\'s tag tables, abridged)', () => {
  // [spelling in the rule, canonical spelling, value]
  const rows: [string, string, string][] = [
    ['foo', '"foo"', 'foo'],
    ['"foo bar"', '"foo bar"', 'foo bar'],
    ['1', '"1"', '1'],
    ['"1.2.3.4"', '"1.2.3.4"', '1.2.3.4'],
    ['"10.0.0.0/8"', '"10.0.0.0/8"', '10.0.0.0/8'],
    ['"FROM"', '"FROM"', 'FROM'],
    ['"vms"', '"vms"', 'vms'],
    ['"a\\"b"', '"a\\"b"', 'a"b'],
    ['"a\\\\b"', '"a\\\\b"', 'a\\b'],
    ['"(x)"', '"\\(x\\)"', '(x)'],
    ['"\\(x\\)"', '"\\(x\\)"', '(x)'],
    ['"a\\/b"', '"a/b"', 'a/b'],
    ['"a/b"', '"a/b"', 'a/b'],
    ['"\\n\\t\\r\\b\\f"', '"\\n\\t\\r\\b\\f"', '\n\t\r\b\f'],
    ['"\\u0000\\u001f\\u007f"', '"\\u0000\\u001F\\u007F"', '\u0000\u001f\u007f'],
    ['"\\u000b\\u000B"', '"\\u000B\\u000B"', '\u000b\u000b'],
    ['"\u00a0"', '"\\u00A0"', '\u00a0'],
    ['"\\u2028\\u3000\\ufeff\\u0085"', '"\\u2028\\u3000\\uFEFF\\u0085"', '\u2028\u3000\ufeff\u0085'],
    ['"caf\u00e9 \u2603"', '"caf\u00e9 \u2603"', 'caf\u00e9 \u2603'],
    ['"!@#$%^&*[]{};:\'<>?"', '"!@#$%^&*[]{};:\'<>?"', '!@#$%^&*[]{};:\'<>?'],
    ['"a,b=c-d"', '"a,b=c-d"', 'a,b=c-d'],
  ];
  for (const [spelling, canonical, value] of rows) {
    const text = `FROM tag ${spelling} = ${spelling} TO tag ${spelling} = ${spelling} ALLOW tcp PORT 80`;
    const rule = parseRule(text);
    assert.deepEqual(rule.from.tags, [[value, value]], spelling);
    assert.deepEqual(rule.to.tags, [[value, value]], spelling);
    assert.equal(serializeOf(rule),
      `FROM tag ${canonical} = ${canonical} TO tag ${canonical} = ${canonical} ALLOW tcp PORT 80`, spelling);
    assert.equal(quote(value), canonical);
    assert.deepEqual(parseRule(serializeOf(rule)), rule, spelling);
  }
  assert.equal(tagEscape('plain'), 'plain');
});

const serializeOf = (rule: FwRule): string => serialize(rule);

test('ports: sorted by start, not deduplicated; any range switches to PORTS a - b', () => {
  const c = (p: string) => canonicalize(`FROM any TO all vms ALLOW tcp ${p}`).slice('FROM any TO all vms ALLOW tcp '.length);
  assert.equal(c('(PORT 443 AND PORT 80 AND PORT 80)'), '(PORT 80 AND PORT 80 AND PORT 443)');
  assert.equal(c('PORTS 50-50'), 'PORTS 50 - 50');
  assert.equal(c('PORTS 9000-9100, 22, 80 - 81'), 'PORTS 22, 80 - 81, 9000 - 9100');
  assert.equal(c('PORTS 443, 80'), '(PORT 80 AND PORT 443)');
  assert.equal(c('PORTS 5'), 'PORT 5');
  assert.deepEqual(parseRule('FROM any TO all vms ALLOW tcp PORTS 10-20, 5').protocol,
    { name: 'tcp', ports: [5, { start: 10, end: 20 }] });
});

test('icmp types: sorted by (type << 8) + code, a missing code counting as 0, stable', () => {
  assert.deepEqual(parseRule('FROM any TO all vms ALLOW icmp (TYPE 8 CODE 1 AND TYPE 3 AND TYPE 8)').protocol,
    { name: 'icmp', types: [{ type: 3 }, { type: 8 }, { type: 8, code: 1 }] });
  assert.equal(canonicalize('FROM any TO all vms ALLOW icmp (TYPE 8 CODE 0 AND TYPE 8 AND TYPE 0 CODE 255)'),
    'FROM any TO all vms ALLOW icmp (TYPE 0 CODE 255 AND TYPE 8 CODE 0 AND TYPE 8)');
});

test('PRIORITY 0 is dropped, leading zeros are not kept', () => {
  assert.equal(canonicalize('FROM any TO all vms ALLOW tcp PORT 1 PRIORITY 0'), 'FROM any TO all vms ALLOW tcp PORT 1');
  assert.equal(canonicalize('FROM any TO all vms ALLOW tcp PORT 1 PRIORITY 010'), 'FROM any TO all vms ALLOW tcp PORT 1 PRIORITY 10');
  assert.equal(parseRule('FROM any TO all vms ALLOW ah').priority, 0);
});

function nIPs(n: number): string {
  return '( ip ' + Array.from({ length: n }, (_, i) => `10.0.0.${i + 1}`).join(' OR ip ') + ' )';
}
function nPorts(n: number): string {
  return '( port ' + Array.from({ length: n }, (_, i) => `1${i}`).join(' AND port ') + ' )';
}
function nTypes(n: number): string {
  return '( type ' + Array.from({ length: n }, (_, i) => String(i)).join(' AND type ') + ' )';
}

test('limit: 24 targets per side, counted before deduplication', () => {
  assert.doesNotThrow(() => parseRule(`FROM ${nIPs(24)} TO all vms ALLOW TCP port 53`));
  modelRejects(`FROM ${nIPs(25)} TO all vms ALLOW TCP port 53`, 'maximum of 24 targets allowed per side');
  modelRejects(`FROM all vms TO ${nIPs(25)} BLOCK TCP port 53`, 'maximum of 24 targets allowed per side');
  const dupes = '(' + Array.from({ length: 25 }, () => 'tag a').join(' OR ') + ')';
  modelRejects(`FROM ${dupes} TO any ALLOW tcp PORT 1`, 'maximum of 24 targets allowed per side');
});

test('limit: 24 ports or types (8 before language v4)', () => {
  assert.doesNotThrow(() => parseRule(`FROM all vms TO ip 192.168.5.4 BLOCK TCP ${nPorts(24)}`));
  modelRejects(`FROM all vms TO ip 192.168.5.4 BLOCK TCP ${nPorts(25)}`, 'maximum of 24 ports allowed');
  modelRejects('FROM all vms TO ip 192.168.5.4 BLOCK tcp PORTS ' + Array.from({ length: 25 }, (_, i) => `${i + 1}`).join(', '),
    'maximum of 24 ports allowed');
  assert.doesNotThrow(() => parseRule(`FROM all vms TO ip 192.168.5.4 BLOCK ICMP ${nTypes(24)}`));
  modelRejects(`FROM all vms TO ip 192.168.5.4 BLOCK ICMP ${nTypes(25)}`, 'maximum of 24 types allowed');
  modelRejects(`FROM all vms TO ip 192.168.5.4 BLOCK TCP ${nPorts(9)}`, 'maximum of 8 ports allowed', { maxVersion: 3 });
  modelRejects(`FROM all vms TO ip 192.168.5.4 BLOCK ICMP ${nTypes(9)}`, 'maximum of 8 types allowed', { maxVersion: 3 });
  assert.doesNotThrow(() => parseRule(`FROM all vms TO ip 192.168.5.4 BLOCK TCP ${nPorts(8)}`, { maxVersion: 3 }));
  // The protocol limit is checked before the per-side limit and the VM check.
  modelRejects(`FROM ${nIPs(25)} TO any BLOCK TCP ${nPorts(25)}`, 'maximum of 24 ports allowed');
});

test('icmp and icmp6 rules may only name addresses of their family', () => {
  modelRejects('FROM ip fe80::1 TO all vms ALLOW icmp TYPE 8', 'rule affects ICMPv4 but contains a non-IPv4 address');
  modelRejects('FROM subnet fd00::/64 TO all vms ALLOW icmp TYPE 8', 'rule affects ICMPv4 but contains a non-IPv4 subnet');
  modelRejects('FROM ip 10.0.0.1 TO all vms ALLOW icmp6 TYPE 128', 'rule affects ICMPv6 but contains a non-IPv6 address');
  modelRejects('FROM subnet 10.0.0.0/8 TO all vms ALLOW icmp6 TYPE 128', 'rule affects ICMPv6 but contains a non-IPv6 subnet');
  // Addresses win over subnets when both are wrong.
  modelRejects('FROM (ip fe80::1 OR subnet fd00::/8) TO all vms ALLOW icmp TYPE 8', 'rule affects ICMPv4 but contains a non-IPv4 address');
  assert.doesNotThrow(() => parseRule('FROM (ip 10.0.0.1 OR subnet 10.0.0.0/8) TO all vms ALLOW icmp TYPE 8'));
  assert.doesNotThrow(() => parseRule('FROM ip fe80::1 TO all vms ALLOW tcp PORT 1'));
});

test('a rule must touch instances', () => {
  for (const text of [
    'FROM any TO any ALLOW TCP port 53',
    'FROM ip 10.8.0.1 TO subnet 10.9.0.0/16 ALLOW TCP port 53',
    'FROM ip 10.9.0.1 TO any ALLOW TCP port 53',
  ]) modelRejects(text, 'rule does not affect VMs');
  for (const text of ['FROM any TO all vms ALLOW ah', `FROM vm ${VM1} TO any ALLOW ah`, 'FROM any TO tag x ALLOW ah']) {
    assert.doesNotThrow(() => parseRule(text), text);
  }
});

test('validateRule: ok result carries the model and canonical text', () => {
  const res = validateRule('from tag "b" to (tag a OR ip 10.0.0.1) allow TCP ports 1-2 priority 0');
  assert.equal(res.ok, true);
  if (!res.ok) return;
  assert.equal(res.canonical, 'FROM tag "b" TO (ip 10.0.0.1 OR tag "a") ALLOW tcp PORTS 1 - 2');
  assert.equal(res.rule.priority, 0);
  assert.equal(res.parsed.priority, 0);
});

test('validateRule: errors are returned, not thrown; FWAPI defaults (subnet mask enforced)', () => {
  const bad = validateRule('FROM subnet 10.0.0.1/24 TO all vms ALLOW tcp PORT 1');
  assert.equal(bad.ok, false);
  if (bad.ok) return;
  assert.equal(bad.error.message, 'Subnet "10.0.0.1/24" is invalid (bits set to right of mask)');
  assert.equal(bad.error.field, 'rule');
  assert.equal(validateRule('FROM subnet 10.0.0.1/24 TO all vms ALLOW tcp PORT 1', { enforceSubnetMask: false }).ok, true);
  const old = validateRule('FROM any TO all vms ALLOW ah', { maxVersion: 3 });
  assert.equal(old.ok ? '' : old.error.message, 'The rule uses a feature (AH) newer than this API allows');
  for (const missing of [undefined, '', 42]) {
    const r = validateRule(missing);
    assert.equal(r.ok ? '' : r.error.message, 'No rule specified');
  }
  const syntax = validateRule('FROM');
  assert.equal(syntax.ok ? '' : syntax.error.kind, 'syntax');
});

test('helpers: which instances a rule touches, and the other side\'s addresses', () => {
  const rule = parseRule(`FROM (tag role = www OR vm ${VM2} OR ip 10.0.0.5 OR subnet 10.1.0.0/16) `
    + `TO (tag role = db OR tag role = www OR vm ${VM1}) ALLOW tcp PORT 5432`);
  assert.deepEqual(instancesTouched(rule), {
    allVMs: false, vms: [VM2, VM1], tags: [['role', 'db'], ['role', 'www']],
  });
  assert.deepEqual(instancesOnSide(rule.from), { allVMs: false, vms: [VM2], tags: [['role', 'www']] });
  assert.deepEqual(addressesOnSide(rule.from), { any: false, ips: ['10.0.0.5'], subnets: ['10.1.0.0/16'] });
  const anyRule = parseRule('FROM any TO all vms ALLOW tcp PORT 22');
  assert.deepEqual(addressesOnSide(anyRule.from), { any: true, ips: [], subnets: [] });
  assert.equal(instancesTouched(anyRule).allVMs, true);
  assert.equal(sideMatchesInstance(anyRule.to, { uuid: VM1 }), true);
  assert.equal(sideMatchesInstance(anyRule.from, { uuid: VM1 }), false);
  assert.equal(sideMatchesInstance(rule.to, { uuid: VM1 }), true);
  assert.equal(sideMatchesInstance(rule.to, { uuid: VM2, tags: { role: 'db' } }), true);
  assert.equal(sideMatchesInstance(rule.to, { uuid: VM2, tags: { role: 'cache' } }), false);
});

test('helpers: tag matching compares values as strings, bare names match any value', () => {
  assert.equal(tagMatches('role', { role: 'x' }), true);
  assert.equal(tagMatches('role', {}), false);
  assert.equal(tagMatches(['n', '1'], { n: 1 }), true);
  assert.equal(tagMatches(['flag', 'true'], { flag: true }), true);
  assert.equal(tagMatches(['n', '1'], { n: 2 }), false);
  assert.equal(tagMatches('toString', {}), false);
});
