import { existsSync } from 'node:fs';
import type * as os from 'node:os';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createDb, pgConnection } from '../../src/db/knex.js';
import { SERVER_URL } from '../support/env.js';

/** The user and host pg would connect with, read the way pg reads them (nothing is connected). */
function connectsAs(databaseUrl: string): { user: string | undefined; host: string; password: string | undefined } {
  const client = new pg.Client(pgConnection(databaseUrl));
  return { user: client.user, host: client.host, password: client.password ?? undefined };
}

// pg falls back on $USER and PGUSER by itself: each test sets them as it needs.
beforeEach(() => {
  vi.stubEnv('USER', undefined);
  vi.stubEnv('PGUSER', undefined);
});
afterEach(() => {
  vi.unstubAllEnvs();
});

describe('pgConnection: a DATABASE_URL without a user connects as PGUSER, else the operating-system user, as psql does', () => {
  const me = userInfo().username;

  it.each([
    ['postgres://127.0.0.1:5432/db', '127.0.0.1'],
    ['postgres://:secret@127.0.0.1:5432/db', '127.0.0.1'],
    ['postgres:///db', 'localhost'],
    ['postgresql:///db?host=/var/run/postgresql', '/var/run/postgresql'],
    ['postgres://%2Fvar%2Frun%2Fpostgresql/db', '/var/run/postgresql'],
  ])('%s', (url, host) => {
    expect(connectsAs(url)).toMatchObject({ user: me, host });
    vi.stubEnv('PGUSER', 'from_pguser');
    expect(connectsAs(url)).toMatchObject({ user: 'from_pguser', host });
    // $USER is not libpq's rule: the user the process runs as is.
    vi.stubEnv('PGUSER', undefined);
    vi.stubEnv('USER', 'from_user_variable');
    expect(connectsAs(url).user).toBe(me);
  });

  it('keeps the password and a user the URL names, in either place', () => {
    vi.stubEnv('PGUSER', 'from_pguser');
    expect(connectsAs('postgres://:secret@127.0.0.1:5432/db').password).toBe('secret');
    expect(connectsAs('postgres://ada:secret@127.0.0.1:5432/db')).toMatchObject({ user: 'ada', password: 'secret' });
    expect(connectsAs('postgresql:///db?host=/var/run/postgresql&user=ada').user).toBe('ada');
    expect(connectsAs('postgres://%C3%A5sa@127.0.0.1/db').user).toBe('åsa');
  });

  it('names the way out in one line when the operating-system user has no name (a uid without a passwd entry)', async () => {
    vi.resetModules();
    vi.doMock('node:os', async (original) => ({
      ...(await original<typeof os>()),
      userInfo: () => {
        throw Object.assign(new Error('A system error occurred: uv_os_get_passwd returned ENOENT'), { code: 'ENOENT' });
      },
    }));
    try {
      const fresh = await import('../../src/db/knex.js');
      const { StartupError: FreshStartupError } = await import('../../src/lifecycle.js');
      expect(() => fresh.pgConnection('postgresql:///db?host=/var/run/postgresql')).toThrow(FreshStartupError);
      expect(() => fresh.pgConnection('postgresql:///db?host=/var/run/postgresql')).toThrow(
        /^DATABASE_URL names no user, and the operating-system user \(uid \d+\) has no name \(ENOENT\): put one in DATABASE_URL \(postgres:\/\/user@host\/db\) or set PGUSER$/,
      );
      vi.stubEnv('PGUSER', 'from_pguser');
      expect(new pg.Client(fresh.pgConnection('postgresql:///db?host=/var/run/postgresql')).user).toBe('from_pguser');
    } finally {
      vi.doUnmock('node:os');
      vi.resetModules();
    }
  });

  it('connects through the server\'s unix socket with a URL that names neither user nor host before the path', async (context) => {
    const tcp = new pg.Client(pgConnection(`${SERVER_URL}/postgres`));
    await tcp.connect();
    let directory: string;
    try {
      directory = (await tcp.query<{ unix_socket_directories: string }>('SHOW unix_socket_directories')).rows[0]!.unix_socket_directories.split(',')[0]!.trim();
    } finally {
      await tcp.end();
    }
    const port = new URL(SERVER_URL).port || '5432';
    if (!existsSync(join(directory, `.s.PGSQL.${port}`))) context.skip(`no socket of the test server on this machine (${directory})`);
    const db = createDb(`postgresql:///postgres?host=${directory}&port=${port}`, { poolMax: 1 });
    try {
      const { rows } = await db.raw<{ rows: { user: string; address: string | null }[] }>('SELECT current_user AS user, inet_client_addr() AS address');
      expect(rows[0]).toEqual({ user: me, address: null }); // no client address: the socket, not TCP
    } finally {
      await db.destroy();
    }
  });
});
