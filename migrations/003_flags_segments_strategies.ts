import type { Knex } from 'knex';

export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('flags', (t) => {
    t.increments('id');
    t.integer('project_id').notNullable().references('projects.id').onDelete('CASCADE');
    t.text('key').notNullable();
    t.text('name').notNullable();
    t.text('description').notNullable().defaultTo('');
    t.timestamp('archived_at', { useTz: true }).nullable();
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['project_id', 'key'], { indexName: 'flags_project_key_unique' });
  });

  await knex.schema.createTable('segments', (t) => {
    t.increments('id');
    t.integer('project_id').notNullable().references('projects.id').onDelete('CASCADE');
    t.text('key').notNullable();
    t.text('name').notNullable();
    t.jsonb('conditions').notNullable().defaultTo('[]');
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['project_id', 'key'], { indexName: 'segments_project_key_unique' });
  });

  await knex.schema.createTable('strategies', (t) => {
    t.increments('id');
    t.integer('flag_id').notNullable().references('flags.id').onDelete('CASCADE');
    t.integer('environment_id').notNullable().references('environments.id').onDelete('CASCADE');
    t.boolean('enabled').notNullable().defaultTo(false);
    t.integer('rollout_percentage').notNullable().defaultTo(100);
    t.timestamp('created_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('updated_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.unique(['flag_id', 'environment_id'], { indexName: 'strategies_flag_environment_unique' });
    t.check('rollout_percentage BETWEEN 0 AND 100', [], 'strategies_rollout_check');
  });

  // A segment in use cannot be deleted (RESTRICT): the API answers 409 naming the strategies.
  await knex.schema.createTable('strategy_segments', (t) => {
    t.integer('strategy_id').notNullable().references('strategies.id').onDelete('CASCADE');
    t.integer('segment_id').notNullable().references('segments.id').onDelete('RESTRICT');
    t.primary(['strategy_id', 'segment_id']);
    t.index(['segment_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTable('strategy_segments');
  await knex.schema.dropTable('strategies');
  await knex.schema.dropTable('segments');
  await knex.schema.dropTable('flags');
}
