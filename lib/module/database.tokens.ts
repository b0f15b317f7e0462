/** Injection token of the resolved `forRoot`/`forRootAsync` options. */
export const DATABASE_MODULE_OPTIONS = 'DATABASE_MODULE_OPTIONS';

/**
 * The injection token of the manager for `schema`, or of the default manager (unqualified
 * names) when called without one. Use it in `inject: [...]` lists, `moduleRef.get()` and tests.
 *
 * @example moduleRef.get<SchemaDb>(getSchemaDbToken('orders'))
 */
export function getSchemaDbToken(schema?: string): string {
  return schema === undefined
    ? 'DatabaseModule:SchemaDb<default>'
    : `DatabaseModule:SchemaDb(${schema})`;
}

/** The injection token of the shared `pg.Pool`. */
export function getPoolToken(): string {
  return 'DatabaseModule:Pool';
}

/** The injection token of the current tenant's manager (a proxy), as injected by `@InjectTenantDb()`. */
export function getTenantDbToken(): string {
  return 'DatabaseModule:TenantDb';
}
