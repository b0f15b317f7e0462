// What the leak fuzzer knows independently of the library: each tenant's states over time (from
// the lifecycle calls the harness itself made) and the verdict on one finished operation.
// Plain JavaScript: the Jest spec (on lib/) and the bench suite (on dist/) share it.

/** The tenant errors a refusal may carry, with the HTTP status each one maps to. */
export const REFUSALS = {
  TenantRequiredError: 400,
  InvalidTenantIdError: 400,
  TenantNotFoundError: 404,
  TenantSuspendedError: 403,
  TenantContextMissingError: 500,
};

/**
 * Per tenant id, the states it had: `answer` ('active', 'suspended' or 'unknown': never created,
 * being created, dropping or dropped) and `tier` (where its rows were then: 'schema' or 'pooled';
 * `undefined` while unknown) held from `from` (the earliest its change can have committed: the
 * call's start) to `to` (the latest the next change can have committed: that call's end). Times
 * are `performance.now()`.
 */
export class Timeline {
  #states = new Map();

  /** `id` starts in `answer` (in `tier`) at time 0. */
  begin(id, answer, tier) {
    this.#states.set(id, [{ answer, tier, from: 0, to: Infinity }]);
  }

  /**
   * A lifecycle call on `id` ran from `startedAt` to `endedAt` and left it in `answer`, its rows
   * in `tier`.
   */
  change(id, answer, startedAt, endedAt, tier) {
    const states = this.#states.get(id) ?? [{ answer: 'unknown', from: 0, to: Infinity }];
    this.#states.set(id, states);
    const last = states.at(-1);
    if (last.answer === answer && last.tier === tier) return;
    last.to = endedAt;
    states.push({ answer, tier, from: startedAt, to: Infinity });
  }

  /** The state `id` is in now, as far as the harness knows. */
  current(id) {
    return this.#states.get(id)?.at(-1).answer ?? 'unknown';
  }

  /**
   * Whether `id` was in `answer` (and, when given, in `tier`) at some moment between
   * `startedAt - boundMs` and `endedAt`: what an instance may still believe `boundMs` after a
   * change (`maxStalenessMs`).
   */
  explains(id, answer, startedAt, endedAt, boundMs, tier) {
    const states = this.#states.get(id) ?? [{ answer: 'unknown', from: 0, to: Infinity }];
    return states.some(
      (s) =>
        s.answer === answer &&
        (tier === undefined || s.tier === tier) &&
        s.from <= endedAt &&
        s.to >= startedAt - boundMs,
    );
  }

  /** Every id's states, for a failure report. */
  of(id) {
    return this.#states.get(id) ?? [];
  }
}

/** The name and HTTP status (when known) of what refused an operation. */
export function refusalOf(error) {
  if (error === null || typeof error !== 'object') return { name: String(error) };
  return {
    name: typeof error.name === 'string' ? error.name : 'unknown',
    message: typeof error.message === 'string' ? error.message : String(error),
    status: typeof error.status === 'number' ? error.status : undefined,
  };
}

/**
 * The counters of a run, all of which but `operations`, `served` and `refused` must stay 0.
 * `crossTenantWrites`/`crossTenantReads`: a statement reached a schema other than the intended
 * tenant's, or (pooled) rows whose tenant column or marker owner is another tenant's.
 * `blindReads`: a read returned no marker row while its tenant existed (a read under no scope, or
 * a scope of no tenant, sees nothing under row-level security). `ranWithoutTenant`: work with no tenant (or a malformed one) wrote anywhere.
 * `ranAfterBound`: work wrote for a tenant that, from `maxStalenessMs` before it was sent until it
 * ended, was never active. `untypedRefusals`: refused with anything but a tenant error.
 * `unexplainedRefusals`: a tenant error the timeline does not explain (refused an active tenant,
 * or a suspended error for a dropped one). `servedWithoutTenant`: a channel reported success for
 * work that named no valid tenant; `servedButNotRun`: success for work that never wrote. `unseenWrites`: rows found at the end that no operation reported.
 */
export function emptyCounters() {
  return {
    operations: 0,
    served: 0,
    refused: 0,
    crossTenantWrites: 0,
    crossTenantReads: 0,
    blindReads: 0,
    ranWithoutTenant: 0,
    ranAfterBound: 0,
    untypedRefusals: 0,
    unexplainedRefusals: 0,
    servedWithoutTenant: 0,
    servedButNotRun: 0,
    unseenWrites: 0,
  };
}

/** The counters that must be 0. */
export const ZERO_COUNTERS = [
  'crossTenantWrites',
  'crossTenantReads',
  'blindReads',
  'ranWithoutTenant',
  'ranAfterBound',
  'untypedRefusals',
  'unexplainedRefusals',
  'servedWithoutTenant',
  'servedButNotRun',
  'unseenWrites',
];

