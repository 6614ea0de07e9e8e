import type { Knex } from 'knex';

/**
 * Every queued event leaves a dead row, and a dead entry at the front of the partial index of
 * unqueued events, which the relay reads from that end on every pass. With the default rule
 * (vacuum past 20 % of the live rows) ten million events let two million such entries pile up,
 * some 25 ms per relay pass. 1 % keeps them to a hundred thousand there (~1 ms). Autovacuum reads
 * these settings, and so do the workers where autovacuum is off (SelfVacuum).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE events SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 10000)');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('ALTER TABLE events RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold)');
}
