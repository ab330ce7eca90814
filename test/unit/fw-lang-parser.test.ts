import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FwRuleError, parse, type ParsedRule, type ParseOptions } from '../../src/fw/lang/index.js';

const VM1 = '8a343ca8-b42a-4a27-a9c5-800f57d1e8ed';

function rejects(text: string, message: string, opts: ParseOptions = {}): void {
  assert.throws(() => parse(text, opts), (err: unknown) => {
    assert.ok(err instanceof FwRuleError, `not an FwRuleError: ${String(err)}`);
    assert.equal(err.message, message, text);
    assert.equal(err.field, 'rule');
    return true;
  });
}

test('basic rule: jison output shape', () => {
  assert.deepEqual(parse('FROM any TO tag foo ALLOW tcp PORT 80'), {
    from: [['wildcard', 'any']],
    to: [['tag', 'foo']],
    action: 'allow',
    protocol: { name: 'tcp', targets: [80] },
  } satisfies ParsedRule);
});

test('keywords are case-insensitive only as all-upper or all-lower', () => {
  const expected = parse('FROM any TO all vms ALLOW tcp PORT 80');
  for (const text of [
    'from any to all vms allow tcp port 80',
    'FROM ANY TO ALL VMS ALLOW TCP PORT 80',
    'from ANY TO all VMS allow TCP port 80',
  ]) assert.deepEqual(parse(text), expected, text);
  assert.deepEqual(parse('FROM any TO all vms block udp port 53').action, 'block');
  rejects('From any TO all vms ALLOW tcp PORT 80',
    "Error at character 0: 'From', expected: 'FROM', found: word");
  rejects('FROM any TO all vms Allow tcp PORT 80',
    "Error at character 19: 'Allow', expected: 'TO', 'BLOCK', 'ALLOW', found: word");
});

test('wildcards with and without parentheses', () => {
  for (const [side, target] of [
    ['any', ['wildcard', 'any']], ['(any)', ['wildcard', 'any']], ['( any )', ['wildcard', 'any']],
    ['all vms', ['wildcard', 'vmall']], ['(all vms)', ['wildcard', 'vmall']],
  ] as const) {
    assert.deepEqual(parse(`FROM ${side} TO vm ${VM1} ALLOW tcp PORT 1`).from, [target], side);
    assert.deepEqual(parse(`FROM vm ${VM1} TO ${side} ALLOW tcp PORT 1`).to, [target], side);
  }
});

test('every target kind, in written order, duplicates kept', () => {
  const p = parse(`FROM (ip 10.0.0.1 OR ip fe80::1 OR subnet 10.0.0.0/8 OR subnet fd00::/64 OR vm ${VM1} `
    + `OR tag a OR tag "b c" = "d" OR tag n = 1 OR tag a) TO all vms ALLOW tcp PORT 1`);
  assert.deepEqual(p.from, [
    ['ip', '10.0.0.1'], ['ip', 'fe80::1'], ['subnet', '10.0.0.0/8'], ['subnet', 'fd00::/64'],
    ['vm', VM1], ['tag', 'a'], ['tag', ['b c', 'd']], ['tag', ['n', '1']], ['tag', 'a'],
  ]);
});

test('tag names and values: quoted strings (keywords, IPs, unicode) or bare words', () => {
  const to = (t: string) => parse(`FROM any TO ${t} ALLOW tcp PORT 1`).to;
  assert.deepEqual(to('tag "FROM" = "1.2.3.4"'), [['tag', ['FROM', '1.2.3.4']]]);
  assert.deepEqual(to('tag "\\u00e9t\\u00e9" = "caf\u00e9"'), [['tag', ['été', 'café']]]);
  assert.deepEqual(to('tag role = www'), [['tag', ['role', 'www']]]);
  assert.deepEqual(to('tag some-tag'), [['tag', 'some-tag']]);
  assert.deepEqual(to('tag 42 = 0'), [['tag', ['42', '0']]]);
  // Escaped and literal spellings give the same value.
  assert.deepEqual(to('tag "\\u0041"'), to('tag "A"'));
});

