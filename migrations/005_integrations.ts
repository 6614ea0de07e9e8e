import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('integrations', (t) => {
    t.increments('id');
    t.integer('project_id').notNullable().references('projects.id').onDelete('CASCADE');
    t.text('name').notNullable();
    t.boolean('enabled').notNullable().defaultTo(true);
    // Bumped by every change: a job carries the version it was queued against, so a worker's cached copy older than that is read again.
    t.integer('version').notNullable().defaultTo(1);
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
    // Set by failed deliveries only; the last delivery itself is the newest deliveries row.
    t.text('last_error').nullable();
    t.timestamp('last_error_at', { useTz: true }).nullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.index(['project_id']);
    t.check(`type = 'custom_webhook'`, [], 'integrations_type_check');
  });

  // Workers cache what they deliver to; a change to any of it (or a delete) evicts their copy on COMMIT.
  await knex.raw(`
    CREATE FUNCTION notify_integration_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('mozhno_integrations', OLD.id::text);
      RETURN NULL;
    END $$;
    CREATE TRIGGER integrations_notify
      AFTER UPDATE OF enabled, url, headers, body_template, secret, events OR DELETE ON integrations
      FOR EACH ROW EXECUTE FUNCTION notify_integration_changed();
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TRIGGER IF EXISTS integrations_notify ON integrations; DROP FUNCTION IF EXISTS notify_integration_changed();');
  await knex.schema.dropTable('integrations');
}
