import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { pgConnection } from '../../src/db/knex.js';
import { SERVER_URL } from './env.js';

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A fresh database cloned from the run's migrated template: this file's alone. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `mozhno_t_${randomBytes(5).toString('hex')}`;
  await admin(`CREATE DATABASE ${name} TEMPLATE ${inject('templateDatabase')}`);
  return {
    url: `${SERVER_URL}/${name}`,
    name,
    drop: () => admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}

async function admin(sql: string): Promise<void> {
  const client = new pg.Client(pgConnection(`${SERVER_URL}/postgres`));
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
