import { setTimeout as sleep } from 'node:timers/promises';
import type { Knex } from 'knex';

/**
 * Index statements for migrations that run outside a transaction (`config = { transaction: false }`)
 * and may run again after a stop. A build whose migrate was stopped runs on in PostgreSQL until it
 * next writes to its client, at its end; a DROP of its index meanwhile fails ("deadlock detected",
 * or "tuple concurrently updated" as the build commits). So each statement first cancels what a
 * stopped run still runs on that index (its work would be dropped anyway), and waits until it has
 * ended: also a build that finished before the cancel reached it.
 */

/** `on` is the table and its columns, `deliveries (integration_id, id)`. Drops first what a stopped run left half-built. */
export async function createIndexConcurrently(knex: Knex, name: string, on: string): Promise<void> {
  await dropIndexConcurrently(knex, name);
  await knex.raw(`CREATE INDEX CONCURRENTLY ${name} ON ${on}`);
}

export async function dropIndexConcurrently(knex: Knex, name: string): Promise<void> {
  await cancelLeftovers(knex, name);
  await knex.raw(`DROP INDEX CONCURRENTLY IF EXISTS ${name}`);
}

/** Names go into the SQL as they are. */
const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;

const LOOK_AGAIN_MS = 100;
/** A cancelled build ends at its next check for interrupts, within moments: longer means something else holds it. */
const GIVE_UP_MS = 60_000;

/**
 * Cancels the statements of this file on index `name` that other sessions of this role run, and
 * returns once none is left. Migrations run one at a time under the migration lock, which this run
 * holds, so such a statement is a stopped run's; matched by its text, which must therefore stay as
 * it is (releases before this file sent the same). Each look is a statement of its own: a
 * transaction held open across them would be an old snapshot that such a build waits for.
 */
async function cancelLeftovers(knex: Knex, name: string): Promise<void> {
  if (!IDENTIFIER.test(name)) throw new Error(`index name ${JSON.stringify(name)}: lowercase letters, digits and _ only`);
  const said = new Set<number>();
  const deadline = Date.now() + GIVE_UP_MS;
  for (;;) {
    const { rows } = (await knex.raw(
      `SELECT pid, query, pg_cancel_backend(pid) AS cancelled FROM pg_stat_activity
        WHERE datname = current_database() AND usename = current_user AND pid <> pg_backend_pid() AND state = 'active'
          AND backend_type = 'client backend'
          AND (query = ? OR starts_with(query, ?))`,
      [`DROP INDEX CONCURRENTLY IF EXISTS ${name}`, `CREATE INDEX CONCURRENTLY ${name} ON `],
    )) as { rows: Array<{ pid: number; query: string }> };
    if (rows.length === 0) return;
    for (const { pid, query } of rows) {
      if (said.has(pid)) continue;
      said.add(pid);
      warn(knex, `cancelled backend ${pid}: "${query}", left running by a migrate that was stopped`);
    }
    if (Date.now() > deadline) {
      const pids = rows.map((row) => row.pid).join(', ');
      throw new Error(`backend ${pids} still runs a statement on index ${name} ${GIVE_UP_MS / 1000} s after it was cancelled: end it with pg_terminate_backend, then run the migration again`);
    }
    await sleep(LOOK_AGAIN_MS);
  }
}

/** Through knex's log: one line on stderr from `npm run migrate`, a log line where knex has a logger. */
function warn(knex: Knex, message: string): void {
  (knex.client as { logger: { warn(message: string): void } }).logger.warn(message);
}
