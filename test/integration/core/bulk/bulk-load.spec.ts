import { Readable } from 'node:stream';
import pg from 'pg';
import {
  BulkLoadColumnsError,
  BulkLoadRowError,
  InvalidIdentifierError,
  SchemaDb,
} from '../../../../lib/index.js';
import { type QueryEvent } from '../../../../lib/observability/index.js';
import { QueryObserver } from '../../../../lib/observability/query-observer.js';
import { adminPool, useTestDatabase } from '../../../support/database.js';

interface Item {
  id: number;
  label: string | null;
  doc: unknown;
  blob: Buffer | null;
  at: Date | null;
  n: string | null;
}

const TRICKY = ['tab\there', 'new\nline', 'back\\slash', 'cr\rlf\r\n', '\\N', 'quote " \'', 'ünï'];

describe('bulk load: copyFrom and insertMany', () => {
  const database = useTestDatabase();
  let pool: pg.Pool;
  let db: SchemaDb;
  const events: QueryEvent[] = [];

  beforeAll(async () => {
    pool = adminPool(database.current.url, 3);
    const observer = new QueryObserver({
      listeners: [(e) => events.push(e)],
      slowQueryMs: 0,
      slowQueryLimit: 0,
      logQueryParams: false,
      metrics: [],
      logger: { log() {}, warn() {}, error() {} },
    });
    db = SchemaDb.create({ pool, sink: observer }, 'bulk');
    await db.execute('CREATE SCHEMA {{schema}}');
    await db.execute(
      `CREATE TABLE {{tables.items}} (
         id int PRIMARY KEY, label text, doc jsonb, blob bytea, at timestamptz, n numeric,
         tags text[])`,
    );
  });
  afterAll(() => pool.end());
  beforeEach(() => db.execute('TRUNCATE {{tables.items}}'));

  const readBack = () =>
    db.fetchAll<Item>('SELECT id, label, doc, blob, at, n FROM {{tables.items}} ORDER BY id');

  function sampleRows(): unknown[][] {
    return TRICKY.map((label, i): unknown[] => [
      i + 1,
      label,
      { label, list: [1, 'two', null], nested: { tab: '\t' } },
      Buffer.from([0, 1, 92, 9, 10, 255, i]),
      new Date(Date.UTC(2024, 1, 29, 12, 30, 15, 123 + i)),
      '12345678901234567890.000001',
    ]).concat([[100, null, null, null, null, null]]);
  }

  function expectRowsEqual(rows: Item[], source: unknown[][]): void {
    expect(rows).toEqual(
      source.map(([id, label, doc, blob, at, n]) => ({ id, label, doc, blob, at, n })),
    );
  }

  it('copies array rows exactly: text with tabs, newlines and backslashes, json, bytea, timestamps, nulls', async () => {
    const source = sampleRows();
    const copied = await db.copyFrom('items', ['id', 'label', 'doc', 'blob', 'at', 'n'], source);
    expect(copied).toBe(source.length);
    expectRowsEqual(await readBack(), source);
  });

  it('copies from an object-mode readable stream of object rows, through a template target', async () => {
    const source = sampleRows();
    const stream = Readable.from(
      source.map(([id, label, doc, blob, at, n]) => ({ id, label, doc, blob, at, n })),
    );
    const copied = await db.copyFrom(
      '{{tables.items}}',
      ['id', 'label', 'doc', 'blob', 'at', 'n'],
      stream,
    );
    expect(copied).toBe(source.length);
    expectRowsEqual(await readBack(), source);
  });

  it('copies a PostgreSQL array column from a JS array', async () => {
    await db.copyFrom('items', ['id', 'tags'], [[1, ['a,b', 'c"d', null, 'e\\f']]]);
    expect(await db.fetchValue('SELECT tags FROM {{tables.items}}')).toEqual([
      'a,b',
      'c"d',
      null,
      'e\\f',
    ]);
  });

  it('a row the server rejects mid-copy leaves zero rows, and the connection is reused', async () => {
    const rows = function* () {
      for (let i = 1; i <= 30_000; i++) yield [i, i === 25_000 ? 'not a number' : String(i)];
    };
    await expect(db.copyFrom('items', ['id', 'n'], rows())).rejects.toMatchObject({
      code: '22P02',
    });
    expect(await db.fetchValue('SELECT count(*)::int FROM {{tables.items}}')).toBe(0);
    expect(pool.totalCount - pool.idleCount).toBe(0);
  });

  it('a source stream that fails mid-way aborts the copy: zero rows', async () => {
    async function* rows() {
      // Well past the first 64 KiB chunk, so some rows have reached the server already.
      for (let i = 1; i <= 30_000; i++) {
        if (i === 25_000) throw new Error('source broke');
        yield [i, 'x'];
      }
    }
    await expect(db.copyFrom('items', ['id', 'label'], rows())).rejects.toThrow('source broke');
    expect(await db.fetchValue('SELECT count(*)::int FROM {{tables.items}}')).toBe(0);
    expect(pool.totalCount - pool.idleCount).toBe(0);
  });

  it('a row of the wrong shape mid-stream is a BulkLoadRowError and writes nothing', async () => {
    const rows: unknown[][] = Array.from({ length: 2_000 }, (_, i) => [i + 1, 'x']);
    rows[1_500] = [1_501];
    const err = await db.copyFrom('items', ['id', 'label'], rows as never).catch((e) => e);
    expect(err).toBeInstanceOf(BulkLoadRowError);
    expect(err).toMatchObject({ rowIndex: 1_500 });
    expect(err.message).toContain('has 1 values for 2 columns');
    expect(await db.fetchValue('SELECT count(*)::int FROM {{tables.items}}')).toBe(0);
    await expect(
      db.copyFrom('items', ['id', 'label'], [{ id: 1, label: 'a', extra: 1 }]),
    ).rejects.toThrow(/row 0 has key "extra"/);
    await expect(db.copyFrom('items', ['id', 'label'], [{ id: 1 }])).rejects.toThrow(
      /row 0 has no key "label"/,
    );
  });

  it('refuses empty, duplicate and unknown columns with typed errors', async () => {
    await expect(db.copyFrom('items', [], [[1]])).rejects.toBeInstanceOf(BulkLoadColumnsError);
    await expect(db.copyFrom('items', ['id', 'id'], [[1, 2]])).rejects.toBeInstanceOf(
      BulkLoadColumnsError,
    );
    const unknown = await db.copyFrom('items', ['id', 'nope'], [[1, 2]]).catch((e) => e);
    expect(unknown).toBeInstanceOf(BulkLoadColumnsError);
    expect(unknown.message).toContain('"nope"');
    await expect(db.insertMany('items', [{ id: 1, nope: 2 }])).rejects.toThrow(
      /has no column "nope"/,
    );
    await expect(db.insertMany('items', [{ id: 1 }], { columns: [] })).rejects.toBeInstanceOf(
      BulkLoadColumnsError,
    );
    await expect(db.copyFrom('bad name!', ['id'], [[1]])).rejects.toBeInstanceOf(
      InvalidIdentifierError,
    );
    expect(pool.totalCount - pool.idleCount).toBe(0);
  });

  it('inside a transaction, copyFrom joins it, and a failed copy rolls back only itself', async () => {
    await db.transaction(async (tx) => {
      await tx.execute("INSERT INTO {{tables.items}} (id, label) VALUES (1, 'before')");
      // An ambient transaction: the plain manager's copy runs on the transaction's connection.
      await db.copyFrom('items', ['id', 'label'], [[2, 'copied']]);
      await expect(
        db.copyFrom(
          'items',
          ['id', 'label'],
          [
            [3, 'x'],
            [1, 'dup'],
          ],
        ),
      ).rejects.toMatchObject({ code: '23505' });
      expect(await tx.fetchValue('SELECT count(*)::int FROM {{tables.items}}')).toBe(2);
    });
    const labels = (await readBack()).map((r) => r.label);
    expect(labels).toEqual(['before', 'copied']);
    await expect(
      db.transaction(async () => {
        await db.copyFrom('items', ['id', 'label'], [[10, 'rolled back']]);
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect(await db.fetchValue('SELECT count(*)::int FROM {{tables.items}}')).toBe(2);
  });

  it('insertMany writes the same values as copyFrom, in one statement', async () => {
    const source = sampleRows();
    const rows = source.map(([id, label, doc, blob, at, n]) => ({ id, label, doc, blob, at, n }));
    events.length = 0;
    expect(await db.insertMany('items', rows)).toBe(rows.length);
    expectRowsEqual(await readBack(), source);
    const inserts = events.filter((e) => e.operation === 'INSERT');
    expect(inserts).toHaveLength(1);
    expect(inserts[0].sql).toContain('unnest($1::integer[]');
  });

  it('insertMany takes array rows with explicit columns', async () => {
    expect(
      await db.insertMany(
        'items',
        [
          [1, 'a'],
          [2, null],
        ],
        { columns: ['id', 'label'] },
      ),
    ).toBe(2);
    expect((await readBack()).map((r) => r.label)).toEqual(['a', null]);
    await expect(
      db.insertMany('items', [[1, 'a', 'extra']], { columns: ['id', 'label'] }),
    ).rejects.toBeInstanceOf(BulkLoadRowError);
    await expect(db.insertMany('items', [{ id: 3, tags: ['x'] }])).rejects.toThrow(/is an array/);
  });

  it('insertMany onConflict: nothing skips, update overwrites', async () => {
    await db.insertMany('items', [
      { id: 1, label: 'one' },
      { id: 2, label: 'two' },
    ]);
    const skipped = await db.insertMany(
      'items',
      [
        { id: 2, label: 'TWO' },
        { id: 3, label: 'three' },
      ],
      { onConflict: { target: ['id'], action: 'nothing' } },
    );
    expect(skipped).toBe(1);
    expect((await readBack()).map((r) => r.label)).toEqual(['one', 'two', 'three']);
    const anyConflict = await db.insertMany('items', [{ id: 1, label: 'x' }], {
      onConflict: { action: 'nothing' },
    });
    expect(anyConflict).toBe(0);
    const updated = await db.insertMany(
      'items',
      [
        { id: 1, label: 'ONE', n: 1 },
        { id: 4, label: 'four', n: 4 },
      ],
      { onConflict: { target: ['id'], action: 'update', update: ['label'] } },
    );
    expect(updated).toBe(2);
    const rows = await readBack();
    expect(rows.map((r) => [r.id, r.label, r.n])).toEqual([
      [1, 'ONE', null],
      [2, 'two', null],
      [3, 'three', null],
      [4, 'four', '4'],
    ]);
    await expect(
      db.insertMany('items', [{ id: 1, label: 'x' }], { onConflict: { action: 'update' } }),
    ).rejects.toThrow(/needs onConflict.target/);
  });

  it('copyFrom and insertMany are observed by query hooks', async () => {
    events.length = 0;
    await db.copyFrom('items', ['id'], [[1], [2]]);
    const copy = events.find((e) => e.operation === 'COPY');
    expect(copy).toMatchObject({ rowCount: 2, schema: 'bulk', inTransaction: false });
    expect(copy!.sql).toBe('COPY "bulk"."items" ("id") FROM STDIN');
  });
});
