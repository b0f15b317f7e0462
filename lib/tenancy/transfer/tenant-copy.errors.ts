import { PgTenancyError } from '../../shared/errors.js';

/**
 * `TenantService.clone()` failed. Its one transaction rolled back: the destination has no
 * registry row and no schema, and the source is unchanged.
 */
export class TenantCloneError extends PgTenancyError {
  constructor(
    /** The tenant copied from. */
    readonly sourceId: string,
    /** The tenant that was to be created. */
    readonly targetId: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(
      `Cloning tenant "${sourceId}" into "${targetId}" failed and was undone (no registry row, no schema remain): ${reason}`,
      options,
    );
  }
}

/**
 * `TenantService.rename()` failed. Its one transaction rolled back: the tenant keeps its id and
 * schema.
 */
export class TenantRenameError extends PgTenancyError {
  constructor(
    /** The tenant's id, unchanged. */
    readonly tenantId: string,
    /** The id it was to get. */
    readonly newId: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(
      `Renaming tenant "${tenantId}" to "${newId}" failed and was undone (the tenant keeps its id and schema): ${reason}`,
      options,
    );
  }
}

/**
 * `TenantService.export()` failed. Nothing of it is left: the partial export directory (and any
 * parent directory it created) was removed; a path that already existed is left untouched.
 */
export class TenantExportError extends PgTenancyError {
  constructor(
    /** The tenant exported. */
    readonly tenantId: string,
    /** The export directory. */
    readonly path: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(
      `Exporting tenant "${tenantId}" to ${path} failed, and nothing of it was left behind: ${reason}`,
      options,
    );
  }
}

/**
 * `TenantService.import()` refused an export or failed. Nothing was created: no registry row, no
 * schema. `reason` says why: `format` (not an export, or a format version this release cannot
 * read), `corrupt` (a file's checksum, size or row count differs from the manifest),
 * `migrations` (the export's migration history differs from this application's files or is
 * newer), `schema` (the migrations built a schema that differs from the exported one), or
 * `failed` (a database error). A manifest with a missing or malformed field is `format`, with
 * `field` naming it (e.g. `tables[0].rows`).
 */
export class TenantImportError extends PgTenancyError {
  constructor(
    /** The export directory. */
    readonly path: string,
    /** What was wrong (see the class description). */
    readonly reason: 'format' | 'corrupt' | 'migrations' | 'schema' | 'failed',
    detail: string,
    options?: { cause?: unknown; field?: string },
  ) {
    super(
      `Import of ${path} ${reason === 'failed' ? 'failed' : 'refused'} and nothing was created (no registry row, no schema): ${detail}`,
      options,
    );
    this.field = options?.field;
  }

  /** For a malformed manifest: the field, as a path such as `tables[0].rows`. */
  readonly field: string | undefined;
}
