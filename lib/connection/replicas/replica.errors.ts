import { PgTenancyError } from '../../shared/errors.js';

/**
 * A statement sent through `db.replica()` tried to write: replicas are read-only. Send writes
 * (and reads that must lock rows, `SELECT … FOR UPDATE`) through the manager itself.
 */
export class ReplicaWriteError extends PgTenancyError {
  constructor(
    /** The replica that refused it (`user@host:port/database`). */
    readonly replica: string,
    options?: { cause?: unknown },
  ) {
    super(
      `A statement sent through db.replica() tried to write, and the replica ${replica} is read-only. ` +
        'Run writes (and SELECT … FOR UPDATE) on the manager itself, not on its replica() view.',
      options,
    );
  }
}

/**
 * No replica is healthy (all down, not in recovery, or lagging more than `replicas.maxLagMs`)
 * and `replicas.fallbackToPrimary` is `false`. Check `DatabaseMonitor.getReplicas()` for each
 * replica's state, or allow the fallback.
 */
export class NoHealthyReplicaError extends PgTenancyError {
  constructor(summary: string) {
    super(
      `No healthy replica to read from (${summary}) and replicas.fallbackToPrimary is false. ` +
        'Bring a replica back, raise replicas.maxLagMs, or set fallbackToPrimary: true.',
    );
  }
}
