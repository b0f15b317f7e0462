// 100 pooled tenants, operations of random tenants interleaved on one pool: plain statements,
// SQL that forgets the tenant filter (SELECT, UPDATE and DELETE without WHERE), transactions
// with savepoints, Kysely, bulk loads, streams, exec, and writes aimed at another tenant. Every
// row carries a marker of the tenant that wrote it; an admin connection (bypassing RLS) checks
// that no row was read or written across tenants and that each tenant's rows are its model.
// Seeded: POOLED_FUZZ_SEED=<n> replays a run, POOLED_FUZZ_OPS=<n> sets its length.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { sql, type Generated } from 'kysely';
import type { SchemaDb, TenantService } from '../../../../lib/index.js';
import { kyselyFor } from '../../../../lib/kysely/index.js';
import { random } from '../../../support/random-runs.js';
import { useTenancyApps } from '../../../support/tenancy-apps.js';
import { dropRoleAfterAll } from '../../../support/roles.js';

const ROLE = `pooled_${randomUUID().slice(0, 8)}`;
const TENANTS = 100;
const OPS = Number(process.env.POOLED_FUZZ_OPS ?? 1_200);
const WORKERS = 12;

interface Items {
  items: { id: Generated<string>; k: number; marker: string; v: number };
}
interface Row {
  k: number;
  marker: string;
  v: number;
  tenant_id?: string;
}

/** A tenant's rows as the model has them: key → value. */
type Model = Map<number, number>;

/** Rows as comparable text, sorted. */
const describeRows = (rows: Iterable<[number, number]>) =>
  [...rows].map(([k, v]) => `${k}=${v}`).sort();

