import type { Knex } from 'knex';
import { createIndexConcurrently, dropIndexConcurrently } from '../src/db/concurrent-index.js';

/**
 * Deleting an environment deletes its strategies and unscopes its API keys; without an index on
 * their environment_id, each such delete read every strategy and key of every project. Built
 * CONCURRENTLY, outside a transaction, so the API keeps writing meanwhile; run again after a stop,
 * it first ends what the stopped run left (see createIndexConcurrently).
 *
 * A segment used by a strategy still cannot be deleted, but the check now waits for COMMIT
 * (NO ACTION, deferred) rather than refusing at once (RESTRICT): deleting a project deletes its
 * segments before the cascade through its flags and strategies reaches the links to them, and
 * RESTRICT refused that. The API checks first and answers 409 naming the strategies, as before.
 */
export const config = { transaction: false };

const INDEXES: ReadonlyArray<[name: string, table: string]> = [
  ['strategies_environment_id_index', 'strategies'],
  ['api_keys_environment_id_index', 'api_keys'],
];

export async function up(knex: Knex): Promise<void> {
  for (const [name, table] of INDEXES) await createIndexConcurrently(knex, name, `${table} (environment_id)`);
  await replaceSegmentCheck(knex, 'NO ACTION DEFERRABLE INITIALLY DEFERRED');
}

export async function down(knex: Knex): Promise<void> {
  await replaceSegmentCheck(knex, 'RESTRICT');
  for (const [name] of INDEXES) await dropIndexConcurrently(knex, name);
}

/** Added NOT VALID, then validated: the rows are checked without holding off writes to segments meanwhile. */
async function replaceSegmentCheck(knex: Knex, rule: string): Promise<void> {
  await knex.transaction(async (trx) => {
    // The swap locks segments and strategy_segments outright: behind a long transaction it would
    // hold every read of them waiting. It gives up instead, and the migration can run again.
    await trx.raw(`SET LOCAL lock_timeout = '10s'`);
    await trx.raw(`ALTER TABLE strategy_segments
      DROP CONSTRAINT strategy_segments_segment_id_foreign,
      ADD CONSTRAINT strategy_segments_segment_id_foreign FOREIGN KEY (segment_id) REFERENCES segments (id) ON DELETE ${rule} NOT VALID`);
  });
  await knex.raw('ALTER TABLE strategy_segments VALIDATE CONSTRAINT strategy_segments_segment_id_foreign');
}
