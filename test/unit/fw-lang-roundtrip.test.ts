/**
 * Property tests over a seeded generator of random valid rules written in
 * random spellings (case, parentheses, quoting, duplicates, PORT vs PORTS).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FwRuleError, parse, parseRule, serialize } from '../../src/fw/lang/index.js';

/** mulberry32: small, seeded, deterministic. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  constructor(private readonly r: () => number) {}
  int(lo: number, hi: number): number { return lo + Math.floor(this.r() * (hi - lo + 1)); }
  chance(p: number): boolean { return this.r() < p; }
  pick<T>(items: readonly T[]): T { return items[this.int(0, items.length - 1)]; }
  kw(word: string): string { return this.chance(0.5) ? word.toUpperCase() : word.toLowerCase(); }
  hex(n: number): string { return Array.from({ length: n }, () => this.pick([...'0123456789abcdef'])).join(''); }
  uuid(): string { return `${this.hex(8)}-${this.hex(4)}-${this.hex(4)}-${this.hex(4)}-${this.hex(12)}`; }
  ipv4(): string { return `10.${this.int(0, 255)}.${this.int(0, 255)}.${this.int(1, 254)}`; }
  ipv6(): string { return this.pick([`fd00::${this.hex(this.int(1, 4))}`, `2001:db8:${this.hex(2)}::${this.hex(1)}`, '::1']); }

  tagString(): string {
    const raw = this.pick(['role', 'www', 'db', 'sdc_docker', 'some-tag', '1', '42',
      'with space', 'FROM', 'vms', '1.2.3.4', 'a"b', 'back\\slash', '(paren)', 'tab\there',
      'nl\nx', '\u00a0nbsp', 'caf\u00e9', '\u2028', 'slash/x', 'ctl\u0001']);
    // Bare words only where the lexer would read a WORD (not a keyword, IP or punctuation).
    if (/^[a-z][-a-z0-9_]*$|^[0-9]+$/.test(raw) && !['vms'].includes(raw) && this.chance(0.5)) return raw;
    return '"' + [...raw].map((ch) => {
      if (ch === '"' || ch === '\\') return '\\' + ch;
      if (ch === '\n') return this.pick(['\\n', '\\u000a']);
      if (ch === '\t') return this.pick(['\\t', '\t']);
      if ((ch === '(' || ch === ')') && this.chance(0.5)) return '\\' + ch;
      if (ch === '/' && this.chance(0.5)) return '\\/';
      if (ch.charCodeAt(0) > 0x7e && this.chance(0.5)) return '\\u' + ch.charCodeAt(0).toString(16).padStart(4, '0');
      return ch;
    }).join('') + '"';
  }

  target(family: 'v4' | 'v6' | 'any'): string {
    const kinds = ['ip', 'subnet', 'vm', 'tag', 'tag'];
    const kind = this.pick(kinds);
    const v6 = family === 'v6' || (family === 'any' && this.chance(0.3));
    switch (kind) {
      case 'ip': return `${this.kw('ip')} ${v6 ? this.ipv6() : this.ipv4()}`;
      case 'subnet': return v6
        ? `${this.kw('subnet')} fd${this.hex(2)}::/${this.pick([16, 64, 128])}`
        : `${this.kw('subnet')} 10.${this.int(0, 255)}.0.0/${this.pick([16, 24, 32])}`;
      case 'vm': return `${this.kw('vm')} ${this.uuid()}`;
      default: {
        const name = this.tagString();
        return this.chance(0.5) ? `${this.kw('tag')} ${name}` : `${this.kw('tag')} ${name} = ${this.tagString()}`;
      }
    }
  }

  side(family: 'v4' | 'v6' | 'any'): string {
    const r = this.r();
    if (r < 0.1) return this.pick(['any', '(any)', 'ANY']);
    if (r < 0.2) return this.pick(['all vms', '(all vms)', 'ALL VMS']);
    const n = this.int(1, 6);
    const targets = Array.from({ length: n }, () => this.target(family));
    if (this.chance(0.3)) targets.push(targets[0]); // duplicate
    if (targets.length === 1 && this.chance(0.5)) return targets[0];
    return '(' + targets.join(` ${this.kw('or')} `) + ')';
  }

  port(): number { return this.pick([22, 53, 80, 443, 1, 65535, this.int(1, 65535)]); }

  protocol(): { text: string; family: 'v4' | 'v6' | 'any' } {
    const r = this.r();
    if (r < 0.55) {
      const proto = this.kw(this.pick(['tcp', 'udp']));
      const s = this.r();
      if (s < 0.1) return { text: `${proto} ${this.pick(['PORT all', '(port ALL)'])}`, family: 'any' };
      if (s < 0.4) {
        const ports = Array.from({ length: this.int(1, 5) }, () => this.port());
        return { text: `${proto} ` + (ports.length === 1 ? `${this.kw('port')} ${ports[0]}`
          : '(' + ports.map((p) => `${this.kw('port')} ${p}`).join(` ${this.kw('and')} `) + ')'), family: 'any' };
      }
      const items = Array.from({ length: this.int(1, 5) }, () => {
        if (this.chance(0.4)) return String(this.port());
        const a = this.int(1, 65000);
        const b = a + this.int(0, 500);
        return this.chance(0.5) ? `${a}-${b}` : `${a} - ${b}`;
      });
      return { text: `${proto} ${this.kw('ports')} ${items.join(', ')}`, family: 'any' };
    }
    if (r < 0.85) {
      const v6 = this.chance(0.4);
      const proto = this.kw(v6 ? 'icmp6' : 'icmp');
      if (this.chance(0.1)) return { text: `${proto} ${this.kw('type')} ${this.kw('all')}`, family: v6 ? 'v6' : 'v4' };
      const types = Array.from({ length: this.int(1, 5) }, () => {
        const t = `${this.kw('type')} ${this.int(0, 255)}`;
        return this.chance(0.5) ? `${t} ${this.kw('code')} ${this.int(0, 255)}` : t;
      });
      const text = types.length === 1 && this.chance(0.5) ? types[0] : '(' + types.join(` ${this.kw('and')} `) + ')';
      return { text: `${proto} ${text}`, family: v6 ? 'v6' : 'v4' };
    }
    return { text: this.kw(this.pick(['ah', 'esp'])), family: 'any' };
  }

  rule(): string {
    const proto = this.protocol();
    let from = this.side(proto.family);
    let to = this.side(proto.family);
    // Ensure the rule touches instances.
    if (!/\b(vm|VM|tag|TAG|vms|VMS)\b/.test(from + to)) to = `${this.kw('vm')} ${this.uuid()}`;
    if (this.chance(0.05)) [from, to] = [to, from];
    const priority = this.chance(0.3) ? ` ${this.kw('priority')} ${this.pick(['0', '1', '010', '50', '100'])}` : '';
    return `${this.kw('from')} ${from} ${this.kw('to')} ${to} ${this.kw(this.pick(['allow', 'block']))} ${proto.text}${priority}`;
  }
}

const CASES = 3000;

test('round trip: parse → serialize → parse is the identity on the model; serialize is idempotent', () => {
  const gen = new Gen(rng(0x5eed));
  for (let i = 0; i < CASES; i++) {
    const text = gen.rule();
    let rule;
    try {
      rule = parseRule(text);
    } catch (err) {
      assert.fail(`generated rule rejected: ${JSON.stringify(text)}: ${(err as Error).message}`);
    }
    const canonical = serialize(rule);
    const reparsed = parseRule(canonical);
    assert.deepEqual(reparsed, rule, `${JSON.stringify(text)} -> ${JSON.stringify(canonical)}`);
    assert.equal(serialize(reparsed), canonical, JSON.stringify(text));
    // The canonical text is a fixed point of the parser's own output too.
    assert.deepEqual(parse(serialize(parseRule(canonical))), parse(canonical));
  }
});

test('every proper prefix of a rule that ends before its protocol is rejected with an FwRuleError', () => {
  const gen = new Gen(rng(42));
  for (let i = 0; i < 300; i++) {
    const text = gen.rule();
    const protoAt = text.search(/ (tcp|udp|icmp6?|ah|esp|TCP|UDP|ICMP6?|AH|ESP)( |$)/);
    assert.ok(protoAt > 0, text);
    for (let cut = 0; cut <= protoAt; cut++) {
      const prefix = text.slice(0, cut);
      assert.throws(() => parseRule(prefix), FwRuleError, JSON.stringify(prefix));
    }
  }
});

test('random mutations never throw anything but FwRuleError, and accepted ones round-trip', () => {
  const gen = new Gen(rng(7));
  const vocab = ['(', ')', 'OR', 'AND', 'PORT', 'any', 'all', 'vms', 'tag', '=', '-', ',', '"x"', '80', '$',
    'PRIORITY', 'TYPE', 'CODE', '1.2.3.4', 'fe80::1', '/24', 'vm', 'ip'];
  let accepted = 0;
  for (let i = 0; i < 1500; i++) {
    const toks = gen.rule().split(' ');
    const k = gen.int(0, toks.length);
    if (gen.chance(0.5)) toks.splice(k, 1);
    else toks.splice(k, 0, gen.pick(vocab));
    const text = toks.join(' ');
    try {
      const rule = parseRule(text);
      accepted++;
      assert.deepEqual(parseRule(serialize(rule)), rule, text);
    } catch (err) {
      assert.ok(err instanceof FwRuleError, `${JSON.stringify(text)}: ${String(err)}`);
      assert.equal(err.field, 'rule');
      assert.ok(err.message.length > 0);
    }
  }
  assert.ok(accepted > 0, 'some mutations should still be valid rules');
});
