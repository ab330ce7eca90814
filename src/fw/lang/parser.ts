/**
 * Recursive-descent parser for fwrule v4 that reproduces sdc-fwrule's jison
 * (LALR(1)) parser exactly, including its error behaviour:
 *
 * - A syntax error names the LALR state that detected it: the message lists
 *   that state's terminals (in jison's symbol order), so after e.g. `ip X` the
 *   list is the merged follow set `'TO', ')', 'OR', 'BLOCK', 'ALLOW'` whatever
 *   the context. Each `need()` below is one such state check, annotated with
 *   the jison state number.
 * - Value checks run when jison reduces, i.e. only after the following token
 *   has been read and accepted by the state, so `need()` precedes each check.
 * - "character N" is the end column of the last token shifted.
 */
import { FwRuleError, versionError } from './errors.js';
import { Lexer, type Token, type TokenType } from './lexer.js';
import type {
  ParsedIcmpTarget, ParsedProtocol, ParsedRule, ParsedTarget, ParseOptions, PortTarget,
} from './types.js';
import {
  checkIcmpCode, checkIcmpType, checkIPv4Address, checkIPv6Address, checkPort, checkPriority,
  checkRangeOrder, checkSubnet, checkUuid,
} from './values.js';

export const CURRENT_VERSION = 4;

/** jison's terminal numbers: expected lists are printed in this order. */
const TERMINAL_ORDER: Readonly<Record<TokenType, number>> = {
  FROM: 4, TO: 6, EOF: 9, PRIORITY: 10, WORD: 12, '(': 15, ')': 17, OR: 19, ALL: 26, VMS: 27,
  ANY: 28, IP: 29, IPV4ADDR: 30, SUBNET: 31, CIDRSUFFIX: 32, IPV6ADDR: 33, VM: 34, TAG: 36,
  '=': 38, STRING: 39, BLOCK: 40, ALLOW: 41, TCP: 42, UDP: 45, ICMP: 46, ICMP6: 48, AH: 49,
  ESP: 50, AND: 54, PORT: 55, PORTS: 57, '-': 60, ',': 61, TYPE: 65, CODE: 67,
};

/** fwrule's translateParserNames(): these quoted names, and bare WORD, are lower-cased. */
const LOWERCASED_EXPECTED: ReadonlySet<string> = new Set(['ALL', 'ANY', 'IP', 'SUBNET', 'TAG', 'VM']);

type StateSet = readonly TokenType[];
const set = (...types: TokenType[]): StateSet =>
  [...types].sort((a, b) => TERMINAL_ORDER[a] - TERMINAL_ORDER[b]);

// Terminal sets of the jison states that can detect an error (numbers = jison states).
const S_START = set('FROM'); // 0
const S_TARGETS = set('(', 'ALL', 'ANY', 'IP', 'SUBNET', 'VM', 'TAG'); // 2, 20
const S_PAREN_TARGETS = set('ALL', 'ANY', 'IP', 'SUBNET', 'VM', 'TAG'); // 6
const S_OR_TARGET = set('IP', 'SUBNET', 'VM', 'TAG'); // 37
const S_AFTER_FROM = set('TO'); // 3
const S_AFTER_TO = set('BLOCK', 'ALLOW'); // 35
const S_TARGET_LIST_END = set('TO', 'BLOCK', 'ALLOW'); // 4, 5, 7, 8, 25, 36, 38, 47
const S_TARGET_END = set('TO', ')', 'OR', 'BLOCK', 'ALLOW'); // 10-15, 26, 27, 33, 34, 40, 41, 48
const S_TAG_NAME_END = set('TO', ')', 'OR', '=', 'BLOCK', 'ALLOW'); // 30, 31, 32
const S_OR_LIST = set(')', 'OR'); // 21, 24, 46
const S_CLOSE = set(')'); // 22, 76, 85
const S_VMS = set('VMS'); // 9, 23
const S_ADDR = set('IPV4ADDR', 'IPV6ADDR'); // 16, 17
const S_CIDR = set('CIDRSUFFIX'); // 28, 29
const S_TAG_STRING = set('WORD', 'STRING'); // 18, 42
const S_WORD = set('WORD'); // 19, 57, 63, 94, 95, 99, 101, 105
const S_PROTOCOL = set('TCP', 'UDP', 'ICMP', 'ICMP6', 'AH', 'ESP'); // 43, 44, 45
const S_PORT_LIST = set('(', 'PORT', 'PORTS'); // 50, 51
const S_TYPE_LIST = set('(', 'TYPE'); // 52, 53
const S_END = set('EOF', 'PRIORITY'); // 49, 54, 55, 58, 59, 61, 62, 65-67, 69, 70, 72, 91, 93, 96, 98
const S_EOF = set('EOF'); // 73
const S_PORT = set('PORT'); // 60, 92
const S_PORT_VALUE = set('WORD', 'ALL'); // 64, 71
const S_PORT_NUMBER_END = set('EOF', 'PRIORITY', ')', 'AND'); // 81, 83, 106, 107
const S_ALL_END = set('EOF', 'PRIORITY', ')'); // 82, 88
const S_AND_LIST = set(')', 'AND'); // 75, 77, 84, 86, 100, 104
const S_RANGE_START_END = set('EOF', 'PRIORITY', '-', ','); // 80
const S_RANGE_END = set('EOF', 'PRIORITY', ','); // 78, 79, 102, 103
const S_TYPE = set('TYPE'); // 68, 97
const S_ICMP_TYPE_END = set('EOF', 'PRIORITY', ')', 'AND', 'CODE'); // 87, 89

