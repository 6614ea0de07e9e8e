/** PostgreSQL error codes the services translate into API answers. */
export const PG_UNIQUE_VIOLATION = '23505';
export const PG_FOREIGN_KEY_VIOLATION = '23503';
/** invalid_catalog_name: the database named in DATABASE_URL does not exist. */
export const PG_INVALID_CATALOG_NAME = '3D000';
/** insufficient_privilege: DATABASE_URL's user may not create databases, connect to this one, or use a table (or its schema). */
export const PG_INSUFFICIENT_PRIVILEGE = '42501';
/** lock_not_available: a statement waited longer than lock_timeout for a row or table lock. */
export const PG_LOCK_NOT_AVAILABLE = '55P03';
/** undefined_table: knex_migrations before the first migration, say. */
export const PG_UNDEFINED_TABLE = '42P01';
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
  if (code === undefined) {
    // No code: knex's pool timeout, or pg's own words for a connection that went away. Anything
    // else without a code (a TypeError, say) is a bug, not an outage.
    const { name, message } = (err ?? {}) as { name?: unknown; message?: unknown };
    return name === 'KnexTimeoutError' || DRIVER_CONNECTION_MESSAGES.test(String(message));
  }
  // A system error (no SQLSTATE class starts with E): ECONNREFUSED, ECONNRESET, ETIMEDOUT, EPIPE,
  // EAI_AGAIN (a name that briefly fails to resolve during a failover), …
  if (/^E[A-Z_]+$/.test(code)) return true;
  // A SQLSTATE: connection exceptions but a protocol violation (08P01, a bug of ours), operator
  // intervention (a shutdown), insufficient resources, a login refused (class 28: a password being
  // rotated) and a database that is not there (3D000: being restored or renamed).
  return (code.startsWith('08') && code !== '08P01') || code.startsWith('57P') || code.startsWith('53') || isLoginRefused(err) || code === PG_INVALID_CATALOG_NAME;
}

/** PostgreSQL answers but refuses DATABASE_URL's login (class 28: a wrong password, an unknown role). */
export function isLoginRefused(err: unknown): boolean {
  return pgErrorCode(err)?.startsWith('28') === true;
}

// Not "Client was closed": that is a released client used again, a bug.
const DRIVER_CONNECTION_MESSAGES = /Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect|Timeout acquiring a connection/i;
