import type pg from 'pg';
import type { QueryEnvironment, ReplicaRouter } from './query-environment.js';
import type { QueryParams, QueryRunner } from './query-runner.js';

/**
 * The runner of `db.replica()` managers: each query outside a transaction goes where the
 * replica router sends it (a healthy replica, or the primary). Its `env` is the primary's, so a
 * transaction running in the calling code still takes the query over.
 */
export class ReplicaQueryRunner implements QueryRunner {
  readonly client = null;
  constructor(
    readonly env: QueryEnvironment,
    private readonly router: ReplicaRouter,
  ) {}

  query<R extends pg.QueryResultRow>(
    text: string,
    params?: QueryParams,
    arrayRows?: boolean,
  ): Promise<pg.QueryResult<R>> {
    return this.router.read<R>(text, params, arrayRows);
  }
}
