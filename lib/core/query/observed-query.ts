// A manager's statement fed to the environment's hooks, slow-query log and metrics.
import type pg from 'pg';
import type { RowScope } from '../../connection/row-scope.js';
import type { QueryEnvironment } from './query-environment.js';
import type { QueryParams, QueryRunner } from './query-runner.js';

/** Runs `text` on `runner` (in `scope`, if any) and records it with `sink`, failed or not. */
export async function observedQuery<T extends pg.QueryResultRow>(
  runner: QueryRunner,
  sink: NonNullable<QueryEnvironment['sink']>,
  schema: string | null,
  text: string,
  params: QueryParams | undefined,
  arrayRows: boolean,
  scope: RowScope | undefined,
): Promise<pg.QueryResult<T>> {
  const started = performance.now();
  let result: pg.QueryResult<T> | undefined;
  let error: Error | undefined;
  try {
    result = await runner.query<T>(text, params, arrayRows, scope);
    return result;
  } catch (err) {
    error = err as Error;
    throw err;
  } finally {
    const durationMs = performance.now() - started;
    if (sink.wants(durationMs)) {
      sink.record({
        sql: text,
        params,
        schema,
        inTransaction: runner.client !== null,
        durationMs,
        rowCount: result?.rowCount ?? null,
        error,
      });
    }
  }
}
