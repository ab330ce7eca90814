/**
 * The fwrule v4 rule language: parse, normalise, validate, serialise.
 *
 *   parse(text)        -> ParsedRule (fwrule's parser output, order kept)
 *   buildRule(parsed)  -> FwRule (normalised model, fwrule's whole-rule checks)
 *   serialize(rule)    -> canonical text
 *   validateRule(text) -> { ok, rule, canonical } | { ok: false, error }
 *
 * For every valid text x: buildRule(parse(serialize(r))) deep-equals r where
 * r = buildRule(parse(x)), and serialize() of a canonical text's rule is that
 * text again.
 */
import { FwRuleError } from './errors.js';
import { buildRule } from './model.js';
import { parse } from './parser.js';
import { serialize } from './serializer.js';
import type { FwRule, ParsedRule, ParseOptions } from './types.js';

export * from './types.js';
export { FwRuleError, type FwRuleErrorKind, type FwRuleErrorInit } from './errors.js';
export { Lexer, tagUnescape, type Token, type TokenType } from './lexer.js';
export { parse, CURRENT_VERSION } from './parser.js';
export { serialize, tagEscape, quote } from './serializer.js';
export {
  buildRule, MAX_TARGETS_PER_SIDE, MAX_PROTOCOL_TARGETS, MAX_PROTOCOL_TARGETS_V3,
  touchesInstances, instancesOnSide, addressesOnSide, instancesTouched, tagMatches,
  selectorMatches, sideMatchesInstance,
  type InstanceSelector, type AddressSelector, type InstanceTags,
} from './model.js';
export { isValidUuid } from './values.js';

export const ACTIONS = ['allow', 'block'] as const;
export const PROTOCOLS = ['tcp', 'udp', 'icmp', 'icmp6', 'ah', 'esp'] as const;

/** Parse and normalise, throwing FwRuleError on any problem. */
export function parseRule(text: string, opts: ParseOptions = {}): FwRule {
  return buildRule(parse(text, opts), opts);
}

/** Canonical text of any valid rule text. */
export function canonicalize(text: string, opts: ParseOptions = {}): string {
  return serialize(parseRule(text, opts));
}

export type ValidateResult =
  | { ok: true; rule: FwRule; parsed: ParsedRule; canonical: string }
  | { ok: false; error: FwRuleError };

/**
 * What the rules API runs on a submitted rule. Defaults follow FWAPI, which
 * calls fwrule with its configured version (4 here) and enforceSubnetMask.
 * A non-string rule is refused the way FwRule refuses a missing one.
 */
export function validateRule(text: unknown, opts: ParseOptions = {}): ValidateResult {
  const effective: ParseOptions = {
    maxVersion: opts.maxVersion,
    enforceSubnetMask: opts.enforceSubnetMask ?? true,
  };
  if (typeof text !== 'string' || text === '') {
    return { ok: false, error: new FwRuleError('No rule specified', { kind: 'model' }) };
  }
  try {
    const parsed = parse(text, effective);
    const rule = buildRule(parsed, effective);
    return { ok: true, rule, parsed, canonical: serialize(rule) };
  } catch (err) {
    if (err instanceof FwRuleError) return { ok: false, error: err };
    throw err;
  }
}
