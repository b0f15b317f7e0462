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
 * being created, dropping or dropped) held from `from` (the earliest its change can have
 * committed: the call's start) to `to` (the latest the next change can have committed: that
 * call's end). Times are `performance.now()`.
 */
export class Timeline {
  #states = new Map();

  /** `id` starts in `answer` at time 0. */
  begin(id, answer) {
    this.#states.set(id, [{ answer, from: 0, to: Infinity }]);
  }

  /** A lifecycle call on `id` ran from `startedAt` to `endedAt` and left it in `answer`. */
  change(id, answer, startedAt, endedAt) {
    const states = this.#states.get(id) ?? [{ answer: 'unknown', from: 0, to: Infinity }];
    this.#states.set(id, states);
    const last = states.at(-1);
    if (last.answer === answer) return;
    last.to = endedAt;
    states.push({ answer, from: startedAt, to: Infinity });
  }

  /** The state `id` is in now, as far as the harness knows. */
  current(id) {
    return this.#states.get(id)?.at(-1).answer ?? 'unknown';
  }

  /**
   * Whether `id` was in `answer` at some moment between `startedAt - boundMs` and `endedAt`:
   * what an instance may still believe `boundMs` after a change (`maxStalenessMs`).
   */
  explains(id, answer, startedAt, endedAt, boundMs) {
    const states = this.#states.get(id) ?? [{ answer: 'unknown', from: 0, to: Infinity }];
    return states.some(
      (s) => s.answer === answer && s.from <= endedAt && s.to >= startedAt - boundMs,
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
 * tenant's. `ranWithoutTenant`: work with no tenant (or a malformed one) wrote anywhere.
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
  'ranWithoutTenant',
  'ranAfterBound',
  'untypedRefusals',
  'unexplainedRefusals',
  'servedWithoutTenant',
  'servedButNotRun',
  'unseenWrites',
];

/**
 * The faults of one finished operation (an empty list when it behaved). `op` is what the harness
 * sent; `trace` what the work itself saw (`wrote`/`read`: the schema PostgreSQL says the row or
 * marker came from); `outcome` what the channel reported: `{ ok: true }` or `{ error }`.
 */
export function judge(op, trace, outcome, { timeline, boundMs, schemaOf, isTyped }) {
  const faults = [];
  const intendedSchema = op.intended === null ? null : schemaOf(op.intended);
  if (trace?.wrote !== undefined) {
    if (intendedSchema === null) faults.push(['ranWithoutTenant', `wrote into ${trace.wrote}`]);
    else if (trace.wrote !== intendedSchema)
      faults.push(['crossTenantWrites', `wrote into ${trace.wrote}, not ${intendedSchema}`]);
    else if (!timeline.explains(op.intended, 'active', op.startedAt, op.endedAt, boundMs))
      faults.push(['ranAfterBound', `wrote while ${timeline.current(op.intended)}`]);
  }
  if (trace?.read !== undefined && intendedSchema !== null && trace.read !== intendedSchema)
    faults.push(['crossTenantReads', `read from ${trace.read}, not ${intendedSchema}`]);
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
      return (
        answer !== undefined &&
        timeline.explains(op.tenant, answer, op.startedAt, op.endedAt, boundMs)
      );
    }
  }
}