class Parser {
  private readonly lexer: Lexer;
  private lookahead: Token | null = null;
  private lastColumn = 0;
  private readonly maxVersion: number;
  private readonly enforceSubnetMask: boolean;

  constructor(text: string, opts: ParseOptions) {
    this.lexer = new Lexer(text);
    this.maxVersion = opts.maxVersion || CURRENT_VERSION;
    this.enforceSubnetMask = !!opts.enforceSubnetMask;
  }

  private peek(): Token {
    if (this.lookahead === null) this.lookahead = this.lexer.next();
    return this.lookahead;
  }

  private is(type: TokenType): boolean {
    return this.peek().type === type;
  }

  /** One LALR state's check of the lookahead. */
  private need(state: StateSet): Token {
    const tok = this.peek();
    if (!state.includes(tok.type)) throw this.syntaxError(state, tok);
    return tok;
  }

  private shift(): Token {
    const tok = this.peek();
    this.lookahead = null;
    this.lastColumn = tok.endColumn;
    return tok;
  }

  private version(min: number, feature: string): void {
    if (min > this.maxVersion) throw versionError(feature);
  }

  private syntaxError(state: StateSet, tok: Token): FwRuleError {
    const expected = state.map((t) => (LOWERCASED_EXPECTED.has(t) ? t.toLowerCase() : t));
    const found = tok.type === 'WORD' ? 'word' : tok.type;
    const list = expected.map((e) => `'${e}'`).join(', ');
    return new FwRuleError(
      `Error at character ${this.lastColumn}: '${tok.text}', expected: ${list}, found: ${found}`,
      { kind: 'syntax', position: this.lastColumn, offset: tok.offset, expected, found },
    );
  }

  parse(): ParsedRule {
    this.need(S_START);
    this.shift();
    const from = this.targetList();
    this.need(S_AFTER_FROM);
    this.shift();
    const to = this.targetList();
    this.need(S_AFTER_TO);
    const action = this.shift().type === 'BLOCK' ? 'block' : 'allow';
    this.need(S_PROTOCOL);
    const protocol = this.protocol();
    this.need(S_END);
    if (this.shift().type === 'EOF') return { from, to, action, protocol };
    this.need(S_WORD);
    // State 74 reduces without reading ahead: the level is checked before the next token.
    const priority = checkPriority(this.shift().value);
    this.need(S_EOF);
    this.shift();
    this.version(4, 'priority levels');
    return { from, to, action, protocol, priority };
  }

