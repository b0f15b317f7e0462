/**
 * `nestjs-pg-tenancy/advanced` — **advanced: may change in a minor version** (each change is named
 * in the CHANGELOG). The shutdown drain and its interceptor, the defaults the options resolve to,
 * and the identifier checks under `quoteIdentifier`. Reach for these when wiring the library into
 * something the module does not cover.
 *
 * @module advanced
 */
export { DrainController, type DrainReport } from './connection/drain-controller.js';
export { DatabaseDrainInterceptor } from './module/database-drain.interceptor.js';
export { NO_TENANT_KEY } from './module/no-tenant.decorator.js';
export { POOL_DEFAULTS, type ResolvedPoolOptions } from './connection/pool-options.js';
export {
  PREPARED_STATEMENT_DEFAULTS,
  type ResolvedPreparedStatementOptions,
} from './connection/statement-cache-options.js';
export { REPLICA_DEFAULTS, type ReplicaDefaults } from './connection/replicas/replica-options.js';
export { assertIdentifier, MAX_IDENTIFIER_BYTES } from './shared/identifiers.js';
