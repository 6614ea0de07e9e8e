export interface ErrorDetail {
  path: string;
  message: string;
}

export type ErrorCode =
  | 'unauthorized'
  | 'not_found'
  | 'validation_failed'
  | 'invalid_json'
  | 'conflict'
  | 'precondition_failed'
  | 'integration_limit_reached'
  | 'payload_too_large'
  | 'method_not_allowed'
  | 'unavailable'
  | 'internal';

const STATUS: Record<ErrorCode, number> = {
  unauthorized: 401,
  not_found: 404,
  validation_failed: 400,
  invalid_json: 400,
  conflict: 409,
  precondition_failed: 412,
  integration_limit_reached: 403,
  payload_too_large: 413,
  method_not_allowed: 405,
  unavailable: 503,
  internal: 500,
};

/** An error whose message is safe to show the API user; the error middleware turns it into SPEC §9's JSON. */
export class AppError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: ErrorDetail[],
  ) {
    super(message);
    this.name = 'AppError';
    this.status = STATUS[code];
  }

  toJSON(): { error: { code: ErrorCode; message: string; details?: ErrorDetail[] } } {
    return { error: { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) } };
  }
}

export const notFound = (what: string): AppError => new AppError('not_found', `${what} not found`);

/** Details one answer gives at most: a body can hold thousands of faults, and the first ones say what to fix. */
export const MAX_DETAILS = 20;
/** Elements of each array a faulty body's details are gathered from (see faultsOf in validation.ts). */
export const SAMPLED_ELEMENTS = 10;

/** `complete`: false when long arrays were judged by their first elements only, so that more faults may lie beyond these. */
export function validationFailed(details: ErrorDetail[], complete = true): AppError {
  const shown = details.slice(0, MAX_DETAILS);
  const more = details.length - shown.length;
  const rest = `${more > 0 ? ` and ${more} more` : ''}${complete ? '' : `; arrays longer than ${SAMPLED_ELEMENTS} were judged by their first ${SAMPLED_ELEMENTS} elements`}`;
  return new AppError('validation_failed', `invalid request: ${shown.map((d) => d.path || 'body').join(', ')}${rest}`, shown);
}

export const conflict = (message: string): AppError => new AppError('conflict', message);
