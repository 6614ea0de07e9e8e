import type { Knex } from 'knex';
import { createIndexConcurrently, dropIndexConcurrently } from '../src/db/concurrent-index.js';

/**
 * An integration's newest record is the attempt that finished last, not the row saved last: two
 * workers' batches can commit in the other order, and `lastDeliveryAt`, the delivery log and
 * retention would then go by save order. The index on (integration_id, id) becomes one on
 * (integration_id, created_at, id), so those reads go by finish time at the same cost and every
 * delivery still writes one index entry for it.
 *
 * CONCURRENTLY, so workers keep recording while it is built; that cannot run in a transaction.
 * Run again after a stop, it first ends what the stopped run left (see createIndexConcurrently).
 */
export const config = { transaction: false };

export async function up(knex: Knex): Promise<void> {
  await createIndexConcurrently(knex, 'deliveries_integration_newest_index', 'deliveries (integration_id, created_at, id)');
  await dropIndexConcurrently(knex, 'deliveries_integration_id_index');
}

export async function down(knex: Knex): Promise<void> {
  await createIndexConcurrently(knex, 'deliveries_integration_id_index', 'deliveries (integration_id, id)');
  await dropIndexConcurrently(knex, 'deliveries_integration_newest_index');
}
