import pg from 'pg';
import type { Logger } from '../logger.js';
import type { Db, PgConnection } from './knex.js';
import { PeriodicPass } from './periodic-pass.js';

/**
 * The tables that churn: every delivery record is deleted again by the retention,
 * and every event row is updated once, when it is queued. Each leaves a dead row
 * behind.
 */
export const CHURNING_TABLES = ['deliveries', 'events'] as const;

/** pg_advisory_lock key that keeps two workers from vacuuming at once ('mzvac' in ASCII). */
export const VACUUM_LOCK = 0x6d7a766163;

/** What PostgreSQL's statistics say about one table, and the autovacuum settings that apply to it. */
export interface TableStats {
  table: string;
  dead: number;
  live: number;
  /** Whether autovacuum looks after this table: on for the server, not turned off for the table. */
  autovacuum: boolean;
  /** autovacuum_vacuum_threshold and autovacuum_vacuum_scale_factor: the table's own, else the server's. */
  threshold: number;
  scaleFactor: number;
}

/** Autovacuum's own rule, for a table autovacuum does not look after. */
export function vacuumDue(stats: TableStats): boolean {
  return !stats.autovacuum && stats.dead > stats.threshold + stats.scaleFactor * stats.live;
}

const STATS = `
  SELECT c.relname AS "table", s.n_dead_tup AS dead, s.n_live_tup AS live,
         current_setting('autovacuum')::boolean
           AND coalesce((SELECT option_value FROM pg_options_to_table(c.reloptions)
                          WHERE option_name = 'autovacuum_enabled')::boolean, true) AS autovacuum,
         coalesce((SELECT option_value FROM pg_options_to_table(c.reloptions)
                    WHERE option_name = 'autovacuum_vacuum_threshold')::float8,
                  current_setting('autovacuum_vacuum_threshold')::float8) AS threshold,
         coalesce((SELECT option_value FROM pg_options_to_table(c.reloptions)
                    WHERE option_name = 'autovacuum_vacuum_scale_factor')::float8,
                  current_setting('autovacuum_vacuum_scale_factor')::float8) AS "scaleFactor"
    FROM pg_stat_user_tables AS s JOIN pg_class AS c ON c.oid = s.relid
   WHERE s.relid = ANY ($1::text[]::regclass[])`;

export interface SelfVacuumOptions {
  tables?: readonly string[];
  /** How often the statistics are read; autovacuum's own default nap is a minute. */
  everyMs?: number;
}

/**
 * PostgreSQL's autovacuum reclaims the dead rows of the churning tables. Where it is
 * off, for the server or for a table, nothing would: the retention keeps a bounded
 * number of delivery records alive, but the table would still grow without bound.
 * Workers then do autovacuum's job for those tables, by its own rule and settings
 * (dead rows above threshold + scale factor × live rows, the table's own settings first), once a minute, one worker at
 * a time. Where autovacuum is on, this reads the statistics once a minute and does
 * nothing else.
 */
export class SelfVacuum extends PeriodicPass<string[]> {
  private readonly tables: readonly string[];
  private readonly warned = new Set<string>();
  /** The backend running a VACUUM now, so that stopping can cancel it. */
  private vacuuming: number | null = null;

  constructor(
    db: Db,
    private readonly log: Logger,
    options: SelfVacuumOptions = {},
  ) {
    super(db, options.everyMs ?? 60_000, Object.freeze([]) as unknown as string[]);
    this.tables = options.tables ?? CHURNING_TABLES;
  }

  /**
   * A VACUUM of a table left unvacuumed for long can take minutes: stopping cancels it rather
   * than let it hold up a shutdown (what it reclaimed so far stays reclaimed; the next worker's
   * pass does the rest).
   */
  protected override async interrupt(): Promise<void> {
    // Only while that backend is still in its VACUUM: one that just finished may be unlocking, and a
    // cancelled unlock would leave the lock held by a connection back in the pool.
    if (this.vacuuming !== null) {
      await this.db
        .raw(`SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid = ? AND state = 'active' AND query ILIKE 'VACUUM%'`, [this.vacuuming])
        .catch(() => undefined);
    }
  }

  /** One pass answers the tables it vacuumed (none when another worker holds the lock). */
  protected override async pass(connection: PgConnection): Promise<string[]> {
    try {
      const due = (await this.stats(connection)).filter(vacuumDue);
      if (due.length === 0) return [];
      return await this.underLock(connection, VACUUM_LOCK, async () => {
        const vacuumed: string[] = [];
        for (const table of due) {
          if (this.stopping) break;
          await this.vacuum(connection, table);
          vacuumed.push(table.table);
        }
        return vacuumed;
      });
    } catch (err) {
      if (!this.stopping) this.log.warn({ err: (err as Error).message }, 'could not vacuum; trying again in a minute');
      return [];
    }
  }

  private async stats(connection: PgConnection): Promise<TableStats[]> {
    const { rows } = await connection.query<TableStats>(STATS, [this.tables]);
    for (const t of rows) {
      if (t.autovacuum || this.warned.has(t.table)) continue;
      this.warned.add(t.table);
      this.log.warn({ table: t.table }, 'autovacuum is off for this table: the workers vacuum it themselves');
    }
    return rows;
  }

  private async vacuum(connection: PgConnection, stats: TableStats): Promise<void> {
    const started = performance.now();
    this.vacuuming = connection.processID ?? null;
    try {
      // A plain VACUUM: it runs beside inserts and deletes, and takes no lock they wait for.
      await connection.query(`VACUUM (ANALYZE) ${pg.escapeIdentifier(stats.table)}`);
    } finally {
      this.vacuuming = null;
    }
    this.log.info({ table: stats.table, dead: stats.dead, live: stats.live, ms: Math.round(performance.now() - started) }, 'vacuumed');
  }
}
