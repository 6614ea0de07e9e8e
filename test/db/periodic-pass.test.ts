import { afterAll, beforeAll, expect, it } from 'vitest';
import { createDb, type Db, type PgConnection } from '../../src/db/knex.js';
import { PeriodicPass } from '../../src/db/periodic-pass.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let database: TestDatabase;
let db: Db;
beforeAll(async () => {
  database = await createTestDatabase();
  db = createDb(database.url);
});
afterAll(async () => {
  await db?.destroy();
  await database?.drop();
});

/** A pass that runs until `release()`, counting how often one was asked for and started. */
class SlowPass extends PeriodicPass<number> {
  asked = 0;
  started = 0;
  private gate: Promise<void>;
  release!: () => void;

  constructor(everyMs: number) {
    super(db, everyMs, 0);
    this.gate = new Promise((resolve) => (this.release = resolve));
  }

  override runOnce(): Promise<number> {
    this.asked += 1;
    return super.runOnce();
  }

  protected override async pass(connection: PgConnection): Promise<number> {
    this.started += 1;
    await connection.query('SELECT 1');
    await this.gate;
    return this.started;
  }
}

it('skips the ticks that find a pass under way instead of queueing a pass behind it for each', async () => {
  const slow = new SlowPass(10);
  slow.start();
  try {
    await new Promise((resolve) => setTimeout(resolve, 300)); // some 30 ticks while the first pass waits
    expect(slow.started).toBe(1);
    expect(slow.asked).toBe(1);
  } finally {
    slow.release();
    await slow.stop(); // also when an expectation failed: ticks left running would keep the database busy
  }
});

it('still runs a pass asked for explicitly after the one under way', async () => {
  const slow = new SlowPass(60_000);
  const first = slow.runOnce();
  const second = slow.runOnce();
  slow.release();
  expect([await first, await second]).toEqual([1, 2]);
  await slow.stop();
});
