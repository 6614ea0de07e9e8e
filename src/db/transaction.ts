import type { Knex } from 'knex';
import type { Db } from './knex.js';

/** A transaction with hooks that run only once it has committed. */
export interface Tx {
  readonly trx: Knex.Transaction;
  /** Runs `hook` after COMMIT; never when the transaction rolls back. Hook errors are reported, not thrown. */
  afterCommit(hook: () => void): void;
}

export type AfterCommitErrorHandler = (err: unknown) => void;

export async function transact<T>(db: Db, work: (tx: Tx) => Promise<T>, onHookError?: AfterCommitErrorHandler): Promise<T> {
  const hooks: Array<() => void> = [];
  const result = await db.transaction(async (trx) => work({ trx, afterCommit: (hook) => hooks.push(hook) }));
  for (const hook of hooks) {
    try {
      hook();
    } catch (err) {
      onHookError?.(err);
    }
  }
  return result;
}
