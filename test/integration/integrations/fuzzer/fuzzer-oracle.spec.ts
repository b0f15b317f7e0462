// The leak fuzzer's verdicts on single operations (no database): what counts as a leak, a stale
// run, an untyped or an unexplained refusal. A fuzzer that cannot fail proves nothing.
import { TenantNotFoundError, TenantSuspendedError } from '../../../../lib/index.js';
import type { FuzzOperation } from '../../../support/leak-fuzzer/fuzzer.mjs';
import { judge, REFUSALS, Timeline } from '../../../support/leak-fuzzer/oracle.mjs';

const BOUND = 500;
const POOLED = 'tenancy_pooled';
const schemaOf = (id: string) => `fz_${id}`;
const tenantOfSchema = (schema: string) =>
  schema.startsWith('fz_') ? schema.slice('fz_'.length) : undefined;
const isTyped = (error: unknown, refusal: { name: string }) =>
  error instanceof Error ? error.name in REFUSALS : refusal.name in REFUSALS;

/**
 * t1 (schema tier) active from the start, suspended by a call from 1,000 to 1,010, active again
 * 3,000–3,010. p1 (pooled) active from the start, dropped 5,000–5,100, created again in the schema
 * tier 6,000–6,050.
 */
function timeline(): Timeline {
  const t = new Timeline();
  t.begin('t1', 'active', 'schema');
  t.change('t1', 'suspended', 1_000, 1_010, 'schema');
  t.change('t1', 'active', 3_000, 3_010, 'schema');
  t.begin('p1', 'active', 'pooled');
  t.begin('p2', 'active', 'pooled');
  t.change('p1', 'unknown', 5_000, 5_100);
  t.change('p1', 'active', 6_000, 6_050, 'schema');
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
  trace: Trace | undefined,
  outcome: { ok: true } | { ok: false; error: unknown },
) =>
  judge(o, trace, outcome, {
    timeline: timeline(),
    boundMs: BOUND,
    schemaOf,
    tenantOfSchema,
    pooledSchema: POOLED,
    isTyped,
  }).map(([counter]) => counter);

type Trace = Parameters<typeof judge>[1];
/** What a schema tenant's operation saw: its row in `wrote`'s schema, the marker of `owner` in `read`'s. */
const inSchema = (wrote: string, read = wrote, owner = 't1'): Trace => ({
  wrote: { schema: wrote, tenant: null },
  read: [{ schema: read, owner, tenant: null }],
});
/** What a pooled tenant's operation saw: its row with tenant column `wrote`, the markers read. */
const inPool = (wrote: string, read: { owner: string; tenant: string }[]): Trace => ({
  wrote: { schema: POOLED, tenant: wrote },
  read: read.map((m) => ({ schema: POOLED, ...m })),
});

