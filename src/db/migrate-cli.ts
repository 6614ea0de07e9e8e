import { loadConfig } from '../config.js';
import { exitOnSignals, exitOnStartupError } from '../lifecycle.js';
import { assertDatabaseReachable, createDb } from './knex.js';
import { migrateLatest, newerThanThisCode } from './migrate.js';

/** `npm run migrate`: applies pending migrations and exits; what the migrate Job / compose service runs. */
async function main(): Promise<void> {
  const config = loadConfig();
  const db = createDb(config.databaseUrl, { poolMax: 2 });
  try {
    await assertDatabaseReachable(db, config.databaseUrl);
    const { applied, unknown } = await migrateLatest(db);
    // A newer database is no failure: this code's api and workers run on it as they are.
    if (unknown.length > 0) process.stdout.write(`${newerThanThisCode(unknown)}\n`);
    else process.stdout.write(applied.length > 0 ? `applied ${applied.length} migration(s): ${applied.join(', ')}\n` : 'database is up to date\n');
  } finally {
    await db.destroy();
  }
}

// Stopping mid-way is safe: each migration is its own transaction or may run again (see
// concurrent-index.ts), and the lock is freed.
exitOnSignals((signal) => `migration stopped (${signal}); run it again to finish`);

main().catch((err: unknown) => exitOnStartupError(err, 'migration failed'));
