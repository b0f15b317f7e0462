// Per-tenant keys for the pooled schema: primary keys, unique constraints and unique indexes
// rebuilt with the tenant column first (same names), and foreign keys made composite over it.
// Every statement is built from catalog names and PostgreSQL's own deparse, never from file text.
import { quoteIdentifier, qualifiedName } from '../shared/identifiers.js';
import { PooledAdaptationError } from './pooled-adaptation.errors.js';
import type { PooledCatalog, PooledConstraint, PooledUniqueIndex } from './pooled-catalog.js';

/** The statements that make a schema's keys per tenant, in the order they must run. */
export interface KeyPlan {
  readonly statements: readonly string[];
  readonly keys: readonly string[];
  readonly foreignKeys: readonly string[];
}

const ACTIONS: Readonly<Record<string, string>> = {
  a: 'NO ACTION',
  r: 'RESTRICT',
  c: 'CASCADE',
  n: 'SET NULL',
  d: 'SET DEFAULT',
};

const list = (names: readonly string[]) => names.map((n) => quoteIdentifier(n)).join(', ');

/**
 * Plans the rebuild of every key of `catalog` that does not hold the tenant column, and of every
 * foreign key inside the schema that does not pair the tenant column with the referenced one.
 * Keys that already hold the tenant column (at any position) are unique per tenant and stay.
 *
 * @throws PooledAdaptationError for an exclusion constraint without the tenant column, a unique
 *   index that cannot be rebuilt, or a foreign key that cannot be made composite.
 */
