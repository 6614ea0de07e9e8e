import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { SERVER_URL } from './env.js';
import { adminQuery } from './postgres-admin.js';

export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** A fresh database cloned from the run's migrated template: this file's alone. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `mozhno_t_${randomBytes(5).toString('hex')}`;
  await adminQuery(`CREATE DATABASE ${name} TEMPLATE ${inject('templateDatabase')}`);
  return {
    url: `${SERVER_URL}/${name}`,
    name,
    drop: () => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}
