import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('integrations', (t) => {
    t.increments('id');
    t.integer('project_id').notNullable().references('projects.id').onDelete('CASCADE');
    t.text('name').notNullable();
    t.boolean('enabled').notNullable().defaultTo(true);
    t.text('type').notNullable().defaultTo('custom_webhook');
    // configJson and eventSubscriptionsJson as the client sent them (secret masked), answered back verbatim.
    t.text('config_json').notNullable();
    t.text('event_subscriptions_json').notNullable();
    // The same, parsed: what dispatch matches on and what the worker sends.
    t.text('url').notNullable();
    t.jsonb('headers').notNullable().defaultTo('{}');
    t.text('body_template').nullable();
    t.text('secret').nullable();
    t.specificType('events', 'text[]').notNullable();
    t.text('last_error').nullable();
    t.timestamp('last_error_at', { useTz: true }).nullable();
    t.timestamp('last_delivery_at', { useTz: true }).nullable();
    t.text('last_delivery_status').nullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['project_id']);
    t.check(`type = 'custom_webhook'`, [], 'integrations_type_check');
    t.check(`last_delivery_status IN ('success', 'failure')`, [], 'integrations_last_delivery_status_check');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('integrations');
}
