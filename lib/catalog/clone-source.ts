import type pg from 'pg';
import { quoteIdentifier } from '../shared/identifiers.js';
import { idParams, type SchemaIds } from './catalog-sql.js';
import { TARGET } from './script-target.js';

/** The schema a script is built from, and how its names become the target's. */
export class CloneSource {
  /** The source schema's quoted name, as deparsed text shows it. */
  readonly quoted: string;

  constructor(
    readonly client: pg.ClientBase,
    readonly schema: string,
    readonly ids: SchemaIds,
  ) {
    this.quoted = quoteIdentifier(schema);
  }

  /** Rows of a catalog query with the schema's ids as `$1` and `$2`. */
  async rows<R extends pg.QueryResultRow>(sql: string, params = idParams(this.ids)): Promise<R[]> {
    return (await this.client.query<R>(sql, params)).rows;
  }

  /** Deparsed text with the source schema replaced by the target placeholder. */
  retarget(text: string): string {
    return text.replaceAll(this.quoted, TARGET);
  }

  /** `relname` in the target schema. */
  inTarget(relname: string): string {
    return `${TARGET}.${quoteIdentifier(relname)}`;
  }

  /** `relname` in the source schema. */
  inSource(relname: string): string {
    return `${this.quoted}.${quoteIdentifier(relname)}`;
  }
}