describe('leak fuzzer verdicts', () => {
  const served = { ok: true } as const;
  const here = inSchema('fz_t1');

  it('passes work that wrote and read its own tenant while it was active', () => {
    expect(verdict(op(100, 120), here, served)).toEqual([]);
  });

  it('counts a write or a read in another schema as a cross-tenant access', () => {
    expect(verdict(op(100, 120), inSchema('fz_t2', 'fz_t1'), served)).toEqual([
      'crossTenantWrites',
    ]);
    expect(verdict(op(100, 120), inSchema('fz_t1', 'fz_t2'), served)).toEqual(['crossTenantReads']);
    // The right schema, another tenant's marker in it.
    expect(verdict(op(100, 120), inSchema('fz_t1', 'fz_t1', 't2'), served)).toEqual([
      'crossTenantReads',
    ]);
    // A schema tenant's write landing in the pooled tables, even stamped with its id.
    expect(
      verdict(op(100, 120), { ...here, wrote: { schema: POOLED, tenant: 't1' } }, served),
    ).toEqual(['ranAfterBound']);
  });

  it("judges a pooled tenant's rows by their tenant column and the marker's owner", () => {
    const p2 = op(100, 120, { tenant: 'p2', intended: 'p2' });
    const own = [{ owner: 'p2', tenant: 'p2' }];
    expect(verdict(p2, inPool('p2', own), served)).toEqual([]);
    // The pooled schema is every pooled tenant's: the tenant column tells them apart.
    expect(verdict(p2, inPool('p1', own), served)).toEqual(['crossTenantWrites']);
    expect(verdict(p2, inPool('p2', [{ owner: 'p1', tenant: 'p1' }]), served)).toEqual([
      'crossTenantReads',
    ]);
    // A marker whose owner and tenant column disagree, or every tenant's markers (no policy).
    expect(verdict(p2, inPool('p2', [{ owner: 'p2', tenant: 'p1' }]), served)).toEqual([
      'crossTenantReads',
    ]);
    expect(verdict(p2, inPool('p2', [...own, { owner: 'p1', tenant: 'p1' }]), served)).toEqual([
      'crossTenantReads',
    ]);
    // A pooled row without a tenant column, or a pooled tenant's row in its reserved schema.
    expect(verdict(p2, { wrote: { schema: POOLED, tenant: null } }, served)).toEqual([
      'crossTenantWrites',
    ]);
    expect(verdict(p2, { wrote: { schema: 'fz_p2', tenant: null } }, served)).toEqual([
      'ranAfterBound',
    ]);
  });

  it('counts a read that sees no marker while its tenant exists (no scope, or no tenant in it)', () => {
    const p2 = op(100, 120, { tenant: 'p2', intended: 'p2' });
    expect(verdict(p2, inPool('p2', []), served)).toEqual(['blindReads']);
    expect(verdict(op(100, 120), { ...here, read: [] }, served)).toEqual(['blindReads']);
    // While it was being dropped or created (its marker not inserted yet), none is explained.
    const p1 = (at: number) => op(at, at + 20, { tenant: 'p1', intended: 'p1' });
    expect(verdict(p1(5_050), { read: [] }, served)).toEqual(['servedButNotRun']);
    expect(verdict(p1(6_040), { read: [] }, served)).toEqual(['servedButNotRun']);
    // Once the create has returned, with its marker, whatever the staleness bound.
    expect(verdict(p1(6_100), { read: [] }, served)).toEqual(['blindReads', 'servedButNotRun']);
  });

  it('wants the tier a tenant had: dropped from the pooled tier, created again in the schema tier', () => {
    const p1 = (at: number) => op(at, at + 20, { tenant: 'p1', intended: 'p1' });
    const pooled = inPool('p1', [{ owner: 'p1', tenant: 'p1' }]);
    const schema = inSchema('fz_p1', 'fz_p1', 'p1');
    expect(verdict(p1(4_000), pooled, served)).toEqual([]);
    expect(verdict(p1(5_550), pooled, served)).toEqual([]); // within the bound of the drop
    expect(verdict(p1(6_200), pooled, served)).toEqual(['ranAfterBound']);
    expect(verdict(p1(6_200), schema, served)).toEqual([]);
    expect(verdict(p1(4_000), schema, served)).toEqual(['ranAfterBound']);
  });

  it('allows a write up to maxStalenessMs after a suspension, and not later', () => {
    expect(verdict(op(1_400, 1_420), here, served)).toEqual([]);
    expect(verdict(op(1_600, 1_620), here, served)).toEqual(['ranAfterBound']);
    // Sent while suspended, ended after the resume: the resume explains it.
    expect(verdict(op(2_900, 3_005), here, served)).toEqual([]);
  });

  it('counts work without a tenant that wrote anywhere, or was served', () => {
    const missing = op(100, 120, { kind: 'missing', tenant: undefined, intended: null });
    expect(verdict(missing, { wrote: { schema: 'fz_t1', tenant: null } }, served)).toEqual([
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

  it("explains a session's not-found refusal from when the session was admitted", () => {
    const gone = { ok: false, error: new TenantNotFoundError('p1') } as const;
    const late = (admittedAt?: number) =>
      op(8_000, 8_010, { tenant: 'p1', intended: 'p1', admittedAt });
    // p1 was dropped at 5,000 and is active again since 6,050.
    expect(verdict(late(), undefined, gone)).toEqual(['unexplainedRefusals']);
    expect(verdict(late(4_000), undefined, gone)).toEqual([]);
    expect(verdict(late(7_000), undefined, gone)).toEqual(['unexplainedRefusals']);
    // Not for a suspension: that is the state now, not since the session began.
    const t1 = op(4_000, 4_010, { admittedAt: 500 });
    expect(verdict(t1, undefined, { ok: false, error: new TenantSuspendedError('t1') })).toEqual([
      'unexplainedRefusals',
    ]);
  });

  it('counts success for work that never wrote', () => {
    expect(verdict(op(100, 120), undefined, served)).toEqual(['servedButNotRun']);
  });
});
