/** What query hooks receive after every query run through a `SchemaDb`. */
export interface QueryEvent {
  /** The SQL as sent, placeholders expanded. */
  readonly sql: string;
  /** The bind parameters, as given. Hooks that log them should redact. */
  readonly params: readonly unknown[] | undefined;
  /** The manager's schema (`null` for the default manager). */
  readonly schema: string | null;
  /** The current tenant, when the query ran in a tenant context. */
  readonly tenantId: string | undefined;
  /** `SELECT`, `INSERT`, `UPDATE`, `DELETE`, … (the first keyword, upper-cased). */
  readonly operation: string;
  /** Time from checkout request to the result. */
  readonly durationMs: number;
  /** Rows returned or affected; `null` on error or for utility statements. */
  readonly rowCount: number | null;
  /** The error, when the query failed. */
  readonly error: Error | undefined;
  /** The query ran inside `transaction()`. */
  readonly inTransaction: boolean;
}

/**
 * A query hook. Called synchronously after each query; keep it cheap. A hook that throws is
 * logged and otherwise ignored: it never changes the query's result.
 */
export type QueryListener = (event: QueryEvent) => void;

/** The part of a query event the manager knows; the observer adds the tenant. */
export type RawQueryEvent = Omit<QueryEvent, 'tenantId' | 'operation'>;

/** Receives raw query events from managers. */
export interface QuerySink {
  /** Whether a query that took `durationMs` is of interest (so the event is worth building). */
  wants(durationMs: number): boolean;
  record(event: RawQueryEvent): void;
}
