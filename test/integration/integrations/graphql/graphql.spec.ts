// GraphQL over a real Apollo server (code-first schema, kept in memory) and a real PostgreSQL:
// every resolver of an operation, root and field resolvers alike, runs in the request's tenant,
// with operations of two tenants interleaved mid-flight; a tenant that cannot be served is a
// typed GraphQL error with a code, and none of the operation's code runs.
import { type CanActivate, type ExecutionContext, type INestApplication } from '@nestjs/common';
import { APP_FILTER, APP_GUARD } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import {
  Args,
  Field,
  GqlExecutionContext,
  GraphQLModule,
  Int,
  Mutation,
  ObjectType,
  Parent,
  Query,
  ResolveField,
  Resolver,
} from '@nestjs/graphql';
import {
  DatabaseExceptionFilter,
  DatabaseModule,
  InjectTenantDb,
  NoTenant,
  SchemaDb,
  TenantContext,
  TenantService,
  fromHeader,
  fromUser,
} from '../../../../lib/index.js';
import { tenantSchema } from '../../../../lib/integrations/graphql/index.js';
import { TenantRegistry } from '../../../../lib/tenancy/index.js';
import { useTestDatabase } from '../../../support/database.js';
import { useMigrationFolders } from '../../../support/migrations.js';

interface Gate {
  readonly promise: Promise<void>;
  readonly resolve: () => void;
}

function gate(): Gate {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => (resolve = done));
  return { promise, resolve };
}

/** Points where a resolver waits until the test lets it go on: interleaving without sleeps. */
class Gates {
  readonly #arrived = new Map<string, Gate>();
  readonly #opened = new Map<string, Gate>();
  /** Called by a resolver: notes its arrival, and waits until `open(name)`. */
  pass(name: string): Promise<void> {
    this.#get(this.#arrived, name).resolve();
    return this.#get(this.#opened, name).promise;
  }
  reached(name: string): Promise<void> {
    return this.#get(this.#arrived, name).promise;
  }
  open(name: string): void {
    this.#get(this.#opened, name).resolve();
  }
  #get(map: Map<string, Gate>, name: string): Gate {
    let found = map.get(name);
    if (!found) map.set(name, (found = gate()));
    return found;
  }
}

const gates = new Gates();
const calls = { board: 0, addNote: 0, authorize: 0 };

@ObjectType()
class Note {
  @Field(() => Int) id!: number;
  @Field(() => String) body!: string;
}

@ObjectType()
class Board {
  /** The tenant the root resolver ran in, before and after it awaited. */
  @Field(() => [String]) rootSaw!: string[];
  /** The notes the root resolver read after it awaited. */
  @Field(() => [String]) rootNotes!: string[];
  hold!: string;
}

@Resolver(() => Board)
class BoardResolver {
  constructor(
    @InjectTenantDb() private readonly db: SchemaDb,
    private readonly tenant: TenantContext,
  ) {}

  @Query(() => Board)
  async board(@Args('hold', { type: () => String }) hold: string): Promise<Board> {
    calls.board++;
    const first = this.tenant.current?.tenantId ?? 'none';
    if (hold !== '') await gates.pass(`${hold}:root`);
    const rows = await this.db.fetchAll<{ body: string }>(
      'SELECT body FROM {{tables.notes}} ORDER BY id',
    );
    return {
      rootSaw: [first, this.tenant.current?.tenantId ?? 'none'],
      rootNotes: rows.map((r) => r.body),
      hold,
    };
  }

  /** A field resolver that runs after the root returned, and awaits before its query. */
  @ResolveField(() => [Note])
  async notes(@Parent() board: Board): Promise<Note[]> {
    if (board.hold !== '') await gates.pass(`${board.hold}:field`);
    return this.db.fetchAll<Note>('SELECT id, body FROM {{tables.notes}} ORDER BY id');
  }

  @ResolveField(() => String)
  seenBy(): string {
    return this.tenant.current?.tenantId ?? 'none';
  }

  @Mutation(() => Note)
  addNote(@Args('body', { type: () => String }) body: string): Promise<Note> {
    calls.addNote++;
    return this.db.fetchOne<Note>(
      'INSERT INTO {{tables.notes}} (body) VALUES ($1) RETURNING id, body',
      [body],
    ) as Promise<Note>;
  }
}

