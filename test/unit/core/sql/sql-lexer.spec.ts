import { scanSql, statementStarts } from '../../../../lib/core/sql/sql-lexer.js';

/** The text of each segment of `sql`, with its kind. */
function segments(sql: string): [string, string][] {
  return scanSql(sql).map((s) => [s.kind, sql.slice(s.start, s.end)]);
}

describe('scanSql', () => {
  it.each([
    ['upper-case', 'E'],
    ['lower-case', 'e'],
  ])('reads a %s escape string, where a backslash escapes the quote', (_label, prefix) => {
    const sql = `SELECT ${prefix}'it\\'s; COMMIT', 1`;
    expect(segments(sql)).toEqual([
      ['code', `SELECT ${prefix}`],
      ['string', "'it\\'s; COMMIT'"],
      ['code', ', 1'],
    ]);
  });

  it('leaves a backslash alone in a standard string and after a word ending in e', () => {
    const sql = "SELECT '\\', some'x'";
    expect(segments(sql)).toEqual([
      ['code', 'SELECT '],
      ['string', "'\\'"],
      ['code', ', some'],
      ['string', "'x'"],
    ]);
  });
});

describe('statementStarts', () => {
  it.each([
    ['upper-case', 'E'],
    ['lower-case', 'e'],
  ])('does not see COMMIT inside a %s escape string', (_label, prefix) => {
    const sql = `INSERT INTO t VALUES (${prefix}'\\'; COMMIT; SELECT \\''); SELECT 1;`;
    expect(statementStarts(sql).map((s) => s.keyword)).toEqual(['INSERT', 'SELECT']);
  });
});
