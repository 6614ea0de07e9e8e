import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  // One row per delivery attempt; only the newest DELIVERY_RETENTION per integration are kept.
  await knex.schema.createTable('deliveries', (t) => {
    t.bigIncrements('id');
    t.integer('integration_id').notNullable().references('integrations.id').onDelete('CASCADE');
    t.bigInteger('event_id').nullable(); // null for a test delivery
    t.text('webhook_id').notNullable();
    t.text('action').notNullable();
    t.text('status').notNullable();
    t.text('error_code').nullable();
    t.integer('http_status').nullable();
    t.text('address').nullable();
    t.integer('duration_ms').notNullable();
    t.text('error').nullable();
    t.text('request_body').nullable();
    t.text('response_excerpt').nullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.check(`status IN ('success', 'failure')`, [], 'deliveries_status_check');
    t.index(['integration_id', 'id'], 'deliveries_integration_id_index');
  });

  // Committed events wake every relay at once (NOTIFY is delivered on COMMIT); polling stays as the fallback.
  await knex.raw(`
    CREATE FUNCTION notify_events_committed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('mozhno_events', '');
      RETURN NULL;
    END $$;
    CREATE TRIGGER events_notify AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION notify_events_committed();
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw('DROP TRIGGER IF EXISTS events_notify ON events; DROP FUNCTION IF EXISTS notify_events_committed();');
  await knex.schema.dropTable('deliveries');
}
