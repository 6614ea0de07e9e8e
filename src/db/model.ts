import { Model, snakeCaseMappers } from 'objection';

/** Thin Objection base: camelCase properties over snake_case columns. Queries always pass a knex or trx explicitly. */
export class BaseModel extends Model {
  static override get columnNameMappers() {
    return snakeCaseMappers();
  }
}
