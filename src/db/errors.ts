/** PostgreSQL error codes the services translate into API answers. */
export const PG_UNIQUE_VIOLATION = '23505';
export const PG_FOREIGN_KEY_VIOLATION = '23503';

/** The SQLSTATE of a pg error, also when Objection wrapped it (its db-errors keep the original as `nativeError`). */
export function pgErrorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  if ('nativeError' in err) return pgErrorCode(err.nativeError);
  return 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/** A unique violation becomes the given error (usually a 409 naming the key); anything else passes through. */
export function uniqueViolationAs(err: unknown, replacement: Error): unknown {
  return pgErrorCode(err) === PG_UNIQUE_VIOLATION ? replacement : err;
}
