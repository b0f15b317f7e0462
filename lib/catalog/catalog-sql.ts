// What every catalog read of a schema shares: the schema's oids, its relations and its comments,
// each without the migration history table (which belongs to the migration runner and is never
// part of a clone or an exact fingerprint).
import type pg from 'pg';
import { historyTable } from '../migrations/migration-history.js';
import { UncloneableSchemaError } from './catalog.errors.js';

/** A schema's oid and its history table's (`0` without one). */
export interface SchemaIds {
  readonly nsp: number;
  readonly history: number;
}

/** @throws UncloneableSchemaError when the schema does not exist. */
export async function schemaIds(client: pg.ClientBase, schema: string): Promise<SchemaIds> {
  const { rows } = await client.query<{ nsp: number | null; history: number | null }>(
    `SELECT (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)::int8 AS nsp,
            coalesce(pg_catalog.to_regclass($2)::oid, 0)::int8 AS history`,
    [schema, historyTable(schema)],
  );
  if (rows[0].nsp === null) throw new UncloneableSchemaError(`schema "${schema}" does not exist`);
  return { nsp: Number(rows[0].nsp), history: Number(rows[0].history) };
}

/** The bind parameters of {@link RELATIONS} and {@link COMMENTS}. */
export function idParams(ids: SchemaIds): number[] {
  return [ids.nsp, ids.history];
}

/** Relations of the schema, the history table and its index left out. $1 schema oid, $2 history oid. */
export const RELATIONS = `SELECT c.* FROM pg_catalog.pg_class c
  WHERE c.relnamespace = $1::int8::oid AND c.oid <> $2::int8::oid
    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indexrelid = c.oid AND i.indrelid = $2::int8::oid)`;

/** Comments on the schema and its objects, with the object's kind and qualified identity. */
export const COMMENTS = `SELECT o.type, o.identity, pg_catalog.quote_literal(d.description) AS text
  FROM pg_catalog.pg_description d
  CROSS JOIN LATERAL pg_catalog.pg_identify_object(d.classoid, d.objoid, d.objsubid) o
 WHERE (d.classoid = 'pg_catalog.pg_class'::regclass AND d.objoid IN (SELECT oid FROM rels))
    OR (d.classoid = 'pg_catalog.pg_proc'::regclass
        AND d.objoid IN (SELECT oid FROM pg_catalog.pg_proc WHERE pronamespace = $1::int8::oid))
    OR (d.classoid = 'pg_catalog.pg_constraint'::regclass
        AND d.objoid IN (SELECT oid FROM pg_catalog.pg_constraint
                          WHERE connamespace = $1::int8::oid AND conrelid <> $2::int8::oid))
    OR (d.classoid = 'pg_catalog.pg_trigger'::regclass
        AND d.objoid IN (SELECT oid FROM pg_catalog.pg_trigger WHERE tgrelid IN (SELECT oid FROM rels)))
    OR (d.classoid = 'pg_catalog.pg_namespace'::regclass AND d.objoid = $1::int8::oid)`;

/** The `COMMENT ON` keyword of each kind of object the clone script comments on. */
export const COMMENT_KEYWORDS: Readonly<Record<string, string>> = {
  schema: 'SCHEMA',
  table: 'TABLE',
  'table column': 'COLUMN',
  'view column': 'COLUMN',
  index: 'INDEX',
  sequence: 'SEQUENCE',
  view: 'VIEW',
  function: 'FUNCTION',
  procedure: 'PROCEDURE',
  trigger: 'TRIGGER',
  'table constraint': 'CONSTRAINT',
};
