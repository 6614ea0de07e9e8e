import type { Knex } from 'knex';
import { fn, type ModelClass, type PartialModelObject, type QueryBuilder } from 'objection';
import type { BaseModel } from './model.js';
import type { Db } from './knex.js';

type Conn = Db | Knex.Transaction;

interface ProjectScoped extends BaseModel {
  id: number;
  projectId: number;
  updatedAt: Date;
}

/**
 * The SQL every project-owned resource shares. Every read is filtered by project,
 * so another project's id is simply not found (SPEC §2: 404, never 403).
 */
export class ProjectScopedStore<M extends ProjectScoped> {
  /** `shapeReads` adds to what list and get read (columns derived from other tables). */
  constructor(
    private readonly model: ModelClass<M>,
    private readonly shapeReads: (query: QueryBuilder<M, M[]>) => void = () => undefined,
  ) {}

  list(db: Conn, projectId: number, filter?: (query: QueryBuilder<M, M[]>) => void): Promise<M[]> {
    const query = this.model.query(db).where(`${this.model.tableName}.project_id`, projectId).orderBy(`${this.model.tableName}.id`) as unknown as QueryBuilder<M, M[]>;
    this.shapeReads(query);
    if (filter) filter(query);
    return query as unknown as Promise<M[]>;
  }

  async get(db: Conn, projectId: number, id: number): Promise<M | undefined> {
    const [found] = await this.list(db, projectId, (query) => query.where(`${this.model.tableName}.id`, id));
    return found;
  }

  /**
   * Reads and locks the row for the rest of the transaction, so concurrent changes apply one after the
   * other. FOR NO KEY UPDATE: rows referring to it (an outcome batch's records of an integration, which
   * holds it with a key-share lock) are not held up by a change of it; a delete takes the stronger lock itself.
   */
  lock(trx: Knex.Transaction, projectId: number, id: number): Promise<M | undefined> {
    return this.model.query(trx).where({ project_id: projectId, id }).forNoKeyUpdate().first() as unknown as Promise<M | undefined>;
  }

  /**
   * Reads and locks a row about to be deleted FOR UPDATE, which also waits out, and then holds off,
   * the key-share locks of rows being made to refer to it (a key scoped to an environment, a strategy
   * using a segment): what the delete checks first (no such rows) stays true until it is done, and
   * no reference slips in to be nulled or cascaded away unsaid.
   */
  lockForDelete(trx: Knex.Transaction, projectId: number, id: number): Promise<M | undefined> {
    return this.model.query(trx).where({ project_id: projectId, id }).forUpdate().first() as unknown as Promise<M | undefined>;
  }

  /**
   * Reads the row and keeps it from being deleted (or its id changed) until the transaction ends,
   * without blocking updates of it: for a change that refers to it.
   */
  keep(trx: Knex.Transaction, projectId: number, id: number): Promise<M | undefined> {
    return this.model.query(trx).where({ project_id: projectId, id }).forKeyShare().first() as unknown as Promise<M | undefined>;
  }

  // Writes read the row back with RETURNING: one round trip, where insertAndFetch and patchAndFetchById take two.
  insert(trx: Knex.Transaction, values: PartialModelObject<M>): Promise<M> {
    return this.model.query(trx).insert(values).returning('*') as unknown as Promise<M>;
  }

  /**
   * Writes take the row read (by `lock`, within the project) and match its project too: a write can
   * only reach a row of the project it was read for, whatever its caller did before.
   */
  async patch(trx: Knex.Transaction, row: Pick<M, 'id' | 'projectId'>, changes: PartialModelObject<M>): Promise<M> {
    const rows = (await this.model
      .query(trx)
      // The database's clock, as for created_at: an api host running behind would date a change before its creation.
      .patch({ ...changes, updatedAt: fn.now() } as PartialModelObject<M>)
      .where({ id: row.id, project_id: row.projectId })
      .returning('*')) as unknown as M[];
    return rows[0]!;
  }

  async delete(trx: Knex.Transaction, row: Pick<M, 'id' | 'projectId'>): Promise<void> {
    await this.model.query(trx).delete().where({ id: row.id, project_id: row.projectId });
  }
}
