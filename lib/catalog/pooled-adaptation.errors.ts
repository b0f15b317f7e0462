import { PgTenancyError } from '../shared/errors.js';

/**
 * A tenant migration file made something the pooled tier cannot share between tenants safely,
 * found from the catalog after the file ran against the pooled schema (the file's transaction
 * then rolls back, so nothing of it stays). `object` names the table, view, function, constraint
 * or index; the message says why and what to write instead. `refusal` says which rule refused:
 *
 * - `rows`: a table without the tenant column already holds rows, whose tenant cannot be known;
 * - `column`: a column of the tenant column's name exists that this library did not add;
 * - `relation`: a partitioned table, a materialized view or a foreign table (no row-level
 *   security on them), or a view that cannot be made `security_invoker` (PostgreSQL before 15);
 * - `function`: a `SECURITY DEFINER` function, which would run with its owner's rights;
 * - `constraint`: an exclusion constraint without the tenant column, or a foreign key that pairs
 *   the tenant column with another column or whose `ON UPDATE`/`ON DELETE` action would null it;
 * - `index`: a unique index that cannot be rebuilt with the tenant column first;
 * - `policy`: a permissive row-level security policy of the file's own, which would widen what
 *   a tenant sees, or a policy under the library's policy name with another definition;
 * - `reference`: a foreign key from a table outside the pooled schema into it.
 */
export class PooledAdaptationError extends PgTenancyError {
  constructor(
    /** The pooled schema being adapted. */
    readonly schema: string,
    /** The refused object, e.g. `tasks` or `tasks.tasks_code_key`. */
    readonly object: string,
    /** Which rule refused it (see the class comment). */
    readonly refusal:
      'rows' | 'column' | 'relation' | 'function' | 'constraint' | 'index' | 'policy' | 'reference',
    reason: string,
  ) {
    super(`Cannot share ${object} in the pooled schema "${schema}" between tenants: ${reason}`);
  }
}
