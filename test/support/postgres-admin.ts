import pg from 'pg';
import { pgConnection } from '../../src/db/knex.js';
import { SERVER_URL } from './env.js';

/** Runs one statement on the server's maintenance database (CREATE/DROP DATABASE cannot run inside the target). */
export async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client(pgConnection(`${SERVER_URL}/postgres`));
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
