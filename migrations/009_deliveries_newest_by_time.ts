import type { Knex } from 'knex';

/**
 * An integration's newest record is the attempt that finished last, not the row saved last: two
 * workers' batches can commit in the other order, and `lastDeliveryAt`, the delivery log and
 * retention would then go by save order. The index on (integration_id, id) becomes one on
 * (integration_id, created_at, id), so those reads go by finish time at the same cost and every
 * delivery still writes one index entry for it.
 *
 * CONCURRENTLY, so workers keep recording while it is built; that cannot run in a transaction.
 * A build that failed leaves an invalid index, dropped first when the migration runs again.
 */
export const config = { transaction: false };

export async function up(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX CONCURRENTLY IF EXISTS deliveries_integration_newest_index');
  await knex.raw('CREATE INDEX CONCURRENTLY deliveries_integration_newest_index ON deliveries (integration_id, created_at, id)');
  await knex.raw('DROP INDEX CONCURRENTLY IF EXISTS deliveries_integration_id_index');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP INDEX CONCURRENTLY IF EXISTS deliveries_integration_id_index');
  await knex.raw('CREATE INDEX CONCURRENTLY deliveries_integration_id_index ON deliveries (integration_id, id)');
  await knex.raw('DROP INDEX CONCURRENTLY IF EXISTS deliveries_integration_newest_index');
}
