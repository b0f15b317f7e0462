// The leak fuzzer's last check, straight from the tables over an admin connection that bypasses
// the library: every row of every schema tenant that still exists, and every row of the pooled
// tables, must be stamped with its tenant (a schema's tenant; a pooled row's tenant column), must
// be a write some operation reported into that very home, and each tenant has exactly its own
// marker.
import { TENANT_COLUMN } from './app.mjs';

const PAGE = 10_000;

/**
 * Reads every surviving schema tenant's rows and the pooled tables' in pages. `wroteTo[op]` is
 * where operation `op` reported writing: the index + 1 (in `ids`) of the tenant whose schema it
 * was, `ids.length` + that for the tenant's pooled rows, 0 when none, -1 when the operation was
 * already counted as a cross-tenant write. `pooledSchema`: the pooled tier's schema, when on.
 */
export async function sweep(admin, registry, { ids, wroteTo, operations, pooledSchema }) {
  const found = { rows: 0, foreign: 0, unseen: 0, foreignMarkers: 0, examples: [] };
  const { rows: tenants } = await admin.query(
    `SELECT id, schema_name, tier FROM ${registry}.tenants ORDER BY id`,
  );
  const check = (row, home, index, schema) => {
    found.rows++;
    if (row.op < operations && wroteTo[row.op] === -1) return; // counted by its operation
    if (row.intended !== home) {
      found.foreign++;
      note(found, { counter: 'crossTenantWrites', schema, row });
    } else if (!(row.op < operations && wroteTo[row.op] === index)) {
      found.unseen++;
      note(found, { counter: 'unseenWrites', schema, row });
    }
  };
  const markers = (schema, rows, expected) => {
    const own = rows.filter((m) => m.owner === m.home);
    for (const m of rows) {
      if (m.owner !== m.home || !expected.has(m.home)) {
        found.foreignMarkers++;
        note(found, { counter: 'crossTenantReads', schema, marker: m });
      }
    }
    for (const id of expected) {
      if (own.filter((m) => m.home === id).length !== 1) {
        found.foreignMarkers++;
        note(found, { counter: 'crossTenantReads', schema, missingMarkerOf: id });
      }
    }
  };
  for (const { id, schema_name: schema, tier } of tenants) {
    if (tier === 'pooled') continue;
    const index = ids.indexOf(id) + 1;
    let after = -1;
    for (;;) {
      const { rows } = await admin.query(
        `SELECT op::int AS op, intended, channel FROM "${schema}".writes WHERE op > $1 ORDER BY op LIMIT ${PAGE}`,
        [after],
      );
      if (rows.length === 0) break;
      for (const row of rows) {
        after = row.op;
        check(row, id, index, schema);
      }
    }
    const { rows } = await admin.query(`SELECT owner, $1::text AS home FROM "${schema}".marker`, [
      id,
    ]);
    markers(schema, rows, new Set([id]));
  }
  if (pooledSchema === undefined) return found;
  const pooled = new Set(tenants.filter((t) => t.tier === 'pooled').map((t) => t.id));
  const client = await admin.connect();
  try {
    // Off, not filtered: a login that policies would hold fails here instead of seeing no rows.
    await client.query('BEGIN READ ONLY');
    await client.query('SET LOCAL row_security = off');
    let after = { tenant: '', op: -1 };
    for (;;) {
      const { rows } = await client.query(
        `SELECT ${TENANT_COLUMN} AS home, op::int AS op, intended, channel FROM "${pooledSchema}".writes` +
          ` WHERE (${TENANT_COLUMN}, op) > ($1, $2) ORDER BY ${TENANT_COLUMN}, op LIMIT ${PAGE}`,
        [after.tenant, after.op],
      );
      if (rows.length === 0) break;
      for (const row of rows) {
        after = { tenant: row.home, op: row.op };
        // A pooled tenant's rows go with its drop: one no longer pooled left some behind.
        const index = pooled.has(row.home) ? ids.indexOf(row.home) + 1 + ids.length : 0;
        check(row, row.home, index, pooledSchema);
      }
    }
    const { rows } = await client.query(
      `SELECT ${TENANT_COLUMN} AS home, owner FROM "${pooledSchema}".marker`,
    );
    markers(pooledSchema, rows, pooled);
  } finally {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release();
  }
  return found;
}

function note(found, example) {
  if (found.examples.filter((e) => e.counter === example.counter).length < 3)
    found.examples.push(example);
}