test('unquoted keywords, IPs and CIDRs cannot be tag names or values', () => {
  rejects('FROM any TO tag from ALLOW tcp PORT 1',
    "Error at character 15: 'from', expected: 'WORD', 'STRING', found: FROM");
  rejects('FROM any TO tag a = 1.2.3.4 ALLOW tcp PORT 1',
    "Error at character 19: '1.2.3.4', expected: 'WORD', 'STRING', found: IPV4ADDR");
  rejects('FROM any TO tag port-80 ALLOW tcp PORT 80',
    "Error at character 15: 'port', expected: 'WORD', 'STRING', found: PORT");
});

test('tcp/udp port forms', () => {
  const targets = (p: string) => parse(`FROM any TO all vms ALLOW tcp ${p}`).protocol.targets;
  assert.deepEqual(targets('PORT 80'), [80]);
  assert.deepEqual(targets('PORT 080'), [80]);
  assert.deepEqual(targets('PORT all'), ['all']);
  assert.deepEqual(targets('(PORT ALL)'), ['all']);
  assert.deepEqual(targets('(PORT 80)'), [80]);
  assert.deepEqual(targets('(PORT 443 AND PORT 80 AND PORT 80)'), [443, 80, 80]);
  assert.deepEqual(targets('PORTS 1-3, 5 - 9, 11'), [{ start: 1, end: 3 }, { start: 5, end: 9 }, 11]);
  assert.deepEqual(targets('PORTS 50-50'), [{ start: 50, end: 50 }]);
  assert.deepEqual(targets('PORTS 22'), [22]);
  assert.deepEqual(parse('FROM any TO all vms BLOCK udp PORT 53').protocol, { name: 'udp', targets: [53] });
});

test('icmp/icmp6 type forms: number, "type:code" string, all', () => {
  const proto = (p: string) => parse(`FROM any TO all vms ALLOW ${p}`).protocol;
  assert.deepEqual(proto('icmp TYPE 8'), { name: 'icmp', targets: [8] });
  assert.deepEqual(proto('icmp TYPE 8 CODE 0'), { name: 'icmp', targets: ['8:0'] });
  assert.deepEqual(proto('icmp TYPE 010 CODE 00'), { name: 'icmp', targets: ['10:0'] });
  assert.deepEqual(proto('icmp TYPE all'), { name: 'icmp', targets: ['all'] });
  assert.deepEqual(proto('icmp (TYPE all)'), { name: 'icmp', targets: ['all'] });
  assert.deepEqual(proto('ICMP6 (TYPE 128 CODE 0 AND TYPE 1)'), { name: 'icmp6', targets: ['128:0', 1] });
});

test('ah and esp take no ports', () => {
  assert.deepEqual(parse('FROM any TO all vms ALLOW ah').protocol, { name: 'ah', targets: ['all'] });
  assert.deepEqual(parse('FROM any TO all vms ALLOW ESP').protocol, { name: 'esp', targets: ['all'] });
});

test('priority is present only when written', () => {
  assert.equal('priority' in parse('FROM any TO all vms ALLOW ah'), false);
  assert.equal(parse('FROM any TO all vms ALLOW ah PRIORITY 0').priority, 0);
  assert.equal(parse('FROM any TO all vms ALLOW ah priority 010').priority, 10);
  assert.equal(parse('FROM any TO all vms ALLOW tcp PORT 1 PRIORITY 100').priority, 100);
});

test('value errors: addresses', () => {
  const side = (t: string) => `FROM ${t} TO all vms ALLOW tcp PORT 1`;
  rejects(side('ip 999.1.1.1'), 'IPv4 address "999.1.1.1" is invalid');
  rejects(side('ip 0.0.0.0'), 'IPv4 address "0.0.0.0" is invalid');
  rejects(side('ip 255.255.255.255'), 'IPv4 address "255.255.255.255" is invalid');
  rejects(side('ip 01.2.3.4'), 'IPv4 address "01.2.3.4" is invalid');
  rejects(side('ip 1:2:3:4:5:6:7:8:9'), 'IPv6 address "1:2:3:4:5:6:7:8:9" is invalid');
  rejects(side('ip fe80:::1'), 'IPv6 address "fe80:::1" is invalid');
  rejects(side('subnet 10.8.0.0/33'), 'Subnet "10.8.0.0/33" is invalid (bad prefix length)');
  rejects(side('subnet 999.8.0.0/8'), 'Subnet "999.8.0.0/8" is invalid (bad address component)');
  rejects(side('subnet fe80::/129'), 'Subnet "fe80::/129" is invalid (bad prefix length)');
  rejects(side('subnet 1::2::3/64'), 'Subnet "1::2::3/64" is invalid (bad address component)');
  rejects(side('vm asdf'), 'UUID "asdf" is invalid');
  rejects(side(`vm ${VM1.toUpperCase()}`), `UUID "${VM1.toUpperCase()}" is invalid`);
});

