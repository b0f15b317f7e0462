// The clone script's per-column and per-table settings that CREATE TABLE does not carry: column
// storage, compression, statistics targets and options, and the index a table is clustered on.
import { quoteIdentifier } from '../shared/identifiers.js';
import { RELATIONS } from './catalog-sql.js';
import type { CloneSource } from './clone-source.js';

const STORAGE: Readonly<Record<string, string>> = {
  p: 'PLAIN',
  e: 'EXTERNAL',
  m: 'MAIN',
  x: 'EXTENDED',
};
const COMPRESSION: Readonly<Record<string, string>> = { p: 'pglz', l: 'lz4' };

/**
 * `ALTER TABLE … ALTER COLUMN` statements giving the target's columns the source's storage (where
 * it is not the type's), compression, statistics target and options (`n_distinct`, …), and
 * `CLUSTER ON` for each table clustered on an index. Read after the tables and indexes exist.
 */
export async function columnAndTableSettings(source: CloneSource): Promise<string[]> {
  const columns = await source.rows<{
    table: string;
    column: string;
    storage: string | null;
    compression: string;
    statistics: number | null;
    options: string[] | null;
  }>(
    `WITH rels AS (${RELATIONS})
     SELECT c.relname AS table, a.attname AS column,
            CASE WHEN a.attstorage <> t.typstorage THEN a.attstorage::text END AS storage,
            a.attcompression::text AS compression,
            CASE WHEN a.attstattarget >= 0 THEN a.attstattarget::int END AS statistics,
            a.attoptions AS options
       FROM rels c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid
       JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
      WHERE c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY c.oid, a.attnum`,
  );
  const out: string[] = [];
  for (const c of columns) {
    const column = `ALTER TABLE ${source.inTarget(c.table)} ALTER COLUMN ${quoteIdentifier(c.column)}`;
    if (c.storage) out.push(`${column} SET STORAGE ${STORAGE[c.storage]}`);
    if (COMPRESSION[c.compression]) {
      out.push(`${column} SET COMPRESSION ${COMPRESSION[c.compression]}`);
    }
    if (c.statistics !== null) out.push(`${column} SET STATISTICS ${c.statistics}`);
    // pg_attver is a per-creation stamp some server builds keep, not a setting.
    const options = (c.options ?? []).filter((o) => !o.startsWith('pg_attver='));
    if (options.length > 0) out.push(`${column} SET (${options.join(', ')})`);
  }
  const clustered = await source.rows<{ table: string; index: string }>(
    `WITH rels AS (${RELATIONS})
     SELECT t.relname AS table, x.relname AS index FROM pg_catalog.pg_index i
       JOIN rels t ON t.oid = i.indrelid JOIN pg_catalog.pg_class x ON x.oid = i.indexrelid
      WHERE i.indisclustered ORDER BY t.oid`,
  );
  for (const r of clustered) {
    out.push(`ALTER TABLE ${source.inTarget(r.table)} CLUSTER ON ${quoteIdentifier(r.index)}`);
  }
  return out;
}