/**
 * Where a row an operation saw lives, judged from what PostgreSQL returned (never from the
 * library): `{ tier, tenant }` when `schema` (of the row's `tableoid`) is a tenant's schema or the
 * pooled schema with the row's tenant column set, else `null`. A schema tenant's row has no
 * tenant column; a pooled row always has one.
 */
export function homeOf({ schema, tenant }, { schemaOf, tenantOfSchema, pooledSchema }) {
  if (pooledSchema !== undefined && schema === pooledSchema)
    return typeof tenant === 'string' ? { tier: 'pooled', tenant } : null;
  const owner = tenantOfSchema(schema);
  return owner !== undefined && schemaOf(owner) === schema && tenant == null
    ? { tier: 'schema', tenant: owner }
    : null;
}

const describe = (seen) =>
  seen.tenant == null ? seen.schema : `${seen.schema} (tenant ${seen.tenant})`;

/**
 * The faults of one finished operation (an empty list when it behaved). `op` is what the harness
 * sent; `trace` what the work itself saw: `wrote`, the schema PostgreSQL says the row went to
 * and the row's tenant column (`null` in a schema tenant's table); `read`, each marker row read
 * back (its schema, its `owner`, its tenant column). `outcome` is what the channel reported:
 * `{ ok: true }` or `{ error }`. A write must reach the intended tenant's home (its schema, or
 * the pooled schema with its id in the tenant column) in a tier it had, while active, within the
 * bound; a read must return exactly one marker, the intended tenant's, from the same home.
 */
export function judge(op, trace, outcome, options) {
  const { timeline, boundMs, isTyped } = options;
  const faults = [];
  const intended = op.intended;
  if (trace?.wrote !== undefined) {
    const home = homeOf(trace.wrote, options);
    if (intended === null) faults.push(['ranWithoutTenant', `wrote into ${describe(trace.wrote)}`]);
    else if (home?.tenant !== intended)
      faults.push(['crossTenantWrites', `wrote into ${describe(trace.wrote)}, not ${intended}'s`]);
    else if (!timeline.explains(intended, 'active', op.startedAt, op.endedAt, boundMs, home.tier))
      faults.push([
        'ranAfterBound',
        `wrote into the ${home.tier} tier while ${timeline.current(intended)}`,
      ]);
  }
  if (trace?.read !== undefined && intended !== null) {
    const read = trace.read;
    const foreign = read.find(
      (m) => m.owner !== intended || homeOf(m, options)?.tenant !== intended,
    );
    if (foreign !== undefined)
      faults.push([
        'crossTenantReads',
        `read the marker of ${foreign.owner} from ${describe(foreign)}, not ${intended}'s`,
      ]);
    else if (read.length > 1)
      faults.push(['crossTenantReads', `read ${read.length} markers of ${intended}`]);
    // No marker is explained only while the tenant was being created (its marker not inserted
    // yet) or dropped: a read sent once a create has returned sees its marker, whatever the bound.
    else if (
      read.length === 0 &&
      !timeline.explains(intended, 'unknown', op.startedAt, op.endedAt, 0)
    )
      faults.push(['blindReads', `read no marker while ${timeline.current(intended)}`]);
  }
  if (outcome.ok) {
    if (op.kind !== 'tenant') faults.push(['servedWithoutTenant', `a ${op.kind} op was served`]);
    else if (trace?.wrote === undefined)
      faults.push(['servedButNotRun', 'reported done, never wrote']);
    return faults;
  }
  const refusal = refusalOf(outcome.error);
  if (!isTyped(outcome.error, refusal)) {
    faults.push(['untypedRefusals', `${refusal.name}: ${refusal.message}`]);
    return faults;
  }
  if (!refusalExplained(op, refusal.name, timeline, boundMs))
    faults.push(['unexplainedRefusals', `${refusal.name}: ${refusal.message}`]);
  return faults;
}

/** Whether a typed refusal is the one this operation should get at some moment of its flight. */
function refusalExplained(op, name, timeline, boundMs) {
  switch (op.kind) {
    case 'missing':
      return name === 'TenantRequiredError' || name === 'InvalidTenantIdError';
    case 'malformed':
      return name === 'InvalidTenantIdError';
    case 'unscoped':
      return name === 'TenantContextMissingError';
    default: {
      const answer =
        name === 'TenantSuspendedError'
          ? 'suspended'
          : name === 'TenantNotFoundError'
            ? 'unknown'
            : undefined;
      // Work admitted once for many operations (a session) is refused as not found once the
      // tenant it was admitted to was dropped, even when an id of that name exists again.
      const since =
        answer === 'unknown' ? Math.min(op.startedAt, op.admittedAt ?? Infinity) : op.startedAt;
      return (
        answer !== undefined && timeline.explains(op.tenant, answer, since, op.endedAt, boundMs)
      );
    }
  }
}