test('enforceSubnetMask rejects host bits; without it they are accepted', () => {
  const text = 'FROM subnet 10.0.0.1/24 TO all vms ALLOW tcp PORT 1';
  assert.deepEqual(parse(text).from, [['subnet', '10.0.0.1/24']]);
  rejects(text, 'Subnet "10.0.0.1/24" is invalid (bits set to right of mask)', { enforceSubnetMask: true });
  rejects('FROM subnet fd00::1/64 TO all vms ALLOW tcp PORT 1',
    'Subnet "fd00::1/64" is invalid (bits set to right of mask)', { enforceSubnetMask: true });
  for (const ok of ['10.0.0.0/24', '0.0.0.0/0', '10.1.2.3/32', 'fd00::/64', '::/0']) {
    assert.deepEqual(parse(`FROM subnet ${ok} TO all vms ALLOW tcp PORT 1`, { enforceSubnetMask: true }).from,
      [['subnet', ok]]);
  }
});

test('value errors: ports, ranges, icmp types and codes, priority', () => {
  const proto = (p: string) => `FROM any TO all vms ALLOW ${p}`;
  rejects(proto('udp port 0'), 'Port number "0" is invalid');
  rejects(proto('udp port 65536'), 'Port number "65536" is invalid');
  rejects(proto('udp PORT abc'), 'Port number "abc" is invalid');
  rejects(proto('udp (PORT 1 AND PORT 70000)'), 'Port number "70000" is invalid');
  rejects(proto('tcp PORTS 0-5'), 'Port number "0" is invalid');
  rejects(proto('tcp PORTS 5-'), 'Port number "" is invalid');
  rejects(proto('tcp PORTS 1-2-3'), '"1-2-3" is not a valid port number or range');
  rejects(proto('tcp PORTS 30-20'), 'The end of the range (20) cannot be less than the start (30)');
  rejects(proto('tcp PORTS 10, 30 - 20'), 'The end of the range (20) cannot be less than the start (30)');
  rejects(proto('icmp TYPE 256'), 'ICMP type "256" is invalid');
  rejects(proto('icmp TYPE x'), 'ICMP type "x" is invalid');
  rejects(proto('icmp TYPE 3 CODE 256'), 'ICMP code "256" is invalid');
  rejects(proto('tcp PORT 1 PRIORITY 101'), 'Priority level "101" is invalid');
  rejects(proto('tcp PORT 1 PRIORITY 0101'), 'Priority level "0101" is invalid');
  rejects(proto('tcp PORT 1 PRIORITY high'), 'Priority level "high" is invalid');
  assert.equal(parse(proto('tcp PORT 65535')).protocol.targets[0], 65535);
  assert.equal(parse(proto('icmp TYPE 255 CODE 255')).protocol.targets[0], '255:255');
});

test('version gating names the feature', () => {
  const cases: [string, number, string][] = [
    ['FROM any TO all vms ALLOW tcp PORTS 1-2', 1, 'port ranges'],
    ['FROM ip fe80::1 TO all vms ALLOW tcp PORT 1', 2, 'IPv6'],
    ['FROM subnet fe80::/64 TO all vms ALLOW tcp PORT 1', 2, 'IPv6'],
    ['FROM any TO all vms ALLOW icmp6 TYPE 1', 2, 'IPv6'],
    ['FROM any TO all vms ALLOW icmp TYPE all', 2, 'all ICMP types'],
    ['FROM any TO all vms ALLOW tcp PORT 1 PRIORITY 1', 3, 'priority levels'],
    ['FROM any TO all vms ALLOW ah', 3, 'AH'],
    ['FROM any TO all vms ALLOW esp', 3, 'ESP'],
  ];
  for (const [text, tooOld, feature] of cases) {
    rejects(text, `The rule uses a feature (${feature}) newer than this API allows`, { maxVersion: tooOld });
    assert.doesNotThrow(() => parse(text, { maxVersion: tooOld + 1 }), text);
  }
  // maxVersion 0 means "current".
  assert.doesNotThrow(() => parse('FROM any TO all vms ALLOW ah', { maxVersion: 0 }));
  // Values are checked before the feature: the range is reduced before PORTS.
  rejects('FROM any TO all vms ALLOW tcp PORTS 0', 'Port number "0" is invalid', { maxVersion: 1 });
});

