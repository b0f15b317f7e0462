import {
  PostgresQueryCompiler,
  WithSchemaPlugin,
  type CompiledQuery,
  type QueryId,
  type RootOperationNode,
  type SchemableIdentifierNode,
} from 'kysely';

// Stands for "the manager's schema" between the two steps below. A NUL byte cannot occur in a
// PostgreSQL name, so no real schema is ever mistaken for it.
const MANAGER_SCHEMA = '\0nestjs-pg-tenancy:schema';
const PLACEHOLDER_NAME = /^[A-Za-z_][A-Za-z0-9_$]*$/;

/**
 * Compiles queries to SQL templates: every table the query names without a schema becomes
 * `{{tables.name}}`, which the `SchemaDb` that runs the query expands to its own schema (or
 * leaves unqualified, on the default manager). The compiled text is therefore the same for every
 * tenant, shares the module's SQL template cache, and no connection ever needs a `search_path`.
 *
 * Which names are tables (not CTE names, aliases or columns) is decided by Kysely's own
 * `withSchema` logic, run here rather than as a plugin so that `withoutPlugins()` cannot drop
 * it. Names that already carry a schema (`withSchema('audit')`, `'audit.log'`) are left alone.
 */
export class QualifyingQueryCompiler extends PostgresQueryCompiler {
  readonly #qualify = new WithSchemaPlugin(MANAGER_SCHEMA);

  override compileQuery(node: RootOperationNode, queryId: QueryId): CompiledQuery {
    return super.compileQuery(this.#qualify.transformQuery({ node, queryId }), queryId);
  }

  protected override visitSchemableIdentifier(node: SchemableIdentifierNode): void {
    if (node.schema?.name !== MANAGER_SCHEMA) {
      super.visitSchemableIdentifier(node);
      return;
    }
    const name = node.identifier.name;
    if (PLACEHOLDER_NAME.test(name)) {
      this.append(`{{tables.${name}}}`);
      return;
    }
    // A name SQL templates cannot carry ("order-items"): qualify it by hand.
    this.append('{{schema}}.');
    this.visitNode(node.identifier);
  }
}
