/** PostgreSQL error codes the services translate into API answers. */
export const PG_UNIQUE_VIOLATION = '23505';
export const PG_FOREIGN_KEY_VIOLATION = '23503';
/** Text with U+0000, which PostgreSQL cannot store. */
export const PG_CHARACTER_NOT_IN_REPERTOIRE = '22021';

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

/**
 * Whether an error says PostgreSQL could not be reached or went away (refused, reset,
 * restarting, out of connections), rather than that the statement was wrong: worth
 * waiting out.
 */
export function isConnectionError(err: unknown): boolean {
  const code = pgErrorCode(err);
  // No code: the driver's own errors ("Connection terminated unexpectedly"), knex's pool timeout.
  if (code === undefined) return true;
  // A SQLSTATE: only connection exceptions, operator intervention (shutdown) and insufficient resources.
  if (/^[0-9A-Z]{5}$/.test(code)) return code.startsWith('08') || code.startsWith('57P') || code.startsWith('53');
  return true; // a system error: ECONNREFUSED, ECONNRESET, ETIMEDOUT, …
}
