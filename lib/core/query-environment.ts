import type pg from 'pg';
import type { DrainController } from '../lifecycle/drain-controller.js';
import type { TenantFairShare } from '../pool/tenant-fair-share.js';
import type { QuerySink } from '../observability/query-event.js';
import type { TemplateCache } from './sql-template.js';

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
  readonly templates?: TemplateCache;
}
