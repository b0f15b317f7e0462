// Re-running a whole transaction after a serialization failure or a deadlock, as pgxkit does.
import { PreparedStatementStaleError } from '../../shared/errors.js';

const RETRYABLE_SQLSTATES = new Set(['40001', '40P01']);
const BACKOFF_BASE_MS = 5;
const BACKOFF_CAP_MS = 500;

/**
 * Runs `attempt` and re-runs it, after a jittered exponential backoff, while it fails with a
 * retryable error and fewer than `retries` re-runs were made; any other error is rethrown at once.
 */
export async function withRetries<T>(retries: number, attempt: () => Promise<T>): Promise<T> {
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (n >= retries || !isRetryable(err)) {
        throw err;
      }
      await backoff(n);
    }
  }
}

/** Serialization failures, deadlocks, and a cached statement invalidated inside the transaction. */
function isRetryable(err: unknown): boolean {
  if (err instanceof PreparedStatementStaleError) return true;
  return RETRYABLE_SQLSTATES.has((err as { code?: string }).code ?? '');
}

function backoff(attempt: number): Promise<void> {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return new Promise((resolve) => setTimeout(resolve, Math.random() * ceiling));
}
