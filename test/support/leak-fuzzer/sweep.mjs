// The leak fuzzer's last check, straight from the tables: every row in every tenant schema that
// still exists must be stamped with that schema's tenant, and must be a write some operation
// reported into that very schema.

/**
 * Reads every surviving tenant schema's rows in pages. `wroteTo[op]` is the index + 1 (in `ids`)
 * of the tenant whose schema operation `op` reported writing to, 0 when none, -1 when the
 * operation was already counted as a cross-tenant write.
 */
export async function sweep(admin, registry, { ids, wroteTo, operations }) {
  const found = { rows: 0, foreign: 0, unseen: 0, examples: [] };
  const { rows: tenants } = await admin.query(
    `SELECT id, schema_name FROM ${registry}.tenants ORDER BY id`,
  );
  for (const { id, schema_name: schema } of tenants) {
    const index = ids.indexOf(id) + 1;
    let after = -1;
    for (;;) {
      const { rows } = await admin.query(
        `SELECT op::int AS op, intended, channel FROM "${schema}".writes WHERE op > $1 ORDER BY op LIMIT 10000`,
        [after],
      );
      if (rows.length === 0) break;
      for (const row of rows) {
        found.rows++;
        after = row.op;
        const seen = row.op < operations && wroteTo[row.op] === index;
        if (row.op < operations && wroteTo[row.op] === -1) continue; // counted by its operation
        if (row.intended !== id) {
          found.foreign++;
          note(found, { counter: 'crossTenantWrites', schema, row });
        } else if (!seen) {
          found.unseen++;
          note(found, { counter: 'unseenWrites', schema, row });
        }
      }
    }
  }
  return found;
}

function note(found, example) {
  if (found.examples.filter((e) => e.counter === example.counter).length < 3)
    found.examples.push(example);
}
