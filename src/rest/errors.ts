/**
 * The REST API's one catalogue of error codes. NAPI and the firewall API share restify's
 * error body, `{code, message, errors?: [{field, code, message, …}]}`, with the statuses
 * and wording of sdc-napi's lib/util/errors.js and restify-warden. Every code either API
 * answers with is listed here with its status, and every error is made by one of the
 * constructors below, so a route never picks a status by hand.
 */

/** Every top-level error code and its HTTP status. */
export const ERROR_STATUS = {
  InvalidContent: 400,
  Unauthorized: 401,
  NotAuthorized: 403,
  Forbidden: 403,
  ResourceNotFound: 404,
  PreconditionFailed: 412,
  RequestEntityTooLarge: 413,
  UnsupportedMediaType: 415,
  InvalidParameters: 422,
  InUse: 422,
  RuleExists: 422,
  PreconditionRequired: 428,
  TooManyRequests: 429,
  InternalError: 500,
  ServiceUnavailable: 503,
  SubnetFull: 507,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export interface FieldError {
  /** A field name; for UnknownParameters, the list of unknown names. */
  field: string | string[];
  code: 'MissingParameter' | 'InvalidParameter' | 'UnknownParameters' | 'Duplicate' | 'UsedBy' | string;
  message: string;
  invalid?: unknown[];
  type?: string;
  id?: string;
  uuid?: string;
}

export interface NapiErrorBody {
  code: string;
  message: string;
  errors?: FieldError[];
  [extra: string]: unknown;
}

/** An error answered in NAPI's body format; its status comes from the catalogue. */
export class NapiError extends Error {
  readonly statusCode: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly errors?: FieldError[],
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'NapiError';
    this.statusCode = ERROR_STATUS[code];
  }

  body(): NapiErrorBody {
    const b: NapiErrorBody = { code: this.code, message: this.message, ...this.extra };
    if (this.errors) b.errors = this.errors;
    return b;
  }
}

// ---- elements of `errors` ----

function byField(a: FieldError, b: FieldError): number {
  const fa = String(a.field);
  const fb = String(b.field);
  return fa < fb ? -1 : fa > fb ? 1 : 0;
}

export function missingParam(field: string, message = 'Missing parameter'): FieldError {
  return { field, code: 'MissingParameter', message };
}

export function invalidParam(field: string, message = 'Invalid parameters', extra: Partial<FieldError> = {}): FieldError {
  return { field, code: 'InvalidParameter', message, ...extra };
}

export function unknownParams(fields: string[]): FieldError {
  return { field: fields, code: 'UnknownParameters', message: `Unknown parameters: ${fields.join(', ')}` };
}

export function duplicateParam(field: string, message = 'Already exists'): FieldError {
  return { field, code: 'Duplicate', message };
}

export function usedBy(field: string, type: string, id: string, message?: string): FieldError {
  return { field, code: 'UsedBy', type, id, message: message ?? `In use by ${type} "${id}"` };
}

// ---- the errors ----

/** 400: a body that does not parse. */
export function invalidContent(message: string): NapiError {
  return new NapiError('InvalidContent', message);
}

/** 401: no credentials, or credentials nobody issued (a bearer token or a client certificate). */
export function unauthorized(message = 'authentication required: a bearer token or a client certificate'): NapiError {
  return new NapiError('Unauthorized', message);
}

/** 403: the provisionable_by checks of GET /networks/:uuid and /network_pools/:uuid. */
export function notAuthorized(message: string): NapiError {
  return new NapiError('NotAuthorized', message);
}

/** 403: the firewall API's owner checks (FWAPI's PermissionDenied). */
export function forbidden(message = 'owner does not match', errors?: FieldError[]): NapiError {
  return new NapiError('Forbidden', message, errors);
}

export function notFound(message: string): NapiError {
  return new NapiError('ResourceNotFound', message);
}

export function preconditionFailed(ifMatch: string, etag: string | null): NapiError {
  return new NapiError('PreconditionFailed', `if-match '${ifMatch}' didn't match etag '${etag ?? ''}'`);
}

export function requestTooLarge(message: string): NapiError {
  return new NapiError('RequestEntityTooLarge', message);
}

export function unsupportedMediaType(message: string): NapiError {
  return new NapiError('UnsupportedMediaType', message);
}

/** 422 InvalidParameters; "Missing parameters" when every element is a MissingParameter. */
export function invalidParams(errors: FieldError[], message?: string): NapiError {
  const sorted = [...errors].sort(byField);
  const msg =
    message ??
    (sorted.length > 0 && sorted.every((e) => e.code === 'MissingParameter') ? 'Missing parameters' : 'Invalid parameters');
  return new NapiError('InvalidParameters', msg, sorted);
}

/** 422 InvalidParameters with an empty list: a body that is not an object. */
export function paramsNotObject(): NapiError {
  return new NapiError('InvalidParameters', 'Parameters must be objects', []);
}

/** 422 InUse: deleting something still referenced. */
export function inUse(message: string, errors: FieldError[]): NapiError {
  return new NapiError('InUse', message, errors);
}

/** 422 RuleExists: creating a firewall rule whose uuid is taken. */
export function ruleExists(uuid: string): NapiError {
  return new NapiError('RuleExists', `Rule "${uuid}" already exists`, [
    { field: 'uuid', code: 'Duplicate', message: 'Rule already exists' },
  ]);
}

export function preconditionRequired(message: string): NapiError {
  return new NapiError('PreconditionRequired', message);
}

export function tooManyRequests(message: string): NapiError {
  return new NapiError('TooManyRequests', message);
}

export function internalError(message: string): NapiError {
  return new NapiError('InternalError', message);
}

export function serviceUnavailable(message: string): NapiError {
  return new NapiError('ServiceUnavailable', message);
}

export function subnetFull(networkUuid: string, message = 'no more free IPs'): NapiError {
  return new NapiError('SubnetFull', message, undefined, { network_uuid: networkUuid });
}
