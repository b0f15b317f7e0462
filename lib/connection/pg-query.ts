// The pg queries the statement cache sends, built the cheap way, and the few pg internals it
// relies on (pg's per-connection record of parsed statements, the socket, the Close message).
import pg from 'pg';

export type QueryCallback<R extends pg.QueryResultRow> = (
  err: Error | null,
  result: pg.QueryResult<R>,
) => void;

/** What pg keeps per connection about the statements it has parsed (`client.connection`). */
export interface PgConnection {
  parsedStatements: Record<string, string>;
  stream: { cork?(): void; uncork?(): void };
  close(message: { type: 'S'; name: string }): void;
}

/**
 * pg's `Query`, named. Built from the text rather than from a config object: pg copies a config
 * object property by property (descriptors and all), about a tenth of a point lookup's
 * client-side CPU in a profile; from a string it does not. Rows as arrays keep the config form.
 */
export function namedQuery<R extends pg.QueryResultRow>(
  name: string,
  text: string,
  values: unknown[],
  arrayRows: boolean | undefined,
  callback: QueryCallback<R>,
): pg.Query {
  const done = callback as unknown as ConstructorParameters<typeof pg.Query>[2];
  if (arrayRows) {
    const config = { name, text, values, rowMode: 'array' } as pg.QueryConfig;
    return new pg.Query(config, undefined, done);
  }
  const query = new pg.Query(text, values, done);
  (query as unknown as { name: string }).name = name;
  return query;
}

/** What a caller may do to a query before it is sent (set a row scope first, say). */
export type QueryPrefix = (query: pg.Query) => void;

/**
 * An unnamed query, on the string form of `client.query` when it can (see {@link namedQuery}).
 * With `prefix`, a `Query` is built and handed to it before it is sent.
 */
export function sendUnnamed<R extends pg.QueryResultRow>(
  client: pg.ClientBase,
  text: string,
  values: readonly unknown[],
  arrayRows: boolean | undefined,
  callback: QueryCallback<R>,
  prefix?: QueryPrefix,
): void {
  if (prefix !== undefined) {
    const done = callback as unknown as ConstructorParameters<typeof pg.Query>[2];
    const query = arrayRows
      ? new pg.Query(
          { text, values, rowMode: 'array' } as unknown as pg.QueryConfig,
          undefined,
          done,
        )
      : new pg.Query(text, values as unknown[], done);
    prefix(query);
    client.query(query);
    return;
  }
  if (arrayRows) {
    client.query<R>({ text, values, rowMode: 'array' } as unknown as pg.QueryConfig, callback);
  } else {
    client.query<R>(text, values as unknown[], callback);
  }
}

/**
 * Makes `query` first send a Close message for each name in `closing`, in the same write and
 * the same round trip: closing a statement the server does not have is not an error, and pg
 * ignores the CloseComplete replies.
 */
export function closeFirst(query: pg.Query, closing: readonly string[]): void {
  type Submit = (connection: PgConnection) => unknown;
  const target = query as unknown as { submit: Submit };
  const submit = target.submit;
  target.submit = function (this: unknown, connection: PgConnection) {
    connection.stream.cork?.();
    try {
      for (const name of closing) connection.close({ type: 'S', name });
      return submit.call(this, connection);
    } finally {
      connection.stream.uncork?.();
    }
  };
}
