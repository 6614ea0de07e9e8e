import type { Knex } from 'knex';

/**
 * Secret rotation (POST /integrations/:id/secret/rotate): the secret replaced goes on signing,
 * beside the new one, until `previous_secret_expires_at`, so receivers can switch over without
 * refusing deliveries meanwhile. Two nullable columns: no table rewrite, a moment's lock, and that
 * lock given up after 5 s rather than queued behind a long transaction with every write behind it.
 * Workers cache what they sign with: the trigger that evicts their copy covers the new column.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.raw(`SET LOCAL lock_timeout = '5s'`);
  await knex.schema.alterTable('integrations', (t) => {
    t.text('previous_secret').nullable();
    t.timestamp('previous_secret_expires_at', { useTz: true }).nullable();
  });
  await notifyOn(knex, 'enabled, url, headers, body_template, secret, previous_secret, events');
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`SET LOCAL lock_timeout = '5s'`);
  await notifyOn(knex, 'enabled, url, headers, body_template, secret, events');
  await knex.schema.alterTable('integrations', (t) => {
    t.dropColumn('previous_secret');
    t.dropColumn('previous_secret_expires_at');
  });
}

async function notifyOn(knex: Knex, columns: string): Promise<void> {
  await knex.raw(`
    DROP TRIGGER integrations_notify ON integrations;
    CREATE TRIGGER integrations_notify
      AFTER UPDATE OF ${columns} OR DELETE ON integrations
      FOR EACH ROW EXECUTE FUNCTION notify_integration_changed();
  `);
}
