import type { Knex } from 'knex';
import { UserModel } from './model.js';

/** The user with this email (case-insensitive), created when there is none. */
export async function findOrCreateUser(trx: Knex.Transaction, email: string, name: string | undefined): Promise<{ user: UserModel; created: boolean }> {
  const existing = await UserModel.query(trx).whereRaw('lower(email) = lower(?)', [email]).first();
  if (existing) return { user: existing, created: false };
  const user = await UserModel.query(trx).insertAndFetch({ email, name: name ?? email.split('@')[0]! });
  return { user, created: true };
}
