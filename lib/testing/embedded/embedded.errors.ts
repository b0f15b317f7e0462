import { PgTenancyError } from '../../shared/errors.js';

/** Thrown when the embedded server cannot be started. */
export class EmbeddedPostgresError extends PgTenancyError {}
