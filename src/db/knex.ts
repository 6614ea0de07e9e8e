import { userInfo } from 'node:os';
import knex, { type Knex } from 'knex';
import pg from 'pg';
import { redact } from '../config.js';
import { StartupError, unreachable } from '../lifecycle.js';
import { isLoginRefused, PG_INSUFFICIENT_PRIVILEGE, PG_INVALID_CATALOG_NAME, pgErrorCode } from './errors.js';
import type { Logger } from '../logger.js';

// int8 columns (bigserial ids, counts) are read as numbers: ids stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));

export type Db = Knex;

export interface DbOptions {
  /** Largest number of connections this process opens. */
  poolMax?: number;
  /** Where knex's own messages go, as JSON lines like every other; without it (the CLI, migrate), one plain line each on stderr. */
  log?: Logger;
  /** PostgreSQL's lock_timeout for every connection: a statement waiting longer for a lock fails (55P03). */
  lockTimeoutMs?: number;
}

/**
 * Connection settings for pg. A URL without a user name connects as PGUSER or else the
 * operating-system user, as psql does (pg alone would take $USER, which services often lack).
 */
export function pgConnection(databaseUrl: string): { connectionString: string; application_name: string; keepAlive: boolean; keepAliveInitialDelayMillis: number } {
  const url = new URL(databaseUrl);
  // In ?user=, which pg reads in every form: a URL without a host (a socket named in ?host=)
  // has nowhere to put a name before one.
  if (!url.username && !url.searchParams.get('user')) url.searchParams.set('user', databaseUser(databaseUrl));
  // TCP keepalive from 30 s idle: a connection to a PostgreSQL that vanished (a partition, a
  // dead host) ends in minutes rather than the kernel's default two hours, with what it held.
  return { connectionString: url.toString(), application_name: 'mozhno', keepAlive: true, keepAliveInitialDelayMillis: 30_000 };
}

/**
 * The user DATABASE_URL connects as: the one it names (in `?user=`, which pg prefers, or before
 * the host), else PGUSER, else the operating-system user of the process, as libpq picks them.
 */
export function databaseUser(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  const named = url.searchParams.get('user') || decodeURIComponent(url.username) || process.env.PGUSER;
  if (named) return named;
  try {
    return userInfo().username;
  } catch (err) {
    // A container run under a uid without a passwd entry (OpenShift, `docker run --user 12345`).
    throw new StartupError(
      `DATABASE_URL names no user, and the operating-system user (uid ${process.getuid?.() ?? '?'}) has no name (${(err as NodeJS.ErrnoException).code ?? 'error'}): put one in DATABASE_URL (postgres://user@host/db) or set PGUSER`,
    );
  }
}

/** A pool hook setting lock_timeout on each new connection: a SET, as PgBouncer refuses startup options. */
function settingLockTimeout(ms: number) {
  return (connection: pg.Client, done: (err: Error | null, connection: pg.Client) => void): void => {
    connection.query(`SET lock_timeout = ${Math.round(ms)}`).then(
      () => done(null, connection),
      (err: Error) => done(err, connection),
    );
  };
}

export function createDb(databaseUrl: string, options: DbOptions = {}): Db {
  return knex({
    client: 'pg',
    connection: pgConnection(databaseUrl),
    pool: { min: 0, max: options.poolMax ?? 10, ...(options.lockTimeoutMs === undefined ? {} : { afterCreate: settingLockTimeout(options.lockTimeoutMs) }) },
    acquireConnectionTimeout: 10_000,
    // A failed query's message carries its SQL with placeholders, not the values bound to them:
    // those can be an integration's secret or header values, and errors are logged.
    compileSqlOnError: false,
    log: options.log ? knexLog(options.log) : knexToStderr(),
  });
}

/** The first line of a knex message: some carry a stack after it. */
function firstLine(message: unknown): string {
  return String(message).split('\n', 1)[0] ?? '';
}

/**
 * For commands whose stdout is their answer (knex would print to stdout, in colour, with stacks).
 * A failed connection attempt is left out: the command's own one line says what went wrong.
 */
function knexToStderr() {
  const say = (message: unknown) => void process.stderr.write(`mozhno: knex: ${firstLine(message)}\n`);
  const warn = (message: unknown) => {
    if (!isFailedConnectionAttempt(message)) say(message);
  };
  return { warn, error: say, deprecate: say, debug: () => undefined };
}

const isFailedConnectionAttempt = (message: unknown): boolean => firstLine(message).startsWith('Acquire connection error');

/**
 * knex's messages as log lines: the first line only (some carry a stack). A failed
 * connection attempt is debug: the api and workers report an outage once themselves,
 * where knex would repeat it for every attempt.
 */
