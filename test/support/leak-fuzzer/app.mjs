// The app the leak fuzzer drives: one unit of work (`FuzzWork.perform`) that writes a row stamped
// with the tenant the harness intends and reads a marker back, through `@InjectTenantDb()`, and an
// HTTP route to it. Plain JavaScript (decorators applied as functions): the Jest spec (on lib/)
// and the bench suite (on dist/) share it, each passing its own build of the library as `lib`.
import 'reflect-metadata';
import {
  Controller,
  Headers,
  HttpCode,
  Inject,
  Injectable,
  Module,
  Param,
  Post,
} from '@nestjs/common';

/** The injection token of the run's {@link Ledger}. */
const LEDGER = 'LeakFuzzer:Ledger';

/**
 * The tenant migration. `marker` gets one row per tenant, inserted after the tenant is created
 * (`MARKER`; a seed row in the file would be refused for the pooled tier), naming its `owner`: a
 * read says through PostgreSQL's `tableoid` which schema it reached, and through the row which
 * tenant's marker it saw. Keyed by its owner, so a marker inserted under another tenant's scope
 * is not refused as a duplicate but lands where the oracle sees it.
 */
export const MIGRATIONS = {
  '001_fuzz.sql': [
    'CREATE TABLE {{tables.marker}} (owner text PRIMARY KEY);',
    'CREATE TABLE {{tables.writes}} (op bigint PRIMARY KEY, intended text, channel text NOT NULL);',
    '',
  ].join('\n'),
};

/** The column the pooled tier adds to every pooled table (docs/tiers.md). */
export const TENANT_COLUMN = 'tenant_id';

/** A tenant's marker row, inserted once it is created: `$1` is its id. */
export const MARKER = 'INSERT INTO {{tables.marker}} (owner) VALUES ($1)';

// The schema of `tableoid`, and the row's tenant column when it has one (a pooled row): read
// through to_jsonb so that the same text runs against both tiers' tables.
const SCHEMA_OF = (alias) =>
  `(SELECT relnamespace::regnamespace::text FROM pg_class c WHERE c.oid = ${alias}.tableoid) AS schema`;
const WRITE =
  'INSERT INTO {{tables.writes}} AS w (op, intended, channel) VALUES ($1, $2, $3)' +
  ` RETURNING ${SCHEMA_OF('w')}, to_jsonb(w) ->> '${TENANT_COLUMN}' AS tenant`;
const READ = `SELECT ${SCHEMA_OF('m')}, m.owner, to_jsonb(m) ->> '${TENANT_COLUMN}' AS tenant FROM {{tables.marker}} m`;

/** Ways the work yields between its write and its read, so that other work interleaves. */
const PAUSES = [
  () => undefined,
  () => Promise.resolve(),
  () => new Promise((resolve) => setImmediate(resolve)),
  () => new Promise((resolve) => setTimeout(resolve, 1)),
];
export const PAUSE_KINDS = PAUSES.length;

/**
 * What the work of each operation saw: `wrote`, the schema its row went to and the row's tenant
 * column (`null` in a schema tenant's table); `read`, every marker row its read returned.
 */
export class Ledger {
  #traces = new Map();

  /** The trace of operation `op` so far (forgotten once taken). */
  take(op) {
    const trace = this.#traces.get(op);
    this.#traces.delete(op);
    return trace;
  }

  /** @internal */
  record(op, key, seen) {
    let trace = this.#traces.get(op);
    if (!trace) this.#traces.set(op, (trace = {}));
    trace[key] = seen;
  }
}

/**
 * The unit of work every channel runs: a write stamped with `intended` (the tenant the harness
 * meant, or `null`), a pause, and a read, both through the current tenant's `@InjectTenantDb()`.
 */
export class FuzzWork {
  constructor(db, ledger) {
    this.db = db;
    this.ledger = ledger;
  }

  async perform(op, intended, channel, pause = 0) {
    await this.write(op, intended, channel);
    await this.read(op, pause);
  }

  /** The first half of {@link perform}: the write (a GraphQL mutation's own resolver). */
  async write(op, intended, channel) {
    const written = await this.db.fetchOne(WRITE, [op, intended, channel]);
    this.ledger.record(op, 'wrote', { schema: written.schema, tenant: written.tenant });
  }

  /** The second half: the pause and the read (a GraphQL field resolver below the mutation). */
  async read(op, pause = 0) {
    await PAUSES[pause]?.();
    const markers = await this.db.fetchAll(READ);
    this.ledger.record(
      op,
      'read',
      markers.map((m) => ({ schema: m.schema, owner: m.owner, tenant: m.tenant })),
    );
  }
}

/** `POST /fuzz/:op` with `x-tenant-id`, `x-fuzz-intended` and `x-fuzz-pause`. */
class FuzzController {
  constructor(work) {
    this.work = work;
  }

  async perform(op, intended, pause) {
    await this.work.perform(Number(op), intended || null, 'http', Number(pause ?? 0));
    return { ok: true };
  }
}

let decorated = false;

/** Applies the decorators TypeScript would (once), given the library's tenant-db token. */
function decorate(lib) {
  if (decorated) return;
  decorated = true;
  Injectable()(FuzzWork);
  Inject(lib.getTenantDbToken())(FuzzWork, undefined, 0);
  Inject(LEDGER)(FuzzWork, undefined, 1);
  Controller('fuzz')(FuzzController);
  Inject(FuzzWork)(FuzzController, undefined, 0);
  const proto = FuzzController.prototype;
  const descriptor = Object.getOwnPropertyDescriptor(proto, 'perform');
  Post(':op')(proto, 'perform', descriptor);
  HttpCode(200)(proto, 'perform', descriptor);
  Param('op')(proto, 'perform', 0);
  Headers('x-fuzz-intended')(proto, 'perform', 1);
  Headers('x-fuzz-pause')(proto, 'perform', 2);
}

/**
 * The root module of an instance: `DatabaseModule` with tenancy, plus (for the serving instance)
 * the work, the HTTP route and what the channels add.
 */
export function fuzzModule({ lib, database, serving, ledger, extra = [] }) {
  decorate(lib);
  class LeakFuzzerModule {}
  const imports = [lib.DatabaseModule.forRoot(database)];
  const controllers = [];
  const providers = [];
  if (serving) {
    controllers.push(FuzzController);
    providers.push(FuzzWork, { provide: LEDGER, useValue: ledger });
    for (const part of extra) {
      imports.push(...(part.imports ?? []));
      controllers.push(...(part.controllers ?? []));
      providers.push(...(part.providers ?? []));
    }
  }
  Module({ imports, controllers, providers })(LeakFuzzerModule);
  return LeakFuzzerModule;
}
