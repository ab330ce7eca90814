import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FwRuleError, Lexer, tagUnescape, type Token } from '../../src/fw/lang/index.js';

function lexAll(text: string): Token[] {
  const lexer = new Lexer(text);
  const out: Token[] = [];
  for (;;) {
    const tok = lexer.next();
    out.push(tok);
    if (tok.type === 'EOF') return out;
  }
}
const types = (text: string) => lexAll(text).map((t) => t.type);

test('keywords lex in all-upper and all-lower form only', () => {
  const words = ['FROM', 'TO', 'IP', 'SUBNET', 'ANY', 'ALL', 'TAG', 'VM', 'VMS', 'OR', 'AND', 'BLOCK',
    'ALLOW', 'PORT', 'PORTS', 'TCP', 'UDP', 'ICMP', 'ICMP6', 'AH', 'ESP', 'TYPE', 'CODE', 'PRIORITY'];
  for (const w of words) {
    assert.deepEqual(types(w), [w, 'EOF'], w);
    assert.deepEqual(types(w.toLowerCase()), [w, 'EOF'], w.toLowerCase());
    const mixed = w[0] + w.slice(1).toLowerCase();
    if (mixed !== w) assert.deepEqual(types(mixed), ['WORD', 'EOF'], mixed);
  }
});

test('keywords need a word boundary, so vms/icmp6/ports are not split', () => {
  assert.deepEqual(types('vms icmp6 ports VMS'), ['VMS', 'ICMP6', 'PORTS', 'VMS', 'EOF']);
  assert.deepEqual(types('tomato ipsec'), ['WORD', 'WORD', 'EOF']);
});

test('first matching rule wins: keyword then "-" splits port-80, but some-tag is one WORD', () => {
  assert.deepEqual(types('port-80'), ['PORT', '-', 'WORD', 'EOF']);
  assert.deepEqual(types('vm-1'), ['VM', '-', 'WORD', 'EOF']);
  assert.deepEqual(types('some-tag foo-bar'), ['WORD', 'WORD', 'EOF']);
  assert.deepEqual(types('20-40'), ['WORD', 'EOF']);
  assert.deepEqual(types('20 - 40'), ['WORD', '-', 'WORD', 'EOF']);
});

test('punctuation tokens', () => {
  assert.deepEqual(types('( ) = , -'), ['(', ')', '=', ',', '-', 'EOF']);
});

test('addresses: IPv4, lowercase IPv6, CIDR suffix; uppercase IPv6 does not lex as an address', () => {
  assert.deepEqual(types('10.0.0.1 fe80::1 :: /24'), ['IPV4ADDR', 'IPV6ADDR', 'IPV6ADDR', 'CIDRSUFFIX', 'EOF']);
  assert.deepEqual(types('FE80::1').slice(0, 2), ['WORD', 'IPV6ADDR']);
  const v4 = lexAll('1.2.3.4/8');
  assert.deepEqual(v4.map((t) => t.text), ['1.2.3.4', '/8', '']);
});

test('strings are unescaped; the raw text keeps quotes and escapes', () => {
  const [tok] = lexAll('"a\\"b\\\\c\\/d\\(e\\)\\n\\t\\u00e9\\u000B"');
  assert.equal(tok.type, 'STRING');
  assert.equal(tok.value, 'a"b\\c/d(e)\n\té\u000b');
  assert.equal(tok.text, '"a\\"b\\\\c\\/d\\(e\\)\\n\\t\\u00e9\\u000B"');
  assert.deepEqual(types('"tag" "FROM" "1.2.3.4"'), ['STRING', 'STRING', 'STRING', 'EOF']);
});

test('tagUnescape handles every escape and rejects unknown ones', () => {
  assert.equal(tagUnescape('\\b\\f\\n\\r\\t\\/\\(\\)\\\\\\"\\u0041'), '\b\f\n\r\t/()\\"A');
  assert.throws(() => tagUnescape('\\x'), /Invalid escape sequence "\\x"!/);
});

test('end columns follow jison: cumulative on a line, restarting after a newline', () => {
  const toks = lexAll('FROM any\n  TO');
  assert.deepEqual(toks.map((t) => t.endColumn), [4, 8, 4, 4]);
  assert.deepEqual(toks.map((t) => t.offset), [0, 5, 11, 13]);
});

test('unmatched text raises fwrule\'s lexical error', () => {
  const lex = (text: string) => () => lexAll(text);
  assert.throws(lex('FROM ip 10.99.99.99.254 TO tag smartdc_role ALLOW tcp port 22'), {
    message: "Error at character 19: '.254 TO tag smartdc_', found: unexpected text",
  });
  // An invalid escape means the STRING rule does not match at all.
  assert.throws(lex('FROM any TO tag "a\\x" ALLOW'), {
    message: "Error at character 16: '\"a\\x\" ALLOW', found: unexpected text",
  });
});

test('lexical error position is jison\'s pastInput length: capped at "..." + 20 chars', () => {
  const text = 'FROM any TO tag aaaaaaaaaaaaaaaaaaaaaa $ ALLOW';
  try {
    lexAll(text);
    assert.fail('expected a lexical error');
  } catch (err) {
    assert.ok(err instanceof FwRuleError);
    assert.equal(err.message, "Error at character 23: '$ ALLOW', found: unexpected text");
    assert.equal(err.kind, 'lexical');
    assert.equal(err.field, 'rule');
    assert.equal(err.position, 23);
    assert.equal(err.offset, text.indexOf('$'));
  }
});

test('the quoted rest of a lexical error is at most 20 characters, newlines dropped', () => {
  assert.throws(() => lexAll('FROM @abc\ndefghijklmnopqrstuvwxyz'), {
    message: "Error at character 5: '@abcdefghijklmnopqr', found: unexpected text",
  });
});
