import { ConsoleLogger } from '@nestjs/common';
import { MigrationRunner } from '../../../lib/migrations/index.js';
import { allCodeBlocks, type CodeBlock, withoutNameLine } from '../../support/docs.js';
import { useTestDatabase } from '../../support/database.js';
import { useMigrationFolders } from '../../support/migrations.js';

/**
 * Every SQL block of the README and the guides is a migration file, named in its first line
 * (`-- migrations/orders/001_create_orders.sql`). Each guide's folders are applied, in order, to
 * a schema of their own on a real PostgreSQL, as the library applies them: test/unit/docs checks
 * that they load and expand; this checks that PostgreSQL runs them.
 */
const folders = new Map<string, CodeBlock[]>();
for (const block of allCodeBlocks().filter((b) => b.lang === 'sql' && !b.exemption)) {
  const folder = `${block.file}: ${block.name!.replace(/\/[^/]+$/, '')}`;
  folders.set(folder, [...(folders.get(folder) ?? []), block]);
}

describe('SQL blocks of the documentation', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  let schemas = 0;

  it('finds the blocks', () => {
    expect(folders.size).toBeGreaterThanOrEqual(3);
  });

  it.each([...folders].map(([name, blocks]) => [name, blocks] as const))(
    '%s applies to a new schema',
    async (_name, blocks) => {
      const dir = await folder(
        Object.fromEntries(blocks.map((b) => [b.name!.split('/').at(-1)!, withoutNameLine(b)])),
      );
      const logger = new ConsoleLogger();
      logger.setLogLevels(['error']);
      const runner = new MigrationRunner({ connectionString: database.current.url }, { logger });
      const result = await runner.migrate(`docs_sql_${++schemas}`, dir);
      expect(result.applied.map((m) => m.name)).toEqual(
        blocks.map((b) => b.name!.split('/').at(-1)),
      );
    },
  );
});
