import {
  DefaultQueryExecutor,
  Kysely,
  PostgresAdapter,
  PostgresIntrospector,
  type DatabaseIntrospector,
  type Dialect,
  type DialectAdapter,
  type Driver,
  type QueryCompiler,
} from 'kysely';
import type { SchemaDb } from '../core/schema-db.js';
import { QualifyingQueryCompiler } from './qualifying-query-compiler.js';
import { SchemaDbConnectionProvider, SchemaDbDriver } from './schema-db-driver.js';

// Stateless between queries (compilation is synchronous), so one serves every instance.
const compiler = new QualifyingQueryCompiler();
const adapter = new PostgresAdapter();
const instances = new WeakMap<SchemaDb, Kysely<unknown>>();

/** The dialect `kyselyFor()` builds its instances from: PostgreSQL, through `db`. */
class SchemaDbDialect implements Dialect {
  constructor(readonly db: SchemaDb) {}

  createDriver(): Driver {
    return new SchemaDbDriver(this.db);
  }

  createQueryCompiler(): QueryCompiler {
    return compiler;
  }

  createAdapter(): DialectAdapter {
    return adapter;
  }

  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new PostgresIntrospector(db);
  }
}

/**
 * A Kysely instance that runs every query through `db`, so the module's rules apply to typed
 * queries as to SQL templates: tables are qualified with `db`'s schema (no `search_path`),
 * `@InjectTenantDb()` follows the current request's tenant, queries join the ambient
 * transaction (`db.transaction()`, `@Transactional()`), and shutdown drain, metrics, query
 * hooks and the slow-query log all see them.
 *
 * Kysely's own `transaction().execute(cb)` runs as `db.transaction()` does: inside a running
 * transaction it joins it (the outermost one commits); otherwise it opens one, and managers that
 * the callback reaches (other services) join it.
 *
 * Call it once per manager (the result is cached per manager; calling it again is a map
 * lookup). `DB` describes the tables of one schema, unqualified: generate it from one tenant
 * schema with kysely-codegen (see docs/typed-queries.md).
 *
 * @example
 * import { kyselyFor } from 'nestjs-pg-tenancy/kysely';
 * import type { DB } from './db.generated';
 *
 * @Injectable()
 * export class ProjectsService {
 *   private readonly db: Kysely<DB>;
 *   constructor(@InjectTenantDb() tenantDb: SchemaDb) {
 *     this.db = kyselyFor<DB>(tenantDb); // follows the request's tenant, query by query
 *   }
 *   list() {
 *     return this.db.selectFrom('projects').select(['id', 'name']).orderBy('id').execute();
 *   }
 * }
 */
export function kyselyFor<DB>(db: SchemaDb): Kysely<DB> {
  let instance = instances.get(db);
  if (instance === undefined) {
    const dialect = new SchemaDbDialect(db);
    instance = new Kysely<unknown>({
      config: { dialect },
      dialect,
      driver: dialect.createDriver(),
      executor: new DefaultQueryExecutor(compiler, adapter, new SchemaDbConnectionProvider(db)),
    });
    instances.set(db, instance);
  }
  return instance as Kysely<DB>;
}