test('syntax errors: fwrule\'s own test cases (v4 grammar)', () => {
  rejects('FROM foo TO ip 8.8.8.8 ALLOW udp port 53',
    "Error at character 4: 'foo', expected: '(', 'all', 'any', 'ip', 'subnet', 'vm', 'tag', found: word");
  rejects('FROM (all vms OR tag one) TO ip 10.0.0.1 ALLOW udp port 53',
    "Error at character 13: 'OR', expected: ')', found: OR");
  rejects('FROM tag one TO (all vms OR tag two) ALLOW udp port 53',
    "Error at character 24: 'OR', expected: ')', found: OR");
  rejects('FROM (any OR tag one) TO ip 10.0.0.1 ALLOW udp port 53',
    "Error at character 9: 'OR', expected: ')', found: OR");
  rejects('FROM ip 10.0.0.1 TO (any OR tag one) ALLOW udp port 53',
    "Error at character 24: 'OR', expected: ')', found: OR");
  rejects('FROM ip 10.0.0.1 TO all vms ALLOW TCP (port ALL AND port 53)',
    "Error at character 47: 'AND', expected: 'EOF', 'PRIORITY', ')', found: AND");
  rejects('FROM ip 10.0.0.1 TO all vms ALLOW TCP (port 53 AND port ALL)',
    "Error at character 55: 'ALL', expected: 'WORD', found: ALL");
  rejects('invalid', "Error at character 0: 'invalid', expected: 'FROM', found: word");
});

test('syntax errors at end of input (fwrule 2.1.1 wording: found: EOF)', () => {
  rejects('', "Error at character 0: '', expected: 'FROM', found: EOF");
  rejects('   ', "Error at character 0: '', expected: 'FROM', found: EOF");
  rejects('FROM any TO tag a ALLOW tcp PORT',
    "Error at character 32: '', expected: 'WORD', 'all', found: EOF");
  rejects('FROM any TO tag a ALLOW icmp TYPE 8 CODE',
    "Error at character 40: '', expected: 'WORD', found: EOF");
  rejects('FROM any TO tag a ALLOW',
    "Error at character 23: '', expected: 'TCP', 'UDP', 'ICMP', 'ICMP6', 'AH', 'ESP', found: EOF");
  rejects('FROM (tag a OR tag b',
    "Error at character 20: '', expected: 'TO', ')', 'OR', '=', 'BLOCK', 'ALLOW', found: EOF");
});

