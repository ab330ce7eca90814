/**
 * CNI error codes (spec 1.1.0 §5; 50/51 from its STATUS section) and rhumb's own (100+,
 * which the spec leaves to plugins), and the error a verb throws to end with one.
 */
export const CNI = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO_FAILURE: 5,
  DECODE_FAILURE: 6,
  INVALID_NETWORK_CONFIG: 7,
  TRY_AGAIN_LATER: 11,
  PLUGIN_NOT_AVAILABLE: 50,
  LIMITED_CONNECTIVITY: 51,
  /** rhumb: the agent could not make the interface (a name taken, a namespace it refuses). */
  PLUMBING_FAILED: 100,
  /** rhumb: CHECK found the attachment other than it was made. */
  CHECK_FAILED: 101,
  /** rhumb: the plugin or the agent failed in a way it did not explain (a bug, a broken install). */
  INTERNAL: 102,
} as const;

export class CniError extends Error {
  constructor(
    readonly code: number,
    readonly msg: string,
    readonly details?: string,
  ) {
    super(details ? `${msg}: ${details}` : msg);
    this.name = 'CniError';
  }

  /** The error object the spec prints on stdout. */
  toJSON(cniVersion: string): { cniVersion: string; code: number; msg: string; details?: string } {
    return { cniVersion, code: this.code, msg: this.msg, ...(this.details ? { details: this.details } : {}) };
  }
}
