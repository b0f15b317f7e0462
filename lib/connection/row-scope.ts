// The pooled tier's tenant, set for one statement's transaction in the same round trip as the
// statement itself: PostgreSQL enforces it (row-level security under a role that cannot bypass
// it), and nothing of it stays on the connection once the statement's transaction ends.
import type pg from 'pg';
import type { PgConnection } from './pg-query.js';

/** Who a pooled tenant's statement runs as: the managed role, and the tenant its policies see. */
export interface RowScope {
  /** A role without `BYPASSRLS` that owns nothing: policies hold even for a superuser login. */
  readonly role: string;
  /** The tenant id the row-level security policies compare the tenant column with. */
  readonly tenantId: string;
}

/** The setting the pooled tables' policies read (`current_setting('tenancy.tenant_id', true)`). */
const TENANT_SETTING = 'tenancy.tenant_id';

/** The statement that sets a scope, named once per connection. */
const SCOPE_NAME = 'pgt_row_scope';
// Zero rows: a DataRow without a RowDescription would reach pg's result parser. set_config is
// volatile, so both calls run whatever the planner thinks of the WHERE.
const SCOPE_TEXT = `SELECT FROM (VALUES (set_config('role', $1, true), set_config('${TENANT_SETTING}', $2, true))) s(r, t) WHERE r IS NULL`;

/**
 * The scope that undoes another within a transaction: the login role again (`none`), and no
 * tenant. Sent before a statement of an unscoped manager in a transaction a scope was set in.
 */
export const NO_SCOPE: RowScope = Object.freeze({ role: 'none', tenantId: '' });

/** The parameters that set `scope` in SQL (`SELECT set_config('role', $1, true), …`). */
export function scopeStatement(scope: RowScope): { text: string; values: string[] } {
  return { text: SCOPE_TEXT, values: [scope.role, scope.tenantId] };
}

type Submit = (connection: PgConnection & PgExtended) => unknown;
interface PgExtended {
  on(event: 'parseComplete', listener: () => void): unknown;
  off(event: 'parseComplete', listener: () => void): unknown;
  parse(message: { name: string; text: string; types: unknown[] }): void;
  bind(message: { portal: string; statement: string; values: unknown[] }): void;
  execute(message: { portal: string; rows: number }): void;
}

/**
 * Makes `query` set `scope` first, in the same write and the same implicit transaction: a Bind
 * and Execute of the scope statement (and its Parse, the first time on a connection) ahead of
 * the query's own messages, before its Sync. The query is sent with the extended protocol even
 * without parameters (so it is one statement, never several), and its callback gets its own
 * result, not the scope's.
 *
 * `named: false` parses the scope statement unnamed every time, for a connection whose named
 * statements may not stay (a pooler in front, where prepared statements are off): the whole
 * pipeline runs on one server connection, so the unnamed one is always there.
 */
export function scopeFirst(query: pg.Query, scope: RowScope, named = true): void {
  const target = query as unknown as {
    submit: Submit;
    queryMode?: string;
    name?: string;
    callback?: (err: Error | null, result: unknown) => void;
  };
  target.queryMode = 'extended';
  const submit = target.submit;
  const callback = target.callback;
  let sentOn: (PgConnection & PgExtended) | undefined;
  let parsedBefore = true;
  // A named query parsed now: the ParseCompletes still due before its own has arrived.
  let parsesDue = 0;
  const parsed = () => void parsesDue--;
  target.submit = function (this: unknown, connection) {
    connection.stream.cork?.();
    try {
      sentOn = connection;
      const name = target.name;
      parsedBefore = !name || connection.parsedStatements[name] !== undefined;
      if (!parsedBefore) parsesDue = 1;
      const statement = named ? SCOPE_NAME : '';
      if (!named || connection.parsedStatements[SCOPE_NAME] === undefined) {
        connection.parse({ name: statement, text: SCOPE_TEXT, types: [] });
        if (named) connection.parsedStatements[SCOPE_NAME] = SCOPE_TEXT;
        if (!parsedBefore) parsesDue++;
      }
      if (!parsedBefore) connection.on('parseComplete', parsed);
      connection.bind({ portal: '', statement, values: [scope.role, scope.tenantId] });
      connection.execute({ portal: '', rows: 0 });
      return submit.call(this, connection);
    } finally {
      connection.stream.uncork?.();
    }
  };
  if (callback === undefined) return;
  target.callback = (err, results) => {
    if (!parsedBefore) sentOn?.off('parseComplete', parsed);
    if (err) {
      // Its own Parse completed (the error came at Bind or Execute): the server has it.
      if (sentOn) forgetOnError(err, sentOn, target.name, parsedBefore || parsesDue <= 0);
      callback(err, results);
      return;
    }
    callback(null, Array.isArray(results) ? results[results.length - 1] : results);
  };
}

/**
 * pg records a statement as parsed on any ParseComplete of its query, and ours comes first: a
 * query whose own Parse then failed must not stay recorded. One whose Parse completed and whose
 * Bind or Execute failed (a policy's WITH CHECK, a constraint) stays: the server keeps it, and
 * parsing it again would fail with 42P05. A scope statement the server no longer knows
 * (`DEALLOCATE ALL`, `DISCARD ALL`) is parsed again next time.
 */
function forgetOnError(
  err: Error,
  connection: PgConnection,
  name: string | undefined,
  parsedBefore: boolean,
): void {
  if (!parsedBefore && name) delete connection.parsedStatements[name];
  if ((err as { code?: string }).code === '26000' && err.message.includes(`"${SCOPE_NAME}"`)) {
    delete connection.parsedStatements[SCOPE_NAME];
  }
}