describe('100 pooled tenants interleaved at random', () => {
  const apps = useTenancyApps('tenancy');
  dropRoleAfterAll(ROLE);

  it(`reads and writes 0 rows across tenants in ${OPS} operations`, async () => {
    const seed = Number(process.env.POOLED_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const rand = random(seed);
    const int = (n: number) => Math.floor(rand() * n);
    try {
      const migrations = await apps.folder({
        '001_items.sql': `CREATE TABLE {{tables.items}} (
          id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
          k integer NOT NULL, marker text NOT NULL, v integer NOT NULL DEFAULT 0)`,
      });
      const tenants = await apps.boot({ migrations, pooled: { role: ROLE } });
      const ids = Array.from({ length: TENANTS }, (_, i) => `t${String(i).padStart(3, '0')}`);
      for (let i = 0; i < ids.length; i += 10) {
        await Promise.all(ids.slice(i, i + 10).map((id) => tenants.create(id, { tier: 'pooled' })));
      }
      const models = new Map<string, Model>(ids.map((id) => [id, new Map()]));
      const nextK = new Map<string, number>(ids.map((id) => [id, 1]));
      const counts = new Map<string, number>();

      /** Everything the tenant sees must be its own and exactly its model. */
      const expectOwn = (id: string, rows: Row[], what: string) => {
        const foreign = rows.filter((r) => r.marker !== id || (r.tenant_id ?? id) !== id);
        expect({ what, id, foreign }).toEqual({ what, id, foreign: [] });
        expect({ what, id, rows: describeRows(rows.map((r) => [r.k, r.v])) }).toEqual({
          what,
          id,
          rows: describeRows(models.get(id)!),
        });
      };
      const fresh = (id: string, n: number) =>
        Array.from({ length: n }, () => {
          const k = nextK.get(id)!;
          nextK.set(id, k + 1);
          return { k, marker: id, v: int(100) };
        });
      const remember = (id: string, rows: { k: number; v: number }[]) => {
        for (const r of rows) models.get(id)!.set(r.k, r.v);
      };
      const bump = (id: string, by: number) => {
        const model = models.get(id)!;
        for (const [k, v] of model) model.set(k, v + by);
      };

      type Op = (id: string, db: SchemaDb, tenants: TenantService) => Promise<void>;
      const ops: [string, number, Op][] = [
        [
          'insert',
          10,
          async (id, db) => {
            const [row] = fresh(id, 1);
            await db.execute('INSERT INTO {{tables.items}} (k, marker, v) VALUES ($1, $2, $3)', [
              row.k,
              row.marker,
              row.v,
            ]);
            remember(id, [row]);
          },
        ],
        [
          'select * without filter',
          10,
          async (id, db) => {
            expectOwn(id, await db.fetchAll<Row>('SELECT * FROM {{tables.items}}'), 'select *');
          },
        ],
        [
          'update without where',
          6,
          async (id, db) => {
            const changed = await db.execute('UPDATE {{tables.items}} SET v = v + 1');
            expect({ id, changed }).toEqual({ id, changed: models.get(id)!.size });
            bump(id, 1);
          },
        ],
        [
          'delete without where',
          1,
          async (id, db) => {
            const deleted = await db.execute('DELETE FROM {{tables.items}}');
            expect({ id, deleted }).toEqual({ id, deleted: models.get(id)!.size });
            models.get(id)!.clear();
          },
        ],
        [
          'delete one',
          3,
          async (id, db) => {
            const keys = [...models.get(id)!.keys()];
            if (keys.length === 0) return;
            const k = keys[int(keys.length)];
            expect(await db.execute('DELETE FROM {{tables.items}} WHERE k = $1', [k])).toBe(1);
            models.get(id)!.delete(k);
          },
        ],
        [
          'insertMany',
          4,
          async (id, db) => {
            const rows = fresh(id, 1 + int(5));
            expect(await db.insertMany('items', rows)).toBe(rows.length);
            remember(id, rows);
          },
        ],
        [
          'copyFrom',
          4,
          async (id, db) => {
            const rows = fresh(id, 1 + int(20));
            const source = rand() < 0.5 ? rows : Readable.from(rows);
            expect(await db.copyFrom('items', ['k', 'marker', 'v'], source)).toBe(rows.length);
            remember(id, rows);
          },
        ],
        [
          'stream',
          4,
          async (id, db) => {
            const seen: Row[] = [];
            for await (const row of db.stream<Row>('SELECT * FROM {{tables.items}}', [], {
              batchSize: 1 + int(4),
            })) {
              seen.push(row);
            }
            expectOwn(id, seen, 'stream');
          },
        ],
        [
          'transaction with a failed savepoint',
          5,
          async (id, db) => {
            const [row] = fresh(id, 1);
            await db.transaction(async (tx) => {
              await tx.execute('INSERT INTO {{tables.items}} (k, marker, v) VALUES ($1, $2, $3)', [
                row.k,
                row.marker,
                row.v,
              ]);
              await tx
                .transaction(async (sp) => {
                  await sp.execute('UPDATE {{tables.items}} SET v = v + 1000');
                  await sp.execute('DELETE FROM {{tables.items}}');
                  throw new Error('undo');
                })
                .catch(() => undefined);
              const seen = await tx.fetchAll<Row>('SELECT * FROM {{tables.items}}');
              remember(id, [row]);
              expectOwn(id, seen, 'after a savepoint');
            });
          },
        ],
        [
          'rolled back transaction',
          2,
          async (id, db) => {
            const [row] = fresh(id, 1);
            await db
              .transaction(async (tx) => {
                await tx.execute(
                  'INSERT INTO {{tables.items}} (k, marker, v) VALUES ($1, $2, $3)',
                  [row.k, row.marker, row.v],
                );
                await tx.execute('UPDATE {{tables.items}} SET v = 0');
                throw new Error('roll back');
              })
              .catch(() => undefined);
          },
        ],
        [
          'stream in a transaction',
          2,
          async (id, db) => {
            await db.transaction(async (tx) => {
              await tx.execute('UPDATE {{tables.items}} SET v = v + 2');
              bump(id, 2);
              const seen: Row[] = [];
              for await (const row of tx.stream<Row>('SELECT * FROM {{tables.items}}', [], {
                batchSize: 2,
              })) {
                seen.push(row);
              }
              expectOwn(id, seen, 'stream in a transaction');
            });
          },
        ],
        [
          'kysely',
          5,
          async (id, db) => {
            const k = kyselyFor<Items>(db);
            const [row] = fresh(id, 1);
            await k.transaction().execute(async (trx) => {
              await trx.insertInto('items').values(row).execute();
              await trx
                .updateTable('items')
                .set({ v: sql`v + 3` })
                .execute(); // no where
            });
            remember(id, [row]);
            bump(id, 3);
            const seen = await k.selectFrom('items').selectAll().execute();
            expectOwn(id, seen, 'kysely');
          },
        ],
        [
          'exec',
          2,
          async (id, _db, service) => {
            const result = await service.exec(
              id,
              'UPDATE {{tables.items}} SET v = v + 5; SELECT * FROM {{tables.items}}',
            );
            bump(id, 5);
            expectOwn(id, result.rows as unknown as Row[], 'exec');
          },
        ],
        [
          'write aimed at another tenant',
          3,
          async (id, db) => {
            const other = ids[int(ids.length)];
            if (other === id) return;
            // Refused by the policy's WITH CHECK, whether inserted or moved there.
            await expect(
              db.execute(
                'INSERT INTO {{tables.items}} (tenant_id, k, marker, v) VALUES ($1, 0, $2, 0)',
                [other, id],
              ),
            ).rejects.toMatchObject({ code: '42501' });
            if (models.get(id)!.size > 0) {
              await expect(
                db.execute('UPDATE {{tables.items}} SET tenant_id = $1', [other]),
              ).rejects.toMatchObject({ code: '42501' });
            }
          },
        ],
      ];
      const weights = ops.reduce((sum, [, w]) => sum + w, 0);
      const pickOp = () => {
        let r = int(weights);
        for (const op of ops) if ((r -= op[1]) < 0) return op;
        return ops[0];
      };

      // One operation at a time per tenant (so its model is exact), tenants interleaved.
      const chains = new Map<string, Promise<void>>();
      let left = OPS;
      const worker = async () => {
        while (left-- > 0) {
          const id = ids[int(ids.length)];
          const [name, , run] = pickOp();
          counts.set(name, (counts.get(name) ?? 0) + 1);
          const previous = chains.get(id) ?? Promise.resolve();
          const next = previous.then(() =>
            tenants.run(id, async () => run(id, await tenants.db(id), tenants)),
          );
          chains.set(id, next);
          await next;
        }
      };
      await Promise.all(Array.from({ length: WORKERS }, worker));

      // What the tables hold, read past row-level security.
      const { rows } = await apps.admin.query<Row & { tenant_id: string }>(
        'SELECT tenant_id, marker, k, v FROM tenancy_pooled.items',
      );
      const crossed = rows.filter((r) => r.marker !== r.tenant_id);
      expect(crossed).toEqual([]);
      for (const id of ids) {
        const own = rows.filter((r) => r.tenant_id === id);
        expect({ id, rows: describeRows(own.map((r) => [r.k, r.v])) }).toEqual({
          id,
          rows: describeRows(models.get(id)!),
        });
      }
      expect(rows.length).toBe([...models.values()].reduce((n, m) => n + m.size, 0));
      expect(counts.size).toBe(ops.length); // every kind of operation ran
    } catch (err) {
      (err as Error).message =
        `Randomized pooled isolation test failed with POOLED_FUZZ_SEED=${seed}:\n${(err as Error).message}`;
      throw err;
    }
  }, 120_000);
});