function knexLog(log: Logger) {
  return {
    warn: (message: unknown) => {
      const text = firstLine(message);
      if (isFailedConnectionAttempt(message)) log.debug({ knex: text }, 'database connection attempt failed');
      else log.warn({ knex: text }, 'knex warning');
    },
    error: (message: unknown) => log.error({ knex: firstLine(message) }, 'knex error'),
    deprecate: (message: unknown) => log.warn({ knex: firstLine(message) }, 'knex deprecation'),
    debug: (message: unknown) => log.debug({ knex: firstLine(message) }, 'knex debug'),
  };
}

/**
 * Whole numbers as one PostgreSQL array literal (`{1,2,3}`), bound as a single value and cast
 * (`?::int[]`): knex would spread a JS array into a list of placeholders, one per element, which
 * the planner cannot size and which overflows its stack from some thousands.
 */
export function intArrayLiteral(values: readonly number[]): string {
  return `{${values.join(',')}}`;
}

/** A pooled pg connection, for what knex cannot do: name a statement, hold a session lock. */
export type PgConnection = pg.PoolClient & { readonly processID?: number };

/** Runs `work` on a connection of the pool, and gives the connection back however `work` ends. */
export async function withConnection<T>(db: Db, work: (connection: PgConnection) => Promise<T>): Promise<T> {
  const connection = (await db.client.acquireConnection()) as PgConnection;
  try {
    return await work(connection);
  } finally {
    await db.client.releaseConnection(connection);
  }
}

/** Fails with one line an operator can act on when the database cannot be used. */
export async function assertDatabaseReachable(db: Db, databaseUrl: string): Promise<void> {
  try {
    await db.raw('select 1');
  } catch (err) {
    throw explainDatabaseError(databaseUrl, err);
  }
}

/**
 * The one line for an error connecting to the database of DATABASE_URL: missing, a login refused,
 * access denied, or unreachable. Only the last asks to start PostgreSQL; the others come from a
 * PostgreSQL that is up and said no. A StartupError passes as it is.
 */
export function explainDatabaseError(databaseUrl: string, err: unknown): StartupError {
  if (err instanceof StartupError) return err;
  const code = pgErrorCode(err);
  const said = `${code}: ${(err as Error).message}`;
  if (code === PG_INVALID_CATALOG_NAME) {
    return new StartupError(`database in DATABASE_URL does not exist (${redact(databaseUrl)}): run \`npm start\` (creates it) or \`createdb\` it, then \`npm run migrate\``);
  }
  if (isLoginRefused(err)) {
    return new StartupError(`PostgreSQL at ${redact(databaseUrl)} refused the login of user "${databaseUser(databaseUrl)}" (${said}): check the user and password in DATABASE_URL`);
  }
  // No CONNECT privilege on the database, say.
  if (code === PG_INSUFFICIENT_PRIVILEGE) {
    return new StartupError(`PostgreSQL at ${redact(databaseUrl)} denied user "${databaseUser(databaseUrl)}" (${said}): grant the user access (CONNECT) or check the user in DATABASE_URL`);
  }
  return unreachable('PostgreSQL', databaseUrl, err);
}

const REFUSED = {
  tables: {
    what: 'a table mozhno needs',
    remedy: "grant it SELECT, INSERT, UPDATE and DELETE on mozhno's tables and USAGE on their schema, or set DATABASE_URL to a user that has them",
  },
  migrations: {
    what: 'what a migration does',
    remedy: "run migrations as the user that owns mozhno's schema and tables (the one that created them), or make this one their owner and grant it CREATE on the schema",
  },
};

/**
 * A statement refused for lack of privilege (42501) as one line an operator can act on:
 * PostgreSQL let DATABASE_URL's user in, but not at the tables (or, for `migrations`, not at
 * changing them). Anything else as it is.
 */
export function privilegeRefused(databaseUrl: string, err: unknown, refused: keyof typeof REFUSED = 'tables'): unknown {
  if (pgErrorCode(err) !== PG_INSUFFICIENT_PRIVILEGE) return err;
  const user = databaseUser(databaseUrl);
  // knex puts the statement before the server's words, and a statement may span lines.
  const reason = String((err as Error).message).split(' - ').at(-1)!.replace(/\s+/g, ' ');
  const { what, remedy } = REFUSED[refused];
  return new StartupError(`PostgreSQL at ${redact(databaseUrl)} refuses user "${user}" ${what} (42501: ${reason}): ${remedy}`);
}

/** The URL a pool of createDb connects with (its user named), for messages. */
export function databaseUrlOf(db: Db): string {
  return (db.client.config.connection as { connectionString: string }).connectionString;
}
