import { useTenancyApps } from '../../../support/tenancy-apps.js';

const REGISTRY = 'reg_exact';
const TEMPLATE = `${REGISTRY}$template`;

// Sequences restarted or set back (is_called false), used and untouched; functions hardened
// with SET search_path as PostgreSQL recommends, in every form it is written.
const FILES: Record<string, string> = {
  '001_sequences.sql': `
CREATE TABLE {{tables.notes}} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL);
INSERT INTO {{tables.notes}} (body) VALUES ('seed');
ALTER TABLE {{tables.notes}} ALTER COLUMN id RESTART WITH 500;
CREATE SEQUENCE {{schema}}.invoice_no START 1000;
ALTER SEQUENCE {{schema}}.invoice_no RESTART WITH 1041;
CREATE SEQUENCE {{schema}}.ticket_no;
SELECT setval(tableoid, 7, false) FROM {{schema}}.ticket_no;
CREATE SEQUENCE {{schema}}.order_no START 50;
CREATE SEQUENCE {{schema}}.receipt_no;
SELECT nextval(tableoid) FROM {{schema}}.receipt_no;
`,
  '002_hardened.sql': `
CREATE FUNCTION {{schema}}.add_note(t text) RETURNS void LANGUAGE sql
  SET search_path = {{schema}} AS $$ INSERT INTO notes (body) VALUES (t) $$;
CREATE FUNCTION {{schema}}.add_note_listed(t text) RETURNS void LANGUAGE sql
  SET search_path TO pg_catalog, {{schema}}, public AS $$ INSERT INTO notes (body) VALUES (t) $$;
CREATE FUNCTION {{schema}}.note_count() RETURNS bigint LANGUAGE sql STABLE
  SET search_path = {{schema}}
BEGIN ATOMIC
  SELECT count(*) FROM {{tables.notes}};
END;
CREATE PROCEDURE {{schema}}.add_two(t text) LANGUAGE plpgsql SET search_path = {{schema}} AS $$
BEGIN INSERT INTO notes (body) VALUES (t), (t || '!'); END $$;
`,
};

describe('template and spares: sequence state and SET search_path', () => {
  const t = useTenancyApps(REGISTRY);

  const nextValues = async (schema: string) =>
    (
      await t.admin.query<Record<string, string>>(
        `SELECT nextval('"${schema}".invoice_no')::text AS invoice, nextval('"${schema}".ticket_no')::text AS ticket,
                nextval('"${schema}".order_no')::text AS "order", nextval('"${schema}".receipt_no')::text AS receipt`,
      )
    ).rows[0];

  /** Calls every function of `schema`; returns the notes each schema holds afterwards. */
  async function callAll(schema: string) {
    await t.admin.query(`SELECT "${schema}".add_note('one'), "${schema}".add_note_listed('two')`);
    await t.admin.query(`CALL "${schema}".add_two('three')`);
    const count = await t.admin.query<{ n: string }>(`SELECT "${schema}".note_count()::text AS n`);
    const notes = await t.admin.query<{ body: string }>(
      `SELECT body FROM "${schema}".notes ORDER BY id`,
    );
    return { count: count.rows[0].n, notes: notes.rows.map((r) => r.body) };
  }

  it('copies, spares and replays agree on sequence positions and hardened functions', async () => {
    const migrations = await t.folder(FILES);
    const replaying = await t.boot({ migrations, template: false });
    await replaying.create('replayed');
    const expected = await t.fingerprint('tenant_replayed');
    // The fingerprint sees where each sequence stands.
    expect(expected).toContain('sequence invoice_no at last=1041 called=false');
    expect(expected).toContain('sequence ticket_no at last=7 called=false');
    expect(expected).toContain('sequence receipt_no at last=1 called=true');
    expect(expected).toContain('sequence notes_id_seq at last=500 called=false');

    const copying = await t.boot({ migrations, templateSpares: 0 });
    await copying.create('copied');
    const sparing = await t.boot({ migrations, templateSpares: 1 });
    const [spare] = (
      await t.admin.query<{ oid: string }>(
        `SELECT n.oid::text FROM ${REGISTRY}.tenant_template_spares s
           JOIN pg_namespace n ON n.nspname = s.schema_name`,
      )
    ).rows;
    await sparing.create('spared');
    expect(await t.schemaOid('tenant_spared')).toBe(spare.oid);
    expect(t.warnings).toEqual([]);
    // Neither was replayed: the template holds both files.
    expect(await t.history(TEMPLATE)).toEqual(Object.keys(FILES));

    for (const schema of ['tenant_copied', 'tenant_spared']) {
      expect(await t.fingerprint(schema)).toEqual(expected);
    }
    const proconfig = await t.admin.query<{ schema: string; config: string }>(
      `SELECT n.nspname AS schema, p.proconfig::text AS config FROM pg_proc p
         JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname LIKE 'tenant\\_%'`,
    );
    for (const row of proconfig.rows) expect(row.config).toContain(row.schema);
    for (const schema of ['tenant_replayed', 'tenant_copied', 'tenant_spared']) {
      expect(await nextValues(schema)).toEqual({
        invoice: '1041',
        ticket: '7',
        order: '50',
        receipt: '2',
      });
      // Each function writes into its own schema's table, the identity going on from 500.
      expect(await callAll(schema)).toEqual({
        count: '5',
        notes: ['seed', 'one', 'two', 'three', 'three!'],
      });
      const ids = await t.admin.query<{ id: string }>(
        `SELECT max(id)::text AS id FROM "${schema}".notes`,
      );
      expect(ids.rows[0].id).toBe('503');
    }
  });
});
