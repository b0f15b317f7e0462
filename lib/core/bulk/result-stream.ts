import type pg from 'pg';
import Cursor from 'pg-cursor';
import { InvalidOptionsError } from '../../shared/errors.js';
import { holdConnection, recordOperation, type HeldConnection } from '../query/held-connection.js';
import type { QueryParams, QueryRunner } from '../query/query-runner.js';
import { scopeStatement, type RowScope } from '../../connection/row-scope.js';

/** Options of {@link SchemaDb.stream}. */
export interface StreamOptions {
  /**
   * Rows fetched from the server per round trip. The next batch is asked for only once the
   * consumer has taken every row of the previous one, so at most this many rows are held in
   * memory. Default: `1_000`.
   */
  readonly batchSize?: number;
}

const DEFAULT_BATCH_SIZE = 1_000;
let cursorNames = 0;

/**
 * The rows of `text`, fetched `batchSize` at a time as the consumer asks for them. The
 * connection is held until the iteration ends, whichever way it ends (done, `break`, an error
 * in the query or thrown by the consumer), and is then given back.
 *
 * Outside a transaction, a protocol-level cursor (`pg-cursor`) on a connection of its own.
 * Inside one, a SQL cursor (`DECLARE … CURSOR`), so other statements of the transaction may run
 * between two batches on the same connection.
 *
 * With `scope` (a pooled tenant's manager), the cursor runs in the tenant's scope: outside a
 * transaction, in one of its own whose first statement sets the scope, ended (COMMIT, or
 * ROLLBACK after an error) with the iteration, so the role never outlives it; inside one, every
 * `DECLARE`, `FETCH` and `CLOSE` sets it again, as any statement of a pooled manager does.
 */
export async function* streamRows<T extends pg.QueryResultRow>(
  runner: QueryRunner,
  schema: string | null,
  text: string,
  params: QueryParams | undefined,
  options: StreamOptions = {},
  scope?: RowScope,
): AsyncGenerator<T, void, undefined> {
  const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new InvalidOptionsError(
      `stream batchSize must be a positive integer, received ${String(batchSize)}.`,
    );
  }
  const started = performance.now();
  let rowCount = 0;
  let error: Error | undefined;
  let held: HeldConnection | undefined;
  try {
    held = await holdConnection(runner);
    const batches =
      held.transaction !== null
        ? declaredBatches<T>(held, text, params, batchSize, scope)
        : scope
          ? scopedCursorBatches<T>(held.client, text, params, batchSize, scope)
          : cursorBatches<T>(held.client, text, params, batchSize);
    for await (const rows of batches) {
      rowCount += rows.length;
      for (const row of rows) yield row;
    }
  } catch (err) {
    error = err as Error;
    throw err;
  } finally {
    held?.release(error);
    recordOperation(runner, started, { sql: text, params, schema, rowCount, error });
  }
}

async function* cursorBatches<T>(
  client: pg.PoolClient,
  text: string,
  params: QueryParams | undefined,
  batchSize: number,
): AsyncGenerator<T[]> {
  const cursor = client.query(new Cursor<T>(text, params as unknown[] | undefined));
  let failed = false;
  try {
    for (;;) {
      const rows = await cursor.read(batchSize);
      if (rows.length === 0) return;
      yield rows;
    }
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    // After an error the server has already closed the portal (and pg-cursor sent Sync); on
    // an early exit the portal is closed so the connection is ready for its next user.
    if (!failed) await cursor.close().catch(() => undefined);
  }
}

/** {@link cursorBatches} in a transaction of its own whose first statement sets `scope`. */
async function* scopedCursorBatches<T>(
  client: pg.PoolClient,
  text: string,
  params: QueryParams | undefined,
  batchSize: number,
  scope: RowScope,
): AsyncGenerator<T[]> {
  await client.query('BEGIN');
  let failed = false;
  try {
    const { text: scoped, values } = scopeStatement(scope);
    await client.query(scoped, values);
    yield* cursorBatches<T>(client, text, params, batchSize);
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    // Ends the scope with the iteration (a break commits, as the implicit transaction would).
    // A ROLLBACK fails only on a broken connection: its error then discards the connection.
    if (failed) await client.query('ROLLBACK');
    else await client.query('COMMIT');
  }
}

async function* declaredBatches<T extends pg.QueryResultRow>(
  held: HeldConnection,
  text: string,
  params: QueryParams | undefined,
  batchSize: number,
  scope: RowScope | undefined,
): AsyncGenerator<T[]> {
  const tx = held.transaction!;
  const name = `pgt_stream_${++cursorNames}`;
  await tx.query(`DECLARE ${name} NO SCROLL CURSOR FOR ${text}`, params, false, scope);
  let open = true;
  try {
    for (;;) {
      const fetch = `FETCH FORWARD ${batchSize} FROM ${name}`;
      const { rows } = await tx.query<T>(fetch, undefined, false, scope);
      if (rows.length === 0) return;
      yield rows;
    }
  } catch (err) {
    open = false; // a failed FETCH aborts the transaction, which closes its cursors
    throw err;
  } finally {
    if (open && tx.isOpen) {
      await tx.query(`CLOSE ${name}`, undefined, false, scope).catch(() => undefined);
    }
  }
}
