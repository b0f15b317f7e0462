import type pg from 'pg';
import { StatementCache } from '../../connection/statement-cache.js';
import {
  resolvePreparedStatementOptions,
  type PreparedStatementOptions,
} from '../../connection/statement-cache-options.js';
import type { DrainController } from '../../connection/drain-controller.js';
import type { TenantFairShare } from '../../connection/tenant-fair-share.js';
import type { QuerySink } from './query-event.js';
import type { SqlTemplateCache } from '../sql/sql-template.js';
import type { Rehome } from './moved-retry.js';

/**
 * What every manager of an application shares: the pool, the shutdown gate and the query
 * observer. Built once by the module; `SchemaDb.create(pool, …)` makes a bare one.
 */
export interface QueryEnvironment {
  readonly pool: pg.Pool;
  /** Refuses new checkouts during shutdown and tracks busy connections. */
  readonly drain?: DrainController;
  /** Hooks, slow-query log and metrics. */
  readonly sink?: QuerySink;
  /** The per-tenant cap on connections, taken before every checkout. Default: none. */
  readonly fairShare?: Pick<TenantFairShare, 'acquire'>;
  /** Parsed SQL templates shared by all managers (one entry per distinct SQL text). */
  readonly sqlTemplates?: SqlTemplateCache;
  /** Managed prepared statements; absent: every query is sent unnamed. */
  readonly statements?: StatementCache;
  /** Where `db.replica()` reads go; absent when no replicas are configured. */
  readonly replicas?: ReplicaRouter;
  /** A tenant manager's current home after a move between tiers (set by the tenant registry). */
  readonly rehome?: Rehome;
}

/**
 * Read routing to streaming replicas (implemented by the module's replica set). Internal.
 */
export interface ReplicaRouter {
  /** Runs a read outside any transaction on a healthy replica, or on the primary. */
  read<R extends pg.QueryResultRow>(
    text: string,
    params: readonly unknown[] | undefined,
    arrayRows: boolean | undefined,
  ): Promise<pg.QueryResult<R>>;
  /** Records that the current request or job sent a statement to the primary. */
  notePrimary(): void;
}

/** A bare `SchemaDb.create(pool)`'s environment: managed statements only when asked for. */
export function bareEnvironment(
  pool: pg.Pool,
  wanted: boolean | 'auto' | PreparedStatementOptions | undefined,
): QueryEnvironment {
  if (wanted === undefined || wanted === false) return { pool };
  return { pool, statements: new StatementCache(resolvePreparedStatementOptions(wanted), pool) };
}
