/**
 * Parameter validation in the manner of restify-warden, which NAPI uses:
 *   phase 1: every field validator runs, all errors are collected (sorted by field);
 *   phase 2: only if phase 1 passed, cross-field "after" checks run in order and stop
 *            at the first failure.
 * Strict schemas reject unknown parameters with UnknownParameters.
 * Validators are pure functions: value in, normalised value out, or a FieldError.
 * The field validators here are the generic ones (strings, UUIDs, booleans, integers,
 * pagination); NAPI's network values live in src/napi/validate.ts.
 */
import { isUuid } from '../net/addr.js';
import { type FieldError, invalidParam, invalidParams, missingParam, unknownParams } from './errors.js';

export type Params = Record<string, unknown>;

/**
 * Any request value as text, for messages and comparisons, without ever throwing: String()
 * throws on a JSON object whose "toString" and "valueOf" keys are not functions, and on
 * objects nested too deep to stringify.
 */
export function textOf(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  try {
    return JSON.stringify(v) ?? typeof v;
  } catch {
    return Array.isArray(v) ? '[array]' : `[${typeof v}]`;
  }
}

export class Invalid {
  constructor(readonly errors: FieldError[]) {}
}

/** Validators signal failure by returning fail(...); anything else is the clean value. */
export function fail(field: string, message: string, extra: Partial<FieldError> = {}): Invalid {
  return new Invalid([invalidParam(field, message, extra)]);
}

/**
 * Checks one field: the raw value in, the clean value out (undefined drops the field), or
 * fail(...). `ctx` is what the caller handed validateParams: lookups made before
 * validation, configuration, the record being updated. A validator that needs none
 * (C unknown) can be called without it.
 */
export type FieldValidator<T = unknown, C = unknown> = (
  field: string,
  value: unknown,
  params: Params,
  ...ctx: unknown extends C ? [ctx?: C] : [ctx: C]
) => T | Invalid;

/** How the runner calls every validator: with the schema's context. */
type BoundValidator<C> = (field: string, value: unknown, params: Params, ctx: C) => unknown;

export type FieldValidators<C = unknown> = Readonly<Record<string, FieldValidator<unknown, C>>>;

/** A schema's fields: what validateParams checks in its first phase. */
export interface FieldSet<C = unknown> {
  readonly required?: FieldValidators<C>;
  readonly optional?: FieldValidators<C>;
  /** Reject parameters not named in required/optional/allowed. */
  readonly strict?: boolean;
  /** Extra names a strict schema tolerates (e.g. path parameters). */
  readonly allowed?: readonly string[];
}

type CleanOf<V> = V extends (...args: never[]) => infer R ? Exclude<R, Invalid> : never;
type RequiredOf<F> = F extends { readonly required?: infer R } ? NonNullable<R> : never;
type OptionalOf<F> = F extends { readonly optional?: infer O } ? NonNullable<O> : never;

/** The clean parameters a field set validates to: required fields present, optional ones maybe. */
export type Validated<F> = {
  -readonly [K in keyof RequiredOf<F>]: CleanOf<RequiredOf<F>[K]>;
} & {
  -readonly [K in keyof OptionalOf<F>]?: CleanOf<OptionalOf<F>[K]>;
};

/** A cross-field check, run after every field passed; throws a NapiError to fail. */
export type AfterCheck<P, C = unknown> = (clean: P, raw: Params, ctx: C) => void | Promise<void>;

/** A schema validating to P with context C; made by schema(). */
export interface Schema<P, C = unknown> {
  readonly required: FieldValidators<C>;
  readonly optional: FieldValidators<C>;
  readonly strict: boolean;
  readonly allowed: readonly string[];
  readonly after: ReadonlyArray<AfterCheck<P, C>>;
}

/** A validator's need as a function taking it (so that a union of needs infers as their intersection). */
type NeedOf<V> = V extends (field: string, value: unknown, params: Params, ...ctx: infer R) => unknown
  ? R extends [ctx: infer X] ? (ctx: X) => void : (ctx: unknown) => void
  : never;
type Values<T> = T[keyof T];

/** The context a field set's validators need: what each asks for, all at once. */
export type ContextOf<F> =
  NeedOf<Values<RequiredOf<F>>> | NeedOf<Values<OptionalOf<F>>> | ((ctx: unknown) => void) extends (ctx: infer I) => void ? I : never;

/** What a schema validates to. */
export type ValidatedBy<S> = S extends Schema<infer P, never> ? P : never;

/**
 * A schema from its fields and, in order, its cross-field checks. Declare schemas once, at
 * module level; `Validated<typeof FIELDS>` names what they validate to.
 */
