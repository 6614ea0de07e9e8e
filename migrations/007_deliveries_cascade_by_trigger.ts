import type { Knex } from 'knex';

/**
 * Delivery records lose their foreign key, which checked every inserted row on its
 * own (about a third of a record's insert), and keep its two guarantees another way:
 *
 * - an integration's records go with it: a statement-level trigger deletes the records
 *   of the integrations a DELETE removed, however it was reached (directly, or by the
 *   cascade from a deleted project);
 * - no record outlives its integration: the workers' insert locks the batch's
 *   integrations FOR KEY SHARE, once per integration rather than once per row, and
 *   leaves out those already gone (see OutcomeRecorder).
 *
 * During a rolling update, workers of the previous release still write batches of
 * successes without that lock, counting on the foreign key: an integration deleted
 * at that very moment can leave a few records behind. Nothing reads records without
 * their integration, so they are only a few rows of garbage.
 */
export async function up(knex: Knex): Promise<void> {
  // Dropping the foreign key locks deliveries and integrations outright: waiting behind a long
  // transaction (or a VACUUM of deliveries) with every read of integrations queued behind it would
  // stop deliveries and the API alike, so it gives up after 5 s instead (run it again).
  await knex.raw(`SET LOCAL lock_timeout = '5s'`);
  await knex.raw(`
    ALTER TABLE deliveries DROP CONSTRAINT deliveries_integration_id_foreign;
    CREATE FUNCTION delete_records_of_deleted_integrations() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      DELETE FROM deliveries WHERE integration_id IN (SELECT id FROM deleted_integrations);
      RETURN NULL;
    END $$;
    CREATE TRIGGER integrations_delete_records AFTER DELETE ON integrations
      REFERENCING OLD TABLE AS deleted_integrations
      FOR EACH STATEMENT EXECUTE FUNCTION delete_records_of_deleted_integrations();
  `);
}

export async function down(knex: Knex): Promise<void> {
  await knex.raw(`
    DROP TRIGGER IF EXISTS integrations_delete_records ON integrations;
    DROP FUNCTION IF EXISTS delete_records_of_deleted_integrations();
    DELETE FROM deliveries AS d WHERE NOT EXISTS (SELECT 1 FROM integrations AS i WHERE i.id = d.integration_id);
    ALTER TABLE deliveries ADD CONSTRAINT deliveries_integration_id_foreign
      FOREIGN KEY (integration_id) REFERENCES integrations (id) ON DELETE CASCADE;
  `);
}
