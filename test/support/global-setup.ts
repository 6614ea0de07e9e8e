import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { createDb } from '../../src/db/knex.js';
import { migrateLatest } from '../../src/db/migrate.js';
import { makeTestCertificates } from './certificates.js';
import { SERVER_URL } from './env.js';
import { adminQuery } from './postgres-admin.js';

declare module 'vitest' {
  export interface ProvidedContext {
    templateDatabase: string;
    tlsDir: string;
  }
}

/**
 * Once per run: a migrated template database that each test file clones (its own
 * database, so files run in parallel), and a test CA with a certificate for
 * 127.0.0.1 and *.test names that the HTTPS sinks serve.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const template = `mozhno_tpl_${process.pid}_${Date.now().toString(36)}`;
  await adminQuery(`CREATE DATABASE ${template}`);
  const db = createDb(`${SERVER_URL}/${template}`, { poolMax: 1 });
  try {
    await migrateLatest(db);
  } finally {
    await db.destroy();
  }

  const tlsDir = mkdtempSync(join(tmpdir(), 'mozhno-tls-'));
  makeTestCertificates(tlsDir);
  project.provide('templateDatabase', template);
  project.provide('tlsDir', tlsDir);

  return async () => {
    await adminQuery(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`);
    rmSync(tlsDir, { recursive: true, force: true });
  };
}
