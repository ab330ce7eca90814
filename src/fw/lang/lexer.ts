/**
 * Lexer for fwrule v4, reproducing sdc-fwrule's jison lexer:
 * - rules are tried in a fixed order and the FIRST match wins (not the longest);
 * - keywords match only all-upper or all-lower and must end at a word boundary;
 * - tokens are produced on demand, so a lexical error surfaces only when the
 *   parser asks for the token (this decides which error wins when a rule has
 *   several problems);
 * - columns are tracked the way jison tracks `yylloc.last_column`.
 */
import { FwRuleError } from './errors.js';

export type TokenType =
  | 'FROM' | 'TO' | 'IP' | 'SUBNET' | 'ANY' | 'ALL' | 'TAG' | 'VM' | 'VMS'
  | '-' | ',' | '=' | '(' | ')'
  | 'OR' | 'AND' | 'BLOCK' | 'ALLOW' | 'PORT' | 'PORTS'
  | 'TCP' | 'UDP' | 'ICMP' | 'ICMP6' | 'AH' | 'ESP' | 'TYPE' | 'CODE' | 'PRIORITY'
  | 'STRING' | 'IPV4ADDR' | 'IPV6ADDR' | 'CIDRSUFFIX' | 'WORD' | 'EOF';

export interface Token {
  type: TokenType;
  /** Raw matched text (for STRING: including the quotes, still escaped). */
  text: string;
  /** Semantic value: the unescaped contents for STRING, else `text`. */
  value: string;
  /** 0-based offset of the first character. */
  offset: number;
  /** jison's `yylloc.last_column` after this token: column just past its end. */
  endColumn: number;
}

const KEYWORDS: ReadonlyMap<string, TokenType> = new Map(
  (['FROM', 'TO', 'IP', 'SUBNET', 'ANY', 'ALL', 'TAG', 'VM', 'VMS', 'OR', 'AND', 'BLOCK',
    'ALLOW', 'PORT', 'PORTS', 'TCP', 'UDP', 'ICMP', 'ICMP6', 'AH', 'ESP', 'TYPE', 'CODE',
    'PRIORITY'] as const).flatMap((k): [string, TokenType][] => [[k, k], [k.toLowerCase(), k]]),
);

const PUNCTUATION: ReadonlyMap<string, TokenType> = new Map<string, TokenType>([
  ['-', '-'], [',', ','], ['=', '='], ['(', '('], [')', ')'],
]);

const WHITESPACE_RE = /\s+/y;
/** A run of regex word characters: a keyword rule `KW\b` matches iff this run equals KW. */
const WORD_CHARS_RE = /\w+/y;
const STRING_RE = /"(?:\\["bfnrt/()\\]|\\u[a-fA-F0-9]{4}|[^"\\])*"/y;
const IPV4_RE = /[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}/y;
const IPV6_RE = /[0-9a-f]*:[0-9a-f]*:[:0-9a-f]*/y;
const CIDR_RE = /\/[0-9]{1,3}/y;
const WORD_RE = /[-a-zA-Z0-9_]+/y;

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  '"': '"', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', '/': '/', '(': '(', ')': ')', '\\': '\\',
};

/** Undo fwrule's tag escaping (the inside of a quoted STRING). */
export function tagUnescape(escaped: string): string {
  let out = '';
  for (let i = 0; i < escaped.length; i++) {
    const ch = escaped[i];
    if (ch !== '\\') {
      out += ch;
      continue;
    }
    const next = escaped[i + 1];
    if (next === 'u') {
      const hex = escaped.substring(i + 2, i + 6);
      if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw new Error(`Invalid escape sequence "\\u${hex}"!`);
      out += String.fromCharCode(parseInt(hex, 16));
      i += 5;
    } else if (next !== undefined && SIMPLE_ESCAPES[next] !== undefined) {
      out += SIMPLE_ESCAPES[next];
      i += 1;
    } else {
      throw new Error(`Invalid escape sequence "\\${next ?? ''}"!`);
    }
  }
  return out;
}

function matchAt(re: RegExp, input: string, pos: number): string | null {
  re.lastIndex = pos;
  const m = re.exec(input);
  return m === null ? null : m[0];
}

/** jison's column update: columns restart after a newline inside the matched text. */
function advanceColumn(column: number, matched: string): number {
  const lines = matched.match(/(?:\r\n?|\n).*/g);
  if (lines === null) return column + matched.length;
  const last = lines[lines.length - 1];
  return last.length - (last.match(/\r?\n?/)?.[0].length ?? 0);
}

export class Lexer {
  private pos = 0;
  private column = 0;
  private emittedEof = false;

  constructor(private readonly input: string) {}

  /** Next token, skipping whitespace. Throws fwrule's lexical error on unmatched text. */
  next(): Token {
    for (;;) {
      const ws = matchAt(WHITESPACE_RE, this.input, this.pos);
      if (ws === null) break;
      this.pos += ws.length;
      this.column = advanceColumn(this.column, ws);
    }
    if (this.pos >= this.input.length) {
      // jison returns 'EOF' once; after that only the end marker, which the grammar never shifts.
      this.emittedEof = true;
      return { type: 'EOF', text: '', value: '', offset: this.pos, endColumn: this.column };
    }
    const start = this.pos;
    const { type, text, value } = this.scan(start);
    this.pos += text.length;
    this.column = advanceColumn(this.column, text);
    return { type, text, value, offset: start, endColumn: this.column };
  }

  get atEnd(): boolean {
    return this.emittedEof;
  }

  private scan(pos: number): { type: TokenType; text: string; value: string } {
    const input = this.input;
    const run = matchAt(WORD_CHARS_RE, input, pos);
    if (run !== null) {
      const keyword = KEYWORDS.get(run);
      if (keyword !== undefined) return { type: keyword, text: run, value: run };
    }
    const punct = PUNCTUATION.get(input[pos]);
    if (punct !== undefined) return { type: punct, text: input[pos], value: input[pos] };
    const str = matchAt(STRING_RE, input, pos);
    if (str !== null) return { type: 'STRING', text: str, value: tagUnescape(str.slice(1, -1)) };
    const ordered: [RegExp, TokenType][] = [
      [IPV4_RE, 'IPV4ADDR'], [IPV6_RE, 'IPV6ADDR'], [CIDR_RE, 'CIDRSUFFIX'], [WORD_RE, 'WORD'],
    ];
    for (const [re, type] of ordered) {
      const text = matchAt(re, input, pos);
      if (text !== null) return { type, text, value: text };
    }
    throw this.unexpectedText(pos);
  }

  /**
   * fwrule reports lexical errors with jison's pastInput()/upcomingInput():
   * the "character" is the length of at most the last 20 consumed characters
   * (prefixed by "..." when more were consumed), the quoted text is the next
   * 20 characters; newlines are dropped from both.
   */
  private unexpectedText(pos: number): FwRuleError {
    const past = this.input.slice(0, pos);
    const pre = (past.length > 20 ? '...' : '') + past.slice(-20).replace(/\n/g, '');
    const post = this.input.substr(pos, 20).replace(/\n/g, '');
    return new FwRuleError(`Error at character ${pre.length}: '${post}', found: unexpected text`, {
      kind: 'lexical',
      position: pre.length,
      offset: pos,
    });
  }
}
