import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import pg from 'pg';
import { getPoolToken } from './database.tokens.js';

/**
 * Closes the shared pool when the application shuts down (`app.close()`, or a signal with
 * `app.enableShutdownHooks()`). Idempotent, and logs rather than throws: a failing close must
 * not stop the other modules' shutdown hooks.
 */
@Injectable()
export class DatabaseLifecycle implements OnApplicationShutdown {
  readonly #logger = new Logger('DatabaseModule');
  #closing: Promise<void> | undefined;

  constructor(@Inject(getPoolToken()) private readonly pool: pg.Pool) {}

  onApplicationShutdown(): Promise<void> {
    this.#closing ??= this.pool.end().catch((err: Error) => {
      this.#logger.warn(`Closing the connection pool failed: ${err.message}`);
    });
    return this.#closing;
  }
}
