import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, withConnection, type Db } from '../../src/db/knex.js';
import { SelfVacuum, VACUUM_LOCK, vacuumDue, type TableStats } from '../../src/db/vacuum.js';
import { createLogger } from '../../src/logger.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { eventually } from '../support/delivery.js';

describe('vacuumDue: autovacuum’s own rule, for tables autovacuum does not look after', () => {
  const stats = (over: Partial<TableStats>): TableStats => ({ table: 't', dead: 0, live: 1000, autovacuum: false, threshold: 50, scaleFactor: 0.2, ...over });

  it.each([
    { dead: 250, live: 1000, autovacuum: false, due: false }, // 250 = 50 + 0.2 × 1000: not above
    { dead: 251, live: 1000, autovacuum: false, due: true },
    { dead: 51, live: 0, autovacuum: false, due: true },
    { dead: 1_000_000, live: 1000, autovacuum: true, due: false }, // autovacuum's job, however many
  ])('$dead dead, $live live, autovacuum $autovacuum → $due', ({ due, ...over }) => {
    expect(vacuumDue(stats(over))).toBe(due);
  });

  it('uses the server’s threshold and scale factor', () => {
    expect(vacuumDue(stats({ dead: 151, threshold: 100, scaleFactor: 0.05 }))).toBe(true); // > 100 + 0.05 × 1000
    expect(vacuumDue(stats({ dead: 151, threshold: 100, scaleFactor: 0.1 }))).toBe(false); // ≤ 100 + 0.1 × 1000
  });
});

describe('SelfVacuum against PostgreSQL, autovacuum turned off for deliveries', () => {
  let database: TestDatabase;
  let db: Db;
  let other: Db;
  let vacuumDb: Db;
  let vacuum: SelfVacuum;
  const logged: string[] = [];
  const sink = new PassThrough();
  sink.on('data', (line: Buffer) => logged.push(line.toString()));

  /** What the statistics say about deliveries once this session's counts have reached them. */
  const tableStats = async () =>
    (await db.raw(`SELECT n_dead_tup AS dead, n_live_tup AS live, vacuum_count AS vacuums FROM pg_stat_user_tables WHERE relname = 'deliveries'`)).rows[0] as {
      dead: number;
      live: number;
      vacuums: number;
    };

  /** Deletes `count` of the oldest records and waits until the statistics count them dead. */
  async function deleteOldest(count: number): Promise<void> {
    const before = (await tableStats()).dead;
    await db.raw('DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries ORDER BY id LIMIT ?)', [count]);
    await db.raw('SELECT pg_stat_force_next_flush()');
    await eventually(async () => (await tableStats()).dead >= before + count);
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb(database.url, { poolMax: 1 }); // one session: its statistics are flushed by pg_stat_force_next_flush
    other = createDb(database.url, { poolMax: 1 });
    vacuumDb = createDb(database.url, { poolMax: 2 });
    vacuum = new SelfVacuum(vacuumDb, createLogger('info', { destination: sink }), { tables: ['deliveries'] });
    // Whatever the server's setting, autovacuum leaves this table alone: the test does not race it.
    await db.raw('ALTER TABLE deliveries SET (autovacuum_enabled = false)');
    await db.raw(
      `INSERT INTO deliveries (integration_id, event_id, webhook_id, action, status, duration_ms)
       SELECT 1, g, 'msg_' || g, 'flag.updated', 'success', 1 FROM generate_series(1, 1000) AS g`,
    );
    await db.raw('SELECT pg_stat_force_next_flush()');
    await eventually(async () => (await tableStats()).live === 1000);
  });
  afterAll(async () => {
    await vacuum.stop();
    await vacuumDb.destroy();
    await other.destroy();
    await db.destroy();
    await database.drop();
  });

  it('leaves the table alone while its dead rows are at most 50 + 20 % of the live ones', async () => {
    await deleteOldest(200); // 200 dead ≤ 50 + 0.2 × 800
    expect(await vacuum.runOnce()).toEqual([]);
    expect((await tableStats()).vacuums).toBe(0);
  });

  it('waits while another worker vacuums (holds the lock), then vacuums the table itself', async () => {
    await deleteOldest(300); // 500 dead > 50 + 0.2 × 500
    await withConnection(other, async (holder) => {
      await holder.query('SELECT pg_advisory_lock($1)', [VACUUM_LOCK]);
      expect(await vacuum.runOnce()).toEqual([]);
      expect((await tableStats()).vacuums).toBe(0);
      await holder.query('SELECT pg_advisory_unlock($1)', [VACUUM_LOCK]);
    });
    expect(await vacuum.runOnce()).toEqual(['deliveries']);
    const after = await eventually(async () => {
      const s = await tableStats();
      return s.vacuums === 1 && s;
    });
    expect(after.dead).toBe(0);
    expect(after.live).toBe(500);
  });

  it('cancels a VACUUM under way when stopped, rather than hold up a shutdown', async () => {
    await deleteOldest(200); // 200 dead > 50 + 0.2 × 300
    const stopping = new SelfVacuum(vacuumDb, createLogger('info', { destination: sink }), { tables: ['deliveries'] });
    // Another session holds the lock VACUUM needs: the VACUUM waits for it, as on a huge table it would work for long.
    await other.transaction(async (trx) => {
      await trx.raw('LOCK TABLE deliveries IN SHARE UPDATE EXCLUSIVE MODE');
      const pass = stopping.runOnce();
      await eventually(async () => (await db.raw(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'VACUUM%' AND wait_event_type = 'Lock'`)).rows.length === 1);
      await stopping.stop();
      expect(await pass).toEqual([]);
      expect((await db.raw(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'VACUUM%' AND state = 'active'`)).rows[0].n).toBe(0);
    });
    expect((await tableStats()).vacuums).toBe(1); // only the earlier one
    expect(await vacuum.runOnce()).toEqual(['deliveries']); // the next pass does it
  });

  it('says once that autovacuum is off for the table, and logs each vacuum', async () => {
    expect(await vacuum.runOnce()).toEqual([]); // nothing dead any more
    const lines = logged.map((line) => JSON.parse(line) as { msg: string; table: string; dead?: number });
    // Once per SelfVacuum (per worker process): the two of this file.
    expect(lines.filter((l) => l.msg.startsWith('autovacuum is off')).map((l) => l.table)).toEqual(['deliveries', 'deliveries']);
    expect(lines.filter((l) => l.msg === 'vacuumed')).toEqual([
      expect.objectContaining({ table: 'deliveries', dead: 500 }),
      expect.objectContaining({ table: 'deliveries', dead: 200 }),
    ]);
    expect(lines.filter((l) => l.msg.startsWith('could not vacuum'))).toEqual([]); // the cancelled one is not an error
  });
});

