// Samples pg_stat_activity on its own connection to report how many server connections each
// variant really held (by application_name), rather than trusting pool settings.
import pg from 'pg';

export class ConnectionMonitor {
  #client;
  #timer;
  #sampling;
  #peaks = new Map();
  #peakTotal = 0;
  #closed;

  /** @param {string} url database to watch (only sessions connected to it are counted) */
  static async open(url, intervalMs = 100) {
    const monitor = new ConnectionMonitor();
    monitor.#client = new pg.Client({ connectionString: url, application_name: 'bench_monitor' });
    monitor.#client.on('error', () => undefined);
    await monitor.#client.connect();
    monitor.#timer = setInterval(() => {
      monitor.#sampling ??= monitor.#sample().finally(() => (monitor.#sampling = undefined));
    }, intervalMs);
    return monitor;
  }

  async #sample() {
    const { rows } = await this.#client
      .query(
        `SELECT application_name AS name, count(*)::int AS n FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1`,
      )
      .catch(() => ({ rows: [] }));
    let total = 0;
    for (const { name, n } of rows) {
      total += n;
      if (n > (this.#peaks.get(name) ?? 0)) this.#peaks.set(name, n);
    }
    this.#peakTotal = Math.max(this.#peakTotal, total);
  }

  /** Forgets the peaks seen so far (call before a measured round). */
  reset() {
    this.#peaks.clear();
    this.#peakTotal = 0;
  }

  /** Samples once more now, then returns the peak for `applicationName`. */
  async peak(applicationName) {
    await this.#sampling;
    await this.#sample();
    return this.#peaks.get(applicationName) ?? 0;
  }

  /** Peak number of sessions on the database, all applications together, since `reset()`. */
  get peakTotal() {
    return this.#peakTotal;
  }

  /** Stops sampling and closes the connection. Safe to call twice. */
  close() {
    return (this.#closed ??= (async () => {
      clearInterval(this.#timer);
      await this.#sampling;
      await this.#client.end();
    })());
  }
}
