// Types of the leak fuzzer's oracle (plain JavaScript).
import type { FuzzCounters, FuzzOperation } from './fuzzer.mjs';

export type Answer = 'active' | 'suspended' | 'unknown';

export const REFUSALS: Record<string, number>;
export const ZERO_COUNTERS: (keyof FuzzCounters)[];
export function emptyCounters(): FuzzCounters;

export class Timeline {
  begin(id: string, answer: Answer): void;
  change(id: string, answer: Answer, startedAt: number, endedAt: number): void;
  current(id: string): Answer;
  explains(
    id: string,
    answer: Answer,
    startedAt: number,
    endedAt: number,
    boundMs: number,
  ): boolean;
  of(id: string | undefined): { answer: Answer; from: number; to: number }[];
}

export function refusalOf(error: unknown): { name: string; message?: string; status?: number };

export function judge(
  op: FuzzOperation & { startedAt: number; endedAt: number },
  trace: { wrote?: string; read?: string } | undefined,
  outcome: { ok: true } | { ok: false; error: unknown },
  options: {
    timeline: Timeline;
    boundMs: number;
    schemaOf: (id: string) => string;
    isTyped: (error: unknown, refusal: { name: string; status?: number }) => boolean;
  },
): [keyof FuzzCounters, string][];
