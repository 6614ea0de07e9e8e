import type { Knex } from 'knex';

/**
 * The outbox: one row per change, written in the change's transaction, holding
 * every template variable (SPEC §5) so dispatch and delivery never look back at
 * the changed resource. `queued_at` is null until the relay has enqueued it.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('events', (t) => {
    t.bigIncrements('id');
    t.integer('project_id').notNullable().references('projects.id').onDelete('CASCADE');
    t.text('action').notNullable();
    t.text('resource_type').notNullable();
    t.integer('resource_id').notNullable();
    t.text('resource_name').notNullable();
    t.text('details').notNullable();
    // The acting user as they were at the time of the change.
    t.integer('user_id').notNullable();
    t.text('user_name').notNullable();
    t.text('user_email').notNullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('queued_at', { useTz: true }).nullable();
    t.index(['project_id', 'id'], 'events_project_id_index');
  });
  await knex.raw('CREATE INDEX events_unqueued_index ON events (id) WHERE queued_at IS NULL');
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('events');
}
