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
    // fwrule's test 'icmp: multiple types' (its input is already in its order).
    [`FROM any TO vm ${VM1} ALLOW icmp (TYPE 8 CODE 0 AND TYPE 11 CODE 0 AND TYPE 30)`,
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

// ---- ICMP type lists in fwrule's order (issue 18) ----
//
// fwrule sorts with Array.prototype.sort and a comparator that reads the first operand's
// arity for both: plain a -> by type alone; coded a, coded b -> by (type, code); coded a,
// plain b -> NaN, taken as "equal". The expected values below are fwrule 2.1.1's output.

test('icmp types: the issue\'s three rules get fwrule 2.1.1\'s canonical text', () => {
  const cases: Array<[string, string]> = [
    ['FROM any TO (vm b1d6e0a4-1111-4c2b-8d3e-5f6a7b8c9d0e or IP 10.48.172.91) allow icmp (TYPE 250 AND type 225 CODE 239)',
      'FROM any TO (ip 10.48.172.91 OR vm b1d6e0a4-1111-4c2b-8d3e-5f6a7b8c9d0e) ALLOW icmp (TYPE 250 AND TYPE 225 CODE 239)'],
    ['FROM any TO (vm b1d6e0a4-1111-4c2b-8d3e-5f6a7b8c9d0e or IP fd00::91) allow icmp6 (TYPE 241 and type 156 code 192)',
      'FROM any TO (ip fd00::91 OR vm b1d6e0a4-1111-4c2b-8d3e-5f6a7b8c9d0e) ALLOW icmp6 (TYPE 241 AND TYPE 156 CODE 192)'],
    ['FROM any TO (vm b1d6e0a4-1111-4c2b-8d3e-5f6a7b8c9d0e or IP 10.48.172.91) BLOCK icmp (TYPE 78 AND type 62 CODE 253)',
      'FROM any TO (ip 10.48.172.91 OR vm b1d6e0a4-1111-4c2b-8d3e-5f6a7b8c9d0e) BLOCK icmp (TYPE 78 AND TYPE 62 CODE 253)'],
  ];
  for (const [input, canonical] of cases) {
    assert.equal(canonicalize(input), canonical, input);
    assert.equal(canonicalize(canonical), canonical, 'the canonical text is a fixed point');
  }
  assert.deepEqual(parseRule(cases[0]![0]).protocol, { name: 'icmp', types: [{ type: 250 }, { type: 225, code: 239 }] });
});

test('icmp types: fwrule\'s own sorting tests, plain-only and coded-only lists, duplicates, all', () => {
  // fwrule test/rule.test.js 'sorting: icmp codes' and 'sorting: icmp6 codes'.
  for (const proto of ['icmp', 'icmp6']) {
    assert.equal(canonicalize(`FROM any TO vm ${VM1} ALLOW ${proto} (TYPE 8 CODE 0 AND TYPE 3 CODE 11 AND TYPE 40 AND TYPE 3 CODE 1 AND TYPE 30 AND TYPE 3 CODE 5)`),
      `FROM any TO vm ${VM1} ALLOW ${proto} (TYPE 3 CODE 1 AND TYPE 3 CODE 5 AND TYPE 3 CODE 11 AND TYPE 8 CODE 0 AND TYPE 30 AND TYPE 40)`);
  }
  // Only plain types, or only coded ones: sorted by (type, code), duplicates kept.
  assert.equal(canonicalize('FROM any TO all vms ALLOW icmp (TYPE 30 AND TYPE 8 AND TYPE 0 AND TYPE 8)'),
    'FROM any TO all vms ALLOW icmp (TYPE 0 AND TYPE 8 AND TYPE 8 AND TYPE 30)');
  assert.equal(canonicalize('FROM any TO all vms ALLOW icmp (TYPE 8 CODE 1 AND TYPE 3 CODE 4 AND TYPE 8 CODE 0 AND TYPE 3 CODE 4)'),
    'FROM any TO all vms ALLOW icmp (TYPE 3 CODE 4 AND TYPE 3 CODE 4 AND TYPE 8 CODE 0 AND TYPE 8 CODE 1)');
  // Mixed: a coded type never moves behind a plain one it met first (they compare equal that way round).
  assert.deepEqual(parseRule('FROM any TO all vms ALLOW icmp (TYPE 8 CODE 1 AND TYPE 3 AND TYPE 8)').protocol,
    { name: 'icmp', types: [{ type: 3 }, { type: 8, code: 1 }, { type: 8 }] });
  assert.equal(canonicalize('FROM any TO all vms ALLOW icmp (TYPE 8 CODE 0 AND TYPE 8 AND TYPE 0 CODE 255)'),
    'FROM any TO all vms ALLOW icmp (TYPE 8 CODE 0 AND TYPE 8 AND TYPE 0 CODE 255)');
  assert.equal(canonicalize(`FROM any TO vm ${VM1} ALLOW icmp (TYPE 30 AND TYPE 11 CODE 0 AND TYPE 8 CODE 0)`),
    `FROM any TO vm ${VM1} ALLOW icmp (TYPE 30 AND TYPE 8 CODE 0 AND TYPE 11 CODE 0)`);
  assert.equal(canonicalize('FROM any TO all vms ALLOW icmp (TYPE 5 AND TYPE 5 CODE 1 AND TYPE 5)'),
    'FROM any TO all vms ALLOW icmp (TYPE 5 AND TYPE 5 CODE 1 AND TYPE 5)');
  assert.equal(canonicalize('FROM any TO all vms ALLOW icmp (TYPE all)'), 'FROM any TO all vms ALLOW icmp TYPE all');
});

/**
 * The reference for generated lists, written from V8's Array.prototype.sort for arrays
 * shorter than 64 (TimSort: find the first run, reverse it if strictly descending, then
 * binary-insert the rest), with fwrule's comparator — i.e. what fwrule 2.1.1 computes
 * on Node >= 11. Independent of the implementation under test.
 */
function fwruleOrderReference(types: string[]): string[] {
  const cmp = (a: string, b: string): number => {
    const pa = a.split(':');
    const pb = b.split(':');
    const v = (Number(pa[0]) * 256 + (pa.length === 1 ? 0 : Number(pa[1]))) - (Number(pb[0]) * 256 + (pa.length === 1 ? 0 : Number(pb[1])));
    return Number.isNaN(v) ? 0 : v;
  };
  const arr = [...types];
  if (arr.length < 2) return arr;
  let run = 2;
  const descending = cmp(arr[1]!, arr[0]!) < 0;
  for (let i = 2; i < arr.length; i++) {
    const order = cmp(arr[i]!, arr[i - 1]!);
    if (descending ? order >= 0 : order < 0) break;
    run++;
  }
  if (descending) arr.splice(0, run, ...arr.slice(0, run).reverse());
  for (let start = run; start < arr.length; start++) {
    const pivot = arr[start]!;
    let left = 0;
    let right = start;
    while (left < right) {
      const mid = left + ((right - left) >> 1);
      if (cmp(pivot, arr[mid]!) < 0) right = mid;
      else left = mid + 1;
    }
    arr.splice(start, 1);
    arr.splice(left, 0, pivot);
  }
  return arr;
}

test('icmp types: 600 generated lists mixing plain and coded types get fwrule\'s order', () => {
  let seed = 0x18;
  const next = (n: number): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  const text = (t: string) => (t.includes(':') ? `TYPE ${t.split(':')[0]} CODE ${t.split(':')[1]}` : `TYPE ${t}`);
  let mixed = 0;
  for (let i = 0; i < 600; i++) {
    const n = 1 + next(24);
    // Small type ranges on some lists, so equal types (plain next to coded) are common.
    const typeRange = next(2) === 0 ? 6 : 256;
    const types: string[] = [];
    for (let k = 0; k < n; k++) {
      const t = next(typeRange);
      types.push(next(2) === 0 ? String(t) : `${t}:${next(typeRange === 6 ? 3 : 256)}`);
    }
    if (types.some((t) => t.includes(':')) && types.some((t) => !t.includes(':'))) mixed++;
    const proto = next(2) === 0 ? 'icmp' : 'icmp6';
    const list = types.length === 1 ? text(types[0]!) : `(${types.map(text).join(' AND ')})`;
    const input = `FROM any TO all vms ${next(2) === 0 ? 'ALLOW' : 'BLOCK'} ${proto} ${list}`;
    const want = fwruleOrderReference(types);
    const wantList = want.length === 1 ? text(want[0]!) : `(${want.map(text).join(' AND ')})`;
    const canonical = canonicalize(input);
    assert.equal(canonical, input.replace(list, wantList), input);
    assert.equal(canonicalize(canonical), canonical, `fixed point: ${canonical}`);
  }
  assert.ok(mixed > 200, `many lists mix plain and coded types (${mixed})`);
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
