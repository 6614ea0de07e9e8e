import type { Knex } from 'knex';
import * as m001 from './001_tenancy.js';
import * as m002 from './002_environments_and_api_keys.js';
import * as m003 from './003_flags_segments_strategies.js';
import * as m004 from './004_events.js';
import * as m005 from './005_integrations.js';
import * as m006 from './006_deliveries.js';
import * as m007 from './007_deliveries_cascade_by_trigger.js';
import * as m008 from './008_events_vacuum_threshold.js';
import * as m009 from './009_deliveries_newest_by_time.js';
import * as m010 from './010_environment_indexes_and_deferred_segment_check.js';
import * as m011 from './011_integration_previous_secret.js';

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
  /** `{ transaction: false }` for a statement that cannot run in one (CREATE INDEX CONCURRENTLY). */
  config?: { transaction?: boolean };
}

/** Every migration in order. Listed here (not read from disk) so tsx and compiled JavaScript run the same set. */
const MIGRATIONS: ReadonlyArray<[string, Migration]> = [
  ['001_tenancy', m001],
  ['002_environments_and_api_keys', m002],
  ['003_flags_segments_strategies', m003],
  ['004_events', m004],
  ['005_integrations', m005],
  ['006_deliveries', m006],
  ['007_deliveries_cascade_by_trigger', m007],
  ['008_events_vacuum_threshold', m008],
  ['009_deliveries_newest_by_time', m009],
  ['010_environment_indexes_and_deferred_segment_check', m010],
  ['011_integration_previous_secret', m011],
];

export const migrationSource: Knex.MigrationSource<string> = {
  getMigrations: async () => MIGRATIONS.map(([name]) => name),
  getMigrationName: (name) => name,
  getMigration: async (name) => {
    const found = MIGRATIONS.find(([n]) => n === name);
    if (!found) throw new Error(`unknown migration ${name}`);
    return found[1];
  },
};
