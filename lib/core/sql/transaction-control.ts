// Which top-level statements of a text begin, end or split a transaction. Migration files and
// `tenants exec` both run a text inside one transaction of their own and refuse these.
import { statementStarts } from './sql-lexer.js';

/** A top-level transaction statement found in a text. */
export interface TransactionControlStatement {
  /** Its keywords, e.g. `COMMIT` or `START TRANSACTION`. */
  readonly statement: string;
  /** 1-based line where it starts. */
  readonly line: number;
}

/**
 * The first top-level statement of `sql` that begins, ends or splits a transaction, or
 * `undefined`. Strings, comments, dollar-quoted bodies and `BEGIN ATOMIC … END` bodies are not
 * looked into, and keywords match in any case. `END` is PostgreSQL's `COMMIT`; `RELEASE`,
 * `PREPARE TRANSACTION` and `COMMIT/ROLLBACK PREPARED` act on transactions too.
 */
export function findTransactionControl(sql: string): TransactionControlStatement | undefined {
  for (const start of statementStarts(sql)) {
    const statement = transactionControl(start.keyword, start.next);
    if (statement !== undefined) {
      return { statement, line: sql.slice(0, start.index).split('\n').length };
    }
  }
  return undefined;
}

function transactionControl(keyword: string, next: string | undefined): string | undefined {
  switch (keyword) {
    case 'BEGIN':
      return next === 'ATOMIC' ? undefined : 'BEGIN';
    case 'START':
      return next === 'TRANSACTION' ? 'START TRANSACTION' : undefined;
    case 'COMMIT':
    case 'ROLLBACK':
      return next === 'PREPARED' ? `${keyword} PREPARED` : keyword;
    case 'END':
    case 'ABORT':
    case 'SAVEPOINT':
    case 'RELEASE':
      return keyword;
    case 'PREPARE':
      return next === 'TRANSACTION' ? 'PREPARE TRANSACTION' : undefined;
    default:
      return undefined;
  }
}
