import { PgTenancyError } from '../../shared/errors.js';

/** The table has no registry: read-only commands say so instead of creating one. */
export class RegistryMissingError extends PgTenancyError {
  constructor(
    /** The qualified name of the registry table that was looked for. */
    readonly table: string,
  ) {
    super(
      `There is no tenant registry in this database: the table ${table} does not exist. Nothing was created. ` +
        'Check the connection settings and tenancy.registrySchema; the registry is created by the app at start-up or by `tenants create`.',
    );
  }
}