  /** target_list; leaves the lookahead checked against the target-list end state. */
  private targetList(): ParsedTarget[] {
    const first = this.need(S_TARGETS);
    let targets: ParsedTarget[];
    if (first.type === 'ANY' || first.type === 'ALL') {
      targets = [this.wildcard()];
    } else if (first.type === '(') {
      this.shift();
      const inner = this.need(S_PAREN_TARGETS);
      if (inner.type === 'ANY' || inner.type === 'ALL') {
        const wildcard = this.wildcard(true);
        this.need(S_CLOSE);
        this.shift();
        targets = [wildcard];
      } else {
        targets = [this.target()];
        this.need(S_OR_LIST);
        while (this.is('OR')) {
          this.shift();
          this.need(S_OR_TARGET);
          targets.push(this.target());
          this.need(S_OR_LIST);
        }
        this.shift(); // ')'
      }
    } else {
      targets = [this.target()];
    }
    this.need(S_TARGET_LIST_END);
    return targets;
  }

  private wildcard(inParens = false): ParsedTarget {
    if (this.shift().type === 'ANY') {
      if (!inParens) this.need(S_TARGET_LIST_END);
      return ['wildcard', 'any'];
    }
    this.need(S_VMS);
    this.shift();
    if (!inParens) this.need(S_TARGET_LIST_END);
    return ['wildcard', 'vmall'];
  }

  private target(): ParsedTarget {
    const kw = this.shift();
    switch (kw.type) {
      case 'IP': {
        const addr = this.shift_(S_ADDR);
        this.need(S_TARGET_END);
        if (addr.type === 'IPV6ADDR') {
          this.version(3, 'IPv6');
          checkIPv6Address(addr.value);
        } else {
          checkIPv4Address(addr.value);
        }
        return ['ip', addr.value];
      }
      case 'SUBNET': {
        const addr = this.shift_(S_ADDR);
        const cidr = this.shift_(S_CIDR);
        this.need(S_TARGET_END);
        const subnet = addr.value + cidr.value;
        if (addr.type === 'IPV6ADDR') this.version(3, 'IPv6');
        checkSubnet(subnet, this.enforceSubnetMask);
        return ['subnet', subnet];
      }
      case 'VM': {
        const uuid = this.shift_(S_WORD);
        this.need(S_TARGET_END);
        checkUuid(uuid.value);
        return ['vm', uuid.value];
      }
      default: {
        // TAG
        const name = this.shift_(S_TAG_STRING).value;
        this.need(S_TAG_NAME_END);
        if (!this.is('=')) return ['tag', name];
        this.shift();
        const value = this.shift_(S_TAG_STRING).value;
        this.need(S_TAG_NAME_END); // the value token shares the name's state (31/32)
        this.need(S_TARGET_END);
        return ['tag', [name, value]];
      }
    }
  }

  /** need() then shift(). */
  private shift_(state: StateSet): Token {
    this.need(state);
    return this.shift();
  }

  private protocol(): ParsedProtocol {
    const proto = this.shift();
    switch (proto.type) {
      case 'TCP':
      case 'UDP': {
        const name = proto.type === 'TCP' ? 'tcp' : 'udp';
        const targets = this.portList();
        this.need(S_END);
        return { name, targets };
      }
      case 'ICMP':
      case 'ICMP6': {
        const targets = this.typeList();
        this.need(S_END);
        if (proto.type === 'ICMP6') {
          this.version(3, 'IPv6');
          return { name: 'icmp6', targets };
        }
        return { name: 'icmp', targets };
      }
      default: {
        this.need(S_END);
        const name = proto.type === 'AH' ? 'ah' : 'esp';
        this.version(4, proto.type);
        return { name, targets: ['all'] };
      }
    }
  }