test('syntax errors report the LALR state that detects them', () => {
  // After a target jison's merged follow set is listed, whatever the context.
  rejects('FROM ip 1.2.3.4 foo',
    "Error at character 15: 'foo', expected: 'TO', ')', 'OR', 'BLOCK', 'ALLOW', found: word");
  rejects('FROM tag a = b c',
    "Error at character 14: 'c', expected: 'TO', ')', 'OR', '=', 'BLOCK', 'ALLOW', found: word");
  rejects('FROM ip 1.2.3.4 )', "Error at character 15: ')', expected: 'TO', 'BLOCK', 'ALLOW', found: )");
  rejects('FROM tag a BLOCK tcp PORT 1', "Error at character 10: 'BLOCK', expected: 'TO', found: BLOCK");
  rejects('FROM any TO all vms TO', "Error at character 19: 'TO', expected: 'BLOCK', 'ALLOW', found: TO");
  rejects('FROM any OR tag a', "Error at character 8: 'OR', expected: 'TO', 'BLOCK', 'ALLOW', found: OR");
  rejects('FROM (tag a OR any) TO all vms ALLOW ah',
    "Error at character 14: 'any', expected: 'ip', 'subnet', 'vm', 'tag', found: ANY");
  rejects('FROM ( ) TO all vms ALLOW ah',
    "Error at character 6: ')', expected: 'all', 'any', 'ip', 'subnet', 'vm', 'tag', found: )");
  rejects('FROM all TO all vms ALLOW ah', "Error at character 8: 'TO', expected: 'VMS', found: TO");
  rejects('FROM ip FE80::1 TO all vms ALLOW ah',
    "Error at character 7: 'FE80', expected: 'IPV4ADDR', 'IPV6ADDR', found: word");
  rejects('FROM subnet 10.0.0.0 TO all vms ALLOW ah',
    "Error at character 20: 'TO', expected: 'CIDRSUFFIX', found: TO");
  rejects('FROM vm "x" TO all vms ALLOW ah', "Error at character 7: '\"x\"', expected: 'WORD', found: STRING");
  rejects('FROM any TO all vms ALLOW http',
    "Error at character 25: 'http', expected: 'TCP', 'UDP', 'ICMP', 'ICMP6', 'AH', 'ESP', found: word");
  rejects('FROM any TO all vms ALLOW tcp 80', "Error at character 29: '80', expected: '(', 'PORT', 'PORTS', found: word");
  rejects('FROM any TO all vms ALLOW tcp PORTS 1- 2',
    "Error at character 38: '2', expected: 'EOF', 'PRIORITY', '-', ',', found: word");
  rejects('FROM any TO all vms ALLOW tcp PORTS 1 - 2 3',
    "Error at character 41: '3', expected: 'EOF', 'PRIORITY', ',', found: word");
  rejects('FROM any TO all vms ALLOW tcp PORT 1 AND PORT 2',
    "Error at character 36: 'AND', expected: 'EOF', 'PRIORITY', found: AND");
  rejects('FROM any TO all vms ALLOW tcp (PORT 1 OR PORT 2)',
    "Error at character 37: 'OR', expected: 'EOF', 'PRIORITY', ')', 'AND', found: OR");
  rejects('FROM any TO all vms ALLOW tcp PORT 1 foo',
    "Error at character 36: 'foo', expected: 'EOF', 'PRIORITY', ')', 'AND', found: word");
  rejects('FROM any TO all vms ALLOW icmp TYPE 8 foo',
    "Error at character 37: 'foo', expected: 'EOF', 'PRIORITY', ')', 'AND', 'CODE', found: word");
  rejects('FROM any TO all vms ALLOW icmp (TYPE 8 AND TYPE all)',
    "Error at character 47: 'all', expected: 'WORD', found: ALL");
  rejects('FROM any TO all vms ALLOW icmp PORT 1', "Error at character 30: 'PORT', expected: '(', 'TYPE', found: PORT");
  rejects('FROM any TO all vms ALLOW ah PORT 1', "Error at character 28: 'PORT', expected: 'EOF', 'PRIORITY', found: PORT");
  rejects('FROM any TO all vms ALLOW ah PRIORITY 5 6', "Error at character 39: '6', expected: 'EOF', found: word");
});

test('syntax error details: position, offset, expected, found', () => {
  try {
    parse('FROM any\nTO foo');
    assert.fail('should throw');
  } catch (err) {
    assert.ok(err instanceof FwRuleError);
    // jison columns restart on each line.
    assert.equal(err.message,
      "Error at character 2: 'foo', expected: '(', 'all', 'any', 'ip', 'subnet', 'vm', 'tag', found: word");
    assert.equal(err.kind, 'syntax');
    assert.equal(err.position, 2);
    assert.equal(err.offset, 12);
    assert.deepEqual(err.expected, ['(', 'all', 'any', 'ip', 'subnet', 'vm', 'tag']);
    assert.equal(err.found, 'word');
  }
});

test('which error wins follows jison\'s reduction order', () => {
  // The token after the address is read (and accepted) before the address is checked...
  rejects('FROM ip 999.1.1.1 TO $', 'IPv4 address "999.1.1.1" is invalid');
  // ...so a bad following token wins over a bad address.
  // (lexical positions count the whitespace consumed before the bad text)
  rejects('FROM ip 999.1.1.1 $', "Error at character 18: '$', found: unexpected text");
  rejects('FROM ip 999.1.1.1 foo',
    "Error at character 17: 'foo', expected: 'TO', ')', 'OR', 'BLOCK', 'ALLOW', found: word");
  // PRIORITY's level is reduced without lookahead: checked before the next token is read.
  rejects('FROM any TO all vms ALLOW ah PRIORITY 101 $', 'Priority level "101" is invalid');
  // Port 0 in a list is reported before the syntax error further on.
  rejects('FROM any TO all vms ALLOW tcp (PORT 0 AND PORT x', 'Port number "0" is invalid');
});
