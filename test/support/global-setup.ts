import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { createDb, pgConnection } from '../../src/db/knex.js';
import { migrateLatest } from '../../src/db/migrate.js';
import { SERVER_URL } from './env.js';

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

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client(pgConnection(`${SERVER_URL}/postgres`));
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

function makeTestCertificates(dir: string): void {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=mozhno test CA', '-keyout', 'ca.key', '-out', 'ca.pem');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=sink.test', '-keyout', 'server.key', '-out', 'server.csr');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:sink.test,DNS:*.sink.test,DNS:*.test\nbasicConstraints=CA:FALSE\n');
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'server.ext', '-out', 'server.pem');
  // A certificate from a CA the workers do not trust, for TLS failure tests.
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=untrusted', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:sink.test', '-keyout', 'untrusted.key', '-out', 'untrusted.pem');
}
