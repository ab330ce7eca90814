/**
 * NAPI's error bodies: `{code, message, errors?: [{field, code, message, …}]}` with the
 * statuses and wording of sdc-napi's lib/util/errors.js and restify-warden.
 */

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

export class NapiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly errors?: FieldError[],
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'NapiError';
  }

  body(): NapiErrorBody {
    const b: NapiErrorBody = { code: this.code, message: this.message, ...this.extra };
    if (this.errors) b.errors = this.errors;
    return b;
  }
}

function byField(a: FieldError, b: FieldError): number {
  const fa = String(a.field);
  const fb = String(b.field);
  return fa < fb ? -1 : fa > fb ? 1 : 0;
}

/** 422 InvalidParameters; "Missing parameters" when every element is a MissingParameter. */
export function invalidParams(errors: FieldError[], message?: string): NapiError {
  const sorted = [...errors].sort(byField);
  const msg =
    message ??
    (sorted.length > 0 && sorted.every((e) => e.code === 'MissingParameter') ? 'Missing parameters' : 'Invalid parameters');
  return new NapiError(422, 'InvalidParameters', msg, sorted);
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

/** 422 InUse: deleting something still referenced. */
export function inUse(message: string, errors: FieldError[]): NapiError {
  return new NapiError(422, 'InUse', message, errors);
}

export function subnetFull(networkUuid: string, message = 'no more free IPs'): NapiError {
  return new NapiError(507, 'SubnetFull', message, undefined, { network_uuid: networkUuid });
}

export function notFound(message: string): NapiError {
  return new NapiError(404, 'ResourceNotFound', message);
}

export function notAuthorized(message: string): NapiError {
  return new NapiError(403, 'NotAuthorized', message);
}

export function preconditionFailed(ifMatch: string, etag: string | null): NapiError {
  return new NapiError(412, 'PreconditionFailed', `if-match '${ifMatch}' didn't match etag '${etag ?? ''}'`);
}

export function preconditionRequired(message: string): NapiError {
  return new NapiError(428, 'PreconditionRequired', message);
}

export function invalidContent(message: string): NapiError {
  return new NapiError(400, 'InvalidContent', message);
}

export function internalError(message: string): NapiError {
  return new NapiError(500, 'InternalError', message);
}
