/**
 * Errors raised by the fwrule language. Every message reproduces sdc-fwrule's
 * wording exactly (see firewall-notes §1.7); `field` is the payload field
 * fwrule blames ('rule' for everything the language itself checks).
 */

export type FwRuleErrorKind =
  /** The lexer found text no token matches ("found: unexpected text"). */
  | 'lexical'
  /** The token stream does not fit the grammar ("expected: ..., found: ..."). */
  | 'syntax'
  /** A token parsed but its value is out of range (port, IP, UUID, ...). */
  | 'value'
  /** A newer language feature than `maxVersion` allows. */
  | 'version'
  /** A whole-rule check failed (limits, ICMP family, "does not affect VMs"). */
  | 'model';

export interface FwRuleErrorInit {
  kind: FwRuleErrorKind;
  field?: string;
  /** The "character N" fwrule prints (syntax and lexical errors). */
  position?: number;
  /** 0-based offset into the input of the offending text, when known. */
  offset?: number;
  /** Expected tokens as fwrule names them, without the surrounding quotes. */
  expected?: string[];
  /** The token fwrule reports as found (syntax errors). */
  found?: string;
}

export class FwRuleError extends Error {
  readonly kind: FwRuleErrorKind;
  readonly field: string;
  readonly position?: number;
  readonly offset?: number;
  readonly expected?: string[];
  readonly found?: string;

  constructor(message: string, init: FwRuleErrorInit) {
    super(message);
    this.name = 'FwRuleError';
    this.kind = init.kind;
    this.field = init.field ?? 'rule';
    if (init.position !== undefined) this.position = init.position;
    if (init.offset !== undefined) this.offset = init.offset;
    if (init.expected !== undefined) this.expected = init.expected;
    if (init.found !== undefined) this.found = init.found;
  }
}

export function valueError(message: string): FwRuleError {
  return new FwRuleError(message, { kind: 'value' });
}

export function modelError(message: string): FwRuleError {
  return new FwRuleError(message, { kind: 'model' });
}

export function versionError(feature: string): FwRuleError {
  return new FwRuleError(`The rule uses a feature (${feature}) newer than this API allows`, {
    kind: 'version',
  });
}
