import { loadMigrationFiles } from '../../lib/migrations/migration-files.js';
import { MigrationFilesError } from '../../lib/index.js';
import { useMigrationFolders } from '../support/migrations.js';

describe('migration files', () => {
  const folder = useMigrationFolders();

  it('orders files by their numeric prefix and reads the no-transaction marker', async () => {
    const dir = await folder({
      '010_ten.sql': 'SELECT 10;',
      '002_two.sql': 'SELECT 2;',
      '1_one.sql': 'SELECT 1;',
      ...Object.fromEntries([3, 4, 5, 6, 7, 8, 9].map((n) => [`00${n}_n${n}.sql`, `SELECT ${n};`])),
      'README.md': 'ignored: not a .sql file',
    });
    await import('node:fs/promises').then((fs) =>
      fs.writeFile(
        `${dir}/004_n4.sql`,
        '-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY x ON y (z);',
      ),
    );
    const files = await loadMigrationFiles(dir);
    expect(files.map((f) => f.name)).toEqual([
      '1_one.sql',
      '002_two.sql',
      '003_n3.sql',
      '004_n4.sql',
      '005_n5.sql',
      '006_n6.sql',
      '007_n7.sql',
      '008_n8.sql',
      '009_n9.sql',
      '010_ten.sql',
    ]);
    expect(files.map((f) => f.transactional)).toEqual([
      true,
      true,
      true,
      false,
      true,
      true,
      true,
      true,
      true,
      true,
    ]);
    expect(files[0].checksum).toMatch(/^[0-9a-f]{64}$/);
  });

  it('rejects two files with the same version, naming both', async () => {
    const dir = await folder({ '001_a.sql': '', '002_b.sql': '', '002_c.sql': '' });
    await expect(loadMigrationFiles(dir)).rejects.toThrow(/version 2: 002_b\.sql and 002_c\.sql/);
  });

  it('rejects a gap in the numbering, naming the file after it', async () => {
    const dir = await folder({ '001_a.sql': '', '003_c.sql': '' });
    await expect(loadMigrationFiles(dir)).rejects.toThrow(
      /expected version 2 but found 003_c\.sql after 001_a\.sql/,
    );
  });

  it('rejects .sql files that are not named NNN_description.sql', async () => {
    const dir = await folder({ '001_a.sql': '', 'seed.sql': '', '002 b.sql': '' });
    const error = await loadMigrationFiles(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationFilesError);
    expect((error as Error).message).toMatch(/002 b\.sql, seed\.sql/);
  });

  it('names a missing folder', async () => {
    await expect(loadMigrationFiles('/nonexistent/migrations')).rejects.toThrow(
      /Cannot read the migrations folder \/nonexistent\/migrations/,
    );
  });
});
