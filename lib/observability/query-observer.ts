import type { LoggerService } from '@nestjs/common';
import type { TenantContext } from '../tenancy/routing/tenant-context.js';
import type {
  QueryEvent,
  QueryListener,
  QuerySink,
  RawQueryEvent,
} from '../core/query/query-event.js';

/** A query that took at least `slowQueryMs`, as kept by `DatabaseMonitor.getSlowQueries()`. */
export interface SlowQuery {
  /** The SQL as sent, placeholders expanded. */
  readonly sql: string;
  /** Only when `logQueryParams` is on; otherwise omitted (parameters may hold personal data). */
  readonly params?: readonly unknown[];
  /** The manager's schema; `null` for an unqualified manager. */
  readonly schema: string | null;
  /** The tenant of the context it ran in, if any. */
  readonly tenantId: string | undefined;
  /** Time from checkout request to the result. */
  readonly durationMs: number;
  /** Whether it ended in an error. */
  readonly failed: boolean;
  /** When it finished. */
  readonly at: Date;
}

/** Something that turns query events into metrics (Prometheus, OpenTelemetry). */
export interface QueryMetrics {
  record(event: QueryEvent): void;
}

/** Options of {@link QueryObserver}. */
export interface QueryObserverOptions {
  readonly listeners: readonly QueryListener[];
  /** `0` disables the slow-query log. */
  readonly slowQueryMs: number;
  readonly slowQueryLimit: number;
  readonly logQueryParams: boolean;
  readonly metrics: readonly QueryMetrics[];
  readonly logger: LoggerService;
  readonly context?: TenantContext;
}

const OPERATION = /^\s*(?:(?:--[^\n]*\n|\/\*[\s\S]*?\*\/)\s*)*([A-Za-z]+)/;
const HOOK_ERROR_LOG_INTERVAL_MS = 60_000;

/** The statement's first keyword, upper-cased: `SELECT`, `INSERT`, … or `OTHER`. */
function operationOf(sql: string): string {
  return OPERATION.exec(sql)?.[1]?.toUpperCase() ?? 'OTHER';
}

/**
 * Receives every query a manager runs and feeds the slow-query log, metrics and user hooks.
 * Nothing here can fail a query: a throwing hook is logged (at most once a minute per hook).
 */
export class QueryObserver implements QuerySink {
  readonly #options: QueryObserverOptions;
  readonly #slow: SlowQuery[] = [];
  readonly #hookErrorLoggedAt = new Map<QueryListener, number>();

  constructor(options: QueryObserverOptions) {
    this.#options = options;
  }

  /** The most recent slow queries, newest last (at most `slowQueryLimit`). */
  get slowQueries(): readonly SlowQuery[] {
    return [...this.#slow];
  }

  /** The common case (only the slow-query log on, and the query fast) needs no event at all. */
  wants(durationMs: number): boolean {
    const { slowQueryMs, listeners, metrics } = this.#options;
    return (
      listeners.length > 0 || metrics.length > 0 || (slowQueryMs > 0 && durationMs >= slowQueryMs)
    );
  }

  record(raw: RawQueryEvent): void {
    const { slowQueryMs } = this.#options;
    const event: QueryEvent = {
      ...raw,
      tenantId: this.#options.context?.current?.tenantId,
      operation: operationOf(raw.sql),
    };
    if (slowQueryMs > 0 && event.durationMs >= slowQueryMs) this.#recordSlow(event);
    for (const metrics of this.#options.metrics) {
      try {
        metrics.record(event);
      } catch (err) {
        this.#options.logger.warn(`Recording query metrics failed: ${(err as Error).message}`);
      }
    }
    for (const listener of this.#options.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.#hookFailed(listener, err);
      }
    }
  }

  #recordSlow(event: QueryEvent): void {
    const slow: SlowQuery = {
      sql: event.sql,
      ...(this.#options.logQueryParams ? { params: event.params } : {}),
      schema: event.schema,
      tenantId: event.tenantId,
      durationMs: Math.round(event.durationMs),
      failed: event.error !== undefined,
      at: new Date(),
    };
    this.#slow.push(slow);
    if (this.#slow.length > this.#options.slowQueryLimit) this.#slow.shift();
    const where = [
      event.schema && `schema ${event.schema}`,
      event.tenantId && `tenant ${event.tenantId}`,
    ]
      .filter(Boolean)
      .join(', ');
    const params = this.#options.logQueryParams
      ? ` params ${JSON.stringify(event.params ?? [])}`
      : event.params?.length
        ? ` (${event.params.length} parameter(s) redacted)`
        : '';
    // The tenant also as a structured field (Nest 12's ConsoleLogger: `params`, JSON keys).
    this.#options.logger.warn(
      `Slow query: ${slow.durationMs} ms${where ? ` on ${where}` : ''}${slow.failed ? ' (failed)' : ''}: ${event.sql.replace(/\s+/g, ' ').trim()}${params}`,
      ...(event.tenantId === undefined ? [] : [{ tenantId: event.tenantId }]),
    );
  }

  #hookFailed(listener: QueryListener, err: unknown): void {
    const now = Date.now();
    const last = this.#hookErrorLoggedAt.get(listener) ?? -Infinity;
    if (now - last < HOOK_ERROR_LOG_INTERVAL_MS) return;
    this.#hookErrorLoggedAt.set(listener, now);
    this.#options.logger.warn(
      `A query hook threw (${err instanceof Error ? err.message : String(err)}); the query was not affected. Further errors of this hook are logged at most once a minute.`,
    );
  }
}
