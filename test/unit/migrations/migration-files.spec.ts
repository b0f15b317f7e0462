import { loadMigrationFiles } from '../../../lib/migrations/migration-files.js';
import {
  MigrationFilesError,
  MigrationTransactionControlError,
} from '../../../lib/migrations/migration.errors.js';
import { useMigrationFolders } from '../../support/migrations.js';

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

  it('refuses .SQL (any case but lower) loudly instead of skipping it', async () => {
    const dir = await folder({ '001_a.sql': 'SELECT 1;', '002_b.SQL': 'SELECT 2;' });
    const error = await loadMigrationFiles(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationFilesError);
    expect((error as Error).message).toMatch(/must end in lower-case "\.sql": 002_b\.SQL/);
  });

  it('reads CRLF and a BOM as the same text, with the same checksum', async () => {
    const unix = await folder({ '001_a.sql': "INSERT INTO t VALUES ('a\nb');\n" });
    const windows = await folder({ '001_a.sql': "\uFEFFINSERT INTO t VALUES ('a\r\nb');\r\n" });
    const [a] = await loadMigrationFiles(unix);
    const [b] = await loadMigrationFiles(windows);
    expect(b.sql).toBe(a.sql);
    expect(b.checksum).toBe(a.checksum);
  });

  it('names a missing folder, keeping the file system error as the cause', async () => {
    const error = await loadMigrationFiles('/nonexistent/migrations').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationFilesError);
    expect((error as Error).message).toMatch(
      /Cannot read the migrations folder \/nonexistent\/migrations/,
    );
    expect((error as Error).cause).toMatchObject({ code: 'ENOENT' });
  });

  it('rejects names with anything before the number or after ".sql"', async () => {
    const dir = await folder({ '001_a.sql': '', 'V002_b.sql': '', '003_c.sql.sql': '' });
    await expect(loadMigrationFiles(dir)).rejects.toThrow(/: 003_c\.sql\.sql, V002_b\.sql in /);
  });

  it('rejects a first file numbered above 1', async () => {
    const dir = await folder({ '002_b.sql': '' });
    const error = await loadMigrationFiles(dir).catch((e: unknown) => e);
    expect((error as Error).message).toBe(
      `Migration versions must run 1, 2, 3… without gaps: expected version 1 but found 002_b.sql in ${dir}.`,
    );
  });

  it.each([
    ['the marker alone', '-- migrate:no-transaction\nSELECT 1;', false],
    ['no space after the dashes', '--migrate:no-transaction\nSELECT 1;', false],
    ['indented, with trailing spaces', '   -- migrate:no-transaction   \nSELECT 1;', false],
    ['Windows line endings', '-- migrate:no-transaction\r\nSELECT 1;\r\n', false],
    ['a longer word', '-- migrate:no-transactional\nSELECT 1;', true],
    ['the marker after SQL on the first line', 'SELECT 1; -- migrate:no-transaction\n', true],
    ['the marker on the second line', 'SELECT 1;\n-- migrate:no-transaction\n', true],
  ])('reads the no-transaction marker: %s', async (_label, sql, transactional) => {
    const dir = await folder({ '001_a.sql': sql });
    const [file] = await loadMigrationFiles(dir);
    // Line endings are read as LF (the checksum is taken over that text).
    expect(file).toMatchObject({ transactional, sql: sql.replace(/\r\n/g, '\n') });
  });

  it.each([
    ['the marker alone', '-- pg-tenancy: no-template\nSELECT 1;', false],
    ['no spaces', '--pg-tenancy:no-template\nSELECT 1;', false],
    ['in the leading comment block', '-- seeds\n\n-- pg-tenancy: no-template\nSELECT 1;', false],
    [
      'beside the no-transaction marker',
      '-- migrate:no-transaction\n-- pg-tenancy: no-template\nSELECT 1;',
      false,
    ],
    ['Windows line endings', '-- pg-tenancy: no-template\r\nSELECT 1;\r\n', false],
    ['no marker', 'SELECT 1;', true],
    ['after the first statement', 'SELECT 1;\n-- pg-tenancy: no-template\n', true],
    ['a longer word', '-- pg-tenancy: no-templates\nSELECT 1;', true],
  ])('reads the no-template marker: %s', async (_label, sql, cloneable) => {
    const dir = await folder({ '001_a.sql': sql });
    const [file] = await loadMigrationFiles(dir);
    expect(file.cloneable).toBe(cloneable);
  });

  describe('transaction control in a transactional file', () => {
    const refused: [string, string, number, string][] = [
      ['COMMIT part-way', 'CREATE TABLE a (id int);\nCOMMIT;\nSELECT 1/0;', 2, 'COMMIT'],
      ['a final ROLLBACK', 'CREATE TABLE a (id int);\n  rollback;\n', 2, 'ROLLBACK'],
      ['BEGIN', '-- set up\nBEGIN;\nCREATE TABLE a (id int);\nEND;', 2, 'BEGIN'],
      [
        'START TRANSACTION',
        'start transaction isolation level serializable;',
        1,
        'START TRANSACTION',
      ],
      ['END', 'CREATE TABLE a (id int);\n\nEND;', 3, 'END'],
      ['SAVEPOINT', 'SELECT 1; SAVEPOINT s1;\nSELECT 2;', 1, 'SAVEPOINT'],
      ['after a comment', 'SELECT 1; /* a /* nested */ comment */ COMMIT;', 1, 'COMMIT'],
    ];
    it.each(refused)(
      'refuses %s at load time with file and line',
      async (_, sql, line, statement) => {
        const dir = await folder({ '001_ok.sql': 'SELECT 1;', '002_bad.sql': sql });
        const error = await loadMigrationFiles(dir).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(MigrationTransactionControlError);
        expect(error).toBeInstanceOf(MigrationFilesError);
        expect(error).toMatchObject({ file: '002_bad.sql', line, statement });
        expect((error as Error).message).toContain(`002_bad.sql (line ${line}) runs ${statement}`);
      },
    );

    it('leaves the same words alone in bodies, literals, identifiers and comments', async () => {
      const dir = await folder({
        '001_fn.sql': [
          'CREATE FUNCTION {{tables.f}}() RETURNS void LANGUAGE plpgsql AS $fn$',
          'BEGIN',
          '  COMMIT;',
          'END;',
          '$fn$;',
          'DO $$ BEGIN PERFORM 1; END $$;',
          "INSERT INTO t VALUES ('x; COMMIT; y', E'it\\'s; ROLLBACK');",
          'SELECT 1 AS "end; commit";',
          '-- COMMIT;',
          '/* ROLLBACK; */',
          'CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC',
          '  SELECT CASE WHEN true THEN 1 END;',
          '  SELECT 2;',
          'END;',
          'SELECT begin_date, commit_sha FROM t;',
        ].join('\n'),
      });
      const files = await loadMigrationFiles(dir);
      expect(files).toHaveLength(1);
    });

    it('allows transaction control in a -- migrate:no-transaction file', async () => {
      const dir = await folder({
        '001_a.sql': '-- migrate:no-transaction\nBEGIN;\nSELECT 1;\nCOMMIT;',
      });
      expect((await loadMigrationFiles(dir))[0].transactional).toBe(false);
    });
  });
});
