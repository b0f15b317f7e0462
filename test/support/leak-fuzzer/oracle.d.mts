// Types of the leak fuzzer's oracle (plain JavaScript).
import type { FuzzCounters, FuzzOperation } from './fuzzer.mjs';

export type Answer = 'active' | 'suspended' | 'unknown';
export type Tier = 'schema' | 'pooled';

/** A row an operation saw: the schema of its `tableoid`, its tenant column (`null`: none). */
export interface Seen {
  schema: string;
  tenant: string | null;
}

/** A marker row read back. */
export interface SeenMarker extends Seen {
  owner: string;
}

/** Where the run's tenants live. */
export interface Homes {
  schemaOf: (id: string) => string;
  tenantOfSchema: (schema: string) => string | undefined;
  /** The pooled tier's schema; `undefined` when the tier is off. */
  pooledSchema: string | undefined;
}

export const REFUSALS: Record<string, number>;
export const ZERO_COUNTERS: (keyof FuzzCounters)[];
export function emptyCounters(): FuzzCounters;

export class Timeline {
  begin(id: string, answer: Answer, tier?: Tier): void;
  change(id: string, answer: Answer, startedAt: number, endedAt: number, tier?: Tier): void;
  current(id: string): Answer;
  explains(
    id: string,
    answer: Answer,
    startedAt: number,
    endedAt: number,
    boundMs: number,
    tier?: Tier,
  ): boolean;
  of(id: string | undefined): { answer: Answer; tier?: Tier; from: number; to: number }[];
}

export function refusalOf(error: unknown): { name: string; message?: string; status?: number };

export function homeOf(seen: Seen, homes: Homes): { tier: Tier; tenant: string } | null;

export function judge(
  op: FuzzOperation & { startedAt: number; endedAt: number },
  trace: { wrote?: Seen; read?: SeenMarker[] } | undefined,
  outcome: { ok: true } | { ok: false; error: unknown },
  options: Homes & {
    timeline: Timeline;
    boundMs: number;
    isTyped: (error: unknown, refusal: { name: string; status?: number }) => boolean;
  },
): [keyof FuzzCounters, string][];