describe('SelfVacuum reads a table’s own threshold and scale factor first, as autovacuum does', () => {
  let database: TestDatabase;
  let db: Db;
  beforeAll(async () => {
    database = await createTestDatabase();
    db = createDb(database.url, { poolMax: 1 }); // one session: its statistics are flushed by pg_stat_force_next_flush
  });
  afterAll(async () => {
    await db.destroy();
    await database.drop();
  });

  const eventStats = async () =>
    (await db.raw(`SELECT n_dead_tup AS dead, n_live_tup AS live FROM pg_stat_user_tables WHERE relname = 'events'`)).rows[0] as { dead: number; live: number };

  it('leaves events (1 % + 10 000 since migration 008) alone where the server’s 20 % + 50 would vacuum it, until the table says otherwise', async () => {
    const options = (await db.raw(`SELECT reloptions FROM pg_class WHERE relname = 'events'`)).rows[0].reloptions as string[];
    expect(options).toEqual(expect.arrayContaining(['autovacuum_vacuum_scale_factor=0.01', 'autovacuum_vacuum_threshold=10000']));
    await db.raw('ALTER TABLE events SET (autovacuum_enabled = false)');
    const [project] = await db('projects').insert({ name: 'vacuum', plan: 'free' }).returning('id');
    await db.raw(
      `INSERT INTO events (project_id, action, resource_type, resource_id, resource_name, details, user_id, user_name, user_email)
       SELECT ?, 'flag.updated', 'flag', 1, 'f', '', 1, 'u', 'u@example.com' FROM generate_series(1, 1000)`,
      [(project as { id: number }).id],
    );
    await db('events').update({ queued_at: db.fn.now() }); // as the relay does: 1000 dead rows
    await db.raw('SELECT pg_stat_force_next_flush()');
    await eventually(async () => (await eventStats()).dead >= 1000);

    const vacuum = new SelfVacuum(db, createLogger('silent'), { tables: ['events'] });
    expect(await vacuum.runOnce()).toEqual([]); // 1000 ≤ 10 000 + 1 % of 1000, though > 50 + 20 %
    await db.raw('ALTER TABLE events SET (autovacuum_vacuum_threshold = 100)');
    expect(await vacuum.runOnce()).toEqual(['events']); // 1000 > 100 + 1 % of 1000
    await vacuum.stop();
  });
});
