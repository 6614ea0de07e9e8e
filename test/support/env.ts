/** The PostgreSQL server the tests use (trust auth on this machine); each file gets its own database on it. */
export const SERVER_URL = (process.env.TEST_DATABASE_SERVER ?? 'postgres://127.0.0.1:5432').replace(/\/$/, '');
export const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
