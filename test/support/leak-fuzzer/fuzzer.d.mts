// Types of the leak fuzzer (plain JavaScript, shared by the Jest spec and the bench suite).
import type { INestApplication } from '@nestjs/common';

/** One operation the harness sends: `intended` is the tenant it means, never read from the library. */
export interface FuzzOperation {
  readonly id: number;
  /** `tenant`: names `tenant` (active, suspended, dropped or never created); the rest name none. */
  readonly kind: 'tenant' | 'missing' | 'malformed' | 'unscoped';
  /** The id the work carries (`undefined`: none). */
  readonly tenant: string | undefined;
  /** The tenant whose home (schema or pooled rows) its row must reach, `null`: none. */
  readonly intended: string | null;
  /** How the work yields between its write and its read (0–3). */
  readonly pause: number;
  startedAt?: number;
  endedAt?: number;
  /** When the session it ran in was admitted (the session channel). */
  admittedAt?: number;
}

/** The unit of work every channel runs in the serving app. */
export interface FuzzWork {
  perform(op: number, intended: string | null, channel: string, pause?: number): Promise<void>;
  /** The write alone. */
  write(op: number, intended: string | null, channel: string): Promise<void>;
  /** The pause and the read alone. */
  read(op: number, pause?: number): Promise<void>;
}

/** What a channel is given once the serving app listens. */
export interface FuzzChannelContext {
  readonly app: INestApplication;
  /** The serving app's HTTP address. */
  readonly url: string;
  readonly work: FuzzWork;
  readonly lib: FuzzLibrary;
  readonly seed: number;
}

/** A way work reaches a tenant. */
export interface FuzzChannel {
  readonly name: string;
  /** How often it is picked, relative to the others. Default: 1. */
  readonly weight?: number;
  /** Runs work outside any tenant: every operation must fail with `TenantContextMissingError`. */
  readonly unscoped?: boolean;
  /** What it adds to the serving app's root module. */
  readonly module?: { imports?: unknown[]; providers?: unknown[]; controllers?: unknown[] };
  /** Called with the serving app before it listens (`app.useWebSocketAdapter`, …). */
  configure?(app: INestApplication, ctx: Pick<FuzzChannelContext, 'lib' | 'seed'>): Promise<void>;
  /** Called once the serving app listens. */
  start?(ctx: FuzzChannelContext): Promise<void>;
  /** Settles when the work finished: resolves when it ran, rejects with what refused it. */
  send(op: FuzzOperation): Promise<void>;
  stop?(): Promise<void>;
}

/** A channel whose integration is not there (yet). */
export interface SkippedChannel {
  readonly name: string;
  readonly skipped: string;
}

/** The library under test: `lib/index.ts` in Jest, `dist/index.js` in the bench. */
export type FuzzLibrary = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface FuzzOptions {
  readonly lib: FuzzLibrary;
  /** A fresh database the run may fill. */
  readonly url: string;
  readonly seed: number;
  /** Default: 3,000. */
  readonly operations?: number;
  /** Tenants created at the start. Default: 12. */
  readonly tenants?: number;
  /** Operations in flight at once. Default: 16. */
  readonly concurrency?: number;
  /** `tenancy.maxStalenessMs` of both instances, the bound the checks allow. Default: 500. */
  readonly maxStalenessMs?: number;
  /** One lifecycle change per this many operations. Default: 60. */
  readonly lifecycleEvery?: number;
  /** `pool.max` of each instance. Default: 10. */
  readonly poolMax?: number;
  /**
   * The share of tenants created in the pooled tier (at the start and at each re-creation), the
   * rest in the schema tier; the first two are one of each. 0 turns the pooled tier off.
   * Default: 0.5.
   */
  readonly pooledShare?: number;
  /** Default: the built-in channels. */
  readonly channels?: (FuzzChannel | SkippedChannel | Promise<FuzzChannel | SkippedChannel>)[];
  readonly log?: (message: string) => void;
}

/** Counters of a run; all but `operations`, `served` and `refused` must be 0. */
export interface FuzzCounters {
  operations: number;
  served: number;
  refused: number;
  crossTenantWrites: number;
  crossTenantReads: number;
  blindReads: number;
  ranWithoutTenant: number;
  ranAfterBound: number;
  untypedRefusals: number;
  unexplainedRefusals: number;
  servedWithoutTenant: number;
  servedButNotRun: number;
  unseenWrites: number;
}

export interface FuzzReport {
  readonly seed: number;
  readonly operations: number;
  readonly tenants: number;
  readonly concurrency: number;
  readonly maxStalenessMs: number;
  readonly seconds: number;
  readonly opsPerSecond: number;
  /** This process's CPU time per operation (app, harness, HTTP both ways; not PostgreSQL's), µs. */
  readonly cpuMicrosPerOp: number;
  readonly counters: FuzzCounters;
  /** `pooled`: operations whose write reached a pooled tenant's rows. */
  readonly byChannel: Record<string, { served: number; refused: number; pooled: number }>;
  readonly refusals: Record<string, number>;
  readonly lifecycle: Record<string, number>;
  /** Per tier: tenants created in it, and operations whose write reached one of them. */
  readonly tiers: Record<'schema' | 'pooled', { created: number; wrote: number }>;
  readonly rowsSwept: number;
  /** Errors the apps logged (not printed): how many, and the first few that are not typed refusals. */
  readonly loggedErrors: { count: number; samples: string[] };
  readonly channels: string[];
  readonly skipped: { name: string; reason: string }[];
  /** Empty when every check held; each entry names the seed. */
  readonly failures: string[];
}

export function fuzzSeed(env?: NodeJS.ProcessEnv): number;
export function runLeakFuzzer(options: FuzzOptions): Promise<FuzzReport>;