export function schema<const F extends FieldSet<never>, C extends ContextOf<F> = ContextOf<F>>(
  fields: F,
  after: ReadonlyArray<AfterCheck<Validated<F>, C>> = [],
): Schema<Validated<F>, C> {
  // C extends ContextOf<F>: every validator accepts the context the schema is run with.
  type Bound = FieldValidators<C>;
  return {
    required: (fields.required ?? {}) as Bound,
    optional: (fields.optional ?? {}) as Bound,
    strict: fields.strict ?? false,
    allowed: fields.allowed ?? [],
    after,
  };
}

function isAbsent(v: unknown): boolean {
  return v === undefined || v === null;
}

/**
 * Validates raw merged parameters against a schema; returns the cleaned parameters
 * (only known fields, normalised) or throws the NAPI 422. A schema whose validators or
 * checks need a context gets it as `ctx`.
 */
export function validateParams<P>(schema: Schema<P>, raw: Params): Promise<P>;
export function validateParams<P, C>(schema: Schema<P, C>, raw: Params, ctx: C): Promise<P>;
export async function validateParams<P, C>(schema: Schema<P, C>, raw: Params, ctx?: C): Promise<P> {
  const errors: FieldError[] = [];
  const clean: Params = {};
  const required = schema.required as Readonly<Record<string, BoundValidator<C>>>;
  const optional = schema.optional as Readonly<Record<string, BoundValidator<C>>>;
  const context = ctx as C;

  for (const field of Object.keys(required)) {
    if (isAbsent(raw[field]) || raw[field] === '') {
      errors.push(missingParam(field));
      continue;
    }
    collect(field, required[field]!(field, raw[field], raw, context));
  }
  for (const field of Object.keys(optional)) {
    if (raw[field] === undefined) continue;
    collect(field, optional[field]!(field, raw[field], raw, context));
  }
  if (schema.strict) {
    const known = new Set([...Object.keys(required), ...Object.keys(optional), ...schema.allowed]);
    const unknown = Object.keys(raw).filter((k) => !known.has(k));
    if (unknown.length > 0) errors.push(unknownParams(unknown.sort()));
  }
  if (errors.length > 0) throw invalidParams(errors);
  // Every validator passed: `clean` holds exactly what the schema's fields declare.
  const valid = clean as P;
  for (const check of schema.after) await check(valid, raw, context);
  return valid;

  function collect(field: string, result: unknown): void {
    if (result instanceof Invalid) errors.push(...result.errors);
    else if (result !== undefined) clean[field] = result;
  }
}

/** Throws the NAPI 422 for a single field error (for "after" checks and business rules). */
export function rejectField(field: string, message: string, extra: Partial<FieldError> = {}): never {
  throw invalidParams([invalidParam(field, message, extra)]);
}

// ---- generic field validators (wording from restify-warden and sdc-napi lib/util/validate.js) ----

export const vString: FieldValidator<string> = (field, v) => {
  if (typeof v !== 'string') return fail(field, 'must be a string');
  if (v.length > 64) return fail(field, 'must not be longer than 64 characters');
  if (v.trim().length === 0) return fail(field, 'must not be empty');
  return v;
};

export const vUuid: FieldValidator<string> = (field, v) => (isUuid(v) ? v : fail(field, 'invalid UUID'));

export const vBool: FieldValidator<boolean> = (field, v) => {
  if (v === true || v === 'true') return true;
  if (v === false || v === 'false') return false;
  return fail(field, 'must be a boolean value');
};

/** Array, or comma-separated string, of strings; undefined when not list-like. */
export function toList(v: unknown): unknown[] | undefined {
  if (Array.isArray(v)) return v;
  if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  return undefined;
}

/** Integer parameter (JSON number or numeric string) within [min, max]. */
export function vInt(min: number, max: number, message: string): FieldValidator<number> {
  return (field, v) => {
    const n = typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) return fail(field, message);
    return n;
  };
}

export const vLimit = vInt(1, 1000, 'invalid limit, must be an integer greater than 0 or less than or equal to 1000');
export const vOffset = vInt(0, Number.MAX_SAFE_INTEGER, 'invalid value, offset must be an integer greater than or equal to 0');

/** Pagination fields every list route takes. */
export const paginationFields = { limit: vLimit, offset: vOffset } as const;

/** limit when none is given (also the largest accepted). */
export const DEFAULT_LIMIT = 1000;

/** limit and offset as validated with paginationFields. */
export interface Page {
  limit?: number | undefined;
  offset?: number | undefined;
}

/** Applies limit/offset (defaults 1000/0) to an already sorted list. */
export function paginate<T>(items: T[], page: Page): T[] {
  const offset = page.offset ?? 0;
  const limit = page.limit ?? DEFAULT_LIMIT;
  return items.slice(offset, offset + limit);
}
