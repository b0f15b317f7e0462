import 'reflect-metadata';
import { Logger, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppConfig } from './app-config.js';
import { AppModule } from './app.module.js';
import { openDatabase, type AppDatabase } from './database.js';

const SHUTDOWN_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const logger = new Logger('ProjectTracker');

async function main(): Promise<void> {
  const config = AppConfig.fromEnv();
  const database = await openDatabase();
  let app: INestApplication | undefined;

  // Shutdown runs in order: the app first (requests in flight finish, the tenant listener and
  // the pool close), then the embedded PostgreSQL under it, which never sees the terminal's
  // Ctrl-C (it runs in its own process group). enableShutdownHooks() would also work (the
  // library stops the server once the process has ended), but it ends the process by
  // re-raising the signal; here, once both are closed, the process exits by itself with code 0
  // and the server has stopped before it.
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      await app?.close();
      logger.log('Application closed');
      await database.stop();
    })());
  const onSignal = (signal: NodeJS.Signals) => {
    // A repeat is ignored: with `npm start`, Ctrl-C arrives twice (from the terminal and
    // forwarded by npm), and the shutdown is bounded anyway (the library's drain timeout).
    if (stopping) return;
    logger.log(`${signal} received: shutting down`);
    stop().catch((err: unknown) => {
      logger.error(`Shutdown failed: ${err instanceof Error ? err.stack : String(err)}`);
      process.exitCode = 1;
    });
  };
  for (const signal of SHUTDOWN_SIGNALS) process.on(signal, onSignal);

  try {
    // abortOnError: false makes a failed start-up (a bad migration, a taken port) throw here
    // instead of aborting the process, so the embedded server is still stopped.
    app = await NestFactory.create(AppModule.register(config, database.url), {
      abortOnError: false,
    });
    await app.listen(config.port, config.host);
  } catch (err) {
    await stop();
    throw err;
  }
  printBanner(await app.getUrl(), config, database);
}

function printBanner(url: string, config: AppConfig, database: AppDatabase): void {
  const token = config.adminTokenGenerated ? config.adminToken : '$ADMIN_TOKEN';
  console.log(
    [
      '',
      `Project tracker listening on ${url}`,
      `  database:    ${database.description}`,
      config.adminTokenGenerated
        ? `  admin token: ${config.adminToken} (new on every start; set ADMIN_TOKEN to keep one)`
        : '  admin token: from ADMIN_TOKEN',
      '',
      'Try:',
      `  curl -H "authorization: Bearer ${token}" ${url}/admin/tenants`,
      '  # open a session for a user of tenant acme (the tenant routes need one):',
      `  curl -H "authorization: Bearer ${token}" -H 'content-type: application/json' -d '{"email":"wile@acme.example"}' ${url}/admin/tenants/acme/sessions`,
      `  curl -H "authorization: Bearer <session token>" ${url}/projects`,
      `  curl -H "authorization: Bearer <session token>" -H 'content-type: application/json' -d '{"name":"Anvil delivery"}' ${url}/projects`,
      '',
      'Press Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
}

main().catch((err: unknown) => {
  logger.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exitCode = 1;
});
