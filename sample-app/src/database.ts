import { startEmbeddedPostgres } from 'nestjs-pg-tenancy/testing';

/** The PostgreSQL the app uses, and how to let go of it at shutdown. */
export interface AppDatabase {
  readonly url: string;
  /** For the start-up banner; never includes the password. */
  readonly description: string;
  /** Stops the embedded server if one was started; otherwise does nothing. */
  stop(): Promise<void>;
}

/** Relative to the working directory: `npm start` runs in the repository root. */
const EMBEDDED_DATA_DIR = '.data/postgres';

/**
 * `DATABASE_URL` when it is set; otherwise an embedded PostgreSQL whose data is kept in
 * `.data/postgres` between runs (initialised on the first one).
 */
export async function openDatabase(env: NodeJS.ProcessEnv = process.env): Promise<AppDatabase> {
  if (env.DATABASE_URL) {
    return {
      url: env.DATABASE_URL,
      description: `DATABASE_URL (${describeUrl(env.DATABASE_URL)})`,
      stop: async () => undefined,
    };
  }
  // The server runs in a process group of its own: a terminal's Ctrl-C reaches this process
  // only, and main.ts decides the order (the app drains and closes, then the server stops).
  // Should this process die without stop(), the library's watchdog stops the server.
  const server = await startEmbeddedPostgres({ dataDir: EMBEDDED_DATA_DIR });
  return {
    url: server.url,
    description: `embedded PostgreSQL on port ${server.port}, data in ${server.dataDir}`,
    stop: () => server.stop(),
  };
}

function describeUrl(url: string): string {
  try {
    const { username, hostname, port, pathname } = new URL(url);
    return `${username ? `${decodeURIComponent(username)}@` : ''}${hostname}${port ? `:${port}` : ''}${pathname}`;
  } catch {
    return 'not a URL';
  }
}
