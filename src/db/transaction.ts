import type { Knex } from 'knex';
import type { Db } from './knex.js';

/** A transaction with hooks that run only once it has committed. */
export interface Tx {
  readonly trx: Knex.Transaction;
  /** Runs `hook` after COMMIT; never when the transaction rolls back. */
  afterCommit(hook: () => void): void;
}

export async function transact<T>(db: Db, work: (tx: Tx) => Promise<T>): Promise<T> {
  const hooks: Array<() => void> = [];
  const result = await db.transaction(async (trx) => work({ trx, afterCommit: (hook) => hooks.push(hook) }));
  for (const hook of hooks) {
    try {
      hook();
    } catch {
      // The change is committed: a failing hook (a wake-up the relay's poll repeats anyway) must not turn it into an error answer.
    }
  }
  return result;
}