@Resolver()
class PublicResolver {
  constructor(
    private readonly tenant: TenantContext,
    private readonly tenants: TenantService,
  ) {}

  @NoTenant()
  @Query(() => String)
  version(): string {
    return `1:${this.tenant.current?.tenantId ?? 'none'}`;
  }

  /** A `@NoTenant()` root field whose field resolvers must run without the request's tenant. */
  @NoTenant()
  @Query(() => Board)
  async sample(@Args('hold', { type: () => String }) hold: string): Promise<Board> {
    if (hold !== '') await gates.pass(`${hold}:sample`);
    return { rootSaw: [], rootNotes: [], hold: '' };
  }

  @Query(() => Int)
  async noteCount(@Args('tenant', { type: () => String }) id: string): Promise<number> {
    const db = await this.tenants.db(id);
    return Number(await db.fetchValue('SELECT count(*) FROM {{tables.notes}}'));
  }

  @Query(() => String)
  boom(): string {
    throw new Error('boom: an application error, not the module’s');
  }
}

/** Signs the caller in as a GraphQL auth guard would: `req.user` on the GraphQL context's request. */
class SignInGuard implements CanActivate {
  canActivate(ctx: ExecutionContext): boolean {
    if (ctx.getType<string>() !== 'graphql') return true;
    const req = GqlExecutionContext.create(ctx).getContext<{ req: SignedInRequest }>().req;
    const tenant = req.headers['x-signed-in-to'];
    if (typeof tenant === 'string') req.user = { tenant };
    return true;
  }
}

interface SignedInRequest {
  headers: Record<string, string | string[] | undefined>;
  user?: { tenant: string };
}

interface GqlResponse<T = Record<string, unknown>> {
  status: number;
  data?: T | null;
  errors?: { message: string; path?: string[]; extensions?: Record<string, unknown> }[];
}

