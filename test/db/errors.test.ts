import { afterAll, beforeAll, expect, it } from 'vitest';
import { isConnectionError } from '../../src/db/errors.js';
import { createDb, type Db } from '../../src/db/knex.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let database: TestDatabase;
let db: Db;
beforeAll(async () => {
  database = await createTestDatabase();
  db = createDb(database.url, { poolMax: 2 });
});
afterAll(async () => {
  await db.destroy();
  await database.drop();
});

it('a failed query\'s message shows its SQL with placeholders, never the values bound to it (they reach the log)', async () => {
  const secret = 'whsec_never-in-a-log-line';
  let error: unknown;
  try {
    await db('integrations').insert({ no_such_column: secret });
  } catch (err) {
    error = err;
  }
  expect((error as Error).message).toMatch(/insert into "integrations" \("no_such_column"\) values \(\$1\).*no_such_column/);
  expect((error as Error).message).not.toContain(secret);
  expect(isConnectionError(error)).toBe(false); // a wrong statement is not worth waiting out
});

it('tells PostgreSQL being unreachable from a wrong statement', async () => {
  for (const url of ['postgres://127.0.0.1:1/nowhere', database.url.replace('//', '//nosuchrole_mozhno@')]) {
    const unreachable = createDb(url, { poolMax: 1 });
    try {
      const error = await unreachable.raw('select 1').catch((err: unknown) => err);
      expect(isConnectionError(error)).toBe(true);
    } finally {
      await unreachable.destroy();
    }
  }
  const shutdown = Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' });
  expect(isConnectionError(shutdown)).toBe(true);
  const unique = Object.assign(new Error('duplicate key'), { code: '23505' });
  expect(isConnectionError(unique)).toBe(false);
  expect(isConnectionError(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }))).toBe(true);
  expect(isConnectionError(new Error('Connection terminated unexpectedly'))).toBe(true);
  expect(isConnectionError(Object.assign(new Error('Knex: Timeout acquiring a connection.'), { name: 'KnexTimeoutError' }))).toBe(true);
  expect(isConnectionError(Object.assign(new Error('getaddrinfo EAI_AGAIN db'), { code: 'EAI_AGAIN' }))).toBe(true);
  // A login refused (a password being rotated) and a database not there (being restored) are waited out too.
  expect(isConnectionError(Object.assign(new Error('password authentication failed for user "mozhno"'), { code: '28P01' }))).toBe(true);
  expect(isConnectionError(Object.assign(new Error('database "mozhno" does not exist'), { code: '3D000' }))).toBe(true);
  // A bug is not an outage: nothing waits it out, and the api answers 500 for it.
  expect(isConnectionError(new TypeError("Cannot read properties of undefined (reading 'id')"))).toBe(false);
  expect(isConnectionError(Object.assign(new Error('bind message supplies 1 parameters, but prepared statement requires 2'), { code: '08P01' }))).toBe(false);
  expect(isConnectionError(new Error('Client was closed and is not queryable'))).toBe(false);
});