  private portList(): PortTarget[] {
    const first = this.need(S_PORT_LIST);
    if (first.type === 'PORTS') {
      this.shift();
      return this.portRanges();
    }
    if (first.type === 'PORT') {
      this.shift();
      const value = this.need(S_PORT_VALUE);
      this.shift();
      if (value.type === 'ALL') {
        this.need(S_ALL_END);
        this.need(S_END);
        return ['all'];
      }
      this.need(S_PORT_NUMBER_END);
      const port = checkPort(value.value);
      this.need(S_END);
      return [port];
    }
    this.shift(); // '('
    this.shift_(S_PORT);
    const value = this.shift_(S_PORT_VALUE);
    if (value.type === 'ALL') {
      this.need(S_ALL_END);
      this.shift_(S_CLOSE);
      this.need(S_END);
      return ['all'];
    }
    this.need(S_PORT_NUMBER_END);
    const ports: PortTarget[] = [checkPort(value.value)];
    this.need(S_AND_LIST);
    while (this.is('AND')) {
      this.shift();
      this.shift_(S_PORT);
      const next = this.shift_(S_WORD);
      this.need(S_PORT_NUMBER_END);
      ports.push(checkPort(next.value));
      this.need(S_AND_LIST);
    }
    this.shift(); // ')'
    this.need(S_END);
    return ports;
  }

  /** PORTS a, b - c, d-e ... */
  private portRanges(): PortTarget[] {
    const ports: PortTarget[] = [];
    for (;;) {
      const start = this.shift_(S_WORD);
      this.need(S_RANGE_START_END);
      if (this.is('-')) {
        this.shift();
        const end = this.shift_(S_WORD);
        this.need(S_RANGE_END);
        checkPort(start.value);
        checkPort(end.value);
        checkRangeOrder(start.value, end.value);
        ports.push({ start: Number(start.value), end: Number(end.value) });
      } else {
        ports.push(maybePortRange(start.value));
      }
      this.need(S_RANGE_END);
      if (!this.is(',')) break;
      this.shift();
    }
    this.version(2, 'port ranges');
    return ports;
  }

  private typeList(): ParsedIcmpTarget[] {
    const first = this.need(S_TYPE_LIST);
    if (first.type === 'TYPE') {
      this.shift();
      const value = this.need(S_PORT_VALUE);
      if (value.type === 'ALL') {
        this.shift();
        this.need(S_ALL_END);
        this.version(3, 'all ICMP types');
        this.need(S_END);
        return ['all'];
      }
      const type = this.icmpType();
      this.need(S_END);
      return [type];
    }
    this.shift(); // '('
    this.shift_(S_TYPE);
    const value = this.need(S_PORT_VALUE);
    if (value.type === 'ALL') {
      this.shift();
      this.need(S_ALL_END);
      this.version(3, 'all ICMP types');
      this.shift_(S_CLOSE);
      this.need(S_END);
      return ['all'];
    }
    const types: ParsedIcmpTarget[] = [this.icmpType()];
    this.need(S_AND_LIST);
    while (this.is('AND')) {
      this.shift();
      this.shift_(S_TYPE);
      this.need(S_WORD);
      types.push(this.icmpType());
      this.need(S_AND_LIST);
    }
    this.shift(); // ')'
    this.need(S_END);
    return types;
  }

  /** TYPE already shifted; lookahead is the WORD. */
  private icmpType(): ParsedIcmpTarget {
    const typeTok = this.shift();
    this.need(S_ICMP_TYPE_END);
    const type = checkIcmpType(typeTok.value);
    if (!this.is('CODE')) return type;
    this.shift();
    const codeTok = this.shift_(S_WORD);
    this.need(S_PORT_NUMBER_END);
    const code = checkIcmpCode(codeTok.value);
    return `${type}:${code}`;
  }
}

/** fwrule's createMaybePortRange(): a single WORD that may be "a-b". */
function maybePortRange(word: string): PortTarget {
  const parts = word.split('-');
  if (parts.length === 1) return checkPort(parts[0]);
  if (parts.length === 2) {
    checkPort(parts[0]);
    checkPort(parts[1]);
    checkRangeOrder(parts[0], parts[1]);
    return { start: Number(parts[0]), end: Number(parts[1]) };
  }
  throw new FwRuleError(`"${word}" is not a valid port number or range`, { kind: 'value' });
}

/**
 * Parse rule text into fwrule's parsed form. Throws FwRuleError with
 * fwrule's exact message. Options default as in fwrule.parse().
 */
export function parse(text: string, opts: ParseOptions = {}): ParsedRule {
  return new Parser(text, opts).parse();
}
