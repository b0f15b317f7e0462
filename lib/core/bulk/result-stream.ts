import type pg from 'pg';
import Cursor from 'pg-cursor';
import { InvalidOptionsError } from '../../shared/errors.js';
import { holdConnection, recordOperation, type HeldConnection } from '../query/held-connection.js';
import type { QueryParams, QueryRunner } from '../query/query-runner.js';

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
 */
export async function* streamRows<T extends pg.QueryResultRow>(
  runner: QueryRunner,
  schema: string | null,
  text: string,
  params: QueryParams | undefined,
  options: StreamOptions = {},
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
      held.transaction === null
        ? cursorBatches<T>(held.client, text, params, batchSize)
        : declaredBatches<T>(held, text, params, batchSize);
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

async function* declaredBatches<T extends pg.QueryResultRow>(
  held: HeldConnection,
  text: string,
  params: QueryParams | undefined,
  batchSize: number,
): AsyncGenerator<T[]> {
  const tx = held.transaction!;
  const name = `pgt_stream_${++cursorNames}`;
  await tx.query(`DECLARE ${name} NO SCROLL CURSOR FOR ${text}`, params);
  let open = true;
  try {
    for (;;) {
      const { rows } = await tx.query<T>(`FETCH FORWARD ${batchSize} FROM ${name}`);
      if (rows.length === 0) return;
      yield rows;
    }
  } catch (err) {
    open = false; // a failed FETCH aborts the transaction, which closes its cursors
    throw err;
  } finally {
    if (open && tx.isOpen) await tx.query(`CLOSE ${name}`).catch(() => undefined);
  }
}