export function planKeys(
  schema: string,
  catalog: PooledCatalog,
  column: string,
  escapeLiteral: (value: string) => string,
): KeyPlan {
  const refuse = (object: string, refusal: 'constraint' | 'index', reason: string): never => {
    throw new PooledAdaptationError(schema, object, refusal, reason);
  };
  const table = (name: string) => qualifiedName(schema, name);
  const withOptions = (options: readonly string[]) =>
    options.length === 0
      ? ''
      : ` WITH (${options
          .map((o) => {
            const at = o.indexOf('=');
            return `${quoteIdentifier(o.slice(0, at))} = ${escapeLiteral(o.slice(at + 1))}`;
          })
          .join(', ')})`;
  const deferral = (k: PooledConstraint) =>
    k.deferrable ? ` DEFERRABLE INITIALLY ${k.deferred ? 'DEFERRED' : 'IMMEDIATE'}` : '';

  const keys: PooledConstraint[] = [];
  const foreign: PooledConstraint[] = [];
  for (const k of catalog.constraints) {
    const label = `${k.table}.${k.name}`;
    if (k.type === 'x' && !k.columns.includes(column)) {
      refuse(
        label,
        'constraint',
        `the exclusion constraint does not hold the tenant column "${column}", so rows of different tenants would exclude each other. Add "${column} WITH =" to it in a file of its own.`,
      );
    }
    if ((k.type === 'p' || k.type === 'u') && !k.columns.includes(column)) keys.push(k);
    if (k.type !== 'f' || k.refTable === null) continue;
    const paired = k.columns.some((c, i) => c === column && k.refColumns[i] === column);
    if (paired) continue;
    if (k.columns.includes(column) || k.refColumns.includes(column)) {
      refuse(
        label,
        'constraint',
        `the foreign key pairs the tenant column "${column}" with another column, so a row could reference another tenant's row. Reference "${column}" with "${column}".`,
      );
    }
    if (k.onUpdate === 'n' || k.onUpdate === 'd') {
      refuse(
        label,
        'constraint',
        `ON UPDATE ${ACTIONS[k.onUpdate]} would also set the tenant column of the composite key; PostgreSQL can limit that only for ON DELETE. Use ON UPDATE CASCADE, RESTRICT or NO ACTION.`,
      );
    }
    if ((k.onDelete === 'n' || k.onDelete === 'd') && catalog.serverVersion < 150000) {
      refuse(
        label,
        'constraint',
        `ON DELETE ${ACTIONS[k.onDelete]} would also set the tenant column of the composite key, and this PostgreSQL (before 15) cannot limit it to the original columns. Use CASCADE or RESTRICT, or PostgreSQL 15+.`,
      );
    }
    foreign.push(k);
  }
  const indexes = catalog.uniqueIndexes.filter((x) => !x.elements.some((e) => e.column === column));
  for (const x of indexes) {
    if (x.method !== 'btree' || x.elements.some((e) => e.unsupported)) {
      refuse(
        `${x.table}.${x.name}`,
        'index',
        `the unique index cannot be rebuilt with the tenant column "${column}" first (an expression with its own collation, or a method other than btree). Put "${column}" first in it yourself.`,
      );
    }
  }

  const statements: string[] = [];
  for (const k of foreign) {
    statements.push(`ALTER TABLE ${table(k.table)} DROP CONSTRAINT ${quoteIdentifier(k.name)}`);
  }
  for (const k of keys) {
    const kind = k.type === 'p' ? 'PRIMARY KEY' : 'UNIQUE';
    statements.push(
      `ALTER TABLE ${table(k.table)} DROP CONSTRAINT ${quoteIdentifier(k.name)}`,
      `ALTER TABLE ${table(k.table)} ADD CONSTRAINT ${quoteIdentifier(k.name)} ${kind}` +
        `${k.nullsNotDistinct ? ' NULLS NOT DISTINCT' : ''} (${list([column, ...k.columns])})` +
        `${k.include.length > 0 ? ` INCLUDE (${list(k.include)})` : ''}` +
        `${withOptions(k.indexOptions)}${deferral(k)}`,
    );
  }
  for (const x of indexes) statements.push(...rebuildIndex(schema, x, column, withOptions));
  for (const k of foreign) {
    const setColumns =
      k.onDelete === 'n' || k.onDelete === 'd'
        ? ` (${list(k.deleteSetColumns.length > 0 ? k.deleteSetColumns : k.columns)})`
        : '';
    statements.push(
      `ALTER TABLE ${table(k.table)} ADD CONSTRAINT ${quoteIdentifier(k.name)}` +
        ` FOREIGN KEY (${list([column, ...k.columns])})` +
        ` REFERENCES ${table(k.refTable!)} (${list([column, ...k.refColumns])})` +
        `${k.match === 'f' ? ' MATCH FULL' : ''}` +
        ` ON UPDATE ${ACTIONS[k.onUpdate]} ON DELETE ${ACTIONS[k.onDelete]}${setColumns}` +
        `${deferral(k)}${k.validated ? '' : ' NOT VALID'}`,
    );
  }
  return {
    statements,
    keys: [
      ...keys.map((k) => `${k.table}.${k.name}`),
      ...indexes.map((x) => `${x.table}.${x.name}`),
    ],
    foreignKeys: foreign.map((k) => `${k.table}.${k.name}`),
  };
}

function rebuildIndex(
  schema: string,
  x: PooledUniqueIndex,
  column: string,
  withOptions: (options: readonly string[]) => string,
): string[] {
  const elements = x.elements.map(
    (e) => (e.column !== null ? quoteIdentifier(e.column) : `(${e.expression})`) + e.suffix,
  );
  return [
    `DROP INDEX ${qualifiedName(schema, x.name)}`,
    `CREATE UNIQUE INDEX ${quoteIdentifier(x.name)} ON ${qualifiedName(schema, x.table)}` +
      ` (${[quoteIdentifier(column), ...elements].join(', ')})` +
      `${x.include.length > 0 ? ` INCLUDE (${list(x.include)})` : ''}` +
      `${x.nullsNotDistinct ? ' NULLS NOT DISTINCT' : ''}${withOptions(x.options)}` +
      `${x.predicate === null ? '' : ` WHERE ${x.predicate}`}`,
  ];
}
