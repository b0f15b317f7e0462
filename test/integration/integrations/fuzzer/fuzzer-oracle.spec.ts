// The leak fuzzer's verdicts on single operations (no database): what counts as a leak, a stale
// run, an untyped or an unexplained refusal. A fuzzer that cannot fail proves nothing.
import { TenantNotFoundError, TenantSuspendedError } from '../../../../lib/index.js';
import type { FuzzOperation } from '../../../support/leak-fuzzer/fuzzer.mjs';
import { judge, REFUSALS, Timeline } from '../../../support/leak-fuzzer/oracle.mjs';

const BOUND = 500;
const schemaOf = (id: string) => `fz_${id}`;
const isTyped = (error: unknown, refusal: { name: string }) =>
  error instanceof Error ? error.name in REFUSALS : refusal.name in REFUSALS;

/** t1 active from the start, suspended by a call from 1,000 to 1,010, active again 3,000–3,010. */
function timeline(): Timeline {
  const t = new Timeline();
  t.begin('t1', 'active');
  t.change('t1', 'suspended', 1_000, 1_010);
  t.change('t1', 'active', 3_000, 3_010);
  t.begin('ghost', 'unknown');
  return t;
}

function op(
  startedAt: number,
  endedAt: number,
  over: Partial<FuzzOperation> = {},
): FuzzOperation & { startedAt: number; endedAt: number } {
  return {
    id: 1,
    kind: 'tenant',
    tenant: 't1',
    intended: 't1',
    pause: 0,
    startedAt,
    endedAt,
    ...over,
  };
}

const verdict = (
  o: ReturnType<typeof op>,
  trace: { wrote?: string; read?: string } | undefined,
  outcome: { ok: true } | { ok: false; error: unknown },
) =>
  judge(o, trace, outcome, { timeline: timeline(), boundMs: BOUND, schemaOf, isTyped }).map(
    ([counter]) => counter,
  );

describe('leak fuzzer verdicts', () => {
  const served = { ok: true } as const;
  const here = { wrote: 'fz_t1', read: 'fz_t1' };

  it('passes work that wrote and read its own tenant while it was active', () => {
    expect(verdict(op(100, 120), here, served)).toEqual([]);
  });

  it('counts a write or a read in another schema as a cross-tenant access', () => {
    expect(verdict(op(100, 120), { wrote: 'fz_t2', read: 'fz_t1' }, served)).toEqual([
      'crossTenantWrites',
    ]);
    expect(verdict(op(100, 120), { wrote: 'fz_t1', read: 'fz_t2' }, served)).toEqual([
      'crossTenantReads',
    ]);
  });

  it('allows a write up to maxStalenessMs after a suspension, and not later', () => {
    expect(verdict(op(1_400, 1_420), here, served)).toEqual([]);
    expect(verdict(op(1_600, 1_620), here, served)).toEqual(['ranAfterBound']);
    // Sent while suspended, ended after the resume: the resume explains it.
    expect(verdict(op(2_900, 3_005), here, served)).toEqual([]);
  });

  it('counts work without a tenant that wrote anywhere, or was served', () => {
    const missing = op(100, 120, { kind: 'missing', tenant: undefined, intended: null });
    expect(verdict(missing, { wrote: 'fz_t1' }, served)).toEqual([
      'ranWithoutTenant',
      'servedWithoutTenant',
    ]);
  });

  it('wants a typed refusal that the tenant history explains', () => {
    const suspended = { ok: false, error: new TenantSuspendedError('t1') } as const;
    expect(verdict(op(1_005, 1_020), undefined, suspended)).toEqual([]);
    // Refused as suspended long before the suspension: unexplained.
    expect(verdict(op(100, 120), undefined, suspended)).toEqual(['unexplainedRefusals']);
    const ghost = op(100, 120, { tenant: 'ghost', intended: 'ghost' });
    expect(
      verdict(ghost, undefined, { ok: false, error: new TenantNotFoundError('ghost') }),
    ).toEqual([]);
    expect(verdict(op(100, 120), undefined, { ok: false, error: new Error('boom') })).toEqual([
      'untypedRefusals',
    ]);
    // Over a wire: the name and the status a request would get.
    const wire = { name: 'TenantSuspendedError', message: 'suspended', status: 403 };
    expect(verdict(op(1_005, 1_020), undefined, { ok: false, error: wire })).toEqual([]);
  });

  it('counts success for work that never wrote', () => {
    expect(verdict(op(100, 120), undefined, served)).toEqual(['servedButNotRun']);
  });
});
