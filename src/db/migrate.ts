import pg from 'pg';
import { migrationSource } from '../../migrations/index.js';
import { PG_INSUFFICIENT_PRIVILEGE, PG_INVALID_CATALOG_NAME, PG_UNDEFINED_TABLE, pgErrorCode } from './errors.js';
import { redact } from '../config.js';
import { StartupError } from '../lifecycle.js';
import { databaseUrlOf, databaseUser, explainDatabaseError, pgConnection, privilegeRefused, type Db } from './knex.js';

/** pg_advisory_lock key of migrations ('mzmig' in ASCII). */
const MIGRATION_LOCK = 0x6d7a6d6967;

/** What a migrate did: the migrations it applied, or, on a database newer than this code, those it does not know. */
export interface MigrateResult {
  applied: string[];
  /** Applied to the database by newer code, unknown to this one: nothing was applied then. */
  unknown: string[];
}

/**
 * knex's options for every listing and applying. Without disableMigrationsListValidation, a
 * migration in the database that this code lacks is "The migration directory is corrupt": an
 * older release could not even start on the schema of a newer one, which it runs on fine.
 */
const KNEX_MIGRATE_OPTIONS = { migrationSource, disableMigrationsListValidation: true };

/**
 * Applies pending migrations. Safe to run from several processes at once (`npm start` beside a
 * migrate Job): they take turns under a session lock, held on a connection of its own, which also
 * covers knex creating its bookkeeping tables on a fresh database (outside knex's own lock).
 * A database with migrations this code does not know was migrated by newer code, which has all
 * of ours too: it is left as it is. One that also lacks some of ours was migrated by other code
 * altogether, and ours applied on top of its schema could break it: that is an error.
 */
export async function migrateLatest(db: Db): Promise<MigrateResult> {
  try {
    return await migrateUnderLock(db);
  } catch (err) {
    // A user let in that does not own the schema: one line, not the SQL of the first refused statement.
    throw privilegeRefused(databaseUrlOf(db), err, 'migrations');
  }
}

async function migrateUnderLock(db: Db): Promise<MigrateResult> {
  // Not from the pool, which migrations may need whole (`npm start` and the CLI give it two).
  const lock = new pg.Client(db.client.config.connection as pg.ClientConfig);
  await lock.connect();
  try {
    await takeLock(lock);
    // Ours is the lock that counts. knex's own (a row it sets) is committed on its own when a
    // migration runs outside a transaction (CONCURRENTLY), and one killed then would leave it
    // set: every later migrate would fail as "already locked" until someone unlocked it by hand.
    await db.migrate.forceFreeMigrationsLock(KNEX_MIGRATE_OPTIONS);
    const [completed, pending] = (await db.migrate.list(KNEX_MIGRATE_OPTIONS)) as [Array<{ name: string }>, string[]];
    const known = new Set(await migrationSource.getMigrations([]));
    const unknown = completed.map(({ name }) => name).filter((name) => !known.has(name));
    if (unknown.length > 0) {
      if (pending.length > 0) throw new StartupError(`database has migrations this code does not know (${unknown.join(', ')}) and lacks some of its own (${pending.join(', ')}): it was migrated by other code; nothing applied`);
      return { applied: [], unknown };
    }
    const [, applied] = (await db.migrate.latest(KNEX_MIGRATE_OPTIONS)) as [number, string[]];
    return { applied, unknown: [] };
  } finally {
    await lock.end(); // ending the session releases its lock
  }
}

/** The one line that says a database is newer than this code. */
export function newerThanThisCode(unknown: readonly string[]): string {
  return `database is newer than this code: it has ${unknown.length} migration(s) this code does not know (${unknown.join(', ')}); nothing applied`;
}

/**
 * Waits for the migration lock between short tries rather than in one statement: a session
 * blocked in pg_advisory_lock is a transaction holding a snapshot, which a CREATE INDEX
 * CONCURRENTLY of the holder's migrations waits for — neither would ever go on.
 */
async function takeLock(lock: pg.Client): Promise<void> {
  for (;;) {
    const { rows } = await lock.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [MIGRATION_LOCK]);
    if (rows[0]?.locked === true) return;
    await new Promise((resolve) => setTimeout(resolve, LOCK_RETRY_MS));
  }
}

const LOCK_RETRY_MS = 200;

/**
 * The migrations of this code the database has not applied yet (all of them before the first
 * `npm run migrate`). Reads only: knex's own listing would create its bookkeeping tables.
 */
export async function missingMigrations(db: Db): Promise<string[]> {
  const known = await migrationSource.getMigrations([]);
  let applied: string[] = [];
  try {
    applied = (await db('knex_migrations').pluck('name')) as string[];
  } catch (err) {
    if (pgErrorCode(err) !== PG_UNDEFINED_TABLE) throw err;
  }
  const have = new Set(applied);
  return known.filter((name) => !have.has(name));
}

/** What /readyz and a refused start say of a database missing `missing`. */
export function notMigrated(missing: readonly string[]): string {
  return `not migrated: ${missing.join(', ')} missing (run the migrations: npm run migrate, or the image's migrate command, as the compose migrate service and the Kubernetes migrate Job do)`;
}

/** Fails with one line when the database lacks migrations of this code: a worker on it would fail every job. */
export async function assertMigrated(db: Db): Promise<void> {
  const missing = await missingMigrations(db).catch((err: unknown) => {
    throw privilegeRefused(databaseUrlOf(db), err);
  });
  if (missing.length > 0) throw new StartupError(`database ${notMigrated(missing)}`);
}

/**
 * Creates the database named in `databaseUrl` when it does not exist yet; returns whether it did.
 * Fails with the one line explainDatabaseError gives (PostgreSQL unreachable, a login refused, …).
 */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  try {
    return await createIfMissing(databaseUrl);
  } catch (err) {
    throw explainDatabaseError(databaseUrl, err);
  }
}

async function createIfMissing(databaseUrl: string): Promise<boolean> {
  const target = new URL(databaseUrl);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''));
  if (!name) return false;
  const probe = new pg.Client(pgConnection(databaseUrl));
  try {
    await probe.connect();
    return false;
  } catch (err) {
    // The database does not exist; anything else is explained by ensureDatabase.
    if (pgErrorCode(err) !== PG_INVALID_CATALOG_NAME) throw err;
  } finally {
    await probe.end().catch(() => undefined);
  }
  const maintenance = new URL(databaseUrl);
  maintenance.pathname = '/postgres';
  const admin = new pg.Client(pgConnection(maintenance.toString()));
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  } catch (err) {
    const code = pgErrorCode(err);
    if (code === PG_INSUFFICIENT_PRIVILEGE) {
      const user = databaseUser(databaseUrl);
      throw new StartupError(`database in DATABASE_URL does not exist (${redact(databaseUrl)}) and user "${user}" may not create databases: create it first (as a user who may: \`createdb -O ${user} ${name}\`) or grant "${user}" CREATEDB`);
    }
    // 42P04: duplicate_database, another process created it first.
    if (code !== '42P04') throw err;
  } finally {
    await admin.end();
  }
  return true;
}
