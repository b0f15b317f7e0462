import type pg from 'pg';
import { cloneScript } from './clone-script.js';
import { definitionFingerprint, exactFingerprint } from './fingerprints.js';
import { renameScript, repointScript } from './rename-script.js';
import { objectsNaming } from './schema-references.js';
import { readHistory, type MigrationHistoryEntry } from './schema-history.js';
import {
  sequencePositions,
  tablesInInsertOrder,
  type CatalogTable,
  type SequencePosition,
} from './schema-tables.js';

/**
 * Reads one schema's catalog on one connection: what its tables and sequences are, its migration
 * history, its fingerprints, and the scripts that copy or rename it. The one way the library
 * looks at what a schema holds (the template schema and its spares, clones, renames, exports,
 * imports), as Kysely has one introspector per dialect. It only reads: the scripts it returns
 * are run by the caller.
 */
export class SchemaIntrospector {
  constructor(
    private readonly client: pg.ClientBase,
    /** The schema read. */
    readonly schema: string,
  ) {}

  /**
   * The tables (partitions excluded: rows go through their parent), parents before the tables
   * whose foreign keys point at them, so rows can be inserted in this order.
   */
  tables(): Promise<CatalogTable[]> {
    return tablesInInsertOrder(this.client, this.schema);
  }

  /** The current position of every sequence. */
  sequencePositions(): Promise<SequencePosition[]> {
    return sequencePositions(this.client, this.schema);
  }

  /** The migration history, oldest first. */
  history(): Promise<MigrationHistoryEntry[]> {
    return readHistory(this.client, this.schema);
  }

  /**
   * What the schema defines, comparable across databases (no owners, privileges, rows or
   * sequence positions); see `definitionFingerprint`.
   */
  definitionFingerprint(): Promise<string[]> {
    return definitionFingerprint(this.client, this.schema);
  }

  /**
   * Everything a user of the schema can observe, rows and privileges included, to prove a copy
   * exact within one database; see `exactFingerprint`.
   */
  exactFingerprint(): Promise<string[]> {
    return exactFingerprint(this.client, this.schema);
  }

  /**
   * The script that re-creates the schema, rows included, in an empty schema (its target left
   * for `scriptFor`).
   *
   * @throws UncloneableSchemaError naming the first object the script would not reproduce.
   */
  cloneScript(): Promise<string> {
    return cloneScript(this.client, this.schema);
  }

  /** What a copy of the schema still needs once renamed (its target left for `scriptFor`). */
  renameScript(): Promise<string> {
    return renameScript(this.client, this.schema);
  }

  /**
   * The statements that re-create the schema's functions that name schema `from` as text, with
   * `from` replaced by `to` (after a rename from `from`); `''` when none does.
   */
  repointScript(from: string, to: string): Promise<string> {
    return repointScript(this.client, this.schema, from, to);
  }

  /** The schema's objects whose definitions name schema `name` as text, e.g. `function "s".f()`. */
  objectsNaming(name: string): Promise<string[]> {
    return objectsNaming(this.client, this.schema, name);
  }
}
