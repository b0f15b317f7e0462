// Closed-loop load generator: `concurrency` workers, each issuing its next operation as soon
// as the previous one settles, until the deadline. One Node process, so the client's own CPU
// cost per operation is part of what is measured (as it is in an application).
import { performance } from 'node:perf_hooks';
import { createRandom } from './random.mjs';
import { Samples } from './stats.mjs';

/**
 * @param {object} options
 * @param {number} options.concurrency  workers issuing operations back to back
 * @param {number} options.durationMs   how long workers start new operations
 * @param {number} options.seed         base seed; worker i gets `seed + i`
 * @param {(random: ReturnType<typeof createRandom>) => Promise<boolean>} options.operation
 *        one operation; resolves `true` when its result is correct, `false` on a wrong result
 * @param {boolean} [options.record]    keep latency samples (default true)
 * @returns {Promise<{ operations: number, elapsedMs: number, mismatches: number, errors: number,
 *   firstError: Error | undefined, latencies: Samples, cpu: { user: number, system: number } }>}
 *   `cpu`: this process's CPU time during the run, in microseconds (the client's cost)
 */
export async function runClosedLoop({ concurrency, durationMs, seed, operation, record = true }) {
  const latencies = new Samples();
  let operations = 0;
  let mismatches = 0;
  let errors = 0;
  let firstError;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const deadline = start + durationMs;

  async function worker(index) {
    const random = createRandom(seed + index);
    while (performance.now() < deadline) {
      const t0 = performance.now();
      try {
        if (!(await operation(random))) mismatches++;
      } catch (err) {
        errors++;
        firstError ??= err;
      }
      if (record) latencies.push(performance.now() - t0);
      operations++;
    }
  }

  await Promise.all(Array.from({ length: concurrency }, (_, i) => worker(i)));
  const elapsedMs = performance.now() - start;
  return {
    operations,
    elapsedMs,
    cpu: process.cpuUsage(cpuStart),
    mismatches,
    errors,
    firstError,
    latencies,
  };
}