describe('GraphQL (Apollo): resolvers run in the request’s tenant', () => {
  const database = useTestDatabase();
  const folder = useMigrationFolders();
  const apps: INestApplication[] = [];
  /** The app as most are set up, and one with `DatabaseExceptionFilter` as its global filter. */
  const urls = { plain: '', filtered: '' };
  async function gql<T = Record<string, unknown>>(
    tenant: string | undefined,
    query: string,
    variables?: Record<string, unknown>,
    at = urls.plain,
  ): Promise<GqlResponse<T>> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (tenant !== undefined) headers['x-tenant-id'] = tenant;
    const res = await fetch(at, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query, variables }),
    });
    return { status: res.status, ...((await res.json()) as Omit<GqlResponse<T>, 'status'>) };
  }

  const signedIn = fromUser('tenant');
  const header = fromHeader('x-tenant-id');

  async function start(migrations: string, filter: boolean): Promise<string> {
    const module = await Test.createTestingModule({
      imports: [
        DatabaseModule.forRoot({
          connection: database.current.url,
          pool: { max: 4 },
          tenancy: {
            migrations,
            registrySchema: 'gql_reg',
            // The signed-in user's tenant (set by a guard, which runs first), else the header.
            resolver: (ctx) => signedIn(ctx) ?? header(ctx),
            // Sees the resolver's own execution context, as a guard would.
            authorize: (id, ctx) => {
              calls.authorize++;
              const req = GqlExecutionContext.create(ctx).getContext<{ req: Request }>().req;
              return (
                (req as unknown as { headers: Record<string, string> }).headers['x-deny'] !== id
              );
            },
          },
        }),
        GraphQLModule.forRoot<ApolloDriverConfig>({
          driver: ApolloDriver,
          autoSchemaFile: true,
          transformSchema: tenantSchema,
          allowBatchedHttpRequests: true,
        }),
      ],
      providers: [
        BoardResolver,
        PublicResolver,
        { provide: APP_GUARD, useClass: SignInGuard },
        ...(filter ? [{ provide: APP_FILTER, useClass: DatabaseExceptionFilter }] : []),
      ],
    }).compile();
    const app = module.createNestApplication({ logger: false });
    apps.push(app);
    await app.listen(0, '127.0.0.1');
    return `${await app.getUrl()}/graphql`;
  }

  beforeAll(async () => {
    const migrations = await folder({
      '001_notes.sql': 'CREATE TABLE {{tables.notes}} (id serial PRIMARY KEY, body text NOT NULL);',
    });
    urls.plain = await start(migrations, false);
    const tenants = apps[0].get(TenantService);
    for (const id of ['t1', 't2', 't3']) {
      await tenants.create(id);
      await (
        await tenants.db(id)
      ).execute(`INSERT INTO {{tables.notes}} (body) VALUES ('${id}-a'), ('${id}-b')`);
    }
    await tenants.suspend('t3');
    // Started after the tenants were: it reads them as they are now.
    urls.filtered = await start(migrations, true);
  });
  afterAll(() => Promise.all(apps.map((app) => app.close())));

  const BOARD = `query ($hold: String!) { board(hold: $hold) { rootSaw rootNotes seenBy notes { body } } }`;

  it('runs the root and field resolvers of interleaved operations each in its own tenant', async () => {
    const one = gql('t1', BOARD, { hold: 'one' });
    const two = gql('t2', BOARD, { hold: 'two' });
    // Both root resolvers in flight at once, between their two reads of the tenant; let the
    // second go first.
    await Promise.all([gates.reached('one:root'), gates.reached('two:root')]);
    gates.open('two:root');
    await gates.reached('two:field');
    gates.open('one:root');
    await gates.reached('one:field');
    // Both field resolvers wait, after their root resolvers returned; the first goes first now.
    gates.open('one:field');
    gates.open('two:field');
    const [a, b] = await Promise.all([one, two]);
    expect(a.errors).toBeUndefined();
    expect(a.data).toEqual({
      board: {
        rootSaw: ['t1', 't1'],
        rootNotes: ['t1-a', 't1-b'],
        seenBy: 't1',
        notes: [{ body: 't1-a' }, { body: 't1-b' }],
      },
    });
    expect(b.data).toEqual({
      board: {
        rootSaw: ['t2', 't2'],
        rootNotes: ['t2-a', 't2-b'],
        seenBy: 't2',
        notes: [{ body: 't2-a' }, { body: 't2-b' }],
      },
    });
  });

  it('keeps many concurrent operations, batched ones included, in their own tenants', async () => {
    const plain = `{ board(hold: "") { rootNotes seenBy notes { body } } }`;
    const runs = Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? 't1' : 't2')).map(
      async (tenant) => ({ tenant, res: await gql(tenant, plain) }),
    );
    const batch = fetch(urls.plain, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-tenant-id': 't2' },
      body: JSON.stringify([{ query: plain }, { query: plain }]),
    }).then((res) => res.json() as Promise<GqlResponse[]>);
    for (const { tenant, res } of await Promise.all(runs)) {
      expect(res.data).toEqual({
        board: {
          rootNotes: [`${tenant}-a`, `${tenant}-b`],
          seenBy: tenant,
          notes: [{ body: `${tenant}-a` }, { body: `${tenant}-b` }],
        },
      });
    }
    for (const res of await batch) expect(res.data?.board).toMatchObject({ seenBy: 't2' });
  });

  it('reads the tenant of the user a guard signed in (fromUser), as for a route', async () => {
    const res = await fetch(urls.plain, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-signed-in-to': 't2' },
      body: JSON.stringify({ query: `{ board(hold: "") { rootSaw seenBy notes { body } } }` }),
    }).then((r) => r.json() as Promise<GqlResponse>);
    expect(res.data).toEqual({
      board: { rootSaw: ['t2', 't2'], seenBy: 't2', notes: [{ body: 't2-a' }, { body: 't2-b' }] },
    });
  });

  it('admits (and authorizes) each root field once, not each field resolver', async () => {
    calls.authorize = 0;
    const res = await gql('t1', `{ a: board(hold: "") { seenBy notes { id } } b: version }`);
    expect(res.errors).toBeUndefined();
    expect(calls.authorize).toBe(1);
  });

  it('answers a missing, malformed, unknown, refused or suspended tenant with a typed error and runs nothing', async () => {
    const before = { ...calls };
    const cases: [string | undefined, string, number, string][] = [
      [undefined, 'BAD_REQUEST', 400, 'TenantRequiredError'],
      ['../x', 'BAD_REQUEST', 400, 'InvalidTenantIdError'],
      ['nope', 'NOT_FOUND', 404, 'TenantNotFoundError'],
      ['t3', 'FORBIDDEN', 403, 'TenantSuspendedError'],
    ];
    for (const [[tenant, code, status, error], at] of cases.flatMap((c) =>
      [urls.plain, urls.filtered].map((at) => [c, at] as const),
    )) {
      const res = await gql(tenant, `{ board(hold: "") { seenBy notes { id } } }`, {}, at);
      expect(res.data).toBeNull();
      expect(res.errors).toHaveLength(1);
      expect(res.errors?.[0]).toMatchObject({
        path: ['board'],
        extensions: { code, status, error },
      });
      const added = await gql(tenant, `mutation { addNote(body: "x") { id } }`, {}, at);
      expect(added.errors?.[0]?.extensions).toMatchObject({ code, status, error });
    }
    const refused = await fetch(urls.plain, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-tenant-id': 't1', 'x-deny': 't1' },
      body: JSON.stringify({ query: `mutation { addNote(body: "x") { id } }` }),
    }).then((res) => res.json() as Promise<GqlResponse>);
    expect(refused.errors?.[0]?.extensions).toMatchObject({
      code: 'FORBIDDEN',
      error: 'TenantAccessDeniedError',
    });
    expect([calls.board, calls.addNote]).toEqual([before.board, before.addNote]);
    const count = await gql('t1', `{ noteCount(tenant: "t1") }`);
    expect(count.data).toEqual({ noteCount: 2 });
  });

  it('runs @NoTenant() resolvers, and the field resolvers below them, without a tenant', async () => {
    expect((await gql(undefined, `{ version }`)).data).toEqual({ version: '1:none' });
    expect((await gql('t1', `{ version }`)).data).toEqual({ version: '1:none' });
    // In one operation with a tenant root field: each field resolver follows its own root field,
    // also when the tenant root field was admitted first.
    const mixed = gql('t1', `{ board(hold: "mix") { seenBy } sample(hold: "mix") { seenBy } }`);
    await Promise.all([gates.reached('mix:root'), gates.reached('mix:sample')]);
    gates.open('mix:sample');
    gates.open('mix:root');
    expect((await mixed).data).toEqual({ board: { seenBy: 't1' }, sample: { seenBy: 'none' } });
  });

  it('reports the module’s errors thrown by a resolver with their code, and leaves others alone (DatabaseExceptionFilter)', async () => {
    const unknown = await gql('t1', `{ noteCount(tenant: "nope") }`, {}, urls.filtered);
    expect(unknown.errors?.[0]?.extensions).toMatchObject({
      code: 'NOT_FOUND',
      status: 404,
      error: 'TenantNotFoundError',
    });
    const boom = await gql('t1', `{ boom }`, {}, urls.filtered);
    expect(boom.errors?.[0]?.message).toBe('boom: an application error, not the module’s');
    expect(boom.errors?.[0]?.extensions).toMatchObject({ code: 'INTERNAL_SERVER_ERROR' });
    // Without the filter, an error the resolver's own code throws is the driver's to report.
    const raw = await gql('t1', `{ noteCount(tenant: "nope") }`, {}, urls.plain);
    expect(raw.errors?.[0]?.message).toBe(unknown.errors?.[0]?.message);
  });

  it('answers a field resolver whose tenant is dropped under it with NOT_FOUND, as a root field is', async () => {
    const tenants = apps[0].get(TenantService);
    await tenants.create('t9');
    const pending = gql('t9', BOARD, { hold: 'gone' });
    await gates.reached('gone:root');
    gates.open('gone:root');
    await gates.reached('gone:field');
    // Between the root field and its field resolver the drop ends (its row is deleted, as
    // drop() does last) and this instance hears of it.
    const { default: pg } = await import('pg');
    const admin = new pg.Client(database.current.url);
    await admin.connect();
    await admin.query("DELETE FROM gql_reg.tenants WHERE id = 't9'");
    await admin.end();
    await apps[0].get(TenantRegistry).refresh('t9');
    gates.open('gone:field');
    const { errors } = await pending;
    expect(errors?.[0]).toMatchObject({
      path: ['board', 'notes'],
      extensions: { code: 'NOT_FOUND', status: 404, error: 'TenantNotFoundError' },
    });
  });
});
