import type { Knex } from 'knex';
import { UserModel } from './model.js';

/**
 * The user with this email (case-insensitive), created when there is none. Safe when several
 * callers create the same new email at once: the insert yields to a row another transaction
 * holds under the unique index on lower(email) (waiting for it to commit), and that row is read.
 */
export async function findOrCreateUser(trx: Knex.Transaction, email: string, name: string | undefined): Promise<{ user: UserModel; created: boolean }> {
  // Looked up first so that finding a user, the usual case, takes no id from the sequence.
  const existing = await findUserByEmail(trx, email);
  if (existing) return { user: existing, created: false };
  const [inserted] = (await trx('users')
    .insert({ email, name: name ?? email.split('@')[0]! })
    .onConflict(trx.raw('(lower(email))'))
    .ignore()
    .returning('id')) as Array<{ id: number }>;
  const user = await findUserByEmail(trx, email);
  // Under READ COMMITTED the second read sees the row that made the insert yield, now committed.
  if (!user) throw new Error(`user ${email} neither inserted nor found`);
  return { user, created: inserted !== undefined };
}

async function findUserByEmail(trx: Knex.Transaction, email: string): Promise<UserModel | undefined> {
  return UserModel.query(trx).whereRaw('lower(email) = lower(?)', [email]).first();
}
