// Where a schema's catalog names the schema as text rather than by oid, and how such text is
// pointed at another name. ALTER SCHEMA … RENAME re-points everything PostgreSQL stores by oid
// (views, defaults, constraints, triggers, SQL-standard function bodies); the name written in a
// function's source, in its `SET search_path` and in string constants stays as it was.
import type pg from 'pg';
import { withSearchPath } from '../connection/sessions.js';
import { quoteIdentifier } from '../shared/identifiers.js';
import { TARGET } from './script-target.js';

const NAME_CHAR = 'A-Za-z0-9_$\\u0080-\\uffff';
const PLAIN = /^[a-z_][a-z0-9_]*$/;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `schema` as a name of its own: quoted (`"schema"`), or bare and not part of a longer name. */
function reference(schema: string): RegExp {
  return new RegExp(
    `${escapeRegExp(quoteIdentifier(schema))}|(?<![${NAME_CHAR}"])${escapeRegExp(schema)}(?![${NAME_CHAR}"])`,
    'g',
  );
}

/**
 * Whether `text` names schema `schema`, quoted (`"schema"`) or bare, where the name stands for
 * a schema: a qualifier or a search_path element (see {@link repointFunctionDef}).
 */
export function namesSchema(text: string, schema: string): boolean {
  for (const m of text.matchAll(reference(schema))) {
    if (namesSchemaAt(text, m.index, m.index + m[0].length)) return true;
  }
  return false;
}

/**
 * `text` with every reference to schema `schema` (quoted or bare, where the name stands for a
 * schema: see {@link namesSchema}) replaced by `replacement`, e.g. `{{schema}}` in a
 * fingerprint comparable across schema names.
 */
export function replaceSchemaReferences(text: string, schema: string, replacement: string): string {
  return text.replace(reference(schema), (match: string, at: number) =>
    namesSchemaAt(text, at, at + match.length) ? replacement : match,
  );
}

/**
 * `def`, a function as `pg_get_functiondef` prints it, with every reference to schema `from`
 * pointed at `to` (a schema's name, or the script placeholder `TARGET`): in its
 * `SET search_path` list element by element (printed there as string literals, whatever the
 * quoting it was written with), and elsewhere, quoted (`"from"`) or bare, where the name stands
 * for a schema: a qualifier (`from.x`) or an element of a search_path string
 * (`'from, public'`). Elsewhere the same name may be a table's: it is left alone.
 */
export function repointFunctionDef(def: string, from: string, to: string): string {
  const quoted = to === TARGET ? TARGET : quoteIdentifier(to);
  const bare = to === TARGET || !PLAIN.test(to) ? quoted : to;
  const pattern = reference(from);
  const fromQuoted = quoteIdentifier(from);
  let header = true;
  return def
    .split('\n')
    .map((line, i) => {
      // The header's lines (options, then one SET line per setting) are indented by a space.
      if (i > 0 && !line.startsWith(' ')) header = false;
      const setting = header && i > 0 ? /^ SET search_path TO (.*)$/.exec(line) : null;
      if (setting) return ` SET search_path TO ${repointPathList(setting[1], from, quoted)}`;
      return line.replace(pattern, (match: string, at: number) => {
        if (!namesSchemaAt(line, at, at + match.length)) return match;
        return match === fromQuoted ? quoted : bare;
      });
    })
    .join('\n');
}

/**
 * Whether the name (quoted or bare) at `line[start, end)` stands for the schema: a qualifier
 * (`name.x`), or an element of a search_path value (`'name'`, `'a, name'`, `= name;`,
 * `TO name, public`). Anywhere else (`x.name`, `INSERT INTO name (…)`) it may be another object
 * of the same name, a table say: it is left as it is.
 */
function namesSchemaAt(line: string, start: number, end: number): boolean {
  const before = line.slice(0, start);
  if (/\.[ \t]*$/.test(before)) return false; // a member of something: `x.name`
  const after = /^[ \t]*([.',;\n]|$)/.exec(line.slice(end));
  if (!after) return false;
  return after[1] === '.' || /(?:['",=]|\bTO)[ \t]*$/i.test(before);
}

/** A printed search_path list (`'a', 'b'`) with the element `from` replaced by identifier `to`. */
function repointPathList(list: string, from: string, to: string): string {
  return list.replace(/'((?:[^']|'')*)'/g, (literal, value: string) =>
    value.replace(/''/g, "'") === from ? to : literal,
  );
}

/**
 * The objects of `schema` whose definitions still name schema `name` as text (see
 * {@link namesSchema}): functions (body or `SET search_path`), triggers (their arguments),
 * column defaults, constraints, indexes, views, policies and rules, each as
 * `kind "schema".name`. Comments are descriptions and are not read.
 */
export async function objectsNaming(
  client: pg.ClientBase,
  schema: string,
  name: string,
): Promise<string[]> {
  return withSearchPath(client, 'pg_catalog', async () => {
    const { rows } = await client.query<{ object: string; def: string | null }>(
      `WITH ns AS (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1),
            rels AS (SELECT c.* FROM pg_catalog.pg_class c, ns WHERE c.relnamespace = ns.oid)
       SELECT (CASE p.prokind WHEN 'p' THEN 'procedure ' ELSE 'function ' END)
              || p.oid::pg_catalog.regprocedure::text AS object, pg_catalog.pg_get_functiondef(p.oid) AS def
         FROM pg_catalog.pg_proc p, ns WHERE p.pronamespace = ns.oid AND p.prokind IN ('f', 'p')
       UNION ALL SELECT 'trigger ' || t.tgname || ' on ' || c.oid::pg_catalog.regclass::text,
              pg_catalog.pg_get_triggerdef(t.oid)
         FROM pg_catalog.pg_trigger t JOIN rels c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal
       UNION ALL SELECT 'default of ' || c.oid::pg_catalog.regclass::text || '.' || pg_catalog.quote_ident(a.attname),
              pg_catalog.pg_get_expr(d.adbin, d.adrelid)
         FROM pg_catalog.pg_attrdef d JOIN rels c ON c.oid = d.adrelid
         JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
       UNION ALL SELECT 'constraint ' || k.conname || ' on ' || coalesce(k.conrelid::pg_catalog.regclass::text, '-'),
              pg_catalog.pg_get_constraintdef(k.oid)
         FROM pg_catalog.pg_constraint k, ns WHERE k.connamespace = ns.oid
       UNION ALL SELECT 'index ' || i.indexrelid::pg_catalog.regclass::text, pg_catalog.pg_get_indexdef(i.indexrelid)
         FROM pg_catalog.pg_index i JOIN rels c ON c.oid = i.indrelid
       UNION ALL SELECT 'view ' || c.oid::pg_catalog.regclass::text, pg_catalog.pg_get_viewdef(c.oid)
         FROM rels c WHERE c.relkind IN ('v', 'm')
       UNION ALL SELECT 'policy ' || p.polname || ' on ' || c.oid::pg_catalog.regclass::text,
              coalesce(pg_catalog.pg_get_expr(p.polqual, p.polrelid), '') || ' '
              || coalesce(pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid), '')
         FROM pg_catalog.pg_policy p JOIN rels c ON c.oid = p.polrelid
       UNION ALL SELECT 'rule ' || r.rulename || ' on ' || c.oid::pg_catalog.regclass::text,
              pg_catalog.pg_get_ruledef(r.oid)
         FROM pg_catalog.pg_rewrite r JOIN rels c ON c.oid = r.ev_class WHERE r.rulename <> '_RETURN'`,
      [schema],
    );
    return rows.filter((r) => r.def !== null && namesSchema(r.def, name)).map((r) => r.object);
  });
}
