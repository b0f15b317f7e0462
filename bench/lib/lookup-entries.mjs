// What the lookup suites keep per variant while they run it: the open instance, its operation
// (a random tenant and id, the row checked to be that tenant's), its rounds and its failures.
import { runClosedLoop } from './load.mjs';

/**
 * Opens every variant over `tenants` and returns one entry each. An instance has
 * `lookup(tenant, id)` resolving to the row (or undefined).
 */
export function openEntries(variants, tenants, rowsPerTenant) {
  return variants.map((variant) => {
    const instance = variant.open(tenants);
    const operation = async (random) => {
      const tenant = tenants[random.int(tenants.length)];
      const id = 1 + random.int(rowsPerTenant);
      const row = await instance.lookup(tenant, id);
      return row != null && row.tenant === tenant && row.id === id;
    };
    return {
      variant,
      instance,
      operation,
      rounds: [],
      mismatches: 0,
      errors: 0,
      firstError: undefined,
    };
  });
}

/** Adds a run's wrong rows and errors to its entry. */
export function tally(entry, result) {
  entry.mismatches += result.mismatches;
  entry.errors += result.errors;
  entry.firstError ??= result.firstError;
  return result;
}

/** Runs `entry`'s operation for `durationMs` without recording latencies (warm-up, pre-round). */
export function warm(entry, { concurrency, durationMs, seed }) {
  return runClosedLoop({
    concurrency,
    durationMs,
    seed,
    operation: entry.operation,
    record: false,
  }).then((result) => tally(entry, result));
}
