import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { useTestDatabase } from '../../support/database.js';
import { useMigrationFolders } from '../../support/migrations.js';

/**
 * The recipe for `@nestjs-cls/transactional` users in docs/transactions.md, run by a child
 * process (see the fixture for why): the plugin's transaction is this module's, so services that
 * inject managers join it, roll back with it, and this module's propagation passes through the
 * plugin's options.
 */
describe('the @nestjs-cls/transactional recipe', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();

  it('makes the plugin’s transaction the one every injected manager joins', async () => {
    const ledger = await folder({
      '001_entries.sql': 'CREATE TABLE {{tables.entries}} (id serial PRIMARY KEY, note text);',
    });
    const tenant = await folder({
      '001_projects.sql': 'CREATE TABLE {{tables.projects}} (id serial PRIMARY KEY, name text);',
    });
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [resolve('test/fixtures/cls-transactional.mjs'), database.current.url, ledger, tenant],
      { timeout: 60_000 },
    );
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
      committed: [string, string];
      afterCommit: { ledger: number; projects: number };
      rolledBack: string;
      afterRollback: { ledger: number; projects: number };
      nested: [string, string];
    };
    // One transaction: the plugin's txHost.tx and the tenant proxy ran on the same one.
    expect(result.committed[0]).toMatch(/^\d+$/);
    expect(result.committed[1]).toBe(result.committed[0]);
    expect(result.afterCommit).toEqual({ ledger: 1, projects: 1 });
    // Rolled back together.
    expect(result.rolledBack).toBe('undo');
    expect(result.afterRollback).toEqual({ ledger: 1, projects: 1 });
    // propagation: 'requires-new' in the plugin's options: another transaction.
    expect(result.nested[1]).toMatch(/^\d+$/);
    expect(result.nested[1]).not.toBe(result.nested[0]);
  }, 90_000);
});
